"""Calling user functions that may take fewer arguments than the framework offers."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any


def positional_count(fn: Callable[..., Any]) -> int:
    """How many positional arguments ``fn`` takes (a large number for ``*args`` or when unknown)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 99
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return 99
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


def call_with(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn`` called with as many of ``args`` as it takes (at least one)."""
    n = max(1, min(positional_count(fn), len(args)))
    return fn(*args[:n])
