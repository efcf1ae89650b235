"""Rerankers: order candidate documents by relevance to a query, with scores.

A reranker is anything with ``rerank(query, documents, options=None) ->
list[RankedDocument]`` (best first), or a plain function of those arguments.
Three are built in: :class:`ClientReranker` (a local cross-encoder reranker
model, every query-document pair scored in one batched ``Client.rerank``
call; the ``ai`` registry resolves ``llamanative/<name>`` rerankers to it),
:class:`EmbeddingReranker` (cosine similarity through a text embedder, one
batched call for the query and all candidates) and :class:`BM25Reranker`
(lexical: Okapi BM25 over the candidates, no model).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..retriever import query_document
from ._compat import as_document, document_text, invalid_argument
from .embedders import as_text_embedder, embed_texts
from .types import RankedDocument, ScoredDocument

__all__ = ["BM25Reranker", "ClientReranker", "EmbeddingReranker", "Reranker", "rerank"]


@runtime_checkable
class Reranker(Protocol):
    def rerank(self, query: Any, documents: Sequence[Any], options: Any = None) -> list[RankedDocument]: ...


def _top_k(options: Any) -> int | None:
    k = options.get("k") if isinstance(options, Mapping) else getattr(options, "k", None)
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 0):
        raise invalid_argument(f"k must be a non-negative integer, got {k!r}")
    return k


def _ranked(docs: list[Any], scores: np.ndarray, k: int | None) -> list[RankedDocument]:
    order = np.argsort(-scores, kind="stable")
    if k is not None:
        order = order[:k]
    return [RankedDocument(docs[i], float(scores[i])) for i in order]


class ClientReranker:
    """Scores documents with a local reranker model: ``client.rerank(model, query, texts)``, one batched call.

    The score of a document is the model's relevance score for the
    (query, document) pair (its own scale, often a logit). Options of
    :meth:`rerank`: ``{"k": n}`` keeps the best n.

    Args:
        client: a :class:`llamanative.Client` (or anything with its ``rerank``).
        model: the reranker: a name in the client's store or a path to a GGUF file.
        options: model options for ``rerank`` (e.g. ``{"num_thread": 2}``).
        truncate: cut over-long pairs to the model's context (the default) instead of failing.
        keep_alive: how long the model stays loaded after each call (the client's default if None).
    """

    def __init__(
        self, client: Any, model: str, *, options: Any = None, truncate: bool = True, keep_alive: Any = None
    ) -> None:
        self.client = client
        self.model = str(model)
        self.options = options
        self.truncate = truncate
        self.keep_alive = keep_alive

    @property
    def name(self) -> str:
        return self.model

    def rerank(self, query: Any, documents: Sequence[Any], options: Any = None) -> list[RankedDocument]:
        q = query_document(query)
        docs = [as_document(d) for d in documents]
        if not docs:
            return []
        resp = self.client.rerank(
            self.model,
            document_text(q),
            [document_text(d) for d in docs],
            top_n=_top_k(options),
            truncate=self.truncate,
            options=self.options,
            keep_alive=self.keep_alive,
        )
        return [RankedDocument(docs[r.index], float(r.relevance_score)) for r in resp.results]

    def __repr__(self) -> str:
        return f"ClientReranker(model={self.model!r})"


class EmbeddingReranker:
    """Scores each document by the cosine similarity of its embedding to the query's.

    Useful after a cheap first stage (a lexical search, or a vector store built
    with a smaller model). Options: ``{"k": n}`` keeps the best n.
    """

    def __init__(self, embedder: Any, *, model: str | None = None, options: Any = None) -> None:
        self.embedder = as_text_embedder(embedder, model, options)

    def rerank(self, query: Any, documents: Sequence[Any], options: Any = None) -> list[RankedDocument]:
        q = query_document(query)
        docs = [as_document(d) for d in documents]
        if not docs:
            return []
        matrix = embed_texts(self.embedder, [document_text(q)] + [document_text(d) for d in docs])
        return _ranked(docs, matrix[1:] @ matrix[0], _top_k(options))


_TOKEN = re.compile(r"\w+", re.UNICODE)


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


class BM25Reranker:
    """Okapi BM25 of the query's words in each document; IDF over the candidates given.

    Args:
        k1: term-frequency saturation (default 1.2).
        b: length normalisation (default 0.75).
    """

    def __init__(self, *, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b

    def rerank(self, query: Any, documents: Sequence[Any], options: Any = None) -> list[RankedDocument]:
        q_terms = list(dict.fromkeys(_tokens(document_text(query_document(query)))))
        docs = [as_document(d) for d in documents]
        if not docs:
            return []
        counts = [Counter(_tokens(document_text(d))) for d in docs]
        lengths = np.array([sum(c.values()) for c in counts], dtype=np.float64)
        avg = float(lengths.mean()) or 1.0
        n = len(docs)
        # tf[i, j]: occurrences of query term j in document i.
        tf = np.array([[c.get(t, 0) for t in q_terms] for c in counts], dtype=np.float64).reshape(n, len(q_terms))
        df = (tf > 0).sum(axis=0)
        idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5))
        norm = self.k1 * (1.0 - self.b + self.b * lengths / avg)
        scores = ((tf * (self.k1 + 1.0)) / (tf + norm[:, None]) * idf[None, :]).sum(axis=1)
        return _ranked(docs, scores, _top_k(options))


def rerank(
    reranker: Any, query: Any, documents: Sequence[Any], options: Any = None, **option_kwargs: Any
) -> list[RankedDocument]:
    """Run a reranker (an object with ``rerank`` or a function) on one query and candidate documents.

    Candidates may be texts, documents, or :class:`~.types.ScoredDocument` hits of a search.
    """
    if option_kwargs:
        options = {**(dict(options) if isinstance(options, Mapping) else {}), **option_kwargs}
    docs = [d.document if isinstance(d, (ScoredDocument, RankedDocument)) else d for d in documents]
    fn = getattr(reranker, "rerank", None) or reranker
    if not callable(fn):
        raise invalid_argument(f"not a reranker: {type(reranker).__name__}")
    out = fn(query, docs, options)
    return [r if isinstance(r, RankedDocument) else RankedDocument.of(*r) for r in out]
