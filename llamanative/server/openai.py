"""OpenAI's HTTP API (``/v1/*``) over an :class:`~llamanative.AsyncClient`.

``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``,
``/v1/models``, ``/v1/models/{model}`` and ``/v1/responses``, with the mapping
of Ollama's own OpenAI layer (see :mod:`.openai_requests` for the requests,
:mod:`.openai_wire` for the answers, :mod:`.openai_responses` for the
Responses API): a request is translated into the Client's request type and
sent to the same AsyncClient method a Python program calls (``chat``,
``generate``, ``embed``, ``list``, ``show``); its response is written back in
OpenAI's shape. There is no second implementation of any request here.

Streams are server-sent events: ``data: <json>\\n\\n`` a chunk, a last
``data: [DONE]\\n\\n``; with ``stream_options.include_usage`` a chunk with
empty ``choices`` and the ``usage`` comes before it (and every other chunk
has ``"usage": null``). The first item of a stream is awaited before the
status line goes out, so a failure to start (an unknown model, a bad image)
is an HTTP error; one after it is a last ``data: {"error": {...}}`` event.
Errors are OpenAI's ``{"error": {"message", "type", "param", "code"}}``, with
the Client's status codes (400 bad input, 404 unknown model, with code
``model_not_found``, 500 engine failure). A client that disconnects closes
its stream, which cancels the generation (the app's request guard also
cancels a request whose client is gone before its answer began).

Not here: ``n`` > 1 and ``logit_bias`` (``n`` other than 1 is a 400; ``logit_bias``, ``user``,
``store``, ``metadata``, ``parallel_tool_calls`` and other fields are
ignored, as Ollama ignores them).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from ..client import AsyncClient
from ..types import ChatResponse, GenerateResponse
from . import openai_wire as wire
from ._http import JSON, embeddings_json, error_body, read_json, status_of
from .openai_requests import chat_request, completion_request, embed_arguments, model_of
from .openai_responses import ResponsesStream, response_object, responses_request

__all__ = ["routes"]

SSE = "text/event-stream"
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
DONE = b"data: [DONE]\n\n"

Handler = Callable[[Request], Awaitable[Response]]


def _json(value: Mapping[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(value, separators=(",", ":"), ensure_ascii=False), status, media_type=JSON)


def _error(path: str, exc: BaseException) -> tuple[int, bytes]:
    status, message = status_of(exc)
    code = "model_not_found" if status == 404 else None
    return status, error_body(path, status, message, code)


def _answering(fn: Handler) -> Handler:
    """A route whose exceptions become OpenAI's error answers."""

    async def endpoint(request: Request) -> Response:
        try:
            return await fn(request)
        except Exception as exc:  # noqa: BLE001 (every failure is an answer)
            status, body = _error(request.url.path, exc)
            return Response(body, status, media_type=JSON)

    endpoint.__name__ = fn.__name__
    return endpoint


def event(value: Mapping[str, Any]) -> bytes:
    """One server-sent event holding ``value`` as JSON."""
    return b"data: " + json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"


async def _first(stream: AsyncIterator[Any]) -> Any:
    """The stream's first item (its failure closes the stream and propagates: the status line is not sent)."""
    try:
        return await stream.__anext__()
    except BaseException:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
        raise


def _include_usage(body: Mapping[str, Any]) -> bool:
    opts = body.get("stream_options")
    return isinstance(opts, Mapping) and bool(opts.get("include_usage"))


async def _events(
    path: str,
    first: Any,
    rest: AsyncIterator[Any],
    write: Callable[[Any], list[bytes]],
    error: Callable[[int, str], bytes] | None = None,
) -> Any:
    """The SSE body: ``write(item)``'s events for every item; a failure becomes a last error event
    (``error(status, message)``, by default ``data: {"error": {...}}``).

    Each event is produced only when the previous one has been sent (a slow
    reader holds the generation back); closing this generator (a disconnect)
    closes ``rest``, which cancels the job.
    """
    try:
        for chunk in write(first):
            yield chunk
        try:
            async for item in rest:
                for chunk in write(item):
                    yield chunk
        except Exception as exc:  # noqa: BLE001 (the status line is gone: the error goes in the stream)
            if error is not None:
                yield error(*status_of(exc))
            else:
                yield b"data: " + _error(path, exc)[1] + b"\n\n"
    finally:
        aclose = getattr(rest, "aclose", None)
        if aclose is not None:
            await aclose()


