"""``Duration``: the ``keep_alive`` value, with the Go spec's parsing and JSON form.

Input, as ``api.Duration.UnmarshalJSON`` reads it:

- a number is **seconds** (``300``, ``0.5``); a negative number means forever;
- a string is a Go duration, parsed like Go's ``time.ParseDuration``
  (``"5m"``, ``"1h30m"``, ``"300ms"``, ``"1.5h"``, ``"-1m"``, ``"0"``); a
  negative one means forever. A number without a unit (``"-1"``, ``"300"``)
  is an error, as in Go; only ``"0"`` needs none;
- a :class:`datetime.timedelta` or another :class:`Duration` is also accepted.

Output (``to_json()``, and a pydantic field's JSON), as
``api.Duration.MarshalJSON``: forever is the number ``-1``; any other value
is Go's ``Duration.String()`` text, e.g. ``"5m0s"``, ``"1h30m0s"``,
``"300ms"``, ``"0s"``. Both forms read back as the same value.
"""

from __future__ import annotations

import functools
import logging
import math
import numbers
from datetime import timedelta
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import core_schema

__all__ = ["DEFAULT_KEEP_ALIVE", "Duration", "format_go_duration", "parse_go_duration"]

_log = logging.getLogger("llamanative")

_MAX_NS = (1 << 63) - 1  # Go's math.MaxInt64: what a negative keep_alive becomes

_NS = 1
_US = 1_000
_MS = 1_000_000
_S = 1_000_000_000
_UNITS = {
    "ns": _NS,
    "us": _US,
    "\u00b5s": _US,  # U+00B5 micro sign
    "\u03bcs": _US,  # U+03BC Greek small letter mu
    "ms": _MS,
    "s": _S,
    "m": 60 * _S,
    "h": 3600 * _S,
}


def parse_go_duration(text: str) -> int:
    """Parse a Go duration string; return nanoseconds (may be negative).

    A port of Go's ``time.ParseDuration``, with its error messages.

    >>> parse_go_duration("1h30m") == 5400 * 10**9
    True
    >>> parse_go_duration("1.5h") == parse_go_duration("90m")
    True
    >>> parse_go_duration("-1")
    Traceback (most recent call last):
    ValueError: time: missing unit in duration "-1"

    Raises:
        ValueError: ``text`` is not a Go duration.
    """
    orig = text
    s = text
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError(f"time: invalid duration {_quote(orig)}")
    total = 0
    while s:
        if not (s[0] == "." or s[0].isascii() and s[0].isdigit()):
            raise ValueError(f"time: invalid duration {_quote(orig)}")
        i = _count_digits(s)
        pre = i > 0
        v = int(s[:i]) if pre else 0
        s = s[i:]
        f, scale, post = 0, 1.0, False
        if s and s[0] == ".":
            s = s[1:]
            i = _count_digits(s)
            post = i > 0
            for c in s[:i]:
                if f > ((1 << 63) - 1) // 10:  # Go stops scaling on overflow
                    break
                f = f * 10 + int(c)
                scale *= 10
            s = s[i:]
        if not pre and not post:
            raise ValueError(f"time: invalid duration {_quote(orig)}")
        i = 0
        while i < len(s) and not (s[i] == "." or s[i].isascii() and s[i].isdigit()):
            i += 1
        if i == 0:
            raise ValueError(f"time: missing unit in duration {_quote(orig)}")
        unit_name, s = s[:i], s[i:]
        unit = _UNITS.get(unit_name)
        if unit is None:
            raise ValueError(f"time: unknown unit {_quote(unit_name)} in duration {_quote(orig)}")
        if v > (1 << 63) // unit:
            raise ValueError(f"time: invalid duration {_quote(orig)}")
        v *= unit
        if f > 0:
            # Go uses float64 here too: nanosecond-exact for fractions of an hour.
            v += int(float(f) * (float(unit) / scale))
        total += v
        if total > 1 << 63:
            raise ValueError(f"time: invalid duration {_quote(orig)}")
    if neg:
        return -total
    if total > _MAX_NS:
        raise ValueError(f"time: invalid duration {_quote(orig)}")
    return total


def _count_digits(s: str) -> int:
    i = 0
    while i < len(s) and s[i].isascii() and s[i].isdigit():
        i += 1
    return i


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _frac(u: int, prec: int) -> str:
    """``u / 10**prec`` as text, trailing zeros (and a bare point) dropped."""
    whole, frac = divmod(u, 10**prec)
    return f"{whole}.{frac:0{prec}d}".rstrip("0") if frac else str(whole)


def format_go_duration(ns: int) -> str:
    """Go's ``time.Duration.String()`` for ``ns`` nanoseconds.

    >>> [format_go_duration(n) for n in (0, 1500, 300 * 10**6, 90 * 10**9, 5400 * 10**9)]
    ['0s', '1.5µs', '300ms', '1m30s', '1h30m0s']
    """
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < _S:
        if u < _US:
            return f"{sign}{u}ns"
        if u < _MS:
            return f"{sign}{_frac(u, 3)}\u00b5s"
        return f"{sign}{_frac(u, 6)}ms"
    secs, frac = divmod(u, _S)
    out = f"{_frac(secs % 60 * _S + frac, 9)}s"
    if secs >= 60:
        out = f"{secs // 60 % 60}m{out}"
        if secs >= 3600:
            out = f"{secs // 3600}h{out}"
    return sign + out


