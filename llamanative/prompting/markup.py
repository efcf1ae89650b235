"""What in a model's output may be template markup, and when to parse it in full (for :mod:`.parse`).

``common``'s chat parameters name the strings that structure the output:
the preserved tokens (``<think>``, ``<tool_call>`` ...), the words that
trigger the tool-call grammar, and the thinking start and end tags. Text
that neither contains nor ends with the beginning of one of those cannot
open or close a field, so :class:`~.parse.OutputParser` appends it to the
field it extends without parsing. A JSON answer (a ``format``) has no such
strings: there :class:`JsonEnd` tells where the value ends.
"""

from __future__ import annotations

import re

FIELDS = ("content", "reasoning_content")  # the parse's text fields, in common's names

# Full parses one per piece after markup or a change no plain text explains, before the bounded schedule.
SETTLE_PARSES = 8
# The bounded schedule: a full parse once the output has grown by this much since the last one
# (a check while text extends a field, a look while it goes into a tool call): at most
# RATIO + 1 parsed characters per output character, whatever the answer's length.
MIN_GAP = 64
RATIO = 4


class Markup:
    """The strings that may structure an output, from ``common``'s chat parameters."""

    def __init__(self, strings: tuple[str, ...], unknown: bool = False) -> None:
        self.strings = strings
        self.unknown = unknown  # a trigger is a regular expression: no telling plain text from markup
        self.longest = max((len(s) for s in strings), default=0)
        self.starts = frozenset(s[0] for s in strings)
        # longest first: at one position the longer string wins, the shorter can only end sooner
        self._any = (
            re.compile("|".join(re.escape(s) for s in sorted(strings, key=len, reverse=True))) if strings else None
        )

    @classmethod
    def of(cls, params: dict) -> Markup:
        found = {*(params.get("preserved_tokens") or ()), *(params.get("thinking_end_tags") or ())}
        found.add(params.get("thinking_start_tag") or "")
        unknown = False
        for t in params.get("grammar_triggers") or ():
            if t.get("type") in ("word", "token"):
                found.add(t.get("value") or "")
            else:
                unknown = True
        return cls(tuple(sorted(s for s in found if s)), unknown)

    def completes(self, window: str, start: int = 0) -> bool:
        """Whether one of the strings ends in ``window[start:]`` (it may begin before ``start``)."""
        if self._any is None:
            return False
        m = self._any.search(window, max(0, start - self.longest + 1))
        while m is not None:
            if m.end() > start:
                return True
            m = self._any.search(window, m.start() + 1)
        return False

    def partial_suffix(self, text: str) -> str:
        """The longest end of ``text`` that begins one of the strings (and may still become it)."""
        tail = text[-(self.longest - 1) :] if self.longest > 1 else ""
        for i, c in enumerate(tail):  # the earliest start is the longest end
            if c in self.starts:
                end = tail[i:]
                if any(len(s) > len(end) and s.startswith(end) for s in self.strings):
                    return end
        return ""

    def unsure(self, text: str) -> tuple[str, str]:
        """The end of ``text`` that is not decided yet: the whitespace before a partial string, and that
        string (see :meth:`partial_suffix`). Whitespace is held because a parser may drop it before markup
        or after a JSON value."""
        partial = self.partial_suffix(text)
        body = text[: len(text) - len(partial)]
        return body[len(body.rstrip()) :], partial

    def hold(self, new: str, text: str) -> int:
        """How much of the end of ``new`` (a field's text that a parse of ``text`` added) to hold back:
        its overlap with the undecided end of ``text``, the partial string left out or not."""
        space, partial = self.unsure(text)
        keep = 0
        for tail in (space + partial, space):
            for n in range(min(len(tail), len(new)), keep, -1):
                if new.endswith(tail[len(tail) - n :]):
                    keep = n
                    break
        return keep


_PLAIN = re.compile(r'[^"\\{}\[\]]*')  # outside strings: what does not change the nesting
_IN_STRING = re.compile(r'[^"\\]*')


def _skip(run: re.Pattern[str], text: str, i: int) -> int:
    """The index after the run of ``run``'s characters at ``i`` (``i`` if there is none)."""
    m = run.match(text, i)
    return m.end() if m else i


class JsonEnd:
    """Where a JSON object, array or string whose beginning has been seen ends, read as its text comes."""

    def __init__(self) -> None:
        self._depth = 0
        self._in_string = False
        self._escaped = False

    @classmethod
    def after(cls, text: str) -> JsonEnd | None:
        """A reader at the end of ``text`` (the start of a value); None if it is no object, array or string,
        or it ended."""
        if not text[:1] or text[0] not in '{["':
            return None
        reader = cls()
        return None if reader.scan(text, commit=True) >= 0 else reader

    def scan(self, text: str, commit: bool) -> int:
        """The index in ``text`` just after the value's end, or -1; with ``commit``, read on past ``text``."""
        depth, in_string, escaped = self._depth, self._in_string, self._escaped
        i, n = 0, len(text)
        end = -1
        while i < n:
            if escaped:
                escaped, i = False, i + 1
                continue
            if in_string:
                i = _skip(_IN_STRING, text, i)
                if i < n:  # a backslash or the closing quote
                    if text[i] == "\\":
                        escaped = True
                    else:
                        in_string = False
                    i += 1
                    if not in_string and depth == 0:  # the value was a string
                        end = i
                        break
                continue
            i = _skip(_PLAIN, text, i)
            if i >= n:
                break
            c = text[i]
            i += 1
            if c == '"':
                in_string = True
            elif c in "{[":
                depth += 1
            elif c in "}]":
                depth -= 1
                if depth == 0:
                    end = i
                    break
        if commit:
            self._depth, self._in_string, self._escaped = depth, in_string, escaped
        return end


class Schedule:
    """When to parse in full while no markup says so: one per piece just after a change, then
    each time the output has grown by a quarter (at least ``MIN_GAP`` characters)."""

    def __init__(self) -> None:
        self._settle = SETTLE_PARSES

    def markup(self) -> None:
        self._settle = SETTLE_PARSES

    def parsed(self) -> None:
        self._settle = max(0, self._settle - 1)

    def settled(self) -> None:
        self._settle = 0

    def due(self, n: int, at: int) -> bool:
        """Whether to parse an output of ``n`` characters last parsed at ``at``."""
        return self._settle > 0 or n - at >= max(MIN_GAP, at // RATIO)
