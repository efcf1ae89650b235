"""The contract every harness checks: any input gives a result or a typed error.

Typed errors are the project's documented ones: ``llamanative.errors``
(``LlamaError`` and its subclasses, ``ResponseError``/``StatusError``) and
``ValueError``/``TypeError`` with their subclasses (``ModelfileError``,
pydantic's ``ValidationError`` ...). Anything else that escapes is a finding:
a raw ``IndexError``/``KeyError``/``AttributeError``/``OverflowError``/
``RecursionError``, and also a ``UnicodeError`` or ``json.JSONDecodeError``
(both ``ValueError`` subclasses, but raised by the library's own decoding of
native output, never a statement about the input) unless a harness allows it
for inputs that are not valid text. A broken invariant raises
:class:`Finding`. A native abort or segfault ends the process, which
libFuzzer reports as a crash; an input slower than the run's ``-timeout``
is reported as a timeout.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from llamanative.errors import LlamaError, ResponseError

T = TypeVar("T")

TYPED = (LlamaError, ResponseError, ValueError, TypeError)
SURPRISES = (UnicodeError, json.JSONDecodeError)


class Finding(AssertionError):
    """A result that breaks the contract (an invariant of the function under test)."""


def call(
    fn: Callable[..., T], *args: Any, allow: tuple[type[BaseException], ...] = (), **kwargs: Any
) -> tuple[T | None, BaseException | None]:
    """``(result, None)``, or ``(None, error)`` for a typed error; any other exception propagates.

    ``allow`` adds exception types this call may raise (checked before the surprises).
    """
    try:
        return fn(*args, **kwargs), None
    except allow as exc:
        return None, exc
    except SURPRISES:
        raise
    except TYPED as exc:
        return None, exc


def check(condition: object, message: str) -> None:
    """Raise :class:`Finding` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise Finding(message)


def has_surrogates(text: str) -> bool:
    """True when ``text`` cannot be encoded as UTF-8 (lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
