"""OpenAI's Responses API (``POST /v1/responses``), stateless, over ``AsyncClient.chat``.

The mapping follows Ollama's ``openai/responses.go``: ``instructions`` is a
system message; ``input`` is a string (one user message) or a list of items:
messages (``input_text``/``output_text``/``input_image`` parts), ``function_call``
(an assistant tool call), ``function_call_output`` (a tool message, its name
found from the call's id) and ``reasoning`` (the next assistant message's
thinking); ``max_output_tokens`` is ``num_predict``; ``temperature`` and
``top_p`` default to 1.0; ``text.format`` ``json_schema`` (or
``json_object``) is the grammar-enforced ``format``; function ``tools`` (the
flat form) and ``tool_choice``; ``reasoning.effort`` is ``think``.

The answer is a ``response`` object whose ``output`` holds a ``reasoning``
item (the thinking), the ``function_call`` items, and a ``message`` item with
one ``output_text`` part. Beyond Ollama: a generation cut by
``max_output_tokens`` is ``status: "incomplete"`` with
``incomplete_details.reason`` ``max_output_tokens`` (and its stream ends with
``response.incomplete``), as OpenAI answers. Streams are server-sent events
with an ``event:`` line (``response.created``, ``response.in_progress``,
``response.output_item.added``, ``response.content_part.added``,
``response.output_text.delta`` ... ``response.completed``), each with its
``sequence_number``; no ``[DONE]``.

Nothing is stored: ``store`` is answered false, and ``previous_response_id``,
``conversation`` and ``background`` are 400s.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from ..types import ChatRequest, ChatResponse
from . import openai_wire as wire
from ._http import BadRequest
from .openai_requests import content_parts, field, model_of, think_of

__all__ = ["ResponsesStream", "response_object", "responses_request"]


def _messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    instructions = field(body, "instructions", str, "a string")
    if instructions:
        out.append({"role": "system", "content": instructions})
    raw = body.get("input")
    if isinstance(raw, str):
        out.append({"role": "user", "content": raw})
        return out
    if not isinstance(raw, list) or not raw:
        raise BadRequest("input: a string or a non-empty list of input items is required")
    names: dict[str, str] = {}  # call_id -> function name, for the tool messages
    thinking: str | None = None  # a reasoning item's text, for the next assistant message
    for i, item in enumerate(raw):
        where = f"input.{i}"
        if not isinstance(item, Mapping):
            raise BadRequest(f"{where}: expected an input item object")
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "system", "developer", "assistant"):
                raise BadRequest(f"{where}.role: expected user, system, developer or assistant, got {role!r}")
            msg: dict[str, Any] = {"role": "system" if role == "developer" else role}
            content = item.get("content")
            if isinstance(content, str):
                msg["content"] = content
            elif isinstance(content, list):
                msg["content"], images, audio = content_parts(content, where)
                msg |= {"images": images} if images else {}
                msg |= {"audio": audio} if audio else {}
            else:
                raise BadRequest(f"{where}.content: expected a string or a list of content parts")
            if role == "assistant" and thinking:
                msg["thinking"], thinking = thinking, None
            out.append(msg)
        elif kind == "function_call":
            name, args, call_id = item.get("name"), item.get("arguments") or "{}", item.get("call_id")
            if not isinstance(name, str) or not isinstance(args, str):
                raise BadRequest(f"{where}: a function_call needs a name and arguments (JSON text)")
            try:
                parsed = json.loads(args)
            except ValueError:
                raise BadRequest(f"{where}.arguments: invalid tool call arguments (not JSON)") from None
            if not isinstance(parsed, dict):
                raise BadRequest(f"{where}.arguments: invalid tool call arguments (not a JSON object)")
            call = {"id": call_id, "function": {"name": name, "arguments": parsed}}
            if isinstance(call_id, str):
                names[call_id] = name
            if out and out[-1]["role"] == "assistant":
                out[-1].setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": "", "tool_calls": [call]})
            if thinking:
                out[-1]["thinking"], thinking = thinking, None
        elif kind == "function_call_output":
            output = item.get("output")
            shown: list[bytes] = []  # images a tool returned
            if isinstance(output, list):
                output, shown, _ = content_parts(output, f"{where}.output")
            if not isinstance(output, str):
                raise BadRequest(f"{where}.output: expected a string or a list of content parts")
            call_id = item.get("call_id")
            name = names.get(call_id) if isinstance(call_id, str) else None
            msg = {"role": "tool", "content": output, "tool_call_id": call_id, "tool_name": name}
            msg |= {"images": shown} if shown else {}
            out.append({k: v for k, v in msg.items() if v is not None})
        elif kind == "reasoning":
            summary = item.get("summary")
            texts = [s.get("text", "") for s in summary if isinstance(s, Mapping)] if isinstance(summary, list) else []
            thinking = item.get("encrypted_content") or "".join(texts) or None
        else:
            raise BadRequest(f"{where}.type: unsupported input item type {kind!r}")
    if thinking:
        out.append({"role": "assistant", "content": "", "thinking": thinking})
    return out


def _format(body: Mapping[str, Any]) -> str | dict[str, Any] | None:
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, Mapping) else None
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, Mapping) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        schema = fmt.get("schema")
        if not isinstance(schema, Mapping):
            raise BadRequest("text.format.schema: a JSON schema object is required")
        return dict(schema)
    raise BadRequest(f"text.format.type: expected 'text', 'json_object' or 'json_schema', got {kind!r}")


def _tools(body: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    tools = body.get("tools")
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise BadRequest("invalid type for 'tools': expected a list")
    out = []
    for j, t in enumerate(tools):
        if not isinstance(t, Mapping) or t.get("type") != "function" or not isinstance(t.get("name"), str):
            raise BadRequest(f"tools.{j}: only function tools (with a name) are supported")
        fn = {"name": t["name"], "description": t.get("description") or "", "parameters": t.get("parameters")}
        out.append({"type": "function", "function": {k: v for k, v in fn.items() if v is not None}})
    return out or None


def _tool_choice(body: Mapping[str, Any]) -> str | dict[str, Any] | None:
    choice = body.get("tool_choice")
    if choice is None or isinstance(choice, str):
        return choice
    if isinstance(choice, Mapping) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise BadRequest("tool_choice: expected 'auto', 'none', 'required' or {'type': 'function', 'name': ...}")


def responses_request(body: Mapping[str, Any]) -> ChatRequest:
    """A ``/v1/responses`` body as a :class:`ChatRequest` (``stream`` false unless set)."""
    model = model_of(body)
    for key in ("previous_response_id", "conversation"):
        if body.get(key):
            raise BadRequest(f"{key}: responses are not stored; send the whole conversation as input")
    if body.get("background"):
        raise BadRequest("background: background responses are not supported")
    opts: dict[str, Any] = {}
    limit = field(body, "max_output_tokens", int, "an integer")
    if limit is not None:
        if limit < 1:
            raise BadRequest(f"max_output_tokens: must be at least 1, got {limit}")
        opts["num_predict"] = limit
    for key in ("temperature", "top_p"):
        value = field(body, key, (int, float), "a number")
        opts[key] = 1.0 if value is None else float(value)
    reasoning = body.get("reasoning")
    fields: dict[str, Any] = {
        "model": model,
        "messages": _messages(body),
        "stream": bool(field(body, "stream", bool, "a boolean")),
        "options": opts,
        "format": _format(body),
        "tools": _tools(body),
        "tool_choice": _tool_choice(body),
        "think": think_of({"reasoning": reasoning}) if isinstance(reasoning, Mapping) else None,
    }
    return ChatRequest.model_validate({k: v for k, v in fields.items() if v is not None})


def _echo(body: Mapping[str, Any]) -> dict[str, Any]:
    """The request's settings as a response object repeats them."""
    text = body.get("text") if isinstance(body.get("text"), Mapping) else {}
    reasoning = body.get("reasoning")
    return {
        "instructions": body.get("instructions"),
        "tools": list(body.get("tools") or []),
        "tool_choice": body.get("tool_choice") or "auto",
        "truncation": body.get("truncation") or "disabled",
        "parallel_tool_calls": True,
        "text": {"format": (text or {}).get("format") or {"type": "text"}},
        "top_p": body.get("top_p", 1.0) if body.get("top_p") is not None else 1.0,
        "temperature": body.get("temperature") if body.get("temperature") is not None else 1.0,
        "presence_penalty": 0,
        "frequency_penalty": 0,
        "top_logprobs": 0,
        "reasoning": {"effort": reasoning.get("effort"), "summary": None} if isinstance(reasoning, Mapping) else None,
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": None,
        "store": False,
        "background": False,
        "service_tier": "default",
        "metadata": body.get("metadata") or {},
        "previous_response_id": None,
        "safety_identifier": None,
        "prompt_cache_key": None,
    }


