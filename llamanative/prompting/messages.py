"""The request's messages and ``format`` in the shapes llama.cpp's ``common`` reads."""

from __future__ import annotations

import json
import secrets
import string
from typing import Any

from ..errors import StatusError
from ..types import Message
from .schema_check import unenforced

_ID_CHARS = string.ascii_lowercase + string.digits


def tool_call_id() -> str:
    """Ollama's format: ``call_`` and 8 random characters."""
    return "call_" + "".join(secrets.choice(_ID_CHARS) for _ in range(8))


def oai_messages(messages: list[Message], system: str | None) -> list[dict]:
    """The request's messages in the OpenAI shape ``common`` reads.

    A stored default system prompt goes first unless the conversation has one.
    """
    out: list[dict] = []
    if system and not any(m.role == "system" for m in messages):
        out.append({"role": "system", "content": system})
    for m in messages:
        msg: dict = {"role": m.role, "content": m.content or ""}
        if m.thinking:
            msg["reasoning_content"] = m.thinking
        if m.tool_calls:
            msg["tool_calls"] = [
                {
                    "type": "function",
                    "id": tc.id or tool_call_id(),
                    "function": {"name": tc.function.name, "arguments": json.dumps(tc.function.arguments)},
                }
                for tc in m.tool_calls
            ]
        if m.role == "tool":
            if m.tool_name:
                msg["name"] = m.tool_name
            if m.tool_call_id:
                msg["tool_call_id"] = m.tool_call_id
        out.append(msg)
    return out


def json_schema_of(fmt: Any) -> dict | None:
    """``format`` as a JSON schema for ``common``: "json" is any JSON object.

    Raises:
        StatusError: 400 for a schema with keywords the grammar would not
            enforce, or a ``format`` that is neither "json" nor a schema.
    """
    if not fmt:
        return None
    if fmt == "json":
        return {"type": "object"}
    if isinstance(fmt, dict):
        problems = unenforced(fmt)
        if problems:
            raise StatusError.bad_request(
                "format: the schema uses keywords the grammar cannot enforce: " + "; ".join(problems)
            )
        return fmt
    raise StatusError.bad_request(f'invalid format: {fmt!r}; expected "json" or a valid JSON Schema object')
