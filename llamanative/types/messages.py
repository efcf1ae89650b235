"""``Message``: one message of a chat (Go ``api.Message``)."""

from __future__ import annotations

from typing import Any, ClassVar  # noqa: UP035 (mirrors tools.py)

from pydantic import field_validator

from . import tools as _tools
from .audio import Audio
from .base import SubscriptableBaseModel
from .images import Image
from .tools import ToolCall

__all__ = ["Message"]


class Message(SubscriptableBaseModel):
    """A chat message: role, content, and optional thinking, images, audio and tool calls.

    ``Message.ToolCall`` and ``Message.ToolCall.Function`` are the tool-call
    types, as in ollama-python. The role is lower-cased, as the spec's
    ``Message.UnmarshalJSON`` does; any role name is accepted.

    >>> m = Message(role="Assistant", tool_calls=[{"function": {"name": "f", "arguments": {"x": 1}}}])
    >>> m.role, m.tool_calls[0].function.name, m["tool_calls"][0]["function"]["arguments"]
    ('assistant', 'f', {'x': 1})
    """

    ToolCall: ClassVar[type[ToolCall]] = ToolCall

    role: str
    "Who wrote the message: 'system', 'user', 'assistant' or 'tool' (any name is accepted)."

    content: str | None = None
    "The text. In a streamed response, the new fragment."

    thinking: str | None = None
    "The model's reasoning, when thinking is enabled."

    images: list[Image] | None = None
    "Images for multimodal models: paths, raw bytes or base64 text."

    audio: list[Audio] | None = None
    """Audio clips (WAV, MP3, FLAC) for models whose projector takes audio: paths, raw bytes or base64
    text. A llamanative extension (Ollama's messages carry images only); in the prompt they follow the
    message's images."""

    # The module's ToolCall (in the class body the name is the ClassVar above).
    tool_calls: list[_tools.ToolCall] | None = None
    "Tool calls made by the model (assistant messages)."

    tool_name: str | None = None
    "Name of the tool whose result this is (tool messages)."

    tool_call_id: str | None = None
    "Id of the tool call this message answers (tool messages)."

    _omitempty = frozenset({"thinking", "images", "audio", "tool_calls", "tool_name", "tool_call_id"})

    @field_validator("role", mode="before")
    @classmethod
    def _lower_role(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value
