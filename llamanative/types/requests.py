"""Request types, with the spec's fields and JSON names. Validation happens here, once.

Every check runs when the request object is made, before any model work, and
fails with pydantic's ``ValidationError`` (a ``ValueError``) naming the
field. The messages are the Ollama server's own where it has one
(``model is required``, ``top_logprobs must be between 0 and 20``,
``raw mode does not support template, system, or context``,
``invalid input type``, ``invalid format: ...``).

Input is loose and normalised once: ``messages`` take dicts or
:class:`Message`; ``images`` (and ``audio``) take paths, bytes or base64; ``tools`` take
dicts, :class:`Tool` or plain Python functions (see :func:`tool_from_function`);
``options`` take a dict or :class:`Options`; ``keep_alive`` a number of
seconds or a duration string; ``think`` a bool or a level; ``format`` ``""``,
``"json"``, a JSON-schema dict (or its JSON text), or a pydantic model class.

``stream`` defaults to ``True`` here, as the spec's ``Stream *bool`` (nil
means true) does. An unset field (``None``) means "use the default".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, Field, field_validator, model_validator

from ..errors import StatusError
from .audio import Audio
from .base import SubscriptableBaseModel
from .duration import Duration
from .images import Image
from .messages import Message
from .options import Options
from .think import ThinkValue
from .tool_builder import tool_from_function
from .tools import Tool, Tools

__all__ = [
    "ChatRequest",
    "CopyRequest",
    "CreateRequest",
    "DeleteRequest",
    "EmbedRequest",
    "EmbeddingRequest",
    "GenerateRequest",
    "PullRequest",
    "PushRequest",
    "ShowRequest",
]

StrictInt = Annotated[int, Field(strict=True)]

_TOOL_CHOICES = ("auto", "none", "required")


def _check_format(value: Any) -> Any:
    if value is None or value == "" or value == "json":
        return value
    if isinstance(value, type) and issubclass(value, BaseModel):
        return value.model_json_schema()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return parsed
    raise ValueError(f'invalid format: {value!r}; expected "json" or a valid JSON Schema object')


def _check_top_logprobs(value: int | None) -> int | None:
    if value is not None and not 0 <= value <= 20:
        raise ValueError("top_logprobs must be between 0 and 20")
    return value


class _ModelRequest(SubscriptableBaseModel):
    model: str
    "Model name, e.g. ``'llama3.2'`` or ``'llama3.2:1b'``."

    @field_validator("model")
    @classmethod
    def _model_required(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("model is required")
        return value


class _NamedModelRequest(_ModelRequest):
    """A request whose model may also be given as the deprecated ``name`` (as in the spec)."""

    @model_validator(mode="before")
    @classmethod
    def _name_to_model(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and not data.get("model") and data.get("name"):
            data = {**data, "model": data["name"]}
        return data


class _StreamingRequest(_ModelRequest):
    stream: bool = True
    "Stream partial responses; ``True`` unless set to ``False`` (``None`` counts as unset)."

    @field_validator("stream", mode="before")
    @classmethod
    def _unset_is_true(cls, value: Any) -> Any:
        return True if value is None else value


class _CompletionRequest(_StreamingRequest):
    """Fields shared by generate and chat."""

    format: str | dict[str, Any] | None = None
    "``''`` (none), ``'json'``, or a JSON schema the output must follow."

    keep_alive: Duration | None = None
    "How long the model stays loaded after the request; negative = forever, 0 = unload now."

    options: Options | None = None
    "Model options for this request."

    think: ThinkValue | None = None
    "Let a thinking model think first: a bool, or ``'high'``/``'medium'``/``'low'``/``'max'``."

    truncate: bool | None = None
    "Drop the oldest history when the prompt exceeds the context (default: true)."

    shift: bool | None = None
    "Shift the context when it fills up during generation instead of stopping (default: true)."

    debug_render_only: bool | None = Field(None, alias="_debug_render_only")
    "Return the rendered prompt instead of running the model."

    logprobs: bool | None = None
    "Return the log probability of each generated token."

    top_logprobs: StrictInt | None = None
    "Number of most likely alternatives (0-20) returned per token with ``logprobs``."

    @field_validator("format", mode="before")
    @classmethod
    def _valid_format(cls, value: Any) -> Any:
        return _check_format(value)

    @field_validator("top_logprobs")
    @classmethod
    def _valid_top_logprobs(cls, value: int | None) -> int | None:
        return _check_top_logprobs(value)


class GenerateRequest(_CompletionRequest):
    """A completion request (``generate``).

    >>> GenerateRequest(model="m", prompt="Hi", keep_alive="1h").model_dump_json()
    '{"model":"m","stream":true,"keep_alive":"1h0m0s","prompt":"Hi"}'
    """

    prompt: str | None = None
    "The prompt. Empty with no ``keep_alive=0``: load the model only."

    suffix: str | None = None
    "Text after the insertion point (fill-in-the-middle); needs the 'insert' capability."

    system: str | None = None
    "Replaces the model's system prompt."

    template: str | None = None
    "Replaces the model's prompt template."

    context: list[StrictInt] | None = None
    "Token ids returned by a previous generate (deprecated in the spec)."

    raw: bool | None = None
    "Send the prompt as is, without a template."

    images: list[Image] | None = None
    "Images for multimodal models."

    audio: list[Audio] | None = None
    "Audio clips for models whose projector takes audio (a llamanative extension); after the images."

    _omitempty = frozenset(
        {"format", "context", "raw", "images", "audio", "debug_render_only", "logprobs", "top_logprobs"}
    )

    @field_validator("context", mode="before")
    @classmethod
    def _context_list(cls, value: Any) -> Any:
        return value.tolist() if hasattr(value, "tolist") else value  # a numpy array

    @field_validator("context")
    @classmethod
    def _context_ids(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and any(t < 0 for t in value):
            raise ValueError("context must hold token ids (integers >= 0)")
        return value

    @model_validator(mode="after")
    def _raw_alone(self) -> GenerateRequest:
        if self.raw and (self.template or self.system or self.context):
            raise ValueError("raw mode does not support template, system, or context")
        return self


class ChatRequest(_CompletionRequest):
    """A chat request.

    >>> r = ChatRequest(model="m", messages=[{"role": "user", "content": "Hi"}], think="low")
    >>> r.messages[0].content, r.think.string(), r.stream
    ('Hi', 'low', True)
    """

    messages: list[Message] | None = None
    "The conversation so far. None or empty: load (or, with ``keep_alive=0``, unload) the model."

    tools: Tools | None = None
    "Tools the model may call: dicts, ``Tool`` objects or Python functions (held as :class:`Tools`)."

    tool_choice: str | dict[str, Any] | None = None
    """llamanative extension: ``'auto'`` (default), ``'none'``, ``'required'``, or
    ``{'type': 'function', 'function': {'name': ...}}``."""

    _omitempty = frozenset({"format", "tools", "debug_render_only", "logprobs", "top_logprobs"})

    @field_validator("tools", mode="before")
    @classmethod
    def _functions_to_tools(cls, value: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            return value  # pydantic rejects anything that is not a list
        return [tool_from_function(t) if callable(t) and not isinstance(t, (Tool, type)) else t for t in value]

    @field_validator("tool_choice")
    @classmethod
    def _check_tool_choice(cls, value: Any) -> Any:
        if value is None or value in _TOOL_CHOICES:
            return value
        if isinstance(value, dict):
            function = value.get("function")
            if isinstance(function, Mapping) and isinstance(function.get("name"), str) and function["name"]:
                return value
        raise ValueError(
            "tool_choice must be 'auto', 'none', 'required' or {'type': 'function', 'function': {'name': ...}}"
        )


class EmbedRequest(_ModelRequest):
    """An embedding request for one or more inputs (``embed``)."""

    input: str | list[str] | None = None
    "Text or list of texts to embed. None: load the model only."

    keep_alive: Duration | None = None
    "How long the model stays loaded after the request."

    truncate: bool | None = None
    "Cut inputs that exceed the context length (default: true); false makes them an error."

    dimensions: StrictInt | None = None
    "Keep only the first N dimensions (re-normalised); 0 or None = all."

    options: Options | None = None
    "Model options for this request."

    _omitempty = frozenset({"dimensions"})

    @field_validator("input", mode="before")
    @classmethod
    def _check_input(cls, value: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, (list, tuple)) and all(isinstance(s, str) for s in value):
            return list(value)
        raise ValueError("invalid input type")

    @field_validator("dimensions")
    @classmethod
    def _check_dimensions(cls, value: int | None) -> int | None:
        if value is not None and value < 0:
            raise ValueError("dimensions must be >= 0")
        return value


class EmbeddingRequest(_ModelRequest):
    """The legacy single-prompt embedding request (``embeddings``; not normalised)."""

    prompt: str | None = None
    "Text to embed. Empty: load the model only."

    keep_alive: Duration | None = None
    "How long the model stays loaded after the request."

    options: Options | None = None
    "Model options for this request."


class ShowRequest(_NamedModelRequest):
    """Ask for a model's details (``show``)."""

    system: str | None = None
    "Override the system prompt shown."

    template: str | None = None
    "Deprecated in the spec."

    verbose: bool | None = None
    "Include long arrays (tokenizer vocabularies) in ``model_info``, and tensors."

    options: Options | None = None
    "Options to show as parameters."


