"""The types a model call exchanges: request, response, streamed chunk, usage, model info, config.

Field names are Python's; the JSON keys are Genkit's (``finishReason``,
``usage.inputTokens``, ``supports.systemRole`` ...).
"""

from __future__ import annotations

import json
from enum import Enum
from typing import TYPE_CHECKING, Any

from pydantic import Field, PrivateAttr

from ._json import extract_json_from_markdown
from ._wire import WireModel
from .errors import FailedPreconditionError, InvalidOutput
from .messages import Document, Message, Role
from .parts import Part, media_of
from .schema import convert

if TYPE_CHECKING:
    from .formats import FormatHandler

__all__ = [
    "ConstrainedSupport",
    "FinishReason",
    "GenerationCommonConfig",
    "GenerationUsage",
    "ModelInfo",
    "ModelOutputConfig",
    "ModelRequest",
    "ModelResponse",
    "ModelResponseChunk",
    "ModelStage",
    "ModelSupports",
    "Operation",
    "OperationError",
    "ToolChoice",
    "ToolDefinition",
]


class FinishReason(str, Enum):
    """Why a model stopped."""

    STOP = "stop"
    LENGTH = "length"
    BLOCKED = "blocked"
    ABORTED = "aborted"
    INTERRUPTED = "interrupted"
    OTHER = "other"
    UNKNOWN = "unknown"


# Reasons that mark an abnormal end: the loop does not parse output then (Go v1.12).
ABNORMAL_FINISH = frozenset({"blocked", "aborted", "interrupted", "other"})


class ToolChoice(str, Enum):
    """Whether the model may, must or must not call tools."""

    AUTO = "auto"
    REQUIRED = "required"
    NONE = "none"


class ConstrainedSupport(str, Enum):
    """Which requests a model can constrain to a JSON schema."""

    NONE = "none"
    ALL = "all"
    NO_TOOLS = "no-tools"


class ModelStage(str, Enum):
    FEATURED = "featured"
    STABLE = "stable"
    UNSTABLE = "unstable"
    LEGACY = "legacy"
    DEPRECATED = "deprecated"


class ModelSupports(WireModel):
    """What a model can do. Unset means "no": the zero value claims nothing."""

    multiturn: bool | None = None
    "More than one message per request (needed by any tool loop)."

    media: bool | None = None
    "Media parts in the input."

    tools: bool | None = None
    "Tool definitions in the request."

    system_role: bool | None = None
    "System messages (else they are turned into a user/model exchange)."

    tool_choice: bool | None = None
    "``tool_choice`` other than auto."

    context: bool | None = None
    "Takes ``docs`` itself (else they are appended to the last user message)."

    long_running: bool | None = None
    "A background model (operations)."

    constrained: ConstrainedSupport | None = None
    "Native constrained output: ``all``, ``no-tools`` or ``none``."

    output: list[str] | None = None
    "Output formats it produces natively."

    content_type: list[str] | None = None
    "Output content types."


class ModelInfo(WireModel):
    """A model's label, capabilities, versions and stage."""

    label: str | None = None
    supports: ModelSupports | None = None
    versions: list[str] | None = None
    stage: ModelStage | None = None
    config_schema: dict[str, Any] | None = None


class GenerationCommonConfig(WireModel):
    """The config every model understands (JSON ``maxOutputTokens``, ``stopSequences`` ...).

    For local models these map onto llamanative ``Options``: ``max_output_tokens``
    → ``num_predict``, ``stop_sequences`` → ``stop``, ``temperature``,
    ``top_k``, ``top_p`` by name.
    """

    api_key: str | None = Field(None, alias="apiKey")
    max_output_tokens: int | None = None
    "Most tokens to generate."

    stop_sequences: list[str] | None = None
    "Strings that end generation."

    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    version: str | None = None
    "A model version, checked against ``ModelInfo.versions``."


class ModelOutputConfig(WireModel):
    """The output a request asks of the model: a format, a schema, and whether to constrain decoding."""

    format: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    "JSON schema of the output (JSON ``schema``); only sent when output is constrained."

    constrained: bool | None = None
    "Ask the model to enforce ``schema`` while decoding (a grammar, for local models)."

    content_type: str | None = None


class ToolDefinition(WireModel):
    """A tool as the model sees it."""

    name: str
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


class ModelRequest(WireModel):
    """What a model function receives."""

    messages: list[Message] = []
    config: Any = None
    "The model config: a dict, ``GenerationCommonConfig`` or the model's own type."

    tools: list[ToolDefinition] | None = None
    "The tools the model may call, in declaration order."

    tool_choice: ToolChoice | None = None
    output: ModelOutputConfig | None = None
    docs: list[Document] | None = None
    "Context documents (appended to the last user message unless the model supports context)."


