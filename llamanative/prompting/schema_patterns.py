"""JSON-schema ``pattern``s rewritten into the regex subset llama.cpp's grammar converter enforces.

``common``'s converter (``_pattern_to_rule`` in json-schema-to-grammar.cpp)
reads anchored patterns of literals, ``.``, character classes, groups, ``|``
and the quantifiers ``* + ? {m,n}``, with the escapes GBNF has (``\\t \\n \\r
\\xHH \\uHHHH`` and a few punctuation ones). Anything else — ``\\d``, ``\\w``,
``\\s``, a lookaround, a backreference, ``\\b`` — makes it accept *any*
string, with only a line on stderr. It also writes the characters a pattern
matches into the JSON string as they are, so a ``.`` or a ``[^x]`` would let
the model close the string early or write a raw control character.

:func:`grammar_pattern` parses a pattern (the syntax Python's ``re`` and
ECMA-262 share) and writes it back so that the converter builds exactly a
subset of what the pattern matches, under either engine:

- ``\\d`` is ``[0-9]``, ``\\w`` ``[0-9A-Za-z_]``, ``\\s`` the whitespace both
  engines agree on; ``\\D``, ``\\S`` and ``[^...]`` exclude everything either
  engine could match (Python's ``\\d`` and ``\\s`` are Unicode-wide); ``\\W``
  and a negated class holding ``\\w`` are their ASCII part only, since
  Python's ``\\w`` takes in every Unicode letter;
- ``.`` and every class leave out what a JSON string cannot hold unescaped
  (``"``, ``\\``, U+0000–U+001F, lone surrogates); a literal one of those is
  refused, as the grammar has no way to write it escaped;
- lazy quantifiers lose their ``?`` (a full match does not depend on it),
  named groups become plain ones, and every literal the converter would
  mis-split (a non-ASCII or escaped character before a quantifier) becomes a
  one-character class.

What cannot be written so raises :class:`PatternError` with the reason: the
caller turns it into a 400, never into an unconstrained answer.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

_MAX = 0x10FFFF
_MAX_DEPTH = 100  # the converter's MAX_PATTERN_DEPTH
_MAX_REPEAT = 2**31 - 1  # the converter reads a {m,n} bound as an int (std::stoi)

Ranges = tuple[tuple[int, int], ...]


class PatternError(ValueError):
    """A ``pattern`` the grammar cannot enforce; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _unsupported(what: str) -> PatternError:
    return PatternError(f"unsupported: {what}")


def _invalid(what: str) -> PatternError:
    return PatternError(f"invalid: {what}")


# -- sets of code points, as sorted disjoint inclusive ranges --------------------------------------------
def _norm(ranges: Iterable[tuple[int, int]]) -> Ranges:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)


def _complement(ranges: Ranges) -> Ranges:
    out, nxt = [], 0
    for lo, hi in ranges:
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= _MAX:
        out.append((nxt, _MAX))
    return tuple(out)


def _minus(a: Ranges, b: Ranges) -> Ranges:
    return _complement(_norm(_complement(a) + b))


def _chars(text: str) -> Ranges:
    return _norm((ord(c), ord(c)) for c in text)


# What a JSON string cannot hold as it is: the grammar writes pattern characters unescaped.
_JSON_UNSAFE = _norm([(0x00, 0x1F), (0x22, 0x22), (0x5C, 0x5C), (0xD800, 0xDFFF)])
_DIGITS = ((0x30, 0x39),)
_ASCII_WORD = _norm([(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)])
_ASCII = ((0x00, 0x7F),)
# \s: what Python's re and ECMA-262 both call whitespace, and what either does.
_SPACE_BOTH = _norm(
    [(0x09, 0x0D), (0x20, 0x20), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A)]
    + [(c, c) for c in (0x2028, 0x2029, 0x202F, 0x205F, 0x3000)]
)
_SPACE_ANY = _norm([*_SPACE_BOTH, (0x1C, 0x1F), (0x85, 0x85), (0xFEFF, 0xFEFF)])
# Python's "." takes all but \n, ECMA-262's all but \n, \r, U+2028 and U+2029.
_DOT = _minus(((0, _MAX),), _norm([*_JSON_UNSAFE, (0x2028, 0x2029)]))


