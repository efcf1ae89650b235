"""Ollama's HTTP API (``/api/*`` and ``/``) over an :class:`~llamanative.AsyncClient`.

Every route reads the JSON body, checks what a network client may name
(:mod:`.inputs`), builds the Client's request type (the one validation point)
and calls the same AsyncClient method a Python program would; responses are
the Client's response types serialised as Ollama writes them (unset fields
omitted). Streams are NDJSON, one object a line, ``stream`` true unless the
body says false; an error before the first line is an HTTP status with
``{"error": "..."}``, one after it is a last ``{"error": "..."}`` line, as
Ollama does. The status codes are the Client's (``StatusError``): 400 bad
input, 404 unknown model, 500 engine failure, 503 unloaded meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from ..client import AsyncClient
from ..types import (
    ChatRequest,
    CopyRequest,
    CreateRequest,
    DeleteRequest,
    EmbeddingRequest,
    EmbedRequest,
    GenerateRequest,
    PullRequest,
    PushRequest,
    ShowRequest,
)
from . import blobs, inputs
from ._http import JSON, NDJSON, embeddings_json, error_response, json_response, ndjson_stream, read_json, status_of

__all__ = ["routes", "RUNNING"]

RUNNING = "Ollama is running"
"What ``GET /`` answers, word for word as Ollama does: clients probe it."

Handler = Callable[[Request], Awaitable[Response]]


def _answering(fn: Callable[[Request], Awaitable[Response]]) -> Handler:
    """A route whose exceptions become Ollama's error answers."""

    async def endpoint(request: Request) -> Response:
        try:
            return await fn(request)
        except Exception as exc:  # noqa: BLE001 (every failure is an answer)
            return error_response(request.url.path, *status_of(exc))

    endpoint.__name__ = fn.__name__
    return endpoint


async def _validated(cls: type[BaseModel], body: dict[str, Any]) -> Any:
    # pydantic's validation of a long conversation (and its images) is CPU work: not on the loop thread
    return await asyncio.to_thread(cls.model_validate, {k: v for k, v in body.items() if v is not None})


async def _answer(result: Any) -> Response:
    """A response object as JSON, or an async iterator of them as an NDJSON stream.

    The first item of a stream is awaited before the status line goes out, so
    that a failure to start (a model that does not load, a bad image) is an
    HTTP error status rather than a 200 with an error line.
    """
    if isinstance(result, BaseModel):
        return json_response(result)
    stream: AsyncIterator[Any] = result
    try:
        first = await stream.__anext__()
    except StopAsyncIteration:
        return Response(b"", media_type=NDJSON)
    except BaseException:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
        raise
    return StreamingResponse(ndjson_stream(first, stream), media_type=NDJSON)


