"""Tool calling for chat templates that have no tool syntax of their own.

``common`` renders tools with the template's own syntax and parses calls back
with a parser it derives from the template. A template that never mentions
tools (SmolLM2's, the ChatML fallback of a GGUF without a template) gives it
nothing to derive from, so such a request is handled here, the way llama.cpp's
former "generic" chat format did:

- the tools and the expected reply shape are described in the system message;
- the reply is constrained by a JSON schema (compiled to a grammar by
  ``common``, like any ``format``): either ``{"tool_calls": [{"name": ...,
  "arguments": {...}}]}`` or ``{"response": ...}``, so even a small model can
  only produce well-formed calls whose arguments match each tool's schema;
- earlier tool calls and tool results in the history are rewritten into the
  same JSON shapes, so the conversation reads consistently to the model;
- the reply is parsed back into content and tool calls; while streaming, only
  the text of ``response`` is emitted, never the JSON around it.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from ..types import Tool

INSTRUCTIONS = (
    "Respond in JSON format, either with `tool_calls` (a request to call tools) or with `response` "
    "(a reply to the user's request). When a `tool_response` gives you what you need, answer with `response`."
)
_RESPONSE_START = re.compile(r'\A\s*\{\s*"response"\s*:\s*"')
_log = logging.getLogger("llamanative")


def _tool_schema(tool: Tool) -> dict:
    fn = tool.function
    assert fn is not None, "a tool without a function"
    params = fn.parameters.model_dump(by_alias=True, exclude_none=True) if fn.parameters else {}
    params.setdefault("type", "object")
    params.setdefault("properties", {})
    return {
        "type": "object",
        "properties": {"name": {"type": "string", "const": fn.name}, "arguments": params},
        "required": ["name", "arguments"],
    }


def chosen_tools(tools: list[Tool], tool_choice: Any) -> tuple[list[Tool], str]:
    """The tools a request may call and the mode: "auto", "required" or "none".

    A ``{"type": "function", "function": {"name": X}}`` choice means "required",
    restricted to X.

    Raises:
        ValueError: the named function is not among the tools.
    """
    if isinstance(tool_choice, dict):
        name = tool_choice["function"]["name"]
        picked = [t for t in tools if t.function is not None and t.function.name == name]
        if not picked:
            raise ValueError(f"tool_choice names {name!r}, which is not among the tools")
        return picked, "required"
    return tools, tool_choice or "auto"


def reply_schema(tools: list[Tool], mode: str, response_schema: dict | None) -> dict:
    """The JSON schema of the model's reply: tool calls, or (unless required) a response."""
    calls = [_tool_schema(t) for t in tools]
    call_list = {
        "type": "object",
        # One call per turn: models that need the generic form are seldom able to
        # plan parallel calls, and an open-ended list invites them to loop.
        "properties": {
            "tool_calls": {
                "type": "array",
                "items": calls[0] if len(calls) == 1 else {"anyOf": calls},
                "minItems": 1,
                "maxItems": 1,
            }
        },
        "required": ["tool_calls"],
    }
    if mode == "required":
        return call_list
    response = {
        "type": "object",
        "properties": {"response": response_schema if response_schema is not None else {"type": "string"}},
        "required": ["response"],
    }
    return {"anyOf": [call_list, response]}


def system_text(tools: list[Tool], mode: str) -> str:
    """What the system message tells the model about the tools and the reply format."""
    listing = json.dumps([t.model_dump(by_alias=True, exclude_none=True) for t in tools], indent=2)
    text = f"You can call any of the following tools to satisfy the user's requests: {listing}\n\n"
    if mode == "required":
        return text + "Respond in JSON format with `tool_calls` (a request to call tools)."
    return text + INSTRUCTIONS


def rewrite_messages(messages: list[dict], tools: list[Tool], mode: str, supports_system: bool) -> list[dict]:
    """The conversation in the generic shapes (``messages`` in the OpenAI form ``common`` reads).

    With ``mode == "none"`` only the history is rewritten: the model answers in
    plain text.
    """
    out = []
    for m in messages:
        m = dict(m)
        if m["role"] == "assistant" and m.get("tool_calls"):
            calls = [
                {"name": tc["function"]["name"], "arguments": _arguments(tc["function"]["arguments"])}
                for tc in m.pop("tool_calls")
            ]
            m["content"] = json.dumps({"tool_calls": calls}, ensure_ascii=False)
        elif m["role"] == "assistant" and mode != "none":
            m["content"] = json.dumps({"response": m.get("content") or ""}, ensure_ascii=False)
        elif m["role"] == "tool":
            # Templates without tool support often reject a "tool" role.
            result = {
                "tool": m.pop("name", None),
                "tool_call_id": m.pop("tool_call_id", None),
                "content": m.get("content") or "",
            }
            m = {
                "role": "user",
                "content": json.dumps(
                    {"tool_response": {k: v for k, v in result.items() if v is not None}}, ensure_ascii=False
                ),
            }
        out.append(m)
    if mode == "none":
        return out
    text = system_text(tools, mode)
    if out and out[0]["role"] == "system":
        out[0] = {**out[0], "content": f"{out[0].get('content') or ''}\n\n{text}".lstrip()}
    elif supports_system:
        out.insert(0, {"role": "system", "content": text})
    else:
        first_user = next((i for i, m in enumerate(out) if m["role"] == "user"), 0)
        if out:
            out[first_user] = {**out[first_user], "content": f"{text}\n\n{out[first_user].get('content') or ''}"}
    return out