class GenerationUsage(WireModel):
    """Usage of one model call (tokens from the model's own tokenizer; characters are UTF-8 bytes)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    thoughts_tokens: int | None = None
    cached_content_tokens: int | None = None
    input_characters: int | None = None
    output_characters: int | None = None
    input_images: int | None = None
    output_images: int | None = None
    input_videos: int | None = None
    output_videos: int | None = None
    input_audio_files: int | None = None
    output_audio_files: int | None = None
    custom: dict[str, float] | None = None


class OperationError(WireModel):
    message: str | None = None


class Operation(WireModel):
    """A long-running (background model) operation."""

    action: str = ""
    "The key of the background model that owns it (``/background-model/<name>``)."

    id: str = ""
    done: bool = False
    output: Any = None
    "When done: the ``ModelResponse`` (or its JSON)."

    error: OperationError | None = None
    metadata: dict[str, Any] | None = None


class ModelResponse(WireModel):
    """A model's answer. After ``generate``, ``request`` is the last request sent, so ``history()`` is complete."""

    message: Message | None = None
    finish_reason: FinishReason | None = None
    finish_message: str | None = None
    latency_ms: float | None = None
    usage: GenerationUsage | None = None
    custom: Any = None
    raw: Any = None
    request: ModelRequest | None = None
    operation: Operation | None = None

    _handler: Any = PrivateAttr(default=None)

    def text(self) -> str:
        """The message's text parts joined."""
        return self.message.text() if self.message else ""

    def reasoning(self) -> str:
        """The message's reasoning parts joined."""
        return self.message.reasoning() if self.message else ""

    def tool_requests(self) -> list[Part]:
        return self.message.tool_requests() if self.message else []

    def interrupts(self) -> list[Part]:
        """The tool requests a tool interrupted (resume with ``tool_responses`` / ``tool_restarts``)."""
        return self.message.interrupts() if self.message else []

    def media(self) -> str:
        """The URL of the first media part ("" if none); :meth:`media_parts` gives them all."""
        parts = self.media_parts()
        return media_of(parts[0]).url if parts else ""

    def media_parts(self) -> list[Part]:
        return self.message.media_parts() if self.message else []

    def history(self) -> list[Message]:
        """The request's messages plus this message (a new list)."""
        msgs = list(self.request.messages) if self.request else []
        if self.message is not None:
            msgs.append(self.message)
        return msgs

    def output(self, type_: Any = None) -> Any:
        """The structured output, parsed by the request's output format.

        Without a format (a response not made by ``generate``), the text is
        read as JSON (from a markdown fence if there is one). With ``type_``
        (a pydantic model, a dataclass, any type pydantic can validate), the
        value is converted to it; ``str`` gives the text.

        Raises:
            InvalidOutput: the text does not parse, or does not match the schema.
        """
        if type_ is str:
            return self.text()
        if self.message is None or not self.message.content:
            raise InvalidOutput("no content in response")
        if self._handler is None:
            try:
                value = json.loads(extract_json_from_markdown(self.text()))
            except ValueError as exc:
                raise InvalidOutput(f"response is not JSON: {exc}") from exc
        else:
            value = self._handler.parse_output(self.message)
        if type_ is None:
            return value
        return convert(value, type_)

    def attach_format(self, handler: FormatHandler | None) -> None:
        """Set the output format that :meth:`output` parses with (done by the generate loop)."""
        self._handler = handler


class ModelResponseChunk(WireModel):
    """A piece of a streamed response. ``text()`` is this piece's text only; ``output()`` is per format."""

    content: list[Part] = []
    role: Role | None = None
    index: int = 0
    "The message this chunk belongs to; it grows by one at each role change (model, tool, model ...)."

    aggregated: bool | None = None
    custom: Any = None

    _output: Any = PrivateAttr(default=None)
    _output_error: Exception | None = PrivateAttr(default=None)
    _parsed: bool = PrivateAttr(default=False)

    def text(self) -> str:
        """This chunk's text (the delta)."""
        return "".join(p.text or "" for p in self.content if p.is_text())

    def reasoning(self) -> str:
        return "".join(p.reasoning or "" for p in self.content if p.is_reasoning())

    def interrupts(self) -> list[Part]:
        return [p for p in self.content if p.is_interrupt()]

    def tool_requests(self) -> list[Part]:
        return [p for p in self.content if p.is_tool_request()]

    def tool_responses(self) -> list[Part]:
        """Tool responses in the chunk (``Part.is_partial()`` tells progress updates from results)."""
        return [p for p in self.content if p.is_tool_response()]

    def output(self, type_: Any = None) -> Any:
        """The output of the stream so far, as the format reads it.

        - text: the text accumulated for this message;
        - json: the whole (partial) JSON value received so far, or None while nothing parses;
        - jsonl / array: the items completed since the previous chunk (never partial, never twice);
        - enum: the value once the accumulated text is exactly one, else "".

        Raises:
            FailedPreconditionError: the chunk did not come from a generate stream.
            InvalidOutput: the format could not parse the text (jsonl with a broken line).
        """
        if not self._parsed:
            raise FailedPreconditionError("output format chosen does not support parsing chunks")
        if self._output_error is not None:
            raise self._output_error
        if type_ is None or self._output is None:
            return self._output
        return convert(self._output, type_)

    def attach_output(self, handler: FormatHandler | None) -> None:
        """Parse this chunk with a stream's format handler (once, in stream order; done by the loop)."""
        self._parsed = handler is not None
        if handler is None:
            return
        try:
            self._output = handler.parse_chunk(self)
        except Exception as exc:  # kept for output() to raise: streaming goes on
            self._output_error = exc
