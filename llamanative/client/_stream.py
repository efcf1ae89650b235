"""Driving a completion: the same request logic for sync and async callers.

A request's logic is written once, as a *step generator* that does no I/O of
its own: it yields :class:`Submit` when its job is ready to run, yields
``NEED_EVENT`` when it wants the job's next event (the driver sends it back
in), and yields response chunks. :func:`drive` runs it on the caller's thread
(blocking on the job's queue); ``AsyncClient`` drives it from the caller's
event loop (awaiting an asyncio queue the worker thread feeds), each step in
the loop's default executor, with no thread held per request. Closing a
driver early (``break``, a failing callback, garbage collection) cancels the
job, which frees its slot at the next engine step.

Both drivers read the job's events through a :class:`~..engine.jobs.Backlog`
sink, so a stream that is held but not read stops its slot after
``HIGH_WATER`` unread pieces instead of generating on in the background.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from ..engine import CompletionJob, Failed, Finished, Piece, Runner
from ..engine.jobs import Backlog, Event, EventQueue
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
    events = EventQueue()
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


class _LoopEvents(Backlog):
    """A job's event queue that hands events from the worker thread to an event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, job: CompletionJob) -> None:
        super().__init__()
        self._loop, self._job = loop, job
        self._queue: asyncio.Queue[Event] = asyncio.Queue()

    def put(self, ev: Event, /) -> None:  # called by the Runner's worker thread
        self._sent(ev)
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, ev)
        except RuntimeError:  # the loop is closed: nobody will read this job any more
            self._job.cancel()

    async def get(self) -> Event:
        return self._took(await self._queue.get())


_DONE = object()  # a step generator's end as a value: StopIteration cannot cross a Future


def _step(steps: Generator[Any, Any, None], value: Any) -> Any:
    try:
        return steps.send(value)
    except StopIteration:
        return _DONE


async def _settled(running: asyncio.Future[Any]) -> None:
    """Wait until a step running in a worker thread has returned, whatever it returned or raised."""
    while not running.done():
        try:
            await asyncio.shield(running)
        except asyncio.CancelledError:
            continue  # cancelled again: the step still ends in its own time, and the generator with it
        except BaseException:  # noqa: BLE001 (the step's own failure: its caller saw it or is gone)
            return


async def adrive(steps: Generator[Any, Any, None], *, inline: bool = False) -> AsyncIterator[Any]:
    """Run a step generator for the running event loop; yield its response chunks.

    Each step (rendering and tokenizing the prompt, dropping old messages,
    parsing the output, building a response) runs in the loop's default
    executor, the threads that ``asyncio.to_thread`` uses: the loop thread
    only awaits the job's events and the steps, and hands the chunks on. No
    thread is held while a step waits for an event. ``inline=True`` runs the
    steps on the loop thread instead (``benchmarks/async_loop_lag.py``
    compares the two).

    Closed or cancelled while a step runs, it waits for that step to return
    before it closes the generator and cancels the job, so that nothing the
    step uses (the model's vocabulary, its templates) is released under it.
    """
    loop = asyncio.get_running_loop()
    job: CompletionJob | None = None
    events: _LoopEvents | None = None
    send: Any = None
    running: asyncio.Future[Any] | None = None  # the step in a worker thread
    try:
        while True:
            if inline:
                out = _step(steps, send)
            else:
                running = loop.run_in_executor(None, _step, steps, send)
                out = await asyncio.shield(running)
                running = None
            if out is _DONE:
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
        if running is not None:
            await _settled(running)
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