def _arguments(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments


_STRING_RUN = re.compile(r'[^"\\]*')  # string characters that stand for themselves
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_KEY = '"response"'


def _may_start(head: str) -> bool:
    """Whether more text could still make ``head`` the start of a ``{"response": "`` reply."""
    t = head.lstrip()
    if not t:
        return True
    if t[0] != "{":
        return False
    t = t[1:].lstrip()
    if len(t) <= len(_KEY):
        return _KEY.startswith(t)
    if not t.startswith(_KEY):
        return False
    t = t[len(_KEY) :].lstrip()
    return not t or (t[0] == ":" and not t[1:].strip())


def _decode(body: str) -> tuple[str, int, bool]:
    """JSON string text decoded as far as it is complete: (text, characters read, whether the string ended).

    Stops before an escape sequence that is not complete yet (``\\``, ``\\u00``
    or a high surrogate without the escape after it), and for good at an
    invalid one (as the string's end), so decoding the text in any pieces
    gives what decoding it whole gives.
    """
    out: list[str] = []
    i, n = 0, len(body)
    while i < n:
        m = _STRING_RUN.match(body, i)
        j = m.end() if m else i
        if j > i:
            out.append(body[i:j])
            i = j
        if i >= n:
            break
        if body[i] == '"':
            return "".join(out), i + 1, True
        if i + 1 >= n:  # a backslash
            break
        kind = body[i + 1]
        if kind != "u":
            if kind not in _ESCAPES:
                return "".join(out), i, True
            out.append(_ESCAPES[kind])
            i += 2
            continue
        if i + 6 > n:
            break
        if not _HEX4.fullmatch(body, i + 2, i + 6):
            return "".join(out), i, True
        code = int(body[i + 2 : i + 6], 16)
        if 0xD800 <= code <= 0xDBFF:  # a surrogate pair needs its second half
            if i + 12 > n:
                break
            if body[i + 6 : i + 8] == "\\u" and _HEX4.fullmatch(body, i + 8, i + 12):
                low = int(body[i + 8 : i + 12], 16)
                if 0xDC00 <= low <= 0xDFFF:
                    out.append(chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)))
                    i += 12
                    continue
        out.append(chr(code))  # a lone surrogate stays one, as json.loads leaves it
        i += 6
    return "".join(out), i, False


class ResponseText:
    """The text of the ``response`` string of a generic reply, decoded as the reply's text comes.

    Each piece costs its own length (and that of an escape sequence left
    incomplete by the piece before): the reply is never read again from its start.
    """

    def __init__(self) -> None:
        self._head = ""  # the reply until the string's opening quote
        self._rest = ""  # string text not decoded yet (an incomplete escape)
        self._state = "head"  # then "body", then "end" (the string ended, or the reply is no response)

    def add(self, text: str) -> str:
        """What the reply's next ``text`` adds to the decoded response."""
        if self._state == "head":
            self._head += text
            m = _RESPONSE_START.match(self._head)
            if m is None:
                if not _may_start(self._head):
                    self._state = "end"
                return ""
            self._state, text, self._head = "body", self._head[m.end() :], ""
        if self._state != "body":
            return ""
        body = self._rest + text
        out, used, ended = _decode(body)
        self._rest = body[used:]
        if ended:
            self._state = "end"
        return out


def partial_response(text: str) -> str:
    """The decoded prefix of the ``response`` string in a partial reply (``""`` if there is none yet).

    Stops before an escape sequence that is not complete yet, so the text
    streamed never has to be taken back (see :class:`ResponseText`).
    """
    return ResponseText().add(text)


def parse_reply(text: str) -> tuple[str, list[dict]]:
    """The final reply as (content, tool calls in common's shape); unparseable text is returned as content."""
    try:
        data = json.loads(text)
    except ValueError:
        # Cut short (num_predict): keep what the response said so far, never the raw JSON;
        # a half-written call is not called.
        return partial_response(text), []
    if isinstance(data, dict) and isinstance(data.get("tool_calls"), list):
        calls = [
            {"id": c.get("id") or "", "function": {"name": c["name"], "arguments": c.get("arguments") or {}}}
            for c in data["tool_calls"]
            if isinstance(c, dict) and isinstance(c.get("name"), str)
        ]
        return "", calls
    if isinstance(data, dict) and "response" in data:
        resp = data["response"]
        return (resp if isinstance(resp, str) else json.dumps(resp, ensure_ascii=False)), []
    return text, []


class GenericReplyParser:
    """Streams the ``response`` text of a generic reply and parses the tool calls at the end.

    Wraps the :class:`~llamanative.prompting.parse.OutputParser` that ``common``'s
    parser drives (which still separates any thinking).
    """

    def __init__(self, inner) -> None:
        self._inner = inner
        self._response = ResponseText()
        self._emitted: list[str] = []

    def feed(self, piece: str, final: bool = False) -> tuple[str, str, dict]:
        content, thinking, msg = self._inner.feed(piece, final)
        if not final:
            delta = self._response.add(content) if content else ""
            if delta:
                self._emitted.append(delta)
            return delta, thinking, {**msg, "tool_calls": []}
        text, calls = parse_reply(msg["content"] or "")
        emitted = "".join(self._emitted)
        if not text.startswith(emitted):  # not expected: the streamed text stops before what may change
            _log.warning("the final reply revised the streamed response: ...%r became ...%r", emitted[-60:], text[-60:])
            return "", thinking, {**msg, "content": text, "tool_calls": calls}
        return text[len(emitted) :], thinking, {**msg, "content": text, "tool_calls": calls}

    def tool_calls(self, msg: dict):
        return self._inner.tool_calls(msg)