class PullRequest(_NamedModelRequest, _StreamingRequest):
    """Download a model (``pull``)."""

    insecure: bool | None = None
    "Allow insecure connections to the registry."

    _omitempty = frozenset({"insecure"})


class PushRequest(_NamedModelRequest, _StreamingRequest):
    """Upload a model (``push``)."""

    insecure: bool | None = None
    "Allow insecure connections to the registry."

    _omitempty = frozenset({"insecure"})


class CreateRequest(_NamedModelRequest, _StreamingRequest):
    """Create a model from another one or from files (``create``)."""

    quantize: str | None = None
    "Quantization type for the new model (e.g. ``'q4_K_M'``)."

    from_: str | None = Field(None, alias="from")
    "Name of the model (or file) to start from. Python name ``from_``; JSON ``from``."

    files: dict[str, str] | None = None
    "File name -> blob digest of the files to include."

    adapters: dict[str, str] | None = None
    "File name -> blob digest of LoRA adapters."

    template: str | None = None
    "Prompt template of the new model."

    license: str | list[str] | None = None
    "License text(s)."

    system: str | None = None
    "System prompt of the new model."

    parameters: dict[str, Any] | None = None
    "Model parameters (option name -> value)."

    messages: list[Message] | None = None
    "Messages put before every conversation."

    _omitempty = frozenset(
        {
            "quantize",
            "from_",
            "files",
            "adapters",
            "template",
            "license",
            "system",
            "parameters",
            "messages",
        }
    )

    @field_validator("parameters", mode="before")
    @classmethod
    def _parameters_dict(cls, value: Any) -> Any:
        if isinstance(value, Options):
            return value.model_dump(exclude_none=True)
        if isinstance(value, Mapping):
            try:
                Options.from_map(value)  # type and range errors now, as a validation error
            except StatusError as exc:
                raise ValueError(exc.error_message) from None
        return value


class CopyRequest(SubscriptableBaseModel):
    """Copy a model under a new name (``copy``)."""

    source: str
    "Name of the model to copy."

    destination: str
    "New name."

    @field_validator("source", "destination")
    @classmethod
    def _required(cls, value: str, info: Any) -> str:
        if not value.strip():
            raise ValueError(f"{info.field_name} is required")
        return value


class DeleteRequest(_NamedModelRequest):
    """Delete a model (``delete``)."""
