"""The Client's responses written as OpenAI's objects (Ollama's ``To*`` functions, and beyond them).

Ids are ``chatcmpl-…`` (chat) and ``cmpl-…`` (completions), one a request,
shared by all the chunks of a stream, as is ``created``;
``system_fingerprint`` is :data:`FINGERPRINT`. ``usage`` counts the prompt's
tokens (``prompt_eval_count``: only those evaluated, a cached prefix not
counted, as Ollama) and the generated ones (``eval_count``). A response with
tool calls finishes with ``tool_calls``; otherwise ``finish_reason`` is the
Client's ``done_reason`` (``stop``, ``length``).
"""

from __future__ import annotations

import base64
import json
import secrets
import string
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np

from ..types import ChatResponse, GenerateResponse, ListResponse, Logprob, ShowResponse, ToolCall

__all__ = [
    "FINGERPRINT",
    "chat_chunk",
    "chat_completion",
    "completion",
    "completion_chunk",
    "embedding_list",
    "model_list",
    "model_object",
    "new_id",
    "usage",
]

FINGERPRINT = "fp_llamanative"
"The ``system_fingerprint`` of every completion (Ollama writes ``fp_ollama``)."

_ID_CHARS = string.ascii_letters + string.digits


def new_id(prefix: str) -> str:
    """``prefix`` and 24 random letters and digits, e.g. ``chatcmpl-…``."""
    return prefix + "".join(secrets.choice(_ID_CHARS) for _ in range(24))


def unix(when: datetime | None) -> int:
    return int(when.timestamp()) if when is not None else 0


def usage(r: ChatResponse | GenerateResponse) -> dict[str, int]:
    prompt = r.prompt_eval_count or 0
    done = r.eval_count or 0
    return {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done}


def tool_calls(calls: Sequence[ToolCall] | None) -> list[dict[str, Any]] | None:
    """Tool calls with their arguments as JSON text, as OpenAI writes them."""
    if not calls:
        return None
    return [
        {
            "index": c.function.index if c.function.index is not None else i,
            "id": c.id,
            "type": "function",
            "function": {"name": c.function.name, "arguments": json.dumps(c.function.arguments)},
        }
        for i, c in enumerate(calls)
    ]


def _token(lp: Any) -> dict[str, Any]:
    return {"token": lp.token, "logprob": lp.logprob, "bytes": lp.bytes}


def chat_logprobs(lps: Sequence[Logprob] | None) -> dict[str, Any] | None:
    """``choices[].logprobs``: ``{"content": [{token, logprob, bytes, top_logprobs}], "refusal": null}``."""
    if lps is None:
        return None
    content = [{**_token(lp), "top_logprobs": [_token(t) for t in lp.top_logprobs or ()]} for lp in lps]
    return {"content": content, "refusal": None}


def completion_logprobs(lps: Sequence[Logprob] | None, offset: int = 0) -> dict[str, Any] | None:
    """The legacy completions form: parallel ``tokens``, ``token_logprobs``, ``top_logprobs``, ``text_offset``.

    ``offset``: the text's length before these tokens (a stream's earlier chunks).
    """
    if lps is None:
        return None
    offsets = []
    for lp in lps:
        offsets.append(offset)
        offset += len(lp.token)
    return {
        "tokens": [lp.token for lp in lps],
        "token_logprobs": [lp.logprob for lp in lps],
        "top_logprobs": [{t.token: t.logprob for t in lp.top_logprobs or ()} for lp in lps],
        "text_offset": offsets,
    }


def _finish(reason: str | None, calls: bool) -> str | None:
    if not reason:
        return None
    return "tool_calls" if calls else reason


