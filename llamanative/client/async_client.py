"""AsyncClient: the Client's methods as coroutines, for asyncio programs.

Streaming chat/generate are driven from the caller's event loop: the
Runner's worker thread hands each event to the loop, and the request's steps
that cost CPU (validating the request, rendering and tokenizing the prompt,
dropping old messages, parsing the output, building each response) run in the
loop's default executor, one step at a time, with no thread held per request
(``_stream.adrive``). Calls that only touch the disk or load a model (list,
show, create, loading itself ...) run in a worker thread too: the loop only
awaits.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator, Mapping, Sequence
from contextlib import ExitStack, suppress
from typing import Any, Literal, cast, overload

from ..engine.scheduler import Loaded
from ..types import (
    ChatRequest,
    ChatResponse,
    EmbeddingResponse,
    EmbedResponse,
    GenerateRequest,
    GenerateResponse,
    ListResponse,
    Options,
    ProcessResponse,
    ProgressResponse,
    RerankResponse,
    ShowResponse,
    StatusResponse,
    VersionResponse,
)
from ._chat import chat_steps, join_chat
from ._client_completions import Format
from ._generate import generate_steps, join_generate
from ._session import Prepared, validate
from ._stream import adrive
from .client import Client, check_http_keywords


class AsyncClient:
    """Like :class:`Client`, with ``async`` methods; ``stream=True`` returns an async iterator.

    Takes the same arguments as :class:`Client` (ollama-python's and httpx's
    keywords accepted and ignored, any other a ``TypeError``).
    """

    def __init__(
        self,
        host: str | None = None,
        *,
        follow_redirects: bool = True,
        timeout: Any = None,
        headers: Mapping[str, str] | None = None,
        models_dir: str | os.PathLike[str] | None = None,
        max_loaded_models: int | None = None,
        **kwargs: Any,
    ) -> None:
        check_http_keywords(type(self).__name__, kwargs)
        self._client = Client(host, models_dir=models_dir, max_loaded_models=max_loaded_models)
        self.store = self._client.store  # the model store, as Client.store

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

    @overload
    async def chat(
        self,
        model: str = "",
        messages: Sequence[Any] | None = None,
        *,
        stream: Literal[False] = False,
        tools: Sequence[Any] | None = None,
        think: bool | str | None = None,
        format: Format = None,
        options: Options | Mapping[str, Any] | None = None,
        keep_alive: float | str | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
        truncate: bool | None = None,
        shift: bool | None = None,
        _debug_render_only: bool | None = None,
    ) -> ChatResponse: ...

    @overload
    async def chat(
        self,
        model: str = "",
        messages: Sequence[Any] | None = None,
        *,
        stream: Literal[True],
        tools: Sequence[Any] | None = None,
        think: bool | str | None = None,
        format: Format = None,
        options: Options | Mapping[str, Any] | None = None,
        keep_alive: float | str | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
        truncate: bool | None = None,
        shift: bool | None = None,
        _debug_render_only: bool | None = None,
    ) -> AsyncIterator[ChatResponse]: ...

    @overload
    async def chat(
        self,
        model: str = "",
        messages: Sequence[Any] | None = None,
        *,
        stream: bool,
        tools: Sequence[Any] | None = None,
        think: bool | str | None = None,
        format: Format = None,
        options: Options | Mapping[str, Any] | None = None,
        keep_alive: float | str | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
        truncate: bool | None = None,
        shift: bool | None = None,
        _debug_render_only: bool | None = None,
    ) -> ChatResponse | AsyncIterator[ChatResponse]: ...

    @overload
    async def chat(self, model: ChatRequest, messages: Callable[[ChatResponse], object]) -> ChatResponse: ...

    @overload
    async def chat(self, model: ChatRequest) -> ChatResponse | AsyncIterator[ChatResponse]: ...

    async def chat(
        self,
        model: str | ChatRequest = "",
        messages: Sequence[Any] | Callable[[ChatResponse], object] | None = None,
        *,
        stream: bool = False,
        tools: Sequence[Any] | None = None,
        think: bool | str | None = None,
        format: Format = None,
        options: Options | Mapping[str, Any] | None = None,
        keep_alive: float | str | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
        truncate: bool | None = None,
        shift: bool | None = None,
        _debug_render_only: bool | None = None,
    ) -> ChatResponse | AsyncIterator[ChatResponse]:
        """:meth:`Client.chat`; with ``stream=True`` returns an async iterator of partial responses."""
        fn: Callable[[Any], object] | None = None
        if isinstance(model, ChatRequest):
            req, fn = model, cast("Callable[[Any], object] | None", messages)
        else:
            # pydantic's validation of a long conversation is CPU work too: not on the loop thread
            req = await asyncio.to_thread(
                validate,
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
                logprobs=logprobs,
                top_logprobs=top_logprobs,
                truncate=truncate,
                shift=shift,
                _debug_render_only=_debug_render_only,
            )
        prep = await asyncio.to_thread(self._client._session.prepare, req.model, req.options, req.keep_alive)
        per_token = req.stream or fn is not None
        chunks = self._stream(prep, lambda entry, t0: chat_steps(req, prep, entry, t0, per_token))
        if fn is not None:
            return cast(ChatResponse, await _with_callback(chunks, fn))
        return chunks if req.stream else join_chat(iter([c async for c in chunks]))

    @overload
    async def generate(
        self,
        model: str = "",
        prompt: str | None = None,
        suffix: str | None = None,
        *,
        stream: Literal[False] = False,
        system: str | None = None,
        template: str | None = None,
        context: Sequence[int] | None = None,
        think: bool | str | None = None,
        raw: bool | None = None,
        format: Format = None,
        images: Sequence[Any] | None = None,
        audio: Sequence[Any] | None = None,
        options: Options | Mapping[str, Any] | None = None,
        keep_alive: float | str | None = None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
        truncate: bool | None = None,
        shift: bool | None = None,
        _debug_render_only: bool | None = None,
    ) -> GenerateResponse: ...

    @overload
    async def generate(
        self,
        model: str = "",
        prompt: str | None = None,
        suffix: str | None = None,
        *,
        stream: Literal[True],
        system: str | None = None,
        template: str | None = None,
        context: Sequence[int] | None = None,
        think: bool | str | None = None,
        raw: bool | None = None,
        format: Format = None,
        images: Sequence[Any] | None = None,
        audio: Sequence[Any] | None = None,
        options: Options | Mapping[str, Any] | None = None,
        keep_alive: float | str | None = None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
        truncate: bool | None = None,
        shift: bool | None = None,
        _debug_render_only: bool | None = None,
    ) -> AsyncIterator[GenerateResponse]: ...

    @overload
    async def generate(
        self,
        model: str = "",
        prompt: str | None = None,
        suffix: str | None = None,
        *,
        stream: bool,
        system: str | None = None,
        template: str | None = None,
        context: Sequence[int] | None = None,
        think: bool | str | None = None,
        raw: bool | None = None,
        format: Format = None,
        images: Sequence[Any] | None = None,
        audio: Sequence[Any] | None = None,
        options: Options | Mapping[str, Any] | None = None,
        keep_alive: float | str | None = None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
        truncate: bool | None = None,
        shift: bool | None = None,
        _debug_render_only: bool | None = None,
    ) -> GenerateResponse | AsyncIterator[GenerateResponse]: ...

    @overload
    async def generate(
        self, model: GenerateRequest, prompt: Callable[[GenerateResponse], object]
    ) -> GenerateResponse: ...

    @overload
    async def generate(self, model: GenerateRequest) -> GenerateResponse | AsyncIterator[GenerateResponse]: ...

    async def generate(
        self,
        model: str | GenerateRequest = "",
        prompt: str | Callable[[GenerateResponse], object] | None = None,
        suffix: str | None = None,
        *,
        stream: bool = False,
        system: str | None = None,
        template: str | None = None,
        context: Sequence[int] | None = None,
        think: bool | str | None = None,
        raw: bool | None = None,
        format: Format = None,
        images: Sequence[Any] | None = None,
        audio: Sequence[Any] | None = None,
        options: Options | Mapping[str, Any] | None = None,
        keep_alive: float | str | None = None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
        truncate: bool | None = None,
        shift: bool | None = None,
        _debug_render_only: bool | None = None,
    ) -> GenerateResponse | AsyncIterator[GenerateResponse]:
        """:meth:`Client.generate`; with ``stream=True`` returns an async iterator of partial responses."""
        fn: Callable[[Any], object] | None = None
        if isinstance(model, GenerateRequest):
            req, fn = model, cast("Callable[[Any], object] | None", prompt)
        else:
            # pydantic's validation of a long conversation is CPU work too: not on the loop thread
            req = await asyncio.to_thread(
                validate,
                GenerateRequest,
                model=model,
                prompt=prompt,
                suffix=suffix,
                system=system,
                template=template,
                context=list(context) if context is not None else None,
                stream=stream,
                think=think,
                raw=raw,
                format=format,
                images=images,
                audio=audio,
                options=options,
                keep_alive=keep_alive,
                logprobs=logprobs,
                top_logprobs=top_logprobs,
                truncate=truncate,
                shift=shift,
                _debug_render_only=_debug_render_only,
            )
        prep = await asyncio.to_thread(self._client._session.prepare, req.model, req.options, req.keep_alive)
        per_token = req.stream or fn is not None
        chunks = self._stream(prep, lambda entry, t0: generate_steps(req, prep, entry, t0, per_token))
        if fn is not None:
            return cast(GenerateResponse, await _with_callback(chunks, fn))
        return chunks if req.stream else join_generate(iter([c async for c in chunks]))

    async def embed(self, *args: Any, **kwargs: Any) -> EmbedResponse:
        return await asyncio.to_thread(self._client.embed, *args, **kwargs)

    async def embeddings(self, *args: Any, **kwargs: Any) -> EmbeddingResponse:
        return await asyncio.to_thread(self._client.embeddings, *args, **kwargs)

    async def rerank(self, *args: Any, **kwargs: Any) -> RerankResponse:
        """:meth:`Client.rerank` in a worker thread."""
        return await asyncio.to_thread(self._client.rerank, *args, **kwargs)

    async def list(self) -> ListResponse:
        return await asyncio.to_thread(self._client.list)

    async def show(self, *args: Any, **kwargs: Any) -> ShowResponse:
        return await asyncio.to_thread(self._client.show, *args, **kwargs)

    async def ps(self) -> ProcessResponse:
        return await asyncio.to_thread(self._client.ps)

    list_running = ps

    @overload
    async def create(
        self,
        model: str = "",
        quantize: str | None = None,
        from_: str | None = None,
        files: dict[str, str] | None = None,
        adapters: Mapping[str, str] | Sequence[str | os.PathLike] | None = None,
        template: str | None = None,
        license: str | Sequence[str] | None = None,
        system: str | None = None,
        parameters: Options | Mapping[str, Any] | None = None,
        messages: Sequence[Any] | None = None,
        *,
        projector: str | os.PathLike | None = None,
        draft: str | os.PathLike | None = None,
        control_vectors: Sequence[str | os.PathLike] | None = None,
        stream: Literal[False] = False,
    ) -> StatusResponse: ...

    @overload
    async def create(
        self,
        model: str = "",
        quantize: str | None = None,
        from_: str | None = None,
        files: dict[str, str] | None = None,
        adapters: Mapping[str, str] | Sequence[str | os.PathLike] | None = None,
        template: str | None = None,
        license: str | Sequence[str] | None = None,
        system: str | None = None,
        parameters: Options | Mapping[str, Any] | None = None,
        messages: Sequence[Any] | None = None,
        *,
        projector: str | os.PathLike | None = None,
        draft: str | os.PathLike | None = None,
        control_vectors: Sequence[str | os.PathLike] | None = None,
        stream: Literal[True],
    ) -> AsyncIterator[ProgressResponse]: ...

    @overload
    async def create(
        self,
        model: str = "",
        quantize: str | None = None,
        from_: str | None = None,
        files: dict[str, str] | None = None,
        adapters: Mapping[str, str] | Sequence[str | os.PathLike] | None = None,
        template: str | None = None,
        license: str | Sequence[str] | None = None,
        system: str | None = None,
        parameters: Options | Mapping[str, Any] | None = None,
        messages: Sequence[Any] | None = None,
        *,
        projector: str | os.PathLike | None = None,
        draft: str | os.PathLike | None = None,
        control_vectors: Sequence[str | os.PathLike] | None = None,
        stream: bool,
    ) -> StatusResponse | AsyncIterator[ProgressResponse]: ...

    async def create(
        self,
        model: str = "",
        quantize: str | None = None,
        from_: str | None = None,
        files: dict[str, str] | None = None,
        adapters: Mapping[str, str] | Sequence[str | os.PathLike] | None = None,
        template: str | None = None,
        license: str | Sequence[str] | None = None,
        system: str | None = None,
        parameters: Options | Mapping[str, Any] | None = None,
        messages: Sequence[Any] | None = None,
        *,
        projector: str | os.PathLike | None = None,
        draft: str | os.PathLike | None = None,
        control_vectors: Sequence[str | os.PathLike] | None = None,
        stream: bool = False,
    ) -> StatusResponse | AsyncIterator[ProgressResponse]:
        """:meth:`Client.create`; with ``stream=True`` an async iterator of its progress responses.

        Cancelling the awaiting task, or closing the stream early, stops a quantization.
        """
        progress = await asyncio.to_thread(
            self._client.create,
            model,
            quantize,
            from_,
            files,
            adapters,
            template,
            license,
            system,
            parameters,
            messages,
            projector=projector,
            draft=draft,
            control_vectors=control_vectors,
            stream=True,
        )
        if stream:
            return _aiter(progress)
        status = "success"
        async for item in _aiter(progress):
            status = item.status or status
        return StatusResponse(status=status)

    @overload
    async def pull(
        self, model: str = "", *, insecure: bool = False, stream: Literal[False] = False
    ) -> ProgressResponse: ...

    @overload
    async def pull(
        self, model: str = "", *, insecure: bool = False, stream: Literal[True]
    ) -> AsyncIterator[ProgressResponse]: ...

    @overload
    async def pull(
        self, model: str = "", *, insecure: bool = False, stream: bool
    ) -> ProgressResponse | AsyncIterator[ProgressResponse]: ...

    async def pull(
        self, model: str = "", *, insecure: bool = False, stream: bool = False
    ) -> ProgressResponse | AsyncIterator[ProgressResponse]:
        """:meth:`Client.pull`; with ``stream=True`` an async iterator of progress responses."""
        if not stream:
            return await asyncio.to_thread(self._client.pull, model, insecure=insecure)
        return _aiter(self._client.pull(model, insecure=insecure, stream=True))

    @overload
    async def push(
        self, model: str = "", *, insecure: bool = False, stream: Literal[False] = False
    ) -> ProgressResponse: ...

    @overload
    async def push(
        self, model: str = "", *, insecure: bool = False, stream: Literal[True]
    ) -> AsyncIterator[ProgressResponse]: ...

    @overload
    async def push(
        self, model: str = "", *, insecure: bool = False, stream: bool
    ) -> ProgressResponse | AsyncIterator[ProgressResponse]: ...

    async def push(
        self, model: str = "", *, insecure: bool = False, stream: bool = False
    ) -> ProgressResponse | AsyncIterator[ProgressResponse]:
        """:meth:`Client.push`; with ``stream=True`` an async iterator of progress responses.

        The name and the stored model are checked when this is awaited; closing the stream early stops the push.
        """
        if not stream:
            return await asyncio.to_thread(self._client.push, model, insecure=insecure)
        progress = await asyncio.to_thread(self._client.push, model, insecure=insecure, stream=True)
        return _aiter(progress)

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


async def _aiter(items: Iterator[ProgressResponse]) -> AsyncGenerator[ProgressResponse, None]:
    """An iterator's items as an async iterator; each ``next`` runs in a worker thread (it may wait on the network).

    Ending early (``aclose``, a cancelled task) closes ``items``, so its work
    stops; a ``next`` still running on its thread then ends on that thread.
    """
    try:
        while True:
            item = await asyncio.to_thread(next, items, None)
            if item is None:
                return
            yield item
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            with suppress(ValueError):  # "generator already executing" on the cancelled thread
                close()