@functools.cache
def _unicode_digits() -> Ranges:
    """Every character Python's ``\\d`` matches (Unicode decimal digits, of this Python's Unicode version)."""
    return _norm((c, c) for c in range(_MAX + 1) if chr(c).isdecimal())


class _ClassSet:
    """A class item: what it surely matches (``sub``) and what it may match in either engine (``sup``)."""

    __slots__ = ("sub", "sup", "unicode_word")

    def __init__(self, sub: Ranges, sup: Ranges, unicode_word: bool = False) -> None:
        self.sub, self.sup, self.unicode_word = sub, sup, unicode_word


def _escape_set(letter: str) -> _ClassSet:
    if letter == "d":
        return _ClassSet(_DIGITS, _unicode_digits())
    if letter == "w":
        return _ClassSet(_ASCII_WORD, _ASCII_WORD, unicode_word=True)
    return _ClassSet(_SPACE_BOTH, _SPACE_ANY)


def _positive(items: list[_ClassSet]) -> Ranges:
    return _minus(_norm(r for it in items for r in it.sub), _JSON_UNSAFE)


def _negated(items: list[_ClassSet]) -> Ranges:
    excluded = _norm([*(r for it in items for r in it.sup), *_JSON_UNSAFE])
    if any(it.unicode_word for it in items):
        # Python's \w holds every Unicode letter: only the ASCII complement is
        # known to match in both engines (and stays a short class).
        return _minus(_ASCII, excluded)
    return _complement(excluded)


# -- writing the converter's form -------------------------------------------------------------------------
def _esc(cp: int) -> str:
    """``cp`` as the converter copies it into a GBNF character class."""
    if cp < 0x80 and chr(cp).isalnum():
        return chr(cp)
    if cp < 0x100:
        return f"\\x{cp:02X}"
    if cp < 0x10000:
        return f"\\u{cp:04X}"
    return f"\\U{cp:08X}"


def _items(ranges: Ranges) -> str:
    return "".join(_esc(lo) if lo == hi else f"{_esc(lo)}-{_esc(hi)}" for lo, hi in ranges)


def _class(ranges: Ranges) -> str:
    """A class for ``ranges``: listed, or as the negation of the rest when that is shorter."""
    if not ranges:
        raise _unsupported("a class that matches only characters a JSON string must escape")
    rest = _complement(ranges)
    if len(rest) < len(ranges):
        return f"[^{_items(rest)}]"
    return f"[{_items(ranges)}]"


# Characters the converter takes as literal text, alone or in a run (NON_LITERAL_SET, the escape and
# the quote aside); any other literal becomes a one-character class.
_PLAIN = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ !#%&',-/:;<=>@_`~")

_HEX = frozenset("0123456789abcdefABCDEF")
_ESCAPE_REASONS = {
    "b": "word boundary \\b",
    "B": "word boundary \\B",
    "A": "anchor \\A",
    "Z": "anchor \\Z",
    "z": "anchor \\z",
    "G": "anchor \\G",
    "p": "Unicode property escape \\p",
    "P": "Unicode property escape \\P",
    "k": "named backreference \\k",
    "c": "control escape \\c",
    "N": "named character escape \\N",
}
_CONTROL_ESCAPES = {"t": 0x09, "n": 0x0A, "r": 0x0D, "f": 0x0C, "v": 0x0B}


def _literal(cp: int) -> str:
    if any(lo <= cp <= hi for lo, hi in _JSON_UNSAFE):
        raise _unsupported(f"the character {chr(cp)!r}, which a JSON string holds only escaped")
    c = chr(cp)
    return c if c in _PLAIN else f"[{_esc(cp)}]"


