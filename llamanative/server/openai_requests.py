"""OpenAI request bodies translated into the Client's request types (the one validation point).

The mapping follows Ollama's ``openai`` package (``FromChatRequest``,
``FromCompleteRequest``): ``max_tokens`` (or ``max_completion_tokens``) is
``num_predict``; ``stop`` (a string or a list of them), ``seed``,
``frequency_penalty`` and ``presence_penalty`` are the options of the same
names; ``temperature`` and ``top_p`` default to 1.0 (OpenAI's defaults, not
the model's); ``response_format`` ``json_object`` is ``format="json"`` and
``json_schema`` is the schema itself, both enforced by a grammar;
``reasoning_effort`` (or ``reasoning.effort``) is ``think`` (``"none"``:
false). Going beyond Ollama: ``tool_choice``, ``logprobs``/``top_logprobs``
and ``n`` (1 only: anything else is a 400 rather than silently one answer).

Content parts: ``text`` parts are the message's text (joined with a newline),
``image_url`` parts with a ``data:`` URL are its images and ``input_audio``
parts its audio, as bytes: a network client never names a file of the
server's. An ``http(s)`` image URL is a 400 (the server fetches nothing).
Every failure here is a :class:`~._http.BadRequest` naming the field.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from ..types import ChatRequest, GenerateRequest
from . import inputs
from ._http import BadRequest

__all__ = [
    "b64",
    "chat_request",
    "completion_request",
    "content_parts",
    "decode_data_url",
    "embed_arguments",
    "field",
    "model_of",
    "n_of",
    "think_of",
]

_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_EFFORTS = ("high", "medium", "low", "none")


def field(body: Mapping[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    """``body[key]`` when set (None when absent or null), checked to be of ``kind``."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _kinds(kind)):
        raise BadRequest(f"invalid type for '{key}': expected {what}")
    return value


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def model_of(body: Mapping[str, Any]) -> str:
    """The request's ``model``: required, a store name (never a path)."""
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise BadRequest("you must provide a model parameter")
    inputs.model_name(model)
    return model


def n_of(body: Mapping[str, Any]) -> None:
    """``n``: one choice a request; more would need a generation each, which the server does not run."""
    n = body.get("n")
    if n is not None and (isinstance(n, bool) or n != 1):
        raise BadRequest(f"n: only 1 choice a request is supported, got {n!r}")


def _stop(body: Mapping[str, Any]) -> list[str] | None:
    stop = body.get("stop")
    if stop is None:
        return None
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return list(stop)
    raise BadRequest("invalid type for 'stop': expected a string or a list of strings")


def _options(body: Mapping[str, Any], max_key: str) -> dict[str, Any]:
    """The sampling options of a chat or completion body (Ollama's mapping, see the module's docstring)."""
    opts: dict[str, Any] = {}
    stop = _stop(body)
    if stop is not None:
        opts["stop"] = stop
    number = (int, float)
    for key in ("max_completion_tokens", "max_tokens") if max_key == "chat" else ("max_tokens",):
        value = field(body, key, int, "an integer")
        if value is not None:
            if value < 1:
                raise BadRequest(f"{key}: must be at least 1, got {value}")
            opts["num_predict"] = value
            break
    seed = field(body, "seed", int, "an integer")
    if seed is not None:
        opts["seed"] = seed
    for key in ("frequency_penalty", "presence_penalty"):
        value = field(body, key, number, "a number")
        if value is not None:
            opts[key] = float(value)
    for key in ("temperature", "top_p"):
        value = field(body, key, number, "a number")
        opts[key] = 1.0 if value is None else float(value)
    return opts


def _format(body: Mapping[str, Any]) -> str | dict[str, Any] | None:
    rf = body.get("response_format")
    if rf is None:
        return None
    if not isinstance(rf, Mapping):
        raise BadRequest("invalid type for 'response_format': expected an object")
    kind = str(rf.get("type", "")).strip().lower()
    if kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        spec = rf.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if not isinstance(schema, Mapping):
            raise BadRequest("response_format.json_schema.schema: a JSON schema object is required")
        return dict(schema)
    raise BadRequest(f"response_format.type: expected 'text', 'json_object' or 'json_schema', got {kind!r}")


def think_of(body: Mapping[str, Any]) -> bool | str | None:
    effort = body.get("reasoning_effort")
    reasoning = body.get("reasoning")
    if isinstance(reasoning, Mapping) and reasoning.get("effort") is not None:
        effort = reasoning["effort"]
    if effort is None or effort == "":
        return None
    if effort not in _EFFORTS:
        raise BadRequest(f"invalid reasoning value: {effort!r} (must be 'high', 'medium', 'low', or 'none')")
    return False if effort == "none" else str(effort)