def _usage(r: ChatResponse) -> dict[str, Any]:
    prompt, done = r.prompt_eval_count or 0, r.eval_count or 0
    return {
        "input_tokens": prompt,
        "output_tokens": done,
        "total_tokens": prompt + done,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 0},
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = [_text_part(text)] if status == "completed" else []
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content}


def _reasoning_item(item_id: str, text: str) -> dict[str, Any]:
    return {"id": item_id, "type": "reasoning", "summary": [{"type": "summary_text", "text": text}]}


def _call_items(rid: str, r: ChatResponse) -> list[dict[str, Any]]:
    return [
        {
            "id": f"fc_{rid.removeprefix('resp_')}_{i}",
            "type": "function_call",
            "status": "completed",
            "call_id": c["id"],
            "name": c["function"]["name"],
            "arguments": c["function"]["arguments"],
        }
        for i, c in enumerate(wire.tool_calls(r.message.tool_calls) or [])
    ]


def _status(r: ChatResponse | None) -> dict[str, Any]:
    if r is not None and r.done_reason == "length":
        return {"status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}}
    return {"status": "completed", "incomplete_details": None}


def _envelope(rid: str, created: int, model: str, body: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": rid, "object": "response", "created_at": created, "model": model, "error": None} | _echo(body)


def response_object(rid: str, body: Mapping[str, Any], r: ChatResponse) -> dict[str, Any]:
    """A non-streamed answer as a ``response`` object."""
    output: list[dict[str, Any]] = []
    if r.message.thinking:
        output.append(_reasoning_item(f"rs_{rid.removeprefix('resp_')}", r.message.thinking))
    calls = _call_items(rid, r)
    output += calls
    if r.message.content or not calls:
        output.append(_message_item(f"msg_{rid.removeprefix('resp_')}", r.message.content or ""))
    out = _envelope(rid, wire.unix(r.created_at), model_of(body), body) | _status(r)
    return out | {"completed_at": int(time.time()), "output": output, "usage": _usage(r)}


def _sse(kind: str, data: dict[str, Any]) -> bytes:
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"event: {kind}\ndata: {payload}\n\n".encode()


class ResponsesStream:
    """Turns a chat stream's ChatResponses into the Responses API's events."""

    def __init__(self, rid: str, body: Mapping[str, Any]) -> None:
        self.rid, self.body = rid, body
        self.key = rid.removeprefix("resp_")
        self.created = int(time.time())
        self.seq = 0
        self.index = 0  # output_index of the next item
        self.reasoning: list[str] | None = None  # the thinking so far, once its item is open
        self.text: list[str] | None = None  # the text so far, once the message item is open
        self.output: list[dict[str, Any]] = []  # the finished items

    def _event(self, kind: str, **data: Any) -> bytes:
        data = {"type": kind, "sequence_number": self.seq, **data}
        self.seq += 1
        return _sse(kind, data)

    def _response(self, status: str, r: ChatResponse | None = None) -> dict[str, Any]:
        out = _envelope(self.rid, self.created, model_of(self.body), self.body)
        out |= {"status": status, "incomplete_details": None, "completed_at": None, "output": [], "usage": None}
        if r is not None:
            out |= _status(r) | {"completed_at": int(time.time()), "output": self.output, "usage": _usage(r)}
        return out

    def _close_reasoning(self) -> list[bytes]:
        if self.reasoning is None:
            return []
        text, self.reasoning = "".join(self.reasoning), None
        item = _reasoning_item(f"rs_{self.key}", text)
        self.output.append(item)
        done = [
            self._event(
                "response.reasoning_summary_text.done",
                item_id=item["id"],
                output_index=self.index,
                summary_index=0,
                text=text,
            ),
            self._event("response.output_item.done", output_index=self.index, item=item),
        ]
        self.index += 1
        return done

    def _close_text(self) -> list[bytes]:
        if self.text is None:
            return []
        text, self.text = "".join(self.text), None
        item_id = f"msg_{self.key}"
        item = _message_item(item_id, text)
        self.output.append(item)
        at = {"item_id": item_id, "output_index": self.index, "content_index": 0}
        done = [
            self._event("response.output_text.done", **at, text=text, logprobs=[]),
            self._event("response.content_part.done", **at, part=_text_part(text)),
            self._event("response.output_item.done", output_index=self.index, item=item),
        ]
        self.index += 1
        return done

    def write(self, r: ChatResponse) -> list[bytes]:
        out = []
        if self.seq == 0:
            out.append(self._event("response.created", response=self._response("in_progress")))
            out.append(self._event("response.in_progress", response=self._response("in_progress")))
        if r.message.thinking:
            if self.reasoning is None:
                self.reasoning = []
                item = {"id": f"rs_{self.key}", "type": "reasoning", "summary": []}
                out.append(self._event("response.output_item.added", output_index=self.index, item=item))
                part = {"type": "summary_text", "text": ""}
                at = {"item_id": item["id"], "output_index": self.index, "summary_index": 0}
                out.append(self._event("response.reasoning_summary_part.added", **at, part=part))
            self.reasoning.append(r.message.thinking)
            out.append(
                self._event(
                    "response.reasoning_summary_text.delta",
                    item_id=f"rs_{self.key}",
                    output_index=self.index,
                    summary_index=0,
                    delta=r.message.thinking,
                )
            )
        if r.message.content:
            out += self._close_reasoning()
            if self.text is None:
                self.text = []
                item_id = f"msg_{self.key}"
                item = _message_item(item_id, "", "in_progress")
                out.append(self._event("response.output_item.added", output_index=self.index, item=item))
                at = {"item_id": item_id, "output_index": self.index, "content_index": 0}
                out.append(self._event("response.content_part.added", **at, part=_text_part("")))
            self.text.append(r.message.content)
            out.append(
                self._event(
                    "response.output_text.delta",
                    item_id=f"msg_{self.key}",
                    output_index=self.index,
                    content_index=0,
                    delta=r.message.content,
                    logprobs=[],
                )
            )
        if not r.done:
            return out
        out += self._close_reasoning()
        out += self._close_text()
        for item in _call_items(self.rid, r):
            added = item | {"status": "in_progress", "arguments": ""}
            out.append(self._event("response.output_item.added", output_index=self.index, item=added))
            at = {"item_id": item["id"], "output_index": self.index}
            out.append(self._event("response.function_call_arguments.delta", **at, delta=item["arguments"]))
            out.append(self._event("response.function_call_arguments.done", **at, arguments=item["arguments"]))
            out.append(self._event("response.output_item.done", output_index=self.index, item=item))
            self.output.append(item)
            self.index += 1
        final = self._response("completed", r)
        out.append(self._event(f"response.{final['status']}", response=final))
        return out

    def error(self, status: int, message: str) -> bytes:
        """The ``error`` event that ends a stream that failed after it began."""
        code = "model_not_found" if status == 404 else ("server_error" if status >= 500 else "invalid_request")
        return self._event("error", code=code, message=message, param=None)
