"""Running one completion job and turning its events into response chunks.

The generator runs on the caller's thread: it reads the job's event queue
(filled by the Runner's worker), yields partial responses, and cancels the job
when it is closed early (a ``break`` out of the iterator, a callback that
raised, garbage collection), which frees the slot at the next engine step.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from ..engine import CompletionJob, Failed, Finished, Piece
from ..errors import LlamaError, StatusError

T = TypeVar("T")


def run_job(runner, job: CompletionJob) -> Iterator[Piece | Finished]:
    """Submit ``job`` and yield its pieces, then its :class:`Finished`; cancel it if abandoned.

    Raises:
        StatusError: 400 for a request the engine rejects (bad grammar, prompt
            too long), 500 for an engine failure; the original is the cause.
    """
    runner.submit(job)
    finished = False
    try:
        while True:
            ev = job.events.get()
            if isinstance(ev, Failed):
                finished = True
                err = ev.error
                if isinstance(err, StatusError):
                    raise err
                code = 400 if isinstance(err, ValueError) and not isinstance(err, LlamaError) else 500
                raise StatusError(code, error_message=str(err)) from err
            if isinstance(ev, Finished):
                finished = True
            yield ev
            if finished:
                return
    finally:
        if not finished:
            job.cancel()


def with_callback(chunks: Iterator[T], fn: Callable[[T], object]) -> T:
    """The Go client's streaming style: call ``fn`` with every chunk, return the last.

    If ``fn`` raises, generation stops at once (the job is cancelled and its
    slot freed) and the exception reaches the caller unchanged.
    """
    last = None
    try:
        for chunk in chunks:
            fn(chunk)
            last = chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return last


def ns_since(t0: int) -> int:
    return time.perf_counter_ns() - t0
