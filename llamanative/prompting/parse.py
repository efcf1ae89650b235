"""Parsing the model's output back into content, thinking and tool calls, through ``common``.

``common`` derives a parser from the parameters the rendering returned
(:mod:`.render`); it also reads a partial output, so a stream gets its
content and thinking apart while it is generated.
"""

from __future__ import annotations

from typing import Protocol

from .. import _core
from ..types import ToolCall, ToolCallFunction
from .messages import tool_call_id


class ReplyParser(Protocol):
    """What turns the growing output into message deltas (:class:`OutputParser` and its wrappers)."""

    def feed(self, piece: str, final: bool = False) -> tuple[str, str, dict]: ...

    def tool_calls(self, msg: dict) -> list[ToolCall]: ...


class OutputParser:
    """Turns the growing output text into message deltas (content, thinking) and tool calls."""

    def __init__(self, params: dict) -> None:
        # Nothing to extract (no tools, no reasoning markup, no structured
        # output that may come wrapped in a code fence): the text is the content.
        plain = not (params.get("parse_tool_calls") or params.get("supports_thinking") or params.get("grammar"))
        self._parser: _core.ChatParser | None = None if plain else _core.ChatParser(params)
        self._text = ""
        self._content = ""
        self._thinking = ""
        self._ids: list[str] = []

    def feed(self, piece: str, final: bool = False) -> tuple[str, str, dict]:
        """Add ``piece`` of output; return the new content, the new thinking, and the parse so far."""
        if self._parser is None:  # per token: no parse, no copy of the whole output
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
        calls: list[ToolCall] = []
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
