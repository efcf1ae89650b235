"""Text formats of the command line, as the ``ollama`` command prints them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timezone

_UNITS = (("TB", 1000**4), ("GB", 1000**3), ("MB", 1000**2), ("KB", 1000))


def human_bytes(n: int | None) -> str:
    """``105 MB``, ``1.5 GB``, ``512 B``: decimal units, as Ollama's ``format.HumanBytes``."""
    n = int(n or 0)
    for unit, scale in _UNITS:
        if n >= scale:
            value = n / scale
            if value >= 10 or value == math.trunc(value):
                return f"{int(value)} {unit}"
            return f"{value:.1f} {unit}"
    return f"{n} B"


def _human_duration(seconds: float) -> str:
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds // 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(seconds / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds // 3600) // 24 // 365} years"


def human_time(when: datetime | None, never: str = "Never", now: datetime | None = None) -> str:
    """``2 minutes ago``, ``4 minutes from now``, ``Forever`` (Ollama's ``format.HumanTime``)."""
    if when is None:
        return never
    now = now or datetime.now(timezone.utc)
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    delta = (now - when).total_seconds()
    if delta / 86400 / 365 < -20:
        return "Forever"
    if delta < 0:
        return _human_duration(-delta) + " from now"
    return _human_duration(delta) + " ago"


def table(rows: Sequence[Sequence[str]], header: Sequence[str] | None = None, indent: str = "") -> str:
    """Left-aligned columns four spaces apart, no borders (the ``ollama list`` look)."""
    all_rows = ([list(header)] if header else []) + [list(r) for r in rows]
    if not all_rows:
        return ""
    ncol = max(len(r) for r in all_rows)
    widths = [max((len(r[i]) for r in all_rows if i < len(r)), default=0) for i in range(ncol)]
    lines = []
    for r in all_rows:
        cells = [c.ljust(widths[i]) for i, c in enumerate(r)]
        lines.append((indent + "    ".join(cells)).rstrip())
    return "\n".join(lines)


def short_id(digest: str | None) -> str:
    """The 12 hex digits ``list`` and ``ps`` show for a digest (``-`` for a plain GGUF path)."""
    hexd = (digest or "").removeprefix("sha256:")
    return hexd[:12] or "-"


def json_vector(row) -> str:
    """A float32 vector as a JSON array, each number in its shortest exact form (``0.0123`` not ``0.01230000052``)."""
    return "[" + ",".join(str(v) for v in row) + "]"