def chat_completion(rid: str, r: ChatResponse) -> dict[str, Any]:
    """A non-streamed chat answer as a ``chat.completion``."""
    calls = tool_calls(r.message.tool_calls)
    message: dict[str, Any] = {"role": "assistant", "content": r.message.content or ("" if not calls else None)}
    if r.message.thinking:
        message["reasoning"] = r.message.thinking
    if calls:
        message["tool_calls"] = calls
    out: dict[str, Any] = {
        "id": rid,
        "object": "chat.completion",
        "created": unix(r.created_at),
        "model": r.model,
        "system_fingerprint": FINGERPRINT,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": _finish(r.done_reason, bool(calls)),
                "logprobs": chat_logprobs(r.logprobs),
            }
        ],
        "usage": usage(r),
    }
    if r.debug_info is not None:
        out["_debug_info"] = r.debug_info.model_dump(exclude_none=True)
    return out


def chat_chunk(
    rid: str,
    created: int,
    model: str | None,
    delta: dict[str, Any],
    *,
    finish_reason: str | None = None,
    logprobs: Sequence[Logprob] | None = None,
    with_usage: bool = False,
) -> dict[str, Any]:
    """One ``chat.completion.chunk`` (``usage`` null in every chunk when the stream ends with a usage one)."""
    out: dict[str, Any] = {
        "id": rid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": FINGERPRINT,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": chat_logprobs(logprobs)}],
    }
    if with_usage:
        out["usage"] = None
    return out


def chat_deltas(r: ChatResponse) -> dict[str, Any]:
    """The text of one streamed ChatResponse as a delta (content, reasoning); ``{}`` when it has none."""
    delta: dict[str, Any] = {}
    if r.message.content:
        delta["content"] = r.message.content
    if r.message.thinking:
        delta["reasoning"] = r.message.thinking
    return delta


def completion(rid: str, r: GenerateResponse) -> dict[str, Any]:
    """A non-streamed generate answer as a ``text_completion``."""
    return {
        "id": rid,
        "object": "text_completion",
        "created": unix(r.created_at),
        "model": r.model,
        "system_fingerprint": FINGERPRINT,
        "choices": [
            {
                "text": r.response or "",
                "index": 0,
                "finish_reason": r.done_reason or None,
                "logprobs": completion_logprobs(r.logprobs),
            }
        ],
        "usage": usage(r),
    }


def completion_chunk(
    rid: str, created: int, r: GenerateResponse, offset: int, with_usage: bool = False
) -> dict[str, Any]:
    """One streamed ``text_completion`` chunk; ``offset`` is the text's length before it."""
    out: dict[str, Any] = {
        "id": rid,
        "object": "text_completion",
        "created": created,
        "model": r.model,
        "system_fingerprint": FINGERPRINT,
        "choices": [
            {
                "text": r.response or "",
                "index": 0,
                "finish_reason": (r.done_reason or None) if r.done else None,
                "logprobs": completion_logprobs(r.logprobs, offset),
            }
        ],
    }
    if with_usage:
        out["usage"] = None
    return out


def _owner(name: str) -> str:
    """The namespace of ``[host/][namespace/]model[:tag]`` (``library`` by default), as Ollama's ``owned_by``."""
    parts = name.split("/")
    return parts[-2] if len(parts) >= 2 else "library"


def model_object(name: str, modified_at: datetime | None) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": unix(modified_at), "owned_by": _owner(name)}


def model_list(r: ListResponse) -> dict[str, Any]:
    data = [model_object(m.model or m.name or "", m.modified_at) for m in r.models]
    return {"object": "list", "data": data}


def shown_model(name: str, r: ShowResponse) -> dict[str, Any]:
    return model_object(name, r.modified_at)


def embedding_list(model: str, matrix: Any, prompt_tokens: int, encoding: str) -> dict[str, Any]:
    """``/v1/embeddings``' answer; ``base64``: each vector's little-endian float32 bytes, base64-encoded;
    ``float``: each vector as a row of the float32 matrix, for ``embeddings_json`` to write."""
    vectors = np.ascontiguousarray(matrix, dtype="<f4")
    data = []
    for i, v in enumerate(vectors):
        value: Any = base64.b64encode(v.tobytes()).decode() if encoding == "base64" else v
        data.append({"object": "embedding", "embedding": value, "index": i})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
