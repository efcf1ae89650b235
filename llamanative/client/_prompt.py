"""Prompts in, messages out: the chat layer between the API types and the engine.

Rendering goes through llama.cpp's own Jinja chat-template code (``common``,
via ``_core.ChatTemplates``) from the template in the GGUF, exactly as
llama-server renders; the model's output is parsed back by ``common`` into
content, thinking and tool calls, also while streaming.
"""

from __future__ import annotations

import json
import secrets
import string
from dataclasses import dataclass, field

from .. import _core
from ..errors import StatusError
from ..types import Message, ThinkValue, Tool, ToolCall, ToolCallFunction
from ._schema_check import unenforced

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


def json_schema_of(fmt) -> dict | None:
    """``format`` as a JSON schema for ``common``: "json" is any JSON object."""
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


@dataclass
class Rendered:
    """A rendered chat prompt and what generation and parsing need from ``common``."""

    prompt: str
    params: dict
    grammar: dict = field(default_factory=dict)  # SamplingParams grammar fields
    stops: tuple[str, ...] = ()


def render_chat(
    templates: _core.ChatTemplates,
    vocab: _core.Vocab,
    messages: list[dict],
    tools: list[Tool] | None,
    tool_choice,
    schema: dict | None,
    think: ThinkValue | None,
) -> Rendered:
    """Render with the model's template; map ``common``'s grammar to sampler settings.

    ``think`` switches the template's thinking on or off (``enable_thinking``);
    a level ("low", "medium", "high") also reaches the template as
    ``reasoning_effort``, the variable templates with effort levels read.

    Raises:
        StatusError: 400 for a conversation the template rejects.
    """
    req: dict = {"messages": messages}
    if tools:
        req["tools"] = [t.model_dump(by_alias=True, exclude_none=True) for t in tools]
        if tool_choice:
            req["tool_choice"] = tool_choice
    if schema is not None:
        req["json_schema"] = schema
    if think is not None:
        req["enable_thinking"] = think.bool()
        if think.is_string():
            req["chat_template_kwargs"] = {"reasoning_effort": think.string()}
    try:
        params = templates.apply(req)
    except ValueError as exc:
        raise StatusError.bad_request(str(exc)) from exc
    except RuntimeError as exc:
        raise StatusError.bad_request(f"the chat template failed on this conversation: {exc}") from exc
    return Rendered(params["prompt"], params, grammar_fields(params, vocab), tuple(params["additional_stops"]))


def grammar_fields(params: dict, vocab: _core.Vocab) -> dict:
    """``common``'s grammar (tool calls or a JSON schema) as ``SamplingParams`` fields."""
    if not params.get("grammar"):
        return {}
    fields: dict = {"grammar": params["grammar"], "grammar_lazy": bool(params.get("grammar_lazy"))}
    if fields["grammar_lazy"]:
        fields["grammar_trigger_patterns"] = tuple(t["pattern"] for t in params["grammar_triggers"] if t.get("pattern"))
        fields["grammar_trigger_tokens"] = tuple(
            t["token"] for t in params["grammar_triggers"] if t["type"] == "token" and t["token"] >= 0
        )
    if params.get("grammar_prefill") and params.get("generation_prompt"):
        # The grammar starts with the generation prompt: the sampler must see
        # those tokens first, as common_sampler_init does.
        toks = vocab.tokenize(params["generation_prompt"], add_special=False, parse_special=True)
        fields["grammar_prefill"] = tuple(int(t) for t in toks)
    return fields


class OutputParser:
    """Turns the growing output text into message deltas (content, thinking) and tool calls."""

    def __init__(self, params: dict) -> None:
        # Nothing to extract (no tools, no reasoning markup, no structured
        # output that may come wrapped in a code fence): the text is the content.
        self._plain = not (params.get("parse_tool_calls") or params.get("supports_thinking") or params.get("grammar"))
        self._parser = None if self._plain else _core.ChatParser(params)
        self._text = ""
        self._content = ""
        self._thinking = ""
        self._ids: list[str] = []

    def feed(self, piece: str, final: bool = False) -> tuple[str, str, dict]:
        """Add ``piece`` of output; return the new content, the new thinking, and the parse so far."""
        if self._plain:  # per token: no parse, no copy of the whole output
            return piece, "", {"content": None, "reasoning_content": "", "tool_calls": []}
        self._text += piece
        text = self._text
        try:
            msg = self._parser.parse(text, partial=not final)
        except RuntimeError:
            # Output cut short (num_predict, a stop string) inside markup the
            # final parser insists on: read it as the prefix it is.
            try:
                msg = self._parser.parse(text, partial=True)
            except RuntimeError:
                msg = {"content": text, "reasoning_content": "", "tool_calls": []}
        content, thinking = msg["content"] or "", msg["reasoning_content"] or ""
        # A partial parse may revise its tail (markup recognised later): only
        # ever emit what extends what was already emitted.
        new_c = content[len(self._content) :] if content.startswith(self._content) else ""
        new_t = thinking[len(self._thinking) :] if thinking.startswith(self._thinking) else ""
        self._content += new_c
        self._thinking += new_t
        return new_c, new_t, msg

    def tool_calls(self, msg: dict) -> list[ToolCall]:
        """The parsed tool calls with stable ids (arguments decoded from JSON text)."""
        calls = []
        for i, tc in enumerate(msg.get("tool_calls") or []):
            while len(self._ids) <= i:
                self._ids.append(tc.get("id") or tool_call_id())
            fn = tc["function"]
            calls.append(
                ToolCall(
                    id=self._ids[i],
                    function=ToolCallFunction(index=i, name=fn["name"], arguments=fn.get("arguments") or {}),
                )
            )
        return calls