class _Parser:
    """One pass over the pattern between its anchors, writing the converter's form as it goes."""

    def __init__(self, body: str) -> None:
        self.s = body
        self.i = 0

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.s[j] if j < len(self.s) else ""

    def alternation(self, depth: int) -> str:
        branches = [self.sequence(depth)]
        while self.peek() == "|":
            self.i += 1
            branches.append(self.sequence(depth))
        return "|".join(branches)

    def sequence(self, depth: int) -> str:
        out = []
        while self.i < len(self.s) and self.peek() not in "|)":
            atom = self.atom(depth)
            out.append(atom + self.quantifier())
        return "".join(out)

    # -- quantifiers
    def repeat_bounds(self) -> tuple[int, int | None, int] | None:
        """``(min, max, length)`` of a ``{m,n}`` quantifier at the cursor, or None where ``{`` is a literal."""
        j = self.s.find("}", self.i)
        if self.peek() != "{" or j < 0:
            return None
        body = self.s[self.i + 1 : j]
        lo_text, comma, hi_text = body.partition(",")
        if not all(t == "" or t.isascii() and t.isdigit() for t in (lo_text, hi_text)):
            return None
        if not comma and not lo_text:
            return None
        lo = int(lo_text) if lo_text else 0
        hi = None if comma and not hi_text else int(hi_text) if comma else lo
        return lo, hi, j + 1 - self.i

    def quantifier(self) -> str:
        c = self.peek()
        if c in ("*", "+", "?"):
            self.i += 1
            out = c
        elif bounds := self.repeat_bounds():
            lo, hi, length = bounds
            if hi is not None and lo > hi:
                raise _invalid(f"the repeat {self.s[self.i : self.i + length]} has its minimum above its maximum")
            if max(lo, hi or 0) > _MAX_REPEAT:
                raise _unsupported(f"a repeat count over {_MAX_REPEAT}")
            self.i += length
            out = f"{{{lo}}}" if hi == lo else f"{{{lo},}}" if hi is None else f"{{{lo},{hi}}}"
        else:
            return ""
        if self.peek() == "?":  # lazy: the same full matches
            self.i += 1
        elif self.peek() == "+":
            raise _unsupported("possessive quantifier")
        if self.peek() in ("*", "+", "?") or self.repeat_bounds():
            raise _invalid("a quantifier after a quantifier")
        return out

    # -- atoms
    def atom(self, depth: int) -> str:
        c = self.peek()
        if c == "(":
            return self.group(depth)
        if c == "[":
            return self.char_class()
        if c == ".":
            self.i += 1
            return _class(_DOT)
        if c in ("^", "$"):
            raise _unsupported("anchor inside the pattern")
        if c in ("*", "+", "?") or self.repeat_bounds():
            raise _invalid("nothing to repeat")
        if c == "\\":
            return self.escape()
        self.i += 1
        return _literal(ord(c))

    def group(self, depth: int) -> str:
        if depth + 1 > _MAX_DEPTH:
            raise _unsupported("pattern nesting too deep")
        start = self.i
        self.i += 1
        if self.peek() == "?":
            rest = self.s[self.i + 1 :]
            if rest.startswith(":"):
                self.i += 2
            elif rest.startswith(("P<", "<")) and not rest.startswith(("<=", "<!")):
                end = self.s.find(">", self.i)
                name = self.s[self.s.find("<", self.i) + 1 : end] if end >= 0 else ""
                if not name.isidentifier():
                    raise _invalid("a group name")
                self.i = end + 1  # a named group matches what a plain one does
            else:
                raise _unsupported(self.group_kind(rest))
        inner = self.alternation(depth + 1)
        if self.peek() != ")":
            raise _invalid(f"unbalanced parentheses (the group at {start} is not closed)")
        self.i += 1
        return f"({inner})"

    @staticmethod
    def group_kind(rest: str) -> str:
        for prefix, what in (
            ("=", "lookahead"),
            ("!", "negative lookahead"),
            ("<=", "lookbehind"),
            ("<!", "negative lookbehind"),
            ("P=", "backreference"),
            (">", "atomic group"),
            ("#", "comment group"),
            ("(", "conditional group"),
        ):
            if rest.startswith(prefix):
                return what
        return "inline flags" if rest[:1].isalpha() or rest[:1] == "-" else "group syntax (?" + rest[:1]

    def hex_escape(self, letter: str, n: int) -> int:
        digits = self.s[self.i + 2 : self.i + 2 + n]
        if len(digits) != n or not set(digits) <= _HEX:
            raise _invalid(f"\\{letter} needs {n} hex digits")
        self.i += 2 + n
        return int(digits, 16)

    def escape_char(self, in_class: bool) -> int | _ClassSet:
        """The escape at the cursor: a code point, or the set of ``\\d``, ``\\w``, ``\\s``."""
        letter = self.peek(1)
        if not letter:
            raise _invalid("trailing backslash")
        if letter in "dws":
            self.i += 2
            return _escape_set(letter)
        if letter in "DWS":
            raise _unsupported(f"negated escape \\{letter} inside a character class")
        if letter in "123456789":
            raise _unsupported(f"backreference \\{letter}")
        if letter == "0":
            if self.peek(2).isdigit():
                raise _unsupported("octal escape")
            self.i += 2
            return 0
        if letter in _CONTROL_ESCAPES:
            self.i += 2
            return _CONTROL_ESCAPES[letter]
        if letter == "b" and in_class:  # a backspace inside a class, in both engines
            self.i += 2
            return 0x08
        if letter in "xuU":
            if letter == "u" and self.peek(2) == "{":
                raise _unsupported("\\u{...} escape")
            return self.hex_escape(letter, {"x": 2, "u": 4, "U": 8}[letter])
        if letter in _ESCAPE_REASONS:
            raise _unsupported(_ESCAPE_REASONS[letter])
        if letter.isascii() and letter.isalnum():
            raise _unsupported(f"escape \\{letter}")
        self.i += 2
        return ord(letter)  # an escaped punctuation or non-ASCII character is itself

    def escape(self) -> str:
        letter = self.peek(1)
        if letter in ("D", "W", "S"):  # \D is [^\d], ...
            self.i += 2
            return _class(_negated([_escape_set(letter.lower())]))
        got = self.escape_char(in_class=False)
        return _literal(got) if isinstance(got, int) else _class(_positive([got]))

    def class_atom(self) -> int | _ClassSet:
        if self.peek() == "\\":
            return self.escape_char(in_class=True)
        c = self.peek()
        self.i += 1
        return ord(c)

    def char_class(self) -> str:
        start = self.i
        self.i += 1
        negated = self.peek() == "^"
        if negated:
            self.i += 1
        if self.peek() == "]":
            # "[]" and "[^]" are an empty and a full class in ECMA-262, a literal "]" in Python
            raise _unsupported("']' first in a character class (the engines disagree on it)")
        items: list[_ClassSet] = []
        while self.peek() != "]":
            if not self.peek():
                raise _invalid(f"unterminated character class at {start}")
            lo = self.class_atom()
            if self.peek() == "-" and self.peek(1) not in ("]", ""):
                self.i += 1
                hi = self.class_atom()
                if not isinstance(lo, int) or not isinstance(hi, int):
                    raise _invalid("a range with a class escape as an end")
                if lo > hi:
                    raise _invalid(f"the range {chr(lo)!r}-{chr(hi)!r} is reversed")
                items.append(_ClassSet(((lo, hi),), ((lo, hi),)))
            elif isinstance(lo, int):
                items.append(_ClassSet(((lo, lo),), ((lo, lo),)))
            else:
                items.append(lo)
        self.i += 1
        return _class(_negated(items) if negated else _positive(items))


def _escaped_at(text: str, j: int) -> bool:
    """Whether the character at ``j`` is escaped (an odd run of backslashes before it)."""
    n = 0
    while j - n - 1 >= 0 and text[j - n - 1] == "\\":
        n += 1
    return n % 2 == 1


def grammar_pattern(pattern: str) -> str:
    """``pattern`` in the form llama.cpp's converter enforces exactly, matching a subset of what it matches.

    The result is itself in that form (rewriting it again changes nothing).

    Raises:
        PatternError: the pattern is not anchored with ``^`` and ``$``, is not
            a valid regex, or uses what the grammar cannot express
            (lookarounds, backreferences, ``\\b``, a negated escape inside a
            class, a literal character a JSON string must escape, ...).
    """
    if len(pattern) < 2 or pattern[0] != "^" or pattern[-1] != "$" or _escaped_at(pattern, len(pattern) - 1):
        raise PatternError("must be anchored with ^ and $")
    parser = _Parser(pattern[1:-1])
    out = parser.alternation(0)
    if parser.i < len(parser.s):
        raise _invalid("unbalanced parentheses (a ')' without its '(')")
    return f"^{out}$"
