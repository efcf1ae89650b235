"""The data-model pieces retrieval, evaluation and prompts use, reached through one file.

Documents, messages and parts are the ``ai`` layer's own (Genkit's wire
forms); the helpers below also accept their JSON dicts and plain strings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..errors import InvalidArgumentError
from ..messages import Document, Message, as_document
from ..messages import as_message as _as_message
from ..parts import Media, Part

__all__ = [
    "Document",
    "Media",
    "Message",
    "Part",
    "as_document",
    "as_message",
    "document_metadata",
    "document_text",
    "invalid_argument",
    "text_of",
    "to_wire",
]


def invalid_argument(message: str) -> InvalidArgumentError:
    """The error for a bad argument (Go's ``ErrInvalidArgument``; also a ``ValueError``)."""
    return InvalidArgumentError(message)


def as_message(x: Any) -> Message:
    """A message from a wire dict or a message (returned as is)."""
    if isinstance(x, (Message, Mapping)):
        return _as_message(dict(x) if isinstance(x, Mapping) and not isinstance(x, dict) else x)
    raise invalid_argument(f"not a message: {type(x).__name__}")


def document_text(doc: Any) -> str:
    """The concatenated text parts of a document or message (or of their JSON forms)."""
    if isinstance(doc, (Document, Message)):
        return doc.text()
    if isinstance(doc, str):
        return doc
    if isinstance(doc, Mapping):
        content = doc.get("content", [])
        if isinstance(content, str):
            return content
        return "".join(
            (p.get("text") or "") if isinstance(p, Mapping) else (getattr(p, "text", None) or "") for p in content or []
        )
    t = getattr(doc, "text", None)
    return t() if callable(t) else (t or "")


def document_metadata(doc: Any) -> dict[str, Any]:
    md = doc.get("metadata") if isinstance(doc, Mapping) else getattr(doc, "metadata", None)
    return md if md is not None else {}


def _is_doc_like(v: Any) -> bool:
    return isinstance(v, (Document, Message)) or (isinstance(v, Mapping) and "content" in v)


def text_of(value: Any) -> str:
    """Text for comparing values: strings as they are, documents/messages by their text, the rest as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if _is_doc_like(value):
        return document_text(value)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) or _is_doc_like(v) for v in value):
        return "\n".join(text_of(v) for v in value)
    return json.dumps(to_wire(value), ensure_ascii=False, sort_keys=True, default=str)


def to_wire(x: Any) -> Any:
    """The JSON (wire) form of a document, message or part; other values pass through."""
    to_dict = getattr(x, "to_dict", None)
    if callable(to_dict) and hasattr(x, "model_dump"):
        return to_dict()
    return x
