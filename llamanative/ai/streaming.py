"""Streamed generation as iterators of :class:`StreamValue` (Go's ``GenerateStream`` / ``GenerateDataStream``).

The generation runs in a worker thread started by the first ``next()``; each
chunk is handed over through a one-slot queue, so the generation runs at most
one chunk ahead of the consumer. Closing the iterator (``close()``, leaving a
``with`` block, or dropping it) aborts the generation at its next chunk: the
model's stream is closed, which cancels its job and frees its slot.

>>> for value in ai.generate_stream(prompt="Count to 3"):      # doctest: +SKIP
...     if value.done:
...         print(value.response.text())
...     else:
...         print(value.chunk.text(), end="")
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from .actions import ActionRegistry
from .generate import generate, typed_output
from .model_types import ModelResponse, ModelResponseChunk

__all__ = [
    "AsyncGenerateStream",
    "GenerateStream",
    "StreamValue",
    "generate_data_stream",
    "generate_stream",
    "typed_stream",
]


@dataclass
class StreamValue:
    """One value of a stream: a chunk (``done=False``), or the end (``done=True``)."""

    done: bool = False
    chunk: ModelResponseChunk | None = None
    "The streamed chunk (``done=False``)."

    output: Any = None
    "Data streams: the chunk's output (``done=False``) or the final typed output (``done=True``)."

    response: ModelResponse | None = None
    "The final response (``done=True``)."


class _Stopped(Exception):
    """Raised into the generation when the consumer has closed the stream."""


_CHUNK, _DONE, _ERROR = "chunk", "done", "error"


class _Worker:
    """The generation side of a stream; it holds no reference to the :class:`GenerateStream`, so dropping
    the stream (``for ... : break`` on an unnamed stream) closes it while the generation runs."""

    def __init__(
        self,
        run: Callable[[Callable[[ModelResponseChunk], None]], ModelResponse],
        on_chunk: Callable[[ModelResponseChunk], StreamValue | None],
        on_done: Callable[[ModelResponse], StreamValue],
    ) -> None:
        self.run, self.on_chunk, self.on_done = run, on_chunk, on_done
        self.queue: queue.Queue = queue.Queue(maxsize=1)
        self.closed = threading.Event()

    def put(self, item: tuple[str, Any]) -> bool:
        """Hand an item to the consumer; False once the stream is closed."""
        while not self.closed.is_set():
            try:
                self.queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def chunk(self, chunk: ModelResponseChunk) -> None:
        if self.closed.is_set():
            raise _Stopped
        value = self.on_chunk(chunk)
        if value is not None and not self.put((_CHUNK, value)):
            raise _Stopped

    def work(self) -> None:
        item: tuple[str, Any]
        try:
            resp = self.run(self.chunk)
            item = (_DONE, self.on_done(resp))
        except _Stopped:
            return
        except BaseException as exc:  # noqa: BLE001 (handed to the consumer)
            if self.closed.is_set():
                return
            item = (_ERROR, exc)
        self.put(item)

    def close(self) -> None:
        self.closed.set()
        try:
            while True:
                self.queue.get_nowait()
        except queue.Empty:
            pass


class GenerateStream(Iterator[StreamValue]):
    """An iterator over a generation running in a worker thread (see the module doc).

    Args:
        run: runs the generation with the given chunk callback and returns the response.
        on_chunk: maps a chunk to a value to yield (None to skip it).
        on_done: maps the response to the final value.
    """

    def __init__(
        self,
        run: Callable[[Callable[[ModelResponseChunk], None]], ModelResponse],
        on_chunk: Callable[[ModelResponseChunk], StreamValue | None],
        on_done: Callable[[ModelResponse], StreamValue],
    ) -> None:
        self._worker = _Worker(run, on_chunk, on_done)
        self._thread: threading.Thread | None = None
        self._finished = False

    def __iter__(self) -> GenerateStream:
        return self

    def __next__(self) -> StreamValue:
        if self._finished or self._worker.closed.is_set():
            raise StopIteration
        if self._thread is None:
            self._thread = threading.Thread(target=self._worker.work, name="genkit-stream", daemon=True)
            self._thread.start()
        kind, value = self._worker.queue.get()
        if kind == _CHUNK:
            return value
        self._finished = True
        if kind == _ERROR:
            raise value
        return value

    def close(self) -> None:
        """Stop: the generation aborts at its next chunk (returns at once; see :meth:`wait`)."""
        self._worker.close()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the worker thread to end (after :meth:`close` or the last value); True if it has."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def __enter__(self) -> GenerateStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self._worker.close()


class AsyncGenerateStream(AsyncIterator[StreamValue]):
    """A :class:`GenerateStream` as an async iterator (each step waits in a worker thread)."""

    def __init__(self, stream: GenerateStream) -> None:
        self._stream = stream

    def __aiter__(self) -> AsyncGenerateStream:
        return self

    async def __anext__(self) -> StreamValue:
        # StopIteration cannot cross a Future: the worker returns None at the end instead.
        value = await asyncio.to_thread(next, self._stream, None)
        if value is None:
            raise StopAsyncIteration
        return value

    async def aclose(self) -> None:
        self._stream.close()

    async def __aenter__(self) -> AsyncGenerateStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _chained(
    user: Callable[[ModelResponseChunk], None] | None, ours: Callable[[ModelResponseChunk], None]
) -> Callable[[ModelResponseChunk], None]:
    if user is None:
        return ours

    def both(chunk: ModelResponseChunk) -> None:
        user(chunk)
        ours(chunk)

    return both


def generate_stream(registry: ActionRegistry, **options: Any) -> GenerateStream:
    """See :meth:`Registry.generate_stream`."""
    user_cb = options.pop("on_chunk", None)

    def run(cb: Callable[[ModelResponseChunk], None]) -> ModelResponse:
        return generate(registry, on_chunk=_chained(user_cb, cb), **options)

    return GenerateStream(
        run, lambda chunk: StreamValue(chunk=chunk), lambda resp: StreamValue(done=True, response=resp)
    )


def generate_data_stream(registry: ActionRegistry, output_type: Any, **options: Any) -> GenerateStream:
    """See :meth:`Registry.generate_data_stream`.

    A chunk's ``output`` is converted to ``output_type`` when it validates
    (complete jsonl/array items, a finished object); a partial object that
    does not validate yet is given as its raw JSON data. Chunks whose output
    is None (nothing parsed yet) are skipped.
    """
    return typed_stream(registry, output_type, **{"output_type": output_type, **options})


def typed_stream(registry: ActionRegistry, read_as: Any, /, **options: Any) -> GenerateStream:
    """:func:`generate_stream` whose values carry the output read as ``read_as`` (as
    :func:`generate_data_stream` does), the request's output config being ``options``' own (their
    ``output_type`` included, if any): ``read_as`` does not set the output schema here (a data prompt that
    wraps a prompt streams this way)."""
    output_type = read_as
    user_cb = options.pop("on_chunk", None)
    plain = isinstance(output_type, dict)

    def run(cb: Callable[[ModelResponseChunk], None]) -> ModelResponse:
        return generate(registry, on_chunk=_chained(user_cb, cb), **options)

    def on_chunk(chunk: ModelResponseChunk) -> StreamValue | None:
        out = chunk.output()
        if out is None:
            return None
        if not plain:
            try:
                out = chunk.output(output_type)
            except (ValidationError, ValueError):
                pass
        return StreamValue(chunk=chunk, output=out)

    def on_done(resp: ModelResponse) -> StreamValue:
        return StreamValue(done=True, output=typed_output(resp, output_type), response=resp)

    return GenerateStream(run, on_chunk, on_done)
