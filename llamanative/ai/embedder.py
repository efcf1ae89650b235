"""Embedders: documents in, one vector per document out.

An embedder function is ``fn(documents: list[Document], options) -> vectors``
(or ``fn(documents)``), where *vectors* is any of:

- a 2-D numpy array, one row per document (kept as is: ``as_array()`` is free);
- a list of vectors (lists of floats);
- a list of :class:`Embedding` (a vector plus metadata), or an :class:`EmbedResponse`.

``ai.embed(embedder, documents)`` returns an :class:`EmbedResponse`; its
``as_array()`` is the float32 matrix ``(len(documents), dim)`` and
``vectors()`` the list of lists.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pydantic import PrivateAttr

from ._arity import call_with
from ._wire import WireModel
from .errors import InvalidArgumentError, InvalidOutput
from .messages import Document, as_document

__all__ = ["EmbedRequest", "EmbedResponse", "Embedder", "EmbedderInfo", "Embedding", "new_embedder"]


class Embedding(WireModel):
    """One document's vector."""

    embedding: list[float]
    metadata: dict[str, Any] | None = None


class EmbedRequest(WireModel):
    input: list[Document] = []
    options: Any = None


class EmbedResponse(WireModel):
    """The vectors, in the order of the input documents."""

    embeddings: list[Embedding] = []

    _matrix: np.ndarray | None = PrivateAttr(default=None)

    @classmethod
    def from_array(cls, matrix: np.ndarray) -> EmbedResponse:
        """A response holding ``matrix`` (one row per document) without copying it."""
        matrix = np.asarray(matrix, dtype=np.float32)
        if matrix.ndim != 2:
            raise InvalidOutput(f"embeddings must be a 2-D array, got shape {matrix.shape}")
        out = cls.model_construct(
            embeddings=[Embedding.model_construct(embedding=row, metadata=None) for row in matrix.tolist()]
        )
        out._matrix = matrix
        return out

    def as_array(self) -> np.ndarray:
        """The vectors as a float32 matrix ``(n, dim)`` (``(0, 0)`` when empty)."""
        if self._matrix is None:
            if not self.embeddings:
                return np.zeros((0, 0), np.float32)
            self._matrix = np.asarray([e.embedding for e in self.embeddings], dtype=np.float32)
        return self._matrix

    def vectors(self) -> list[list[float]]:
        """The vectors as lists of floats."""
        return [list(e.embedding) for e in self.embeddings]


class EmbedderInfo(WireModel):
    label: str | None = None
    dimensions: int | None = None
    supports: dict[str, Any] | None = None
    'e.g. ``{"input": ["text"], "multilingual": True}``.'


def _as_response(value: Any, n: int) -> EmbedResponse:
    if isinstance(value, EmbedResponse):
        out = value
    elif isinstance(value, np.ndarray):
        out = EmbedResponse.from_array(value)
    else:
        items = list(value)
        if items and isinstance(items[0], (Embedding, dict)):
            out = EmbedResponse(embeddings=items)
        else:
            out = EmbedResponse.from_array(np.asarray(items, dtype=np.float32).reshape(len(items), -1))
    if len(out.embeddings) != n:
        raise InvalidOutput(f"the embedder returned {len(out.embeddings)} vectors for {n} documents")
    return out


class Embedder:
    """An embedder: a name, its info, and its function (see the module doc)."""

    kind = "embedder"

    def __init__(
        self,
        name: str,
        fn: Callable[..., Any],
        *,
        info: EmbedderInfo | dict[str, Any] | None = None,
        config_schema: dict[str, Any] | None = None,
    ) -> None:
        if not name:
            raise InvalidArgumentError("an embedder needs a name")
        self.name = name
        self.fn = fn
        self.info = EmbedderInfo.model_validate(info) if isinstance(info, dict) else (info or EmbedderInfo())
        self.config_schema = config_schema

    def __repr__(self) -> str:
        return f"Embedder({self.name!r})"

    def embed(self, documents: Sequence[Document | str] | Document | str, options: Any = None) -> EmbedResponse:
        """Embed documents (texts are turned into text documents); one vector per document, in order.

        Raises:
            InvalidOutput: the function returned a different number of vectors.
        """
        if isinstance(documents, (str, Document)):
            documents = [documents]
        docs = [as_document(d) for d in documents]
        if not docs:
            return EmbedResponse()
        return _as_response(call_with(self.fn, docs, options), len(docs))

    def embed_request(self, request: EmbedRequest) -> EmbedResponse:
        """Go's ``Embedder.Embed(ctx, req)``."""
        return self.embed(request.input, request.options)


def new_embedder(
    name: str,
    fn: Callable[..., Any],
    *,
    info: EmbedderInfo | dict[str, Any] | None = None,
    config_schema: dict[str, Any] | None = None,
) -> Embedder:
    """An embedder that is not registered (pass it to ``embed``)."""
    return Embedder(name, fn, info=info, config_schema=config_schema)
