"""Giving the C heap's free memory back to the system after a model is freed.

A model's load allocates the vocabulary, the GGUF metadata, the chat
templates and many smaller buffers on the thread that asks for the model,
and glibc serves each thread from an arena of its own (up to eight per CPU).
When the model is freed, glibc keeps that memory in the arenas for later
allocations instead of returning it; a process whose threads take turns at
loading and unloading models (``keep_alive=0``, a changed ``num_ctx``) piles
up free memory in every arena: 1,000 requests of ``benchmarks/soak.py``
grew the process by 64 MB while the bytes malloc had in use stayed flat
(docs/design/soak.md). ggml's large buffers are mapped apart
(``src/ggml_fixes/page_buffers.c``); ``malloc_trim(0)`` after each unload
gives back what the rest leaves, with no setting of the process's allocator
changed. Other C libraries have no such call, and this does nothing there.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable


@functools.cache  # looked up once; a second lookup by a racing thread is harmless
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # here: not a cost of importing the package

    try:
        c_fn = ctypes.CDLL(None).malloc_trim  # the process's own C library; glibc's only: musl has none
    except (OSError, AttributeError):
        return None
    c_fn.argtypes = [ctypes.c_size_t]
    c_fn.restype = ctypes.c_int
    # Typed through a variable, not an ignore: typeshed's versions differ on
    # whether a CDLL attribute is Any.
    trim: Callable[[int], int] = c_fn
    return trim


def trim_heap() -> bool:
    """Return the C heap's free pages to the system (glibc's ``malloc_trim(0)``).

    Returns True when glibc gave memory back, False when there was nothing to
    give or the C library has no ``malloc_trim``. Takes a few milliseconds
    (it walks every arena), with the GIL released: call it after an unload,
    not per request.
    """
    fn = _malloc_trim()
    return fn is not None and bool(fn(0))  # ctypes releases the GIL for the call
