"""Model middleware: functions that wrap a model call.

A model function is ``fn(request, on_chunk) -> ModelResponse`` (``on_chunk``
is None when not streaming). A middleware takes the next function and
returns a new one (Go's ``ModelMiddleware``)::

    def log_calls(next):
        def wrapped(request, on_chunk):
            print("calling with", len(request.messages), "messages")
            return next(request, on_chunk)
        return wrapped

    ai.generate(prompt="hi", use=[log_calls])

In a chain the first listed is the outermost. In ``use=`` such a function
acts as a ``wrap_model`` hook at its place in the list; hooks around whole
generate iterations and tool runs are in :mod:`.hooks`.

Every model runs these built-ins, innermost last: config normalisation,
:func:`simulate_system_prompt` (when the model has no system role),
:func:`augment_with_context` (when it does not take ``docs`` itself),
:func:`validate_support`, and :func:`add_automatic_telemetry`. They work on a
copy of the request: the caller's messages are not rewritten.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Sequence
from typing import Any

from .errors import InvalidArgumentError, UnsupportedByModel
from .media import download
from .messages import Document, Message, Role
from .model_types import GenerationUsage, ModelInfo, ModelRequest, ModelResponse, ModelResponseChunk
from .parts import Media, Part, media_of, new_text_part

__all__ = [
    "CONTEXT_PREFACE",
    "ModelFn",
    "ModelMiddleware",
    "StreamCallback",
    "add_automatic_telemetry",
    "augment_with_context",
    "calculate_usage",
    "chain",
    "download_request_media",
    "simulate_system_prompt",
    "validate_support",
]

StreamCallback = Callable[[ModelResponseChunk], None]
ModelFn = Callable[[ModelRequest, "StreamCallback | None"], ModelResponse]
ModelMiddleware = Callable[[ModelFn], ModelFn]

CONTEXT_PREFACE = "\n\nUse the following information to complete your task:\n\n"


def as_middleware(mw: Any) -> ModelMiddleware:
    """``mw`` checked to be a ``next -> fn`` model middleware.

    Raises:
        InvalidArgumentError: it is not callable.
    """
    if not callable(mw):
        raise InvalidArgumentError(f"not a model middleware: {mw!r}")
    return mw


def chain(middlewares: Sequence[Any], fn: ModelFn) -> ModelFn:
    """``fn`` wrapped by ``middlewares``, the first listed outermost."""
    for mw in reversed(list(middlewares)):
        fn = as_middleware(mw)(fn)
    return fn


def _supports(info: ModelInfo | None):
    return info.supports if info is not None and info.supports is not None else None


def simulate_system_prompt(
    preface: str = "SYSTEM INSTRUCTIONS:\n", acknowledgement: str = "Understood.", *, info: ModelInfo | None = None
) -> ModelMiddleware:
    """Turn the first system message into ``user(preface + its parts)`` + ``model(acknowledgement)``.

    Given ``info``, it does nothing when the model supports a system role
    (that is how every model applies it).
    """

    def middleware(next_fn: ModelFn) -> ModelFn:
        def wrapped(request: ModelRequest, on_chunk: StreamCallback | None) -> ModelResponse:
            sup = _supports(info)
            if info is not None and sup is not None and sup.system_role:
                return next_fn(request, on_chunk)
            msgs = list(request.messages)
            for i, m in enumerate(msgs):
                if m.role == Role.SYSTEM:
                    user = Message(role=Role.USER, content=[new_text_part(preface), *m.content])
                    msgs[i : i + 1] = [user, Message(role=Role.MODEL, content=[new_text_part(acknowledgement)])]
                    return next_fn(request.model_copy(update={"messages": msgs}), on_chunk)
            return next_fn(request, on_chunk)

        return wrapped

    return middleware


def _context_item(doc: Document, index: int, citation_key: str | None) -> str:
    meta = doc.metadata or {}
    if citation_key is not None:
        label = meta.get(citation_key)
    elif "ref" in meta:
        label = meta["ref"]
    elif "id" in meta:
        label = meta["id"]
    else:
        label = index
    return f"- [{label}]: {doc.text()}\n"


def augment_with_context(
    preface: str = CONTEXT_PREFACE,
    item_template: Callable[[Document, int], str] | None = None,
    *,
    citation_key: str | None = None,
    info: ModelInfo | None = None,
) -> ModelMiddleware:
    """Append the request's ``docs`` to the last user message as a context part.

    The part is ``preface`` + one ``- [<ref|id|index>]: <text>`` line per
    document + a newline, with ``metadata {"purpose": "context"}``. A user
    message that already has a context part keeps it, unless that part is
    marked ``pending``. Given ``info``, it does nothing when the model takes
    context itself (``supports.context``).
    """

    def middleware(next_fn: ModelFn) -> ModelFn:
        def wrapped(request: ModelRequest, on_chunk: StreamCallback | None) -> ModelResponse:
            sup = _supports(info)
            if (info is not None and sup is not None and sup.context) or not request.docs:
                return next_fn(request, on_chunk)
            msgs = list(request.messages)
            idx = next((i for i in range(len(msgs) - 1, -1, -1) if msgs[i].role == Role.USER), -1)
            if idx == -1:
                return next_fn(request, on_chunk)
            user = msgs[idx]
            at = next((i for i, p in enumerate(user.content) if (p.metadata or {}).get("purpose") == "context"), -1)
            if at >= 0 and (user.content[at].metadata or {}).get("pending") is None:
                return next_fn(request, on_chunk)
            text = (
                preface
                + "".join(
                    item_template(d, i) if item_template else _context_item(d, i, citation_key)
                    for i, d in enumerate(request.docs)
                )
                + "\n"
            )
            part = new_text_part(text, {"purpose": "context"})
            content = list(user.content)
            if at >= 0:
                content[at] = part
            else:
                content.append(part)
            msgs[idx] = user.model_copy(update={"content": content})
            return next_fn(request.model_copy(update={"messages": msgs}), on_chunk)

        return wrapped

    return middleware


def validate_support(name: str, info: ModelInfo | None) -> ModelMiddleware:
    """Reject requests that use what the model does not advertise (:class:`UnsupportedByModel`).

    Checked: media parts, tools, more than one message (multiturn), a tool
    choice other than auto, system messages, constrained output (per
    ``supports.constrained``: ``all``, or ``no-tools`` without tools), and
    ``config.version`` against ``info.versions``.
    """

    def middleware(next_fn: ModelFn) -> ModelFn:
        def wrapped(request: ModelRequest, on_chunk: StreamCallback | None) -> ModelResponse:
            sup = _supports(info)
            media = bool(sup and sup.media)
            if not media and any(p.is_media() for m in request.messages for p in m.content):
                raise UnsupportedByModel(f"model {name!r} does not support media, but media was provided")
            if not (sup and sup.tools) and request.tools:
                raise UnsupportedByModel(f"model {name!r} does not support tool use, but tools were provided")
            if not (sup and sup.multiturn) and len(request.messages) > 1:
                raise UnsupportedByModel(
                    f"model {name!r} does not support multiple messages, but {len(request.messages)} were provided"
                )
            if not (sup and sup.tool_choice) and request.tool_choice not in (None, "", "auto"):
                raise UnsupportedByModel(f"model {name!r} does not support tool choice, but tool choice was provided")
            if not (sup and sup.system_role) and any(m.role == Role.SYSTEM for m in request.messages):
                raise UnsupportedByModel(f"model {name!r} does not support system role, but system role was provided")
            constrained = sup.constrained if sup else None
            if (
                (constrained in (None, "", "none") or (constrained == "no-tools" and request.tools))
                and request.output is not None
                and request.output.constrained
            ):
                raise UnsupportedByModel(
                    f"model {name!r} does not support native constrained output, but constrained output was requested"
                )
            _check_version(name, info, request.config)
            return next_fn(request, on_chunk)

        return wrapped

    return middleware


def _check_version(name: str, info: ModelInfo | None, config: Any) -> None:
    versions = info.versions if info is not None else None
    if not versions or config is None:
        return
    if hasattr(config, "model_dump"):
        config = config.model_dump(by_alias=True, exclude_none=True)
    if not isinstance(config, dict) or "version" not in config:
        return
    version = config["version"]
    if not isinstance(version, str):
        raise InvalidArgumentError(f"version must be a string, got {type(version).__name__}")
    if version not in versions:
        raise UnsupportedByModel(f"model {name!r} does not support version {version!r}, supported versions: {versions}")


def _utf8_len(part: Part) -> int:
    return len(part.text_content().encode("utf-8"))


def calculate_usage(request: ModelRequest, response: ModelResponse) -> None:
    """Fill the character and media counts of ``response.usage`` that are unset or zero.

    Characters are UTF-8 bytes of every part carrying text (text, reasoning,
    a media URL, the JSON of data); tokens come only from the model.
    """
    usage = response.usage or GenerationUsage()
    response.usage = usage
    out_parts = response.message.content if response.message else []
    in_parts = [p for m in request.messages for p in m.content]
    fills = {
        "input_characters": lambda: sum(_utf8_len(p) for p in in_parts),
        "output_characters": lambda: sum(_utf8_len(p) for p in out_parts),
        "input_images": lambda: sum(p.is_image() for p in in_parts),
        "output_images": lambda: sum(p.is_image() for p in out_parts),
        "input_videos": lambda: sum(p.is_video() for p in in_parts),
        "output_videos": lambda: sum(p.is_video() for p in out_parts),
        "input_audio_files": lambda: sum(p.is_audio() for p in in_parts),
        "output_audio_files": lambda: sum(p.is_audio() for p in out_parts),
    }
    for field, count in fills.items():
        if not getattr(usage, field):
            setattr(usage, field, count() or None)  # zero stays unset (omitted from the JSON, as Go's omitempty)


def add_automatic_telemetry() -> ModelMiddleware:
    """Set ``latency_ms`` (if the model did not) and the character/media counts of the usage."""

    def middleware(next_fn: ModelFn) -> ModelFn:
        def wrapped(request: ModelRequest, on_chunk: StreamCallback | None) -> ModelResponse:
            t0 = time.perf_counter()
            resp = next_fn(request, on_chunk)
            if not resp.latency_ms:
                resp.latency_ms = (time.perf_counter() - t0) * 1000.0
            calculate_usage(request, resp)
            return resp

        return wrapped

    return middleware


def download_request_media(
    max_bytes: int | None = None, filter: Callable[[Part], bool] | None = None, *, timeout: float = 30.0
) -> ModelMiddleware:
    """Download the request's http(s) media and put ``data:`` URLs in their place (Genkit's ``downloadRequestMedia``).

    Local models read ``data:`` URLs and files, never the network: this
    middleware is how an http(s) URL reaches them
    (``ai.generate(..., use=[download_request_media(max_bytes=...)])``).
    A downloaded part becomes ``{"media": {"url": "data:<type>;base64,...",
    "contentType": <type>}}``, the type being the part's own ``contentType``,
    else the response's ``Content-Type`` (without its parameters), else ``""``.
    Other parts, ``data:`` URLs and paths among them, are left as they are.
    The request's downloads share one connection pool; the caller's
    messages are not changed (the model gets a copy).

    Args:
        max_bytes: the most bytes one download may have; a larger one fails
            (as Genkit JS, whose fetch rejects a body over ``size``; Go cuts
            the body short, which leaves a truncated image). None: no limit.
        filter: only media parts for which ``filter(part)`` is true are
            downloaded; the others are left as they are (a URL the model
            fetches itself, say). None: every http(s) part.
        timeout: seconds for the connection and between two reads. Default 30.

    Raises:
        InvalidArgumentError: ``max_bytes`` is not positive; at the call: a
            status other than 200, or a network error.
        MediaTooLarge: at the call: a download is larger than ``max_bytes``.
    """
    if max_bytes is not None and max_bytes <= 0:
        raise InvalidArgumentError(f"max_bytes must be positive or None, got {max_bytes}")

    def wanted(part: Part) -> bool:
        return (
            part.media is not None
            and part.media.url[:8].lower().startswith(("http://", "https://"))
            and (filter is None or bool(filter(part)))
        )

    def middleware(next_fn: ModelFn) -> ModelFn:
        def wrapped(request: ModelRequest, on_chunk: StreamCallback | None) -> ModelResponse:
            if not any(wanted(p) for m in request.messages for p in m.content):
                return next_fn(request, on_chunk)
            import httpx  # only a request with downloads needs it

            msgs = []
            with httpx.Client() as client:
                for m in request.messages:
                    content = []
                    for p in m.content:
                        if wanted(p):
                            media = media_of(p)
                            got = download(media.url, max_bytes=max_bytes, timeout=timeout, client=client)
                            ct = media.content_type or got.content_type
                            url = f"data:{ct};base64,{base64.b64encode(got.data).decode()}"
                            p = p.model_copy(update={"media": Media(url=url, content_type=ct or None)})
                        content.append(p)
                    msgs.append(m.model_copy(update={"content": content}))
            return next_fn(request.model_copy(update={"messages": msgs}), on_chunk)

        return wrapped

    return middleware
