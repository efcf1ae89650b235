"""Parsing the model's output back into content, thinking and tool calls, through ``common``.

``common`` derives a parser from the parameters the rendering returned
(:mod:`.render`); it reads a partial output too, so a stream gets its content
and thinking apart while it is generated.

``common``'s parser reads the whole output at each call: parsing again at
every token would cost time quadratic in the answer's length.
:class:`OutputParser` parses in full only where the template's markup may
matter (:mod:`.markup`) and on a bounded schedule otherwise; in between, a
piece goes to the field it extends without a parse. What it streams is never
revised: a tail that could still become markup is held back until it is
decided, and the final answer is one parse of the whole output, of which the
streamed pieces are a prefix.
"""

from __future__ import annotations

import json
import logging
from typing import Protocol

from .. import _core
from ..types import ToolCall, ToolCallFunction
from .markup import FIELDS, JsonEnd, Markup, Schedule
from .messages import tool_call_id

_log = logging.getLogger("llamanative")


class ReplyParser(Protocol):
    """What turns the growing output into message deltas (:class:`OutputParser` and its wrappers)."""

    def feed(self, piece: str, final: bool = False) -> tuple[str, str, dict]: ...

    def tool_calls(self, msg: dict) -> list[ToolCall]: ...


def _empty() -> dict:
    return {"content": "", "reasoning_content": "", "tool_calls": []}


