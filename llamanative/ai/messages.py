"""``Message`` (a turn of a conversation) and ``Document`` (content for retrieval and context).

>>> m = Message(role="user", content="What is 2+2?")
>>> m.role, m.text(), m.to_dict()
('user', 'What is 2+2?', {'role': 'user', 'content': [{'text': 'What is 2+2?'}]})
>>> Document.from_text("Paris is in France", {"id": "d1"}).text()
'Paris is in France'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any

from pydantic import field_validator

from ._wire import WireModel
from .errors import InvalidArgumentError
from .parts import Part, new_data_part, new_media_part, new_text_part

__all__ = [
    "Document",
    "Message",
    "Role",
    "document_from_text",
    "new_message",
    "new_model_message",
    "new_model_text_message",
    "new_system_message",
    "new_system_text_message",
    "new_text_message",
    "new_user_message",
    "new_user_text_message",
]


class Role(str, Enum):
    """Who wrote a message."""

    SYSTEM = "system"
    USER = "user"
    MODEL = "model"
    TOOL = "tool"


def _as_parts(value: Any) -> Any:
    """Content given as a string, a part or a list of strings/parts/dicts → a list of parts."""
    if value is None:
        return []
    if isinstance(value, (str, Part, dict)):
        value = [value]
    return [Part(text=v) if isinstance(v, str) else v for v in value]


class Message(WireModel):
    """A message: a role and its content parts. ``content`` may be given as a string."""

    role: Role
    "``system``, ``user``, ``model`` or ``tool``."

    content: list[Part] = []
    "The parts, in order."

    metadata: dict[str, Any] | None = None
    "Free-form metadata (``purpose: history``, ``resumed`` ...)."

    @field_validator("content", mode="before")
    @classmethod
    def _content(cls, value: Any) -> Any:
        return _as_parts(value)

    def text(self) -> str:
        """The text parts joined (other kinds, reasoning included, are skipped)."""
        return "".join(p.text or "" for p in self.content if p.is_text())

    def reasoning(self) -> str:
        """The reasoning parts joined."""
        return "".join(p.reasoning or "" for p in self.content if p.is_reasoning())

    def media_parts(self) -> list[Part]:
        return [p for p in self.content if p.is_media()]

    def tool_requests(self) -> list[Part]:
        return [p for p in self.content if p.is_tool_request()]

    def tool_responses(self) -> list[Part]:
        return [p for p in self.content if p.is_tool_response()]

    def interrupts(self) -> list[Part]:
        return [p for p in self.content if p.is_interrupt()]

    def clone(self) -> Message:
        """A deep copy."""
        return self.model_copy(deep=True)

    def with_cache_ttl(self, ttl_seconds: int) -> Message:
        """This message with ``metadata["cache"] = {"ttlSeconds": ttl_seconds}`` (Go's ``WithCacheTTL``).

        A hint for providers with context caching (how long to keep the
        prompt up to this message cached); local models ignore it. The
        message itself is not changed; its other metadata is kept.

        >>> Message(role="user", content="Hi").with_cache_ttl(300).metadata
        {'cache': {'ttlSeconds': 300}}
        """
        return self.model_copy(update={"metadata": {**(self.metadata or {}), "cache": {"ttlSeconds": ttl_seconds}}})

    def with_cache_name(self, name: str) -> Message:
        """This message with ``metadata["cache"] = {"name": name}`` (Go's ``WithCacheName``): the named
        cache a provider should use; local models ignore it. The message itself is not changed.

        >>> Message(role="user", content="Hi", metadata={"a": 1}).with_cache_name("docs").metadata
        {'a': 1, 'cache': {'name': 'docs'}}
        """
        return self.model_copy(update={"metadata": {**(self.metadata or {}), "cache": {"name": name}}})


class Document(WireModel):
    """Content with metadata: what retrievers return, embedders embed and ``docs=`` adds as context."""

    content: list[Part] = []
    "The parts (usually one text part)."

    metadata: dict[str, Any] | None = None
    "Free-form metadata; ``ref`` or ``id`` label the document in the context preface."

    @field_validator("content", mode="before")
    @classmethod
    def _content(cls, value: Any) -> Any:
        return _as_parts(value)

    @classmethod
    def from_text(cls, text: str, metadata: dict[str, Any] | None = None) -> Document:
        return cls(content=[new_text_part(text)], metadata=metadata)

    @classmethod
    def from_media(cls, url: str, content_type: str | None = None, metadata: dict[str, Any] | None = None) -> Document:
        return cls(content=[new_media_part(content_type, url)], metadata=metadata)

    @classmethod
    def from_data(cls, data: Any, metadata: dict[str, Any] | None = None) -> Document:
        return cls(content=[new_data_part(data)], metadata=metadata)

    def text(self) -> str:
        """The text parts joined."""
        return "".join(p.text or "" for p in self.content if p.is_text())

    def media(self) -> list[Part]:
        return [p for p in self.content if p.is_media()]


def document_from_text(text: str, metadata: dict[str, Any] | None = None) -> Document:
    """Go's ``DocumentFromText``."""
    return Document.from_text(text, metadata)


def as_document(value: Document | str | Mapping[str, Any] | Message) -> Document:
    """A document from a document, a text, its JSON form, or a message (its content and metadata).

    Raises:
        InvalidArgumentError: ``value`` is none of these.
        pydantic.ValidationError: the JSON form is malformed.
    """
    if isinstance(value, Document):
        return value
    if isinstance(value, str):
        return Document.from_text(value)
    if isinstance(value, Message):
        return Document(content=list(value.content), metadata=value.metadata)
    if isinstance(value, Mapping):
        return Document.model_validate(dict(value))
    raise InvalidArgumentError(f"not a document: {type(value).__name__}")


def as_message(value: Message | dict[str, Any]) -> Message:
    """A message from a message or its JSON form (``{"role", "content"}``)."""
    return value if isinstance(value, Message) else Message.model_validate(value)


def new_message(role: Role | str, metadata: dict[str, Any] | None = None, *parts: Part | str) -> Message:
    return Message(role=role, content=list(parts), metadata=metadata)


def new_text_message(role: Role | str, text: str) -> Message:
    return Message(role=role, content=[new_text_part(text)])


def new_user_message(*parts: Part | str) -> Message:
    return Message(role=Role.USER, content=list(parts))


def new_user_text_message(text: str) -> Message:
    return new_text_message(Role.USER, text)


def new_model_message(*parts: Part | str) -> Message:
    return Message(role=Role.MODEL, content=list(parts))


def new_model_text_message(text: str) -> Message:
    return new_text_message(Role.MODEL, text)


def new_system_message(*parts: Part | str) -> Message:
    return Message(role=Role.SYSTEM, content=list(parts))


def new_system_text_message(text: str) -> Message:
    return new_text_message(Role.SYSTEM, text)


def as_messages(values: Sequence[Message | dict[str, Any]] | None) -> list[Message]:
    return [as_message(v) for v in values or ()]
