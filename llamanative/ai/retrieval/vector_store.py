"""An in-memory vector store: indexer and retriever over a local embedder.

Documents are embedded in one batched call per :meth:`VectorStore.index`
and kept as rows of a float32 matrix with unit-norm rows, so a query is one
matrix-vector product (cosine similarity) and a partial sort. The store can
be saved to a single ``.npz`` file (the matrix plus the documents as JSON),
written atomically, and loaded back.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import NotFoundError
from ..retriever import Retriever, RetrieverInfo, RetrieverRequest, RetrieverResponse, query_document
from ._compat import as_document, document_metadata, document_text, invalid_argument, to_wire
from .embedders import as_text_embedder, embed_texts
from .types import DEFAULT_K, ScoredDocument, VectorRetrieverOptions

__all__ = ["VectorStore", "define_vector_store", "document_id"]

FORMAT = "llamanative.vectorstore"
OPTIONS_SCHEMA = {
    "type": "object",
    "properties": {
        "k": {"type": "integer", "minimum": 0, "description": "Number of documents to retrieve"},
        "filter": {"type": "object", "description": "Metadata values the documents must have"},
    },
    "additionalProperties": False,
}
VERSION = 1
_MISSING = object()


def document_id(doc: Any, id_key: str = "id") -> str:
    """The id of a document: ``metadata[id_key]`` when set, else the MD5 of its JSON form.

    The hash is taken over the document's wire form with sorted keys, so
    equal documents get equal ids (the same rule as Genkit's local vector
    store, which skips documents already present).
    """
    md = document_metadata(doc)
    if md.get(id_key) is not None:
        return str(md[id_key])
    wire = json.dumps(to_wire(doc), sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.md5(wire.encode("utf-8")).hexdigest()


def _matches(doc: Any, flt: Any) -> bool:
    if callable(flt):
        return bool(flt(doc))
    md = document_metadata(doc)
    return all(md.get(k, _MISSING) == v for k, v in flt.items())


class VectorStore:
    """Documents and their embeddings; :meth:`index` adds, :meth:`retrieve` finds.

    Args:
        embedder: a text embedder (``embed(texts) -> (n, d) array``), e.g.
            :class:`~llamanative.ai.retrieval.ClientEmbedder`; an ``ai`` Embedder
            (``ai.lookup_embedder("llamanative/all-minilm")``); or a Client, with ``model``.
        model: the embedding model, when ``embedder`` is a Client.
        options: embedding options (model options for a Client, the ``ai`` embedder's options).
        path: a file to keep the store in: loaded now if it exists, rewritten
            (atomically) after every :meth:`index` and :meth:`delete`.
        id_key: the metadata key holding a document's id (otherwise the id is
            a hash of the document).
        name: a name for the store (used when it is registered as a retriever).

    Thread-safe: searches see a consistent snapshot; embedding runs outside the lock.
    """

    def __init__(
        self,
        embedder: Any,
        *,
        model: str | None = None,
        options: Any = None,
        path: str | os.PathLike | None = None,
        id_key: str = "id",
        name: str = "vectorstore",
    ) -> None:
        self.embedder = as_text_embedder(embedder, model, options)
        self.id_key = id_key
        self.name = name
        self.path = Path(path) if path is not None else None
        self._lock = threading.RLock()
        self._ids: list[str] = []
        self._docs: list[Any] = []
        self._row: dict[str, int] = {}
        self._buf = np.zeros((0, 0), dtype=np.float32)  # capacity rows; the first len(self) are used
        if self.path is not None and self.path.exists():
            self._read(self.path)

    # -- contents --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._row

    @property
    def ids(self) -> list[str]:
        with self._lock:
            return list(self._ids)

    @property
    def dimensions(self) -> int:
        return int(self._buf.shape[1])

    @property
    def embeddings(self) -> np.ndarray:
        """A copy of the (n, d) matrix of unit-norm embeddings, rows in the order of :attr:`ids`."""
        with self._lock:
            return self._buf[: len(self._ids)].copy()

    def get(self, doc_id: str) -> Any | None:
        with self._lock:
            i = self._row.get(doc_id)
            return None if i is None else self._docs[i]

    # -- indexing --------------------------------------------------------------------------
    def index(self, documents: Iterable[Any], *, upsert: bool = False) -> list[str]:
        """Embed and add documents (texts, documents or their JSON forms); returns their ids.

        All new texts are embedded in one batched call. A document whose id is
        already stored is skipped (Genkit's rule), or replaced with ``upsert=True``.

        Raises:
            ValueError: a document has no text, or its embedding's size differs from the store's.
        """
        docs = [as_document(d) for d in documents]
        ids = [document_id(d, self.id_key) for d in docs]
        # Keep the last of duplicates within one call; drop the ones already stored unless upserting.
        chosen: dict[str, Any] = {}
        with self._lock:
            for i, d in zip(ids, docs):
                if upsert or i not in self._row:
                    chosen[i] = d
        if not chosen:
            return ids
        new_ids = list(chosen)
        matrix = embed_texts(self.embedder, [document_text(chosen[i]) for i in new_ids])
        with self._lock:
            self._insert(new_ids, [chosen[i] for i in new_ids], matrix, upsert)
            self._autosave()
        return ids

    def _insert(self, ids: list[str], docs: list[Any], matrix: np.ndarray, upsert: bool) -> None:
        n, d = len(self._ids), matrix.shape[1]
        if n and d != self._buf.shape[1]:
            raise invalid_argument(f"embedding size {d} differs from the store's {self._buf.shape[1]}")
        fresh = []
        for j, doc_id in enumerate(ids):
            row = self._row.get(doc_id)
            if row is not None:
                if not upsert:
                    continue
                self._docs[row] = docs[j]
                self._buf[row] = matrix[j]
            else:
                fresh.append(j)
        if not fresh:
            return
        need = n + len(fresh)
        if need > self._buf.shape[0] or self._buf.shape[1] != d:
            cap = max(need, 2 * self._buf.shape[0], 16)
            buf = np.zeros((cap, d), dtype=np.float32)
            if n:
                buf[:n] = self._buf[:n]
            self._buf = buf
        self._buf[n:need] = matrix[fresh]
        for k, j in enumerate(fresh):
            self._row[ids[j]] = n + k
            self._ids.append(ids[j])
            self._docs.append(docs[j])

    def delete(self, ids: str | Iterable[str]) -> int:
        """Remove documents by id; returns how many were stored."""
        if isinstance(ids, str):
            ids = [ids]
        with self._lock:
            drop = {self._row[i] for i in ids if i in self._row}
            if not drop:
                return 0
            keep = np.ones(len(self._ids), dtype=bool)
            keep[list(drop)] = False
            n_keep = int(keep.sum())
            self._buf[:n_keep] = self._buf[: len(self._ids)][keep]
            self._ids = [i for i, k in zip(self._ids, keep) if k]
            self._docs = [d for d, k in zip(self._docs, keep) if k]
            self._row = {i: r for r, i in enumerate(self._ids)}
            self._autosave()
            return len(drop)

    def clear(self) -> None:
        with self._lock:
            self._ids, self._docs, self._row = [], [], {}
            self._buf = np.zeros((0, self._buf.shape[1]), dtype=np.float32)
            self._autosave()

    # -- retrieval -------------------------------------------------------------------------
    def search(self, query: Any, *, k: int | None = None, filter: Any = None) -> list[ScoredDocument]:
        """The ``k`` stored documents most similar to ``query`` (one text or document), best first, with scores.

        Args:
            k: how many (default 3); fewer when the store (or the filter) has fewer.
            filter: a metadata mapping (equality on every key) or a predicate on the document.
        """
        k = DEFAULT_K if k is None else k
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise invalid_argument(f"k must be a non-negative integer, got {k!r}")
        if filter is not None and not (callable(filter) or isinstance(filter, Mapping)):
            raise invalid_argument("filter must be a mapping of metadata values or a predicate")
        doc = query_document(query)
        if len(self._ids) == 0 or k == 0:
            return []
        q = embed_texts(self.embedder, [document_text(doc)])[0]
        with self._lock:  # one matrix-vector product on a consistent snapshot
            n = len(self._ids)
            if n == 0:
                return []
            if q.shape[0] != self._buf.shape[1]:
                raise invalid_argument(
                    f"the query embedding has {q.shape[0]} dimensions, the store {self._buf.shape[1]}"
                )
            scores = self._buf[:n] @ q
            ids, docs = list(self._ids), list(self._docs)
        order: list[int] | np.ndarray
        if filter is None:
            if k < n:
                top = np.argpartition(-scores, k - 1)[:k]
                order = top[np.argsort(-scores[top], kind="stable")]
            else:
                order = np.argsort(-scores, kind="stable")
        else:
            # Walk the candidates best first and test the filter only until k have passed.
            order = []
            for i in np.argsort(-scores, kind="stable"):
                if _matches(docs[i], filter):
                    order.append(int(i))
                    if len(order) == k:
                        break
        return [ScoredDocument(ids[i], docs[i], float(scores[i])) for i in order]

    def retrieve(
        self, query: Any, options: Any = None, *, k: int | None = None, filter: Any = None
    ) -> RetrieverResponse:
        """Genkit's retriever call: exactly one query document (or a :class:`RetrieverRequest`).

        ``options`` is a :class:`VectorRetrieverOptions` or a mapping ``{"k", "filter"}``;
        the keyword arguments override it.
        """
        if isinstance(query, RetrieverRequest) and options is None:
            options = query.options
        opts = VectorRetrieverOptions.from_any(options)
        hits = self.search(
            query, k=k if k is not None else opts.k, filter=filter if filter is not None else opts.filter
        )
        return RetrieverResponse(documents=[h.document for h in hits])

    def __call__(self, request: RetrieverRequest) -> RetrieverResponse:
        """The store as a retriever function: ``RetrieverRequest -> RetrieverResponse``."""
        return self.retrieve(request)

    def as_retriever(self, name: str | None = None) -> Retriever:
        """The store as an (unregistered) ``ai`` retriever, for ``retrieve`` and the registry."""
        return Retriever(
            name or self.name,
            self,
            info=RetrieverInfo(label=name or self.name, supports={"media": False}),
            config_schema=OPTIONS_SCHEMA,
        )

    # -- persistence -----------------------------------------------------------------------
    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write the store to one ``.npz`` file (atomically: a temporary file renamed over it)."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise invalid_argument("save: no path given and the store has none")
        with self._lock:
            n = len(self._ids)
            meta = {
                "format": FORMAT,
                "version": VERSION,
                "name": self.name,
                "id_key": self.id_key,
                "embedder": getattr(self.embedder, "name", None),
                "dimensions": self.dimensions,
                "ids": list(self._ids),
                "documents": [to_wire(d) for d in self._docs],
            }
            matrix = np.array(self._buf[:n], dtype=np.float32)
        text = json.dumps(meta, ensure_ascii=False, default=str)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, embeddings=matrix, meta=np.array(text))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        embedder: Any,
        *,
        model: str | None = None,
        options: Any = None,
        keep_path: bool = False,
    ) -> VectorStore:
        """A store read from a file written by :meth:`save`.

        ``embedder`` must be the model the file was made with (its dimensions are checked
        on the first query). With ``keep_path=True`` later changes are saved back to the file.
        """
        store = cls(embedder, model=model, options=options)
        store._read(Path(path))
        if keep_path:
            store.path = Path(path)
        return store

    def _read(self, path: Path) -> None:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"][()]))
            matrix = np.array(z["embeddings"], dtype=np.float32)
        if meta.get("format") != FORMAT:
            raise invalid_argument(f"{path} is not a vector store file")
        if meta.get("version", 0) > VERSION:
            raise invalid_argument(f"{path}: vector store format version {meta['version']} is newer than this one")
        ids, docs = meta["ids"], [as_document(d) for d in meta["documents"]]
        if matrix.ndim != 2 or matrix.shape[0] != len(ids) or len(docs) != len(ids):
            raise invalid_argument(f"{path}: the embeddings do not match the documents")
        with self._lock:
            self.name = meta.get("name", self.name)
            self.id_key = meta.get("id_key", self.id_key)
            self._ids, self._docs = list(ids), docs
            self._row = {i: r for r, i in enumerate(ids)}
            self._buf = matrix if matrix.shape[1] else np.zeros((0, int(meta.get("dimensions") or 0)), np.float32)

    def _autosave(self) -> None:
        if self.path is not None:
            self.save(self.path)

    def __repr__(self) -> str:
        return f"VectorStore(name={self.name!r}, documents={len(self)}, dimensions={self.dimensions})"


def define_vector_store(
    registry: Any,
    name: str,
    embedder: Any,
    *,
    options: Any = None,
    path: str | os.PathLike | None = None,
    id_key: str = "id",
) -> VectorStore:
    """A vector store registered in ``registry`` as the retriever ``name``.

    ``embedder`` is an embedder name of the registry (``"llamanative/all-minilm"``),
    an ``ai`` Embedder, or a text embedder. ``ai.retrieve(name, query, options={"k": 5})``
    then searches it; index with the returned store's :meth:`VectorStore.index`.

    Raises:
        NotFoundError: ``embedder`` names no embedder.
        AlreadyExistsError: a retriever ``name`` is already registered.
    """
    if isinstance(embedder, str):
        found = registry.lookup_embedder(embedder)
        if found is None:
            raise NotFoundError(f"embedder {embedder!r} not found")
        embedder = found
    store = VectorStore(embedder, options=options, path=path, id_key=id_key, name=name)
    registry.register("retriever", name, store.as_retriever(name))
    return store