class _ChatStream:
    """Turns a chat stream's ChatResponses into ``chat.completion.chunk`` events."""

    def __init__(self, rid: str, include_usage: bool) -> None:
        self.rid, self.include_usage = rid, include_usage
        self.created = int(time.time())
        self.began = False

    def _chunk(self, r: ChatResponse, delta: dict[str, Any], **kw: Any) -> bytes:
        return event(wire.chat_chunk(self.rid, self.created, r.model, delta, with_usage=self.include_usage, **kw))

    def write(self, r: ChatResponse) -> list[bytes]:
        out = []
        if not self.began:  # OpenAI's first chunk: the role, with empty content
            self.began = True
            out.append(self._chunk(r, {"role": "assistant", "content": ""}))
        delta = wire.chat_deltas(r)
        if delta or r.logprobs:
            out.append(self._chunk(r, delta, logprobs=r.logprobs))
        if not r.done:
            return out
        calls = wire.tool_calls(r.message.tool_calls)
        if calls:
            out.append(self._chunk(r, {"tool_calls": calls}))
        reason = "tool_calls" if calls else (r.done_reason or "stop")
        out.append(self._chunk(r, {}, finish_reason=reason))
        if self.include_usage:
            usage = wire.chat_chunk(self.rid, self.created, r.model, {}) | {"choices": [], "usage": wire.usage(r)}
            out.append(event(usage))
        out.append(DONE)
        return out


class _CompletionStream:
    """Turns a generate stream's GenerateResponses into ``text_completion`` chunk events."""

    def __init__(self, rid: str, include_usage: bool) -> None:
        self.rid, self.include_usage = rid, include_usage
        self.created = int(time.time())
        self.offset = 0  # characters of text sent so far (the logprobs' text_offset)

    def write(self, r: GenerateResponse) -> list[bytes]:
        out = []
        if r.response or r.logprobs or r.done:
            out.append(event(wire.completion_chunk(self.rid, self.created, r, self.offset, self.include_usage)))
            self.offset += len(r.response or "")
        if r.done:
            if self.include_usage:
                chunk = wire.completion_chunk(self.rid, self.created, r, 0) | {"choices": [], "usage": wire.usage(r)}
                out.append(event(chunk))
            out.append(DONE)
        return out


class OpenAIRoutes:
    """The route handlers, over one AsyncClient."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    def routes(self) -> list[BaseRoute]:
        r = _answering
        return [
            Route("/v1/chat/completions", r(self.chat), methods=["POST"]),
            Route("/v1/completions", r(self.completions), methods=["POST"]),
            Route("/v1/embeddings", r(self.embeddings), methods=["POST"]),
            Route("/v1/responses", r(self.responses), methods=["POST"]),
            Route("/v1/models", r(self.models), methods=["GET"]),
            Route("/v1/models/{model:path}", r(self.model), methods=["GET"]),
        ]

    async def chat(self, request: Request) -> Response:
        body = await read_json(request)
        # pydantic's validation of a long conversation (and its images) is CPU work: not on the loop thread
        req = await asyncio.to_thread(chat_request, body)
        rid = wire.new_id("chatcmpl-")
        result = await self.client.chat(req)
        if isinstance(result, ChatResponse):
            return _json(wire.chat_completion(rid, result))
        first = await _first(result)
        writer = _ChatStream(rid, _include_usage(body))
        return _sse(_events(request.url.path, first, result, writer.write))

    async def completions(self, request: Request) -> Response:
        body = await read_json(request)
        req = await asyncio.to_thread(completion_request, body)
        rid = wire.new_id("cmpl-")
        result = await self.client.generate(req)
        if isinstance(result, GenerateResponse):
            return _json(wire.completion(rid, result))
        first = await _first(result)
        writer = _CompletionStream(rid, _include_usage(body))
        return _sse(_events(request.url.path, first, result, writer.write))

    async def responses(self, request: Request) -> Response:
        body = await read_json(request)
        req = await asyncio.to_thread(responses_request, body)
        rid = wire.new_id("resp_")
        result = await self.client.chat(req)
        if isinstance(result, ChatResponse):
            return _json(response_object(rid, body, result))
        first = await _first(result)
        writer = ResponsesStream(rid, body)
        return _sse(_events(request.url.path, first, result, writer.write, writer.error))

    async def embeddings(self, request: Request) -> Response:
        args, encoding = embed_arguments(await read_json(request))
        r = await self.client.embed(**args)
        body = wire.embedding_list(args["model"], r.as_array(), r.prompt_eval_count or 0, encoding)
        return Response(embeddings_json(body), media_type=JSON)

    async def models(self, request: Request) -> Response:
        return _json(wire.model_list(await self.client.list()))

    async def model(self, request: Request) -> Response:
        name = model_of({"model": request.path_params["model"]})
        return _json(wire.shown_model(name, await self.client.show(name)))


def _sse(body: AsyncIterator[bytes]) -> Response:
    return StreamingResponse(body, media_type=SSE, headers=_SSE_HEADERS)


def routes(client: AsyncClient) -> list[BaseRoute]:
    """OpenAI's routes over ``client``."""
    return OpenAIRoutes(client).routes()