class OutputParser:
    """Turns the growing output text into message deltas (content, thinking) and tool calls.

    ``feed`` returns, for each piece, the text to append to the content and to
    the thinking; with ``final=True`` it parses the whole output and returns
    the rest of that final parse, so the deltas joined are the final parse's
    content and thinking.

    An output that stops matching the template's format (``common``'s final
    parse fails) reads as the parse of the part that matches, with the rest
    of the text, from where ``common``'s parser stopped matching, appended to
    the content as it is: nothing streamed is taken back and no text is lost.
    """

    def __init__(self, params: dict) -> None:
        # Nothing to extract (no tools, no reasoning markup, no structured
        # output that may come wrapped in a code fence): the text is the content.
        plain = not (params.get("parse_tool_calls") or params.get("supports_thinking") or params.get("grammar"))
        self._parser: _core.ChatParser | None = None if plain else _core.ChatParser(params)
        self._markup = Markup.of(params)
        self._longest = self._markup.longest
        self._json_answer = params.get("grammar_type") == "output_format"  # the content is one JSON value
        self._pieces: list[str] = []  # the output so far, joined at each full parse
        self._n = 0  # its length
        self._tail = ""  # its last characters: markup that a new piece completes may begin there
        self._msg = _empty()  # the last full parse
        self._at = 0  # the output's length at that parse
        self._emitted: dict[str, list[str]] = {f: [] for f in FIELDS}
        self._grow: str | None = None  # the field plain text extends, when the last parses showed one
        self._held = ""  # with _grow: the end of the output, part of that field, not emitted yet
        self._json: JsonEnd | None = None  # with _grow == "content" of a JSON answer: where the value ends
        self._failed: tuple[dict, int] | None = None  # no longer matching: (parse, where the content goes raw)
        self._schedule = Schedule()
        self._ids: list[str] = []

    # -- per piece --------------------------------------------------------------------
    def feed(self, piece: str, final: bool = False) -> tuple[str, str, dict]:
        """Add ``piece`` of output; return the new content, the new thinking, and the parse so far.

        With ``final``, the output is complete: the parse returned is the final one.
        """
        if self._parser is None:  # per token: no parse, no copy of the whole output
            return piece, "", {"content": None, "reasoning_content": "", "tool_calls": []}
        start = len(self._tail)
        window = self._tail + piece
        if piece:
            self._pieces.append(piece)
            self._n += len(piece)
            self._tail = window[-self._longest :] if self._longest else ""
        if final:
            return self._finish()
        if not piece:
            return "", "", self._msg
        if self._failed is not None:  # what follows the failure point is content as it comes
            self._emitted["content"].append(piece)
            return piece, "", self._msg
        if self._markup.unknown:
            return self._full()
        if self._markup.completes(window, start):  # markup may open or close a field: parse now
            self._schedule.markup()
            return self._full()
        if self._grow is not None:
            return self._extend(piece)
        if self._schedule.due(self._n, self._at):
            return self._full()
        return "", "", self._msg

    def _extend(self, piece: str) -> tuple[str, str, dict]:
        """``piece`` appended to the growing field, without a parse unless one is due."""
        held = self._held + piece
        if self._json is not None and self._json.scan(held, commit=False) >= 0:
            return self._full()  # the JSON value ends in this piece: what follows is not content
        if self._schedule.due(self._n, self._at):
            return self._full()  # a check that a parse agrees with what the pieces added
        space, partial = self._markup.unsure(held)
        keep = len(space) + len(partial)
        out, self._held = held[: len(held) - keep], held[len(held) - keep :]
        if not out:
            return "", "", self._msg
        if self._json is not None:
            self._json.scan(out, commit=True)
        assert self._grow is not None
        self._emitted[self._grow].append(out)
        return (out, "", self._msg) if self._grow == "content" else ("", out, self._msg)

    # -- full parses ------------------------------------------------------------------
    def _text(self) -> str:
        text = "".join(self._pieces)
        self._pieces = [text]
        return text

    def _parse(self, text: str) -> dict | None:
        """``common``'s parse of ``text`` as a complete output; None if it does not match the format."""
        assert self._parser is not None
        try:
            return self._parser.parse(text, partial=False)
        except RuntimeError:
            return None

    def _full(self) -> tuple[str, str, dict]:
        text = self._text()
        msg = self._parse(text)
        if msg is None:
            msg = self._fail(text)
            return (
                self._delta("content", msg, text, hold=False),
                self._delta("reasoning_content", msg, text, hold=False),
                msg,
            )
        prev, prev_at = self._msg, self._at
        self._msg, self._at = msg, len(text)
        self._grow, self._held, self._json = None, "", None
        grown = self._grown(prev, prev_at, msg, text)
        if grown is None:
            if any(msg[f] != prev[f] for f in FIELDS):
                # a change of the streamed text that plain text does not explain: look at the next pieces
                # (a tool call's growing arguments are not streamed: they wait for the bounded schedule)
                self._schedule.markup()
            self._schedule.parsed()
            return (
                self._delta("content", msg, text, hold=True),
                self._delta("reasoning_content", msg, text, hold=True),
                msg,
            )
        field, left_out = grown
        other = FIELDS[1] if field == FIELDS[0] else FIELDS[0]
        rest = self._delta(other, msg, text, hold=False)  # not at the end of the output: decided
        out = self._start_growing(field, (msg[field] or "") + left_out, text)
        return (out, rest, msg) if field == "content" else (rest, out, msg)

    def _grown(self, prev: dict, prev_at: int, msg: dict, text: str) -> tuple[str, str] | None:
        """The field that the text added since the last parse extends exactly, and the partial markup at
        its end that the parser left out ("" if none); None if no single field grew so."""
        added = text[prev_at:]
        if not added or msg["tool_calls"] != prev["tool_calls"]:
            return None
        if self._markup.completes(text[max(0, prev_at - self._longest) :], min(prev_at, self._longest)):
            return None
        left_out = self._markup.partial_suffix(added)
        grown = None
        for f in FIELDS:
            before, after = prev[f] or "", msg[f] or ""
            if after == before:
                continue
            if grown is not None:
                return None
            if before + added == after:
                grown = (f, "")
            elif left_out and before + added == after + left_out:
                grown = (f, left_out)
            else:
                return None
        return grown

    def _start_growing(self, field: str, value: str, text: str) -> str:
        """Emit ``value`` (the field with the output's end) less its undecided end, which is held."""
        emitted = "".join(self._emitted[field])
        if not value.startswith(emitted):
            self._revised(field, emitted, value)
            return ""
        space, partial = self._markup.unsure(text)
        keep = min(len(space) + len(partial), len(value) - len(emitted))
        out = value[len(emitted) : len(value) - keep]
        if self._json_answer and field == "content":
            self._json = JsonEnd.after(emitted + out)
            if self._json is None:  # a number or literal, or a value that ended: parse the next pieces
                self._schedule.markup()
                self._schedule.parsed()
                if out:
                    self._emitted[field].append(out)
                return out
        self._schedule.settled()
        self._grow, self._held = field, value[len(value) - keep :]
        if out:
            self._emitted[field].append(out)
        return out

    def _delta(self, field: str, msg: dict, text: str, hold: bool) -> str:
        """What ``msg`` adds to what was emitted of ``field``; with ``hold``, less an end of it
        that is also the output's undecided end (it may still become markup)."""
        value = msg[field] or ""
        emitted = "".join(self._emitted[field])
        if not value.startswith(emitted):
            self._revised(field, emitted, value)
            return ""
        new = value[len(emitted) :]
        if hold and new:
            new = new[: len(new) - self._markup.hold(new, text)]
        if new:
            self._emitted[field].append(new)
        return new

    @staticmethod
    def _revised(field: str, emitted: str, value: str) -> None:
        # Not expected: what may still change is held back. Said, rather than dropped without a trace.
        _log.warning("a later parse revised the streamed %s: ...%r became ...%r", field, emitted[-60:], value[-60:])

    # -- the end, and an output that does not match the format ----------------------------
    def _finish(self) -> tuple[str, str, dict]:
        text = self._text()
        if self._failed is not None:
            base, raw_from = self._failed
            msg = {**base, "content": (base["content"] or "") + text[raw_from:]}
        else:
            msg = self._parse(text) or self._fail(text)
        self._msg = msg
        return (
            self._delta("content", msg, text, hold=False),
            self._delta("reasoning_content", msg, text, hold=False),
            msg,
        )

    def _fail(self, text: str) -> dict:
        """The reading of an output that stopped matching the format (see the class's docstring)."""
        assert self._parser is not None
        at = self._parser.matched(text)
        base = self._parse(text[:at])
        while base is None and at > 0:  # not expected: where common stopped matching is a prefix it takes
            shorter = self._parser.matched(text[:at])
            at = shorter if shorter < at else 0
            base = self._parse(text[:at])
        base = base or _empty()
        self._failed = (base, at)
        self._grow, self._held, self._json = None, "", None
        _log.debug("the output stops matching the chat format after %d characters: the rest is content", at)
        return {**base, "content": (base["content"] or "") + text[at:]}

    # -- tool calls -------------------------------------------------------------------
    def tool_calls(self, msg: dict) -> list[ToolCall]:
        """The parsed tool calls with stable ids (arguments decoded from JSON text).

        A call cut short (``num_predict`` ended the output inside it, so its
        arguments are no complete JSON) is left out.
        """
        calls: list[ToolCall] = []
        for tc in msg.get("tool_calls") or []:
            fn = tc["function"]
            args = fn.get("arguments") or {}
            if isinstance(args, str):
                try:
                    args = json.loads(args)
                except ValueError:
                    continue
            i = len(calls)
            while len(self._ids) <= i:
                self._ids.append(tc.get("id") or tool_call_id())
            calls.append(ToolCall(id=self._ids[i], function=ToolCallFunction(index=i, name=fn["name"], arguments=args)))
        return calls
