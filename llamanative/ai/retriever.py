"""Retrievers: a query document in, relevant documents out.

A retriever function is ``fn(request: RetrieverRequest) -> RetrieverResponse``
(a plain list of documents is accepted as the response). ``ai.retrieve``
takes exactly one query document, as Go's ``Retrieve``
(:func:`query_document` applies that rule, for the vector store too).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._wire import WireModel
from .errors import InvalidArgumentError
from .messages import Document, as_document

__all__ = ["Retriever", "RetrieverInfo", "RetrieverRequest", "RetrieverResponse", "new_retriever", "query_document"]


class RetrieverRequest(WireModel):
    query: Document
    "The query (usually one text part)."

    options: Any = None
    'Retriever-specific options (e.g. ``{"k": 3}``).'


class RetrieverResponse(WireModel):
    documents: list[Document] = []
    "The documents found, most relevant first (by convention)."


class RetrieverInfo(WireModel):
    label: str | None = None
    supports: dict[str, Any] | None = None
    'e.g. ``{"media": False}``.'


class Retriever:
    """A retriever: a name, its info, and its function."""

    kind = "retriever"

    def __init__(
        self,
        name: str,
        fn: Callable[[RetrieverRequest], Any],
        *,
        info: RetrieverInfo | dict[str, Any] | None = None,
        config_schema: dict[str, Any] | None = None,
    ) -> None:
        if not name:
            raise InvalidArgumentError("a retriever needs a name")
        self.name = name
        self.fn = fn
        self.info = RetrieverInfo.model_validate(info) if isinstance(info, dict) else (info or RetrieverInfo())
        self.config_schema = config_schema

    def __repr__(self) -> str:
        return f"Retriever({self.name!r})"

    def retrieve(self, request: RetrieverRequest) -> RetrieverResponse:
        """Run the function on ``request``."""
        out = self.fn(request)
        if isinstance(out, RetrieverResponse):
            return out
        if isinstance(out, dict):
            return RetrieverResponse.model_validate(out)
        return RetrieverResponse(documents=list(out or ()))


def new_retriever(
    name: str,
    fn: Callable[[RetrieverRequest], Any],
    *,
    info: RetrieverInfo | dict[str, Any] | None = None,
    config_schema: dict[str, Any] | None = None,
) -> Retriever:
    """A retriever that is not registered (pass it to ``retrieve``)."""
    return Retriever(name, fn, info=info, config_schema=config_schema)


def query_document(query: Any) -> Document:
    """The one query document of a retrieval (Go's ``Retrieve``: exactly one).

    ``query`` is a text, a document, its JSON form, a message, a
    :class:`RetrieverRequest`, or a sequence of these holding exactly one.

    Raises:
        InvalidArgumentError: no query, more than one, or not a document.
    """
    if isinstance(query, RetrieverRequest):
        return query.query
    if query is None:
        docs: list[Any] = []
    elif isinstance(query, (str, Mapping)) or not isinstance(query, Sequence):
        docs = [query]
    else:
        docs = list(query)
    if not docs:
        raise InvalidArgumentError("retrieve: a query document is required")
    if len(docs) > 1:
        raise InvalidArgumentError("retrieve: only supports a single document as input")
    return as_document(docs[0])