def _logprobs(body: Mapping[str, Any]) -> tuple[bool | None, int | None]:
    logprobs = field(body, "logprobs", bool, "a boolean")
    top = field(body, "top_logprobs", int, "an integer")
    if top is not None and not logprobs:
        raise BadRequest("top_logprobs: logprobs must be true when top_logprobs is set")
    if top is not None and not 0 <= top <= 20:
        raise BadRequest(f"top_logprobs: must be between 0 and 20, got {top}")
    return (True if logprobs else None), top


def decode_data_url(url: str, field: str, kind: str = "image") -> bytes:
    """The bytes of a ``data:[<type>][;base64],<data>`` URL (base64 only: the form OpenAI's clients send)."""
    if url.startswith(("http://", "https://")):
        raise BadRequest(f"{field}: {kind} URLs are not supported, send the {kind} as a base64 data: URL")
    if not url.startswith("data:") or "," not in url:
        raise BadRequest(f"{field}: invalid {kind} input, expected a base64 data: URL")
    header, data = url[5:].split(",", 1)
    media_type, *params = header.split(";")
    if "base64" not in params:
        raise BadRequest(f"{field}: invalid {kind} input, only base64 data: URLs are supported")
    if media_type and not media_type.lower().startswith(f"{kind}/"):
        raise BadRequest(f"{field}: invalid {kind} input, the data: URL's type is {media_type!r}")
    return b64(data, field)