@functools.total_ordering
class Duration:
    """How long a model stays loaded after a request (``keep_alive``).

    ``Duration(x)`` accepts what the spec's JSON accepts (see the module
    docstring). Any negative value means *forever*, stored as Go's
    ``math.MaxInt64`` nanoseconds, as ``api.Duration`` does.

    >>> Duration("5m").seconds()
    300.0
    >>> Duration(-1).is_forever(), Duration("-1m").is_forever()
    (True, True)
    >>> Duration("1h30m").to_json(), Duration(-1).to_json()
    ('1h30m0s', -1)

    Equality and ordering compare two ``Duration`` values; compare with a
    number through :meth:`seconds`.

    Raises:
        ValueError: the value is not a number, a Go duration string, a
            ``timedelta`` or a ``Duration``.
    """

    __slots__ = ("_ns",)

    def __init__(self, value: Duration | float | str | timedelta = 0) -> None:
        self._ns = _to_ns(value)

    @classmethod
    def validate(cls, value: Any) -> Duration:
        """``value`` as a ``Duration`` (returned as is if it already is one)."""
        return value if isinstance(value, Duration) else cls(value)

    @classmethod
    def forever(cls) -> Duration:
        """The value that never expires (what any negative input becomes)."""
        return cls(-1)

    @classmethod
    def from_nanoseconds(cls, ns: int) -> Duration:
        """A ``Duration`` of ``ns`` nanoseconds (negative means forever)."""
        d = cls.__new__(cls)
        d._ns = _MAX_NS if ns < 0 else min(int(ns), _MAX_NS)
        return d

    @classmethod
    def parse_env(cls, value: str | None, default: Duration | str | float = "5m") -> Duration:
        """Read an ``OLLAMA_KEEP_ALIVE``-style setting, as Ollama's ``envconfig.KeepAlive``.

        A Go duration, or else an integer number of seconds; negative means
        forever. Empty or invalid text gives ``default`` (invalid text is
        logged as a warning).

        >>> Duration.parse_env("10m").seconds(), Duration.parse_env("30").seconds()
        (600.0, 30.0)
        >>> Duration.parse_env("-1").is_forever(), Duration.parse_env("").seconds()
        (True, 300.0)
        """
        if value:
            try:
                return cls.from_nanoseconds(parse_go_duration(value))
            except ValueError:
                pass
            try:
                return cls.from_nanoseconds(int(value) * _S)
            except ValueError:
                _log.warning("invalid keep_alive setting %r; using %s", value, default)
        return cls.validate(default)

    @property
    def nanoseconds(self) -> int:
        """The duration in nanoseconds (``2**63 - 1`` for forever)."""
        return self._ns

    def is_forever(self) -> bool:
        """True if the model should never be unloaded (a negative keep_alive)."""
        return self._ns == _MAX_NS

    def seconds(self) -> float:
        """The duration in seconds; ``math.inf`` for forever."""
        return math.inf if self.is_forever() else self._ns / _S

    def to_json(self) -> int | str:
        """The spec's JSON value: ``-1`` for forever, else Go's duration text (``"5m0s"``)."""
        return -1 if self.is_forever() else format_go_duration(self._ns)

    def __str__(self) -> str:
        return format_go_duration(self._ns)

    def __repr__(self) -> str:
        return "Duration(-1)" if self.is_forever() else f"Duration({format_go_duration(self._ns)!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Duration):
            return self._ns == other._ns
        return NotImplemented

    def __lt__(self, other: object) -> bool:
        if isinstance(other, Duration):
            return self._ns < other._ns
        return NotImplemented

    def __hash__(self) -> int:
        return hash(("Duration", self._ns))

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls.validate,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda d: d.to_json()),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return {
            "anyOf": [{"type": "number"}, {"type": "string"}],
            "description": "Seconds, or a Go duration string such as '5m'; negative means forever.",
        }


def _to_ns(value: Any) -> int:
    if isinstance(value, Duration):
        return value._ns
    if isinstance(value, bool) or value is None:
        raise ValueError(f"keep_alive must be a number of seconds or a duration string, not {value!r}")
    if isinstance(value, timedelta):
        ns = (value.days * 86400 + value.seconds) * _S + value.microseconds * 1000
        return _MAX_NS if ns < 0 else min(ns, _MAX_NS)
    if isinstance(value, str):
        ns = parse_go_duration(value)
        return _MAX_NS if ns < 0 else ns
    if isinstance(value, numbers.Integral):
        ns = int(value) * _S
        return _MAX_NS if ns < 0 or ns >= _MAX_NS else ns
    if isinstance(value, numbers.Real):
        seconds = float(value)
        if math.isnan(seconds):
            raise ValueError("keep_alive must not be NaN")
        if seconds < 0:
            return _MAX_NS
        ns_float = seconds * _S
        return _MAX_NS if ns_float >= _MAX_NS else int(ns_float)
    raise ValueError(f"keep_alive must be a number of seconds or a duration string, not {type(value).__name__}")


DEFAULT_KEEP_ALIVE = Duration("5m")
"""Ollama's default keep_alive (``OLLAMA_KEEP_ALIVE`` unset): five minutes."""
