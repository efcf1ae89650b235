"""Driving a completion: the same request logic for sync and async callers.

A request's logic is written once, as a *step generator* that does no I/O of
its own: it yields :class:`Submit` when its job is ready to run, yields
``NEED_EVENT`` when it wants the job's next event (the driver sends it back
in), and yields response chunks. :func:`drive` runs it on the caller's thread
(blocking on the job's queue); ``AsyncClient`` runs it on the caller's event
loop (awaiting an asyncio queue the worker thread feeds), with no thread per
request. Closing a driver early (``break``, a failing callback, garbage
collection) cancels the job, which frees its slot at the next engine step.
"""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from ..engine import CompletionJob, Failed, Finished, Piece, Runner
from ..engine.jobs import Event
from ..errors import LlamaError, StatusError

T = TypeVar("T")
NEED_EVENT = object()  # yielded by a step generator: "send me the job's next event"


@dataclass(frozen=True)
class Submit:
    """Yielded by a step generator: run ``job`` on ``runner``."""

    runner: Runner
    job: CompletionJob


def checked(ev: Piece | Finished | Failed) -> Piece | Finished:
    """The event, or the job's failure raised as a StatusError (400 bad input, 500 engine failure)."""
    if not isinstance(ev, Failed):
        return ev
    err = ev.error
    if isinstance(err, StatusError):
        raise err
    code = 400 if isinstance(err, ValueError) and not isinstance(err, LlamaError) else 500
    raise StatusError(code, error_message=str(err)) from err


def drive(steps: Generator[Any, Any, None]) -> Iterator[Any]:
    """Run a step generator on this thread; yield its response chunks."""
    job: CompletionJob | None = None
    events: queue.SimpleQueue[Event] = queue.SimpleQueue()
    send: Any = None
    try:
        while True:
            try:
                out = steps.send(send)
            except StopIteration:
                return
            send = None
            if out is NEED_EVENT:
                send = events.get()
            elif isinstance(out, Submit):
                job = out.job
                job.events = events
                out.runner.submit(job)
            else:
                yield out
    finally:
        steps.close()
        if job is not None:
            job.cancel()  # no-op once the job has finished


class _LoopEvents:
    """A job's event queue that hands events from the worker thread to an event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, job: CompletionJob) -> None:
        self._loop, self._job = loop, job
        self._queue: asyncio.Queue[Event] = asyncio.Queue()

    def put(self, ev: Event, /) -> None:  # called by the Runner's worker thread
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, ev)
        except RuntimeError:  # the loop is closed: nobody will read this job any more
            self._job.cancel()

    async def get(self) -> Event:
        return await self._queue.get()


async def adrive(steps: Generator[Any, Any, None]) -> AsyncIterator[Any]:
    """Run a step generator on the running event loop; yield its response chunks."""
    loop = asyncio.get_running_loop()
    job: CompletionJob | None = None
    events: _LoopEvents | None = None
    send: Any = None
    try:
        while True:
            try:
                out = steps.send(send)
            except StopIteration:
                return
            send = None
            if out is NEED_EVENT:
                assert events is not None  # a step generator submits before it asks for events
                send = await events.get()
            elif isinstance(out, Submit):
                job = out.job
                job.events = events = _LoopEvents(loop, job)
                out.runner.submit(job)
            else:
                yield out
    finally:
        steps.close()
        if job is not None:
            job.cancel()


def with_callback(chunks: Iterator[T], fn: Callable[[T], object]) -> T | None:
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
