"""Result types of the vector store and the rerankers, and the vector retriever's options."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._compat import Document, as_document, document_metadata, document_text, invalid_argument, to_wire

__all__ = ["DEFAULT_K", "RankedDocument", "ScoredDocument", "VectorRetrieverOptions"]

DEFAULT_K = 3
"Documents a retrieval returns when no ``k`` is given (Genkit's local vector store default)."

Filter = Mapping[str, Any] | Callable[[Any], bool]


@dataclass
class VectorRetrieverOptions:
    """Options of the built-in vector retriever (``RetrieverRequest.options``).

    Args:
        k: how many documents to return (default :data:`DEFAULT_K`).
        filter: a mapping (every key must be in the document's metadata with an
            equal value) or a predicate called with each candidate document.
    """

    k: int | None = None
    filter: Filter | None = None

    @classmethod
    def from_any(cls, options: Any) -> VectorRetrieverOptions:
        """From None, an instance, a mapping ``{"k", "filter"}`` or an object with those attributes."""
        if options is None:
            return cls()
        if isinstance(options, cls):
            return options
        if isinstance(options, Mapping):
            unknown = set(options) - {"k", "filter"}
            if unknown:
                raise invalid_argument(f"unknown retriever options: {', '.join(sorted(unknown))}")
            return cls(k=options.get("k"), filter=options.get("filter"))
        return cls(k=getattr(options, "k", None), filter=getattr(options, "filter", None))


@dataclass
class ScoredDocument:
    """A stored document with its id and its cosine similarity to the query."""

    id: str
    document: Document
    score: float

    def text(self) -> str:
        return document_text(self.document)

    @property
    def metadata(self) -> dict[str, Any]:
        return document_metadata(self.document)


@dataclass
class RankedDocument:
    """A document with the score a reranker gave it (higher is more relevant)."""

    document: Document
    score: float

    @classmethod
    def of(cls, document: Any, score: float) -> RankedDocument:
        return cls(as_document(document), float(score))

    def text(self) -> str:
        return document_text(self.document)

    @property
    def metadata(self) -> dict[str, Any]:
        return document_metadata(self.document)

    def to_dict(self) -> dict[str, Any]:
        """The wire form of Genkit's ``RankedDocument``: the document with ``metadata.score``."""
        wire = dict(to_wire(self.document))
        wire["metadata"] = {**(wire.get("metadata") or {}), "score": self.score}
        return wire
