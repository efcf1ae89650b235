"""AsyncClient: the Client's methods as coroutines, for asyncio programs.

Streaming chat/generate run their request logic on the caller's event loop:
the Runner's worker thread hands each event to the loop, which turns it into
a response (no thread per request). Calls that only touch the disk or load a
model (list, show, create, loading itself ...) run in a worker thread so the
loop never blocks on them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Generator, Sequence
from contextlib import ExitStack
from typing import Any, cast

from ..engine.scheduler import Loaded
from ..types import (
    ChatRequest,
    EmbeddingResponse,
    EmbedResponse,
    GenerateRequest,
    ListResponse,
    Options,
    ProcessResponse,
    ShowResponse,
    StatusResponse,
    VersionResponse,
)
from ._chat import chat_steps, join_chat
from ._generate import generate_steps, join_generate
from ._session import Prepared, validate
from ._stream import adrive
from .client import Client


class AsyncClient:
    """Like :class:`Client`, with ``async`` methods; ``stream=True`` returns an async iterator.

    Takes the same arguments as :class:`Client`.
    """

    def __init__(self, host: str | None = None, **kwargs: Any) -> None:
        self._client = Client(host, **kwargs)

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _stream(
        self, prep: Prepared, make_steps: Callable[[Loaded, int], Generator[Any, Any, None]]
    ) -> AsyncGenerator[Any, None]:
        t0 = time.perf_counter_ns()
        stack = ExitStack()
        # Loading may take seconds: not on the loop's thread. If this task is
        # cancelled meanwhile, the load still completes in its thread: release
        # the model then, or it would stay referenced forever.
        loading = asyncio.ensure_future(asyncio.to_thread(stack.enter_context, self._client._session.use(prep)))
        try:
            entry = await asyncio.shield(loading)
        except asyncio.CancelledError:
            loading.add_done_callback(lambda _: stack.close())
            raise
        try:
            async for chunk in adrive(make_steps(entry, t0)):
                yield chunk
        finally:
            await asyncio.to_thread(stack.close)  # may unload the model (keep_alive=0)

    async def chat(
        self,
        model: str | ChatRequest = "",
        messages: Sequence[Any] | Callable | None = None,
        *,
        tools: Sequence[Any] | None = None,
        stream: bool = False,
        think=None,
        format=None,
        options: Options | dict | None = None,
        keep_alive=None,
        tool_choice=None,
        **extra: Any,
    ):
        """:meth:`Client.chat`; with ``stream=True`` returns an async iterator of partial responses."""
        fn: Callable[[Any], object] | None = None
        if isinstance(model, ChatRequest):
            req, fn = model, cast("Callable[[Any], object] | None", messages)
        else:
            req = validate(
                ChatRequest,
                model=model,
                messages=messages,
                tools=tools,
                stream=stream,
                think=think,
                format=format,
                options=options,
                keep_alive=keep_alive,
                tool_choice=tool_choice,
                **extra,
            )
        prep = await asyncio.to_thread(self._client._session.prepare, req.model, req.options, req.keep_alive)
        per_token = req.stream or fn is not None
        chunks = self._stream(prep, lambda entry, t0: chat_steps(req, prep, entry, t0, per_token))
        if fn is not None:
            return await _with_callback(chunks, fn)
        return chunks if req.stream else join_chat(iter([c async for c in chunks]))

    async def generate(
        self,
        model: str | GenerateRequest = "",
        prompt: str | Callable | None = None,
        suffix: str | None = None,
        *,
        stream: bool = False,
        **kwargs: Any,
    ):
        """:meth:`Client.generate`; with ``stream=True`` returns an async iterator of partial responses."""
        fn: Callable[[Any], object] | None = None
        if isinstance(model, GenerateRequest):
            req, fn = model, cast("Callable[[Any], object] | None", prompt)
        else:
            if kwargs.get("context") is not None:
                kwargs["context"] = list(kwargs["context"])
            req = validate(GenerateRequest, model=model, prompt=prompt, suffix=suffix, stream=stream, **kwargs)
        prep = await asyncio.to_thread(self._client._session.prepare, req.model, req.options, req.keep_alive)
        per_token = req.stream or fn is not None
        chunks = self._stream(prep, lambda entry, t0: generate_steps(req, prep, entry, t0, per_token))
        if fn is not None:
            return await _with_callback(chunks, fn)
        return chunks if req.stream else join_generate(iter([c async for c in chunks]))

    async def embed(self, *args: Any, **kwargs: Any) -> EmbedResponse:
        return await asyncio.to_thread(self._client.embed, *args, **kwargs)

    async def embeddings(self, *args: Any, **kwargs: Any) -> EmbeddingResponse:
        return await asyncio.to_thread(self._client.embeddings, *args, **kwargs)

    async def list(self) -> ListResponse:
        return await asyncio.to_thread(self._client.list)

    async def show(self, *args: Any, **kwargs: Any) -> ShowResponse:
        return await asyncio.to_thread(self._client.show, *args, **kwargs)

    async def ps(self) -> ProcessResponse:
        return await asyncio.to_thread(self._client.ps)

    list_running = ps

    async def create(self, *args: Any, **kwargs: Any) -> StatusResponse:
        return await asyncio.to_thread(self._client.create, *args, **kwargs)

    async def pull(self, model: str = "", *, insecure: bool = False, stream: bool = False):
        """:meth:`Client.pull`; with ``stream=True`` an async iterator of progress responses."""
        if not stream:
            return await asyncio.to_thread(self._client.pull, model, insecure=insecure)
        progress = self._client.pull(model, insecure=insecure, stream=True)

        async def agen():
            while True:
                item = await asyncio.to_thread(next, progress, None)
                if item is None:
                    return
                yield item

        return agen()

    async def copy(self, source: str, destination: str) -> StatusResponse:
        return await asyncio.to_thread(self._client.copy, source, destination)

    async def delete(self, model: str) -> StatusResponse:
        return await asyncio.to_thread(self._client.delete, model)

    async def create_blob(self, path) -> str:
        """:meth:`Client.create_blob`."""
        return await asyncio.to_thread(self._client.create_blob, path)

    async def unload(self, model: str) -> bool:
        """:meth:`Client.unload`."""
        return await asyncio.to_thread(self._client.unload, model)

    async def version(self) -> VersionResponse:
        return self._client.version()

    async def heartbeat(self) -> None:
        self._client.heartbeat()


async def _with_callback(chunks: AsyncGenerator[Any, None], fn: Callable[[Any], object]) -> Any:
    """The callback style for async: ``fn`` (a function or a coroutine function) per chunk."""
    last = None
    try:
        async for chunk in chunks:
            result = fn(chunk)
            if asyncio.iscoroutine(result):
                await result
            last = chunk
    finally:
        await chunks.aclose()
    return last