def b64(data: str, field: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{field}: illegal base64 data") from None


def content_parts(content: list[Any], where: str) -> tuple[str, list[bytes], list[bytes]]:
    """A content-part list as (text, images, audio clips)."""
    texts: list[str] = []
    images: list[bytes] = []
    audio: list[bytes] = []
    for j, part in enumerate(content):
        at = f"{where}.content.{j}"
        if not isinstance(part, Mapping):
            raise BadRequest(f"{at}: invalid message format, expected a content part object")
        kind = part.get("type")
        if kind in ("text", "input_text", "output_text", "refusal"):
            text = part.get("refusal" if kind == "refusal" else "text")
            if not isinstance(text, str):
                raise BadRequest(f"{at}.text: expected a string")
            texts.append(text)
        elif kind in ("image_url", "input_image"):
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            if not isinstance(url, str):
                raise BadRequest(f"{at}.image_url.url: expected a data: URL string")
            images.append(decode_data_url(url, f"{at}.image_url.url"))
        elif kind == "input_audio":
            clip = part.get("input_audio")
            data = clip.get("data") if isinstance(clip, Mapping) else None
            if not isinstance(data, str):
                raise BadRequest(f"{at}.input_audio.data: expected a base64 string")
            audio.append(b64(data, f"{at}.input_audio.data"))
        else:
            raise BadRequest(f"{at}.type: unsupported content part type {kind!r}")
    return "\n".join(texts), images, audio


def _tool_calls(calls: Any, where: str) -> list[dict[str, Any]] | None:
    if calls is None:
        return None
    if not isinstance(calls, list):
        raise BadRequest(f"{where}.tool_calls: expected a list")
    out = []
    for j, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
            raise BadRequest(f"{where}.tool_calls.{j}.function: a name is required")
        args = fn.get("arguments")
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except ValueError:
                raise BadRequest(f"{where}.tool_calls.{j}: invalid tool call arguments (not JSON)") from None
        if args is not None and not isinstance(args, Mapping):
            raise BadRequest(f"{where}.tool_calls.{j}: invalid tool call arguments (not a JSON object)")
        out.append({"id": call.get("id"), "function": {"name": fn["name"], "arguments": dict(args or {})}})
    return out


def _tool_name(messages: list[Any], call_id: Any) -> str | None:
    """The function name of the (last) assistant tool call with this id, as Ollama's nameFromToolCallID."""
    for m in reversed(messages):
        for call in (m.get("tool_calls") or []) if isinstance(m, Mapping) else []:
            if isinstance(call, Mapping) and call.get("id") == call_id:
                fn = call.get("function")
                return fn.get("name") if isinstance(fn, Mapping) else None
    return None


def messages_of(raw: Any) -> list[dict[str, Any]]:
    """OpenAI messages as the Client's message dicts (``developer`` is a system message)."""
    if not isinstance(raw, list) or not raw:
        raise BadRequest("messages: a non-empty list of messages is required")
    out = []
    for i, m in enumerate(raw):
        where = f"messages.{i}"
        if not isinstance(m, Mapping):
            raise BadRequest(f"{where}: expected a message object")
        role = m.get("role")
        if role not in _ROLES:
            raise BadRequest(f"{where}.role: expected one of {', '.join(_ROLES)}, got {role!r}")
        msg: dict[str, Any] = {"role": {"developer": "system", "function": "tool"}.get(role, role)}
        content = m.get("content")
        if isinstance(content, str):
            msg["content"] = content
        elif isinstance(content, list):
            msg["content"], images, audio = content_parts(content, where)
            if images:
                msg["images"] = images
            if audio:
                msg["audio"] = audio
        elif content is not None:
            raise BadRequest(f"{where}.content: expected a string or a list of content parts")
        elif not m.get("tool_calls"):
            raise BadRequest(f"{where}.content: required unless the message has tool_calls")
        calls = _tool_calls(m.get("tool_calls"), where)
        if calls:
            msg["tool_calls"] = calls
        if isinstance(m.get("reasoning"), str):
            msg["thinking"] = m["reasoning"]
        if msg["role"] == "tool":
            call_id = m.get("tool_call_id")
            name = m.get("name") if isinstance(m.get("name"), str) else None
            msg["tool_name"] = name or (_tool_name(raw[:i], call_id) if call_id else None)
            if isinstance(call_id, str):
                msg["tool_call_id"] = call_id
        out.append({k: v for k, v in msg.items() if v is not None})
    return out


def _tools(body: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    tools = body.get("tools")
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise BadRequest("invalid type for 'tools': expected a list")
    for j, tool in enumerate(tools):
        if not isinstance(tool, Mapping) or tool.get("type", "function") != "function":
            raise BadRequest(f"tools.{j}.type: only function tools are supported")
        if not isinstance(tool.get("function"), Mapping) or not isinstance(tool["function"].get("name"), str):
            raise BadRequest(f"tools.{j}.function: a name is required")
    return [dict(t) for t in tools] or None


def _tool_choice(body: Mapping[str, Any]) -> str | dict[str, Any] | None:
    choice = body.get("tool_choice")
    if choice is None or isinstance(choice, str):
        return choice
    if isinstance(choice, Mapping):
        return dict(choice)
    raise BadRequest("invalid type for 'tool_choice': expected a string or an object")


def chat_request(body: Mapping[str, Any]) -> ChatRequest:
    """A ``/v1/chat/completions`` body as a :class:`ChatRequest` (``stream`` false unless set)."""
    model = model_of(body)
    n_of(body)
    logprobs, top = _logprobs(body)
    fields: dict[str, Any] = {
        "model": model,
        "messages": messages_of(body.get("messages")),
        "stream": bool(field(body, "stream", bool, "a boolean")),
        "options": _options(body, "chat"),
        "format": _format(body),
        "tools": _tools(body),
        "tool_choice": _tool_choice(body),
        "think": think_of(body),
        "logprobs": logprobs,
        "top_logprobs": top,
        "_debug_render_only": body.get("_debug_render_only") or None,
    }
    return ChatRequest.model_validate({k: v for k, v in fields.items() if v is not None})


def completion_request(body: Mapping[str, Any]) -> GenerateRequest:
    """A ``/v1/completions`` body as a :class:`GenerateRequest` (the prompt through the model's template,
    as Ollama does; ``logprobs`` an integer: that many alternatives a token)."""
    model = model_of(body)
    n_of(body)
    prompt = body.get("prompt", "")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise BadRequest("prompt: expected a string (lists of prompts and token arrays are not supported)")
    if body.get("echo"):
        raise BadRequest("echo: returning the prompt with the completion is not supported")
    suffix = field(body, "suffix", str, "a string")
    lp = field(body, "logprobs", int, "an integer")
    if lp is not None and not 0 <= lp <= 20:
        raise BadRequest(f"logprobs: must be between 0 and 20, got {lp}")
    fields: dict[str, Any] = {
        "model": model,
        "prompt": prompt,
        "suffix": suffix or None,
        "stream": bool(field(body, "stream", bool, "a boolean")),
        "options": _options(body, "completion"),
        "logprobs": True if lp is not None else None,
        "top_logprobs": lp,
        "_debug_render_only": body.get("_debug_render_only") or None,
    }
    return GenerateRequest.model_validate({k: v for k, v in fields.items() if v is not None})


def embed_arguments(body: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """A ``/v1/embeddings`` body as keyword arguments of ``AsyncClient.embed``, and its encoding format."""
    model = model_of(body)
    fmt = body.get("encoding_format") or "float"
    if not isinstance(fmt, str) or fmt.lower() not in ("float", "base64"):
        raise BadRequest(f"Invalid value for 'encoding_format' = {fmt}. Supported values: ['float', 'base64'].")
    text = body.get("input")
    if text == "" or text == [""]:  # the Client reads an empty input as "load the model only"
        raise BadRequest("input: an empty string cannot be embedded")
    if isinstance(text, list) and text and all(isinstance(t, str) for t in text):
        pass
    elif isinstance(text, list) and text and all(isinstance(t, (int, list)) for t in text):
        raise BadRequest("input: token arrays are not supported, send text")
    elif not isinstance(text, str):
        raise BadRequest("invalid input: expected a string or a non-empty list of strings")
    dims = field(body, "dimensions", int, "an integer")
    if dims is not None and dims < 1:
        raise BadRequest(f"dimensions: must be at least 1, got {dims}")
    args: dict[str, Any] = {"model": model, "input": text}
    if dims:
        args["dimensions"] = dims
    return args, fmt.lower()
