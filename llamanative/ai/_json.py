"""JSON helpers for model output: markdown fences, partial JSON, array items (Go's ``internal/base``).

>>> extract_json_from_markdown('Here:\\n```json\\n{"a": 1}\\n```')
'{"a": 1}'
>>> extract_json('{"name": "Ada", "tags": ["x", "y')
{'name': 'Ada', 'tags': ['x', 'y']}
>>> complete_json('{"a": [1, 2, {"b": tr')
'{"a": [1, 2, {"b": true}]}'
>>> extract_items('[{"a": 1}, {"b": 2}, {"c"', 0)
([{'a': 1}, {'b': 2}], 19)
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["complete_json", "extract_items", "extract_json", "extract_json_from_markdown", "parse_partial_json"]

_JSON_FENCE = re.compile(r"```\s*json\s*(.*?)```", re.S | re.I)
_PLAIN_FENCE = re.compile(r"```\s*\n(.*?)```", re.S)
_IMPLICIT_FENCE = re.compile(r"```\s*([{\[].*?)```", re.S | re.I)


def extract_json_from_markdown(md: str) -> str:
    """The body of the first ```json fence, else of a bare fence, else of a fence opening with { or [;
    else the text unchanged."""
    for rx in (_JSON_FENCE, _PLAIN_FENCE, _IMPLICIT_FENCE):
        m = rx.search(md)
        if m:
            return m.group(1).strip()
    return md


def _outside_strings(text: str, start: int):
    """``(index, char)`` for each character from ``start`` that is not inside a JSON string (quotes excluded)."""
    in_string = escape = False
    for i in range(start, len(text)):
        ch = text[i]
        if escape:
            escape = False
        elif ch == "\\":
            escape = True
        elif ch == '"':
            in_string = not in_string
        elif not in_string:
            yield i, ch


def extract_json(text: str) -> Any:
    """The first JSON object or array in ``text``; an unfinished one is completed (partial JSON).

    Returns None when the text holds no ``{`` or ``[``.

    Raises:
        ValueError: the first complete value is not valid JSON.
    """
    opening = closing = ""
    start, depth = -1, 0
    for i, ch in _outside_strings(text, 0):
        if not opening and ch in "{[":
            opening, closing = ch, "}" if ch == "{" else "]"
            start, depth = i, 1
        elif opening and ch == opening:
            depth += 1
        elif opening and ch == closing:
            depth -= 1
            if depth == 0:
                return json.loads(text[start : i + 1])
    if start != -1 and depth > 0:
        return parse_partial_json(text[start:])
    return None


def parse_partial_json(text: str) -> Any:
    """``text`` as JSON, completing it first if it is cut short.

    Raises:
        ValueError: it does not parse even when completed.
    """
    try:
        return json.loads(text)
    except ValueError:
        return json.loads(complete_json(text))


_VALUE, _KEY, _COLON, _COMMA, _CLOSE = 1, 2, 4, 8, 16
_ESCAPES = set('"\\/bfnrt')
_HEX = set("0123456789abcdefABCDEF")
_ATOM_END = set(',:{}[]" \t\n\r')


def complete_json(text: str) -> str:
    """The longest prefix of ``text`` that ends a value, closed with the brackets still open.

    An unfinished string value is kept and closed; an unfinished key or
    number is dropped; ``tr``/``fa``/``nu`` at the very end become
    ``true``/``false``/``null``. Returns ``"{}"`` for empty input.
    """
    s = text.strip()
    if not s:
        return "{}"
    stack: list[list] = [["", _VALUE]]  # [closer, allowed]
    safe = 0

    def close(prefix: str) -> str:
        out = prefix + "".join(f[0] for f in reversed(stack) if f[0])
        return out or "{}"

    def value_done(end: int) -> None:
        nonlocal safe
        top = stack[-1]
        top[1] = 0 if not top[0] else (_COMMA | _CLOSE)
        safe = end

    i, n = 0, len(s)
    while i < n:
        top = stack[-1]
        c = s[i]
        if c in " \t\n\r":
            i += 1
        elif c in "{[":
            if not top[1] & _VALUE:
                return close(s[:safe])
            stack.append(["}", _KEY | _CLOSE] if c == "{" else ["]", _VALUE | _CLOSE])
            i += 1
            safe = i
        elif c in "}]":
            if not top[1] & _CLOSE or top[0] != c:
                return close(s[:safe])
            stack.pop()
            i += 1
            value_done(i)
        elif c == ",":
            if not top[1] & _COMMA:
                return close(s[:safe])
            top[1] = _KEY if top[0] == "}" else _VALUE
            i += 1
        elif c == ":":
            if not top[1] & _COLON:
                return close(s[:safe])
            top[1] = _VALUE
            i += 1
        elif c == '"':
            is_key = bool(top[1] & _KEY)
            if not is_key and not top[1] & _VALUE:
                return close(s[:safe])
            end, cut = _scan_string(s, i)
            if end < 0:
                if is_key:
                    return close(s[:safe])
                return close(s[:cut] + '"')
            i = end
            if is_key:
                top[1] = _COLON
            else:
                value_done(i)
        else:
            if not top[1] & _VALUE:
                return close(s[:safe])
            end = i
            while end < n and s[end] not in _ATOM_END:
                end += 1
            atom = s[i:end]
            try:
                json.loads(atom)
            except ValueError:
                kw = next((k for k in ("true", "false", "null") if len(atom) < len(k) and k.startswith(atom)), "")
                if kw and end == n:
                    return close(s[:i] + kw)
                return close(s[:safe])
            i = end
            value_done(i)
    return close(s[:safe])


def _scan_string(s: str, start: int) -> tuple[int, int]:
    """(index after the closing quote, 0), or (-1, where to cut) for an unfinished string."""
    i, n = start + 1, len(s)
    while i < n:
        c = s[i]
        if c == '"':
            return i + 1, 0
        if c < " ":
            return -1, i
        if c == "\\":
            if i + 1 >= n:
                return -1, i
            nxt = s[i + 1]
            if nxt == "u":
                if i + 5 >= n or not all(h in _HEX for h in s[i + 2 : i + 6]):
                    return -1, i
                i += 4
            elif nxt not in _ESCAPES:
                return -1, i
            i += 1
        i += 1
    return -1, n


def extract_items(text: str, cursor: int) -> tuple[list[Any], int]:
    """The complete objects of a JSON array found after ``cursor``, and the new cursor.

    With ``cursor == 0`` scanning starts after the first ``[``. Only ``{...}``
    elements are items (arrays of scalars give none), as Go's ``ExtractItems``.
    """
    items: list[Any] = []
    pos = cursor
    if cursor == 0:
        start = text.find("[")
        if start == -1:
            return items, len(text)
        pos = start + 1
    obj_start, depth = -1, 0
    for i, ch in _outside_strings(text, pos):
        if ch == "{":
            if depth == 0:
                obj_start = i
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0 and obj_start != -1:
                try:
                    items.append(json.loads(text[obj_start : i + 1]))
                except ValueError:
                    continue
                pos = i + 1
                obj_start = -1
        elif ch == "]" and depth == 0:
            break
    return items, pos
