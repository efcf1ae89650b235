"""The built-in provider: llamanative's local models and embedders as ``llamanative/<name>``.

``<name>`` is a model of the store (``llamanative/smollm2``) or a GGUF path
(``llamanative//models/x.gguf``). Requests run through a shared
:class:`llamanative.Client`; the model is loaded on first use and stays
loaded as the client's ``keep_alive`` rules say.

A model request maps onto ``Client.chat``:

- roles system/user/model/tool → system/user/assistant/tool; text and data
  parts become the content, reasoning parts the ``thinking``, tool requests
  ``tool_calls`` (``ref`` → call id), each tool response one tool message;
- tools → function tools (a non-object input schema is wrapped as
  ``{"input": <schema>}`` and unwrapped again, since function parameters
  must be an object); ``tool_choice`` passes through;
- constrained output → ``format=<schema>`` (a grammar: the output always
  parses and matches the schema); the ``json`` format without a schema →
  ``format="json"`` (the JSON grammar: any JSON value, always parses);
- config → ``Options``: ``maxOutputTokens`` → ``num_predict``,
  ``stopSequences`` → ``stop``, ``temperature``, ``topK``, ``topP``; any
  ``Options`` field by name (``seed``, ``num_ctx`` ...); ``think`` and
  ``keep_alive`` go to ``chat``.

The response: text, reasoning and tool-request parts; finish reason
``stop``/``length``; usage tokens are ``prompt_eval_count`` / ``eval_count``
(the model's own tokenizer), ``input_images`` and ``input_audio_files`` the media sent.

Media parts become the message's ``images`` or, for an audio content type,
its ``audio`` (their bytes): ``data:`` URLs, ``file:`` URLs and paths are read
(:mod:`.media`); an http(s) URL needs the
:func:`~.middleware.download_request_media` middleware, which turns it into a
``data:`` URL first. Video is refused (:class:`UnsupportedMedia`).

Capabilities: multiturn, tools, tool choice, system role, constrained
output (``all``); media only for models stored with a projector
(``"vision"`` or ``"audio"`` among ``show(name).capabilities``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from pydantic.alias_generators import to_snake

from ..errors import StatusError
from ..types import Options
from .embedder import Embedder, EmbedderInfo
from .errors import GenkitError, InvalidArgumentError, ModelNotFound, UnsupportedMedia, error_for_status
from .media import read_media
from .messages import Document, Message, Role
from .model import Model
from .model_types import (
    GenerationCommonConfig,
    GenerationUsage,
    ModelInfo,
    ModelRequest,
    ModelResponse,
    ModelResponseChunk,
    ModelSupports,
    ToolDefinition,
)
from .parts import (
    Part,
    ToolRequest,
    ToolResponse,
    is_audio_content_type,
    is_image_content_type,
    is_video_content_type,
    media_of,
    new_reasoning_part,
    new_text_part,
    tool_request_of,
    tool_response_of,
)
from .retrieval.rerankers import ClientReranker
from .retrieval.types import RankedDocument

if TYPE_CHECKING:
    from .. import Client

__all__ = ["LocalProvider", "config_to_options"]

NAMESPACE = "llamanative"
_ROLES = {"system": "system", "user": "user", "model": "assistant", "tool": "tool"}
_OPTION_FIELDS = frozenset(Options.model_fields)
_COMMON = {
    "max_output_tokens": "num_predict",
    "stop_sequences": "stop",
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
}
_IGNORED = frozenset({"version", "api_key"})


def _status_error(exc: StatusError, name: str) -> GenkitError:
    code = exc.status_code
    msg = getattr(exc, "error_message", "") or str(exc)
    if code == 404:
        return ModelNotFound(msg)
    status = {
        400: "INVALID_ARGUMENT",
        403: "PERMISSION_DENIED",
        409: "ABORTED",
        501: "UNIMPLEMENTED",
        503: "UNAVAILABLE",
    }.get(code, "INTERNAL")
    return error_for_status(status, f"model {name!r}: {msg}")


def config_to_options(config: Any) -> tuple[Options | None, dict[str, Any]]:
    """A request config as llamanative ``Options`` plus the chat arguments it carries (``think``, ``keep_alive``).

    Raises:
        InvalidArgumentError: an unknown key or an invalid value.
    """
    if config is None:
        return None, {}
    if isinstance(config, Options):
        return config, {}
    if isinstance(config, GenerationCommonConfig):
        config = config.model_dump(exclude_none=True)
    elif hasattr(config, "model_dump"):
        config = config.model_dump(exclude_none=True)
    elif dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = {k: v for k, v in dataclasses.asdict(config).items() if v is not None}
    if not isinstance(config, dict):
        raise InvalidArgumentError(f"config must be a mapping, got {type(config).__name__}")
    opts: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in config.items():
        if value is None:
            continue
        k = to_snake(key)
        if k in _COMMON:
            opts[_COMMON[k]] = value
        elif k in _OPTION_FIELDS:
            opts[k] = value
        elif k in ("think", "keep_alive"):
            extra[k] = value
        elif k not in _IGNORED:
            raise InvalidArgumentError(f"unknown config key {key!r} for a local model")
    try:
        return (Options(**opts) if opts else None), extra
    except ValidationError as exc:
        raise InvalidArgumentError(f"invalid config: {exc.errors()[0]['msg']}") from exc


def _needs_wrap(schema: dict[str, Any] | None) -> bool:
    return schema is not None and schema.get("type") != "object"


def _tool(defn: ToolDefinition) -> dict[str, Any]:
    schema = defn.input_schema
    if schema is None:
        params: dict[str, Any] = {"type": "object", "properties": {}}
    elif _needs_wrap(schema):
        params = {"type": "object", "properties": {"input": schema}, "required": ["input"]}
    else:
        params = schema
    return {
        "type": "function",
        "function": {"name": defn.name, "description": defn.description or "", "parameters": params},
    }


def _media_into(part: Part, images: list[bytes], audio: list[bytes]) -> None:
    """A media part's bytes into the list of the message they go to (see :mod:`.media` for what a URL can be).

    Raises:
        UnsupportedMedia: video, or a content type that is neither an image nor audio; an http(s) URL (no
            ``download_request_media`` fetched it), another scheme, a missing file.
        InvalidArgumentError: a malformed ``data:`` URL.
    """
    got = read_media(media_of(part))
    ct = got.content_type
    if is_audio_content_type(ct):
        audio.append(got.data)  # the Client's audio list (WAV, MP3, FLAC), for projectors with an audio encoder
        return
    if is_video_content_type(ct):
        raise UnsupportedMedia(f"local models do not take video input (media of type {ct!r})")
    if ct and not is_image_content_type(ct) and ct != "application/octet-stream":
        raise UnsupportedMedia(f"local models take images as media, not {ct!r}")
    # An unknown type is tried as an image: the projector's decoder reads the format from the bytes and
    # refuses what it cannot decode (a 400 from the Client, InvalidArgumentError here).
    images.append(got.data)


def _tool_output_text(resp: ToolResponse) -> str:
    out = resp.output
    text = out if isinstance(out, str) else json.dumps(out, ensure_ascii=False)
    extra = "".join(p.text or "" for p in resp.content or () if p.is_text())
    return text + extra


def to_chat_messages(messages: list[Message], wrapped: set[str]) -> list[dict[str, Any]]:
    """Genkit messages as llamanative chat messages (see the module doc)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == Role.TOOL:
            for p in m.content:
                if p.is_tool_response():
                    resp = tool_response_of(p)
                    out.append(
                        {
                            "role": "tool",
                            "content": _tool_output_text(resp),
                            "tool_name": resp.name,
                            "tool_call_id": resp.ref,
                        }
                    )
            continue
        texts: list[str] = []
        images: list[bytes] = []
        audio: list[bytes] = []
        calls: list[dict[str, Any]] = []
        thinking: list[str] = []
        for p in m.content:
            if p.is_text():
                texts.append(p.text or "")
            elif p.is_data():
                texts.append(json.dumps(p.data, ensure_ascii=False))
            elif p.is_reasoning():
                thinking.append(p.reasoning or "")
            elif p.is_media():
                _media_into(p, images, audio)
            elif p.is_tool_request():
                req = tool_request_of(p)
                args = {"input": req.input} if req.name in wrapped else (req.input or {})
                calls.append({"id": req.ref or None, "function": {"name": req.name, "arguments": args}})
        msg: dict[str, Any] = {"role": _ROLES[m.role], "content": "".join(texts)}
        if thinking and m.role == Role.MODEL:
            msg["thinking"] = "".join(thinking)
        if images:
            msg["images"] = images
        if audio:
            msg["audio"] = audio
        if calls:
            msg["tool_calls"] = calls
        out.append(msg)
    return out