class OllamaRoutes:
    """The route handlers, over one AsyncClient."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    def routes(self) -> list[BaseRoute]:
        r = _answering
        return [
            Route("/", self.root, methods=["GET", "HEAD"]),
            Route("/api/version", r(self.version), methods=["GET", "HEAD"]),
            Route("/api/generate", r(self.generate), methods=["POST"]),
            Route("/api/chat", r(self.chat), methods=["POST"]),
            Route("/api/embed", r(self.embed), methods=["POST"]),
            Route("/api/embeddings", r(self.embeddings), methods=["POST"]),
            Route("/api/show", r(self.show), methods=["POST"]),
            Route("/api/create", r(self.create), methods=["POST"]),
            Route("/api/copy", r(self.copy), methods=["POST"]),
            Route("/api/delete", r(self.delete), methods=["DELETE"]),
            Route("/api/pull", r(self.pull), methods=["POST"]),
            Route("/api/push", r(self.push), methods=["POST"]),
            Route("/api/tags", r(self.tags), methods=["GET", "HEAD"]),
            Route("/api/ps", r(self.ps), methods=["GET"]),
            Route("/api/blobs/{digest}", self.blob_head, methods=["HEAD"]),
            Route("/api/blobs/{digest}", self.blob_upload, methods=["POST"]),
        ]

    async def root(self, request: Request) -> Response:
        return PlainTextResponse(RUNNING)

    async def version(self, request: Request) -> Response:
        return json_response(await self.client.version())

    # -- completions and embeddings ------------------------------------------------------------------
    async def generate(self, request: Request) -> Response:
        req = await _validated(GenerateRequest, inputs.completion_body(await read_json(request)))
        return await _answer(await self.client.generate(req))

    async def chat(self, request: Request) -> Response:
        req = await _validated(ChatRequest, inputs.completion_body(await read_json(request)))
        return await _answer(await self.client.chat(req))

    async def embed(self, request: Request) -> Response:
        body = _named(await read_json(request))
        await _validated(EmbedRequest, body)  # its 400s, before any work
        r = await self.client.embed(**_fields(body, _EMBED_FIELDS))
        wire = r.model_dump(mode="json", exclude={"embeddings"}, exclude_none=True, by_alias=True)
        wire = {"model": wire.pop("model", None), "embeddings": r.as_array(), **wire}  # Ollama's key order
        if wire["model"] is None:
            del wire["model"]
        return Response(embeddings_json(wire), media_type=JSON)

    async def embeddings(self, request: Request) -> Response:
        body = _named(await read_json(request))
        await _validated(EmbeddingRequest, body)
        return json_response(await self.client.embeddings(**_fields(body, _EMBEDDINGS_FIELDS)))

    # -- the store -----------------------------------------------------------------------------------
    async def show(self, request: Request) -> Response:
        req = await _validated(ShowRequest, _named(await read_json(request)))
        return json_response(await self.client.show(req.model, verbose=req.verbose))

    async def create(self, request: Request) -> Response:
        body = _named(await read_json(request))
        if body.get("from") is not None:
            body["from"] = inputs.from_source(body["from"])
        for key in ("files", "adapters"):
            if body.get(key) is not None:
                body[key] = inputs.blob_map(body[key], key)
        req = await _validated(CreateRequest, body)
        args = (req.model, req.quantize, req.from_, req.files, req.adapters, req.template, req.license)
        rest = (req.system, req.parameters, req.messages)
        if req.stream:  # a quantization's progress, line by line; a closed connection stops it
            return await _answer(await self.client.create(*args, *rest, stream=True))
        return json_response(await self.client.create(*args, *rest))

    async def copy(self, request: Request) -> Response:
        body = await read_json(request)
        for key in ("source", "destination"):
            inputs.model_name(body.get(key), key)
        req = await _validated(CopyRequest, body)
        await self.client.copy(req.source, req.destination)
        return Response(status_code=200)

    async def delete(self, request: Request) -> Response:
        req = await _validated(DeleteRequest, _named(await read_json(request)))
        await self.client.delete(req.model)
        return Response(status_code=200)

    async def pull(self, request: Request) -> Response:
        req = await _validated(PullRequest, _named(await read_json(request)))
        insecure = bool(req.insecure)
        if req.stream:
            return await _answer(await self.client.pull(req.model, insecure=insecure, stream=True))
        return json_response(await self.client.pull(req.model, insecure=insecure))

    async def push(self, request: Request) -> Response:
        req = await _validated(PushRequest, _named(await read_json(request)))
        insecure = bool(req.insecure)
        if req.stream:
            return await _answer(await self.client.push(req.model, insecure=insecure, stream=True))
        return json_response(await self.client.push(req.model, insecure=insecure))

    async def tags(self, request: Request) -> Response:
        return json_response(await self.client.list())

    async def ps(self, request: Request) -> Response:
        return json_response(await self.client.ps())

    async def blob_head(self, request: Request) -> Response:
        return await blobs.head(request, self.client)

    async def blob_upload(self, request: Request) -> Response:
        return await blobs.upload(request, self.client)


def _named(body: dict[str, Any]) -> dict[str, Any]:
    """A body whose model may be given as ``model`` or (deprecated) ``name``, the name checked."""
    for key in ("model", "name"):
        if key in body:
            inputs.model_name(body[key], key)
    if not body.get("model") and body.get("name"):
        body = {**body, "model": body["name"]}
    return body


_EMBED_FIELDS = ("model", "input", "truncate", "options", "keep_alive", "dimensions")
_EMBEDDINGS_FIELDS = ("model", "prompt", "options", "keep_alive")


def _fields(body: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The body's fields that the Client's method takes (others are ignored, as Ollama ignores them)."""
    return {k: body[k] for k in names if body.get(k) is not None}


def routes(client: AsyncClient) -> list[BaseRoute]:
    """Ollama's routes over ``client``."""
    return OllamaRoutes(client).routes()