class LocalProvider:
    """Resolves ``llamanative/<name>`` to local models and embedders (registered as a resolver by ``Genkit``)."""

    def __init__(self, client: Callable[[], Client]) -> None:
        self._client = client

    def _exists(self, name: str) -> bool:
        try:
            self._client().store.resolve(name)
            return True
        except (StatusError, ValueError, OSError):
            return False

    def resolve(self, kind: str, name: str) -> Model | Embedder | _LocalReranker | None:
        """The model, embedder or reranker for a store name or GGUF path, or None if there is none.

        A reranker is resolved for any model: one that is not a reranker fails when it is used
        (the Client's 400 says why).
        """
        if kind not in ("model", "embedder", "reranker") or not self._exists(name):
            return None
        full = f"{NAMESPACE}/{name}"
        if kind == "model":
            return Model(full, self._model_fn(name), info=lambda: self.model_info(name))
        if kind == "reranker":
            return _LocalReranker(self._client, name)
        return Embedder(full, self._embed_fn(name), info=EmbedderInfo(label=full, supports={"input": ["text"]}))

    def model_info(self, name: str) -> ModelInfo:
        """Capabilities of a local model (reads its GGUF metadata once)."""
        try:
            caps = self._client().show(name).capabilities or []
        except StatusError as exc:
            raise _status_error(exc, name) from exc
        return ModelInfo(
            label=f"{NAMESPACE}/{name}",
            supports=ModelSupports(
                multiturn=True,
                tools=True,
                system_role=True,
                tool_choice=True,
                constrained="all",
                media="vision" in caps or "audio" in caps,
                context=False,
                output=["text", "json"],
            ),
        )

    def _model_fn(self, name: str) -> Callable[[ModelRequest, Any], ModelResponse]:
        def run(request: ModelRequest, on_chunk: Callable[[ModelResponseChunk], None] | None) -> ModelResponse:
            client = self._client()
            defs = list(request.tools or ())
            wrapped = {d.name for d in defs if _needs_wrap(d.input_schema)}
            options, extra = config_to_options(request.config)
            out = request.output
            fmt: dict[str, Any] | str | None = None
            if out is not None and out.constrained and out.schema_ is not None:
                fmt = out.schema_
            elif out is not None and out.format == "json":
                # JSON without a schema (nothing for Genkit to constrain): still the JSON grammar, as
                # Client.chat(format="json") does, so the text always parses instead of a fenced block that
                # runs past the token limit.
                fmt = "json"
            messages = to_chat_messages(request.messages, wrapped)
            # Counted here: a path or file: URL without a content type is an image too, which the parts'
            # own rule (content type or data:image/ URL) would not count.
            n_images = sum(len(m.get("images", ())) for m in messages)
            n_audio = sum(len(m.get("audio", ())) for m in messages)
            try:
                stream = client.chat(
                    model=name,
                    messages=messages,
                    tools=[_tool(d) for d in defs] or None,
                    tool_choice=str(request.tool_choice) if defs and request.tool_choice else None,
                    format=fmt,
                    options=options,
                    stream=True,
                    **extra,
                )
            except StatusError as exc:
                raise _status_error(exc, name) from exc
            text, thinking, final = [], [], None
            try:
                for resp in stream:
                    delta, think = resp.message.content or "", resp.message.thinking or ""
                    text.append(delta)
                    thinking.append(think)
                    if on_chunk is not None and (delta or think):
                        parts = [new_reasoning_part(think)] if think else []
                        parts += [new_text_part(delta)] if delta else []
                        on_chunk(ModelResponseChunk(role=Role.MODEL, content=parts))
                    if resp.done:
                        final = resp
            except StatusError as exc:
                raise _status_error(exc, name) from exc
            finally:
                stream.close()  # frees the slot when the consumer stopped early
            content: list[Part] = []
            if "".join(thinking):
                content.append(new_reasoning_part("".join(thinking)))
            if "".join(text) or not (final and final.message.tool_calls):
                content.append(new_text_part("".join(text)))
            for call in (final.message.tool_calls or ()) if final else ():
                args = call.function.arguments
                value = args.get("input") if call.function.name in wrapped else args
                content.append(
                    Part(tool_request=ToolRequest(name=call.function.name, ref=call.id or None, input=value))
                )
            reason = (final.done_reason if final else None) or "unknown"
            media = {"input_images": n_images or None, "input_audio_files": n_audio or None}
            usage = GenerationUsage(**media)
            if final is not None:
                pin, pout = final.prompt_eval_count or 0, final.eval_count or 0
                usage = GenerationUsage(input_tokens=pin, output_tokens=pout, total_tokens=pin + pout, **media)
            return ModelResponse(
                message=Message(role=Role.MODEL, content=content),
                finish_reason=reason if reason in ("stop", "length") else "unknown",
                usage=usage,
                request=request,
                latency_ms=(final.total_duration / 1e6) if final is not None and final.total_duration else None,
            )

        return run

    def _embed_fn(self, name: str) -> Callable[[list[Document], Any], Any]:
        def run(documents: list[Document], options: Any) -> Any:
            texts = []
            for d in documents:
                if any(not p.is_text() for p in d.content):
                    raise InvalidArgumentError("local embedders take text documents only")
                texts.append(d.text())
            opts = dict(options or {})
            dimensions = opts.pop("dimensions", None)
            truncate = opts.pop("truncate", None)
            keep_alive = opts.pop("keep_alive", opts.pop("keepAlive", None))
            model_options, _ = config_to_options(opts or None)
            try:
                resp = self._client().embed(
                    model=name,
                    input=texts,
                    truncate=truncate,
                    dimensions=dimensions,
                    options=model_options,
                    keep_alive=keep_alive,
                )
            except StatusError as exc:
                raise _status_error(exc, name) from exc
            return resp.as_array()

        return run


class _LocalReranker:
    """``llamanative/<name>`` as a reranker: a :class:`ClientReranker` per call on the registry's shared
    client (created on first use), whose Client errors are Genkit errors as the local models' are.
    ``options`` of :meth:`rerank` may hold ``k``, ``truncate``, ``keep_alive`` and model options."""

    def __init__(self, client: Callable[[], Client], name: str) -> None:
        self._client = client
        self.name = f"{NAMESPACE}/{name}"
        self.model = name

    def rerank(self, query: Any, documents: Any, options: Any = None) -> list[RankedDocument]:
        opts = dict(options or {})
        k = opts.pop("k", None)
        truncate = opts.pop("truncate", True) is not False
        keep_alive = opts.pop("keep_alive", opts.pop("keepAlive", None))
        model_options, _ = config_to_options(opts or None)
        reranker = ClientReranker(
            self._client(), self.model, options=model_options, truncate=truncate, keep_alive=keep_alive
        )
        try:
            return reranker.rerank(query, documents, {"k": k} if k is not None else None)
        except StatusError as exc:
            raise _status_error(exc, self.model) from exc

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
