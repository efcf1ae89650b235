"""Limits on requests: body size, requests admitted at once, time per request; disconnects cancel.

Two ASGI middlewares:

- :class:`BodyLimit` answers 413 when a body is larger than ``max_body_bytes``
  (from ``Content-Length`` before anything is read, or while the body is
  read). Blob uploads (``/api/blobs/``) are exempt: they stream to disk and a
  model is gigabytes.
- :class:`RequestGuard`, on the routes that run a model (:data:`MODEL_PATHS`):
  past ``max_queued`` requests admitted at once (running or waiting for a
  slot) it answers 503 with ``Retry-After``; a request that runs longer than
  ``timeout_s`` is cancelled and answered 504 (or, when its stream has begun,
  ends with an error line: ``{"error": ...}`` for NDJSON, an SSE ``data:``
  event for event streams); and a client that disconnects cancels its request
  at once, streamed or not, which frees its slot at the engine's next step.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._http import BadRequest, error_body, error_response, is_openai_path

MODEL_PATHS = frozenset(
    {
        "/api/generate",
        "/api/chat",
        "/api/embed",
        "/api/embeddings",
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/responses",
    }
)
UNLIMITED_BODY_PREFIXES = ("/api/blobs/",)

DEFAULT_MAX_BODY_BYTES = 100 * 1024 * 1024
DEFAULT_MAX_QUEUED = 512
DEFAULT_TIMEOUT_S = 600.0
RETRY_AFTER_S = 1


class BodyTooLarge(BadRequest):
    """Raised by the body's ``receive`` once it passes the limit: a route that catches it answers its 413 too."""


class BodyLimit:
    """ASGI middleware: 413 for a request body over ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _message(self) -> str:
        return f"request body too large: the limit is {self.max_bytes} bytes (llamanative serve --max-body-bytes)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(UNLIMITED_BODY_PREFIXES):
            await self.app(scope, receive, send)
            return
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await error_response(scope["path"], 413, self._message())(scope, receive, send)
                return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self._message(), 413)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            if not started:
                await error_response(scope["path"], 413, self._message())(scope, receive, send)


class RequestGuard:
    """ASGI middleware for the model routes: the queue limit, the per-request timeout, cancel on disconnect.

    Args:
        max_queued: requests admitted at once on the model routes; one more is answered 503.
        timeout_s: seconds a request may run (None or 0: no limit).
        guarded: which paths it applies to (default :data:`MODEL_PATHS`).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_queued: int = DEFAULT_MAX_QUEUED,
        timeout_s: float | None = DEFAULT_TIMEOUT_S,
        guarded: Callable[[str], bool] = MODEL_PATHS.__contains__,
    ) -> None:
        self.app = app
        self.max_queued = max_queued
        self.timeout_s = timeout_s or None
        self.guarded = guarded
        self.active = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.guarded(scope["path"]):
            await self.app(scope, receive, send)
            return
        if self.active >= self.max_queued:
            message = (
                f"server busy, please try again: more than {self.max_queued} requests are queued "
                f"(llamanative serve --max-queued)"
            )
            headers = {"Retry-After": str(RETRY_AFTER_S)}
            await error_response(scope["path"], 503, message, headers=headers)(scope, receive, send)
            return
        self.active += 1
        try:
            await _Run(self.app, scope, receive, send, self.timeout_s).run()
        finally:
            self.active -= 1


class _Run:
    """One guarded request: the app runs as a task, cancelled by a disconnect or the deadline."""

    def __init__(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send, timeout_s: float | None) -> None:
        self.app, self.scope, self._receive, self._send = app, scope, receive, send
        self.timeout_s = timeout_s
        self.started = False  # the response's status line was sent
        self.finished = False  # its last body message is being sent
        self.content_type = b""
        self.disconnected = asyncio.Event()
        self.task: asyncio.Task[Any] | None = None
        self.watcher: asyncio.Task[None] | None = None

    async def receive(self) -> Message:
        if self.watcher is not None or self.disconnected.is_set():
            # The body is read: from here on the watcher reads the connection; a reader here
            # (Starlette's StreamingResponse listens for the disconnect) waits for it.
            await self.disconnected.wait()
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.disconnect":
            self.disconnected.set()
        elif not message.get("more_body", False):
            self.watcher = asyncio.ensure_future(self._watch())
        return message

    async def _watch(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.disconnected.set()
                if not self.finished and self.task is not None:
                    self.task.cancel()  # the client is gone: stop its generation now
                return

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            for key, value in message.get("headers", ()):
                if key.lower() == b"content-type":
                    self.content_type = value
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            self.finished = True
        await self._send(message)

    async def run(self) -> None:
        self.task = asyncio.ensure_future(self.app(self.scope, self.receive, self.send))
        try:
            done, _ = await asyncio.wait({self.task}, timeout=self.timeout_s)
            if not done:
                self.task.cancel()
                await asyncio.wait({self.task})
                if not self.disconnected.is_set() and not self.finished:
                    await self._timed_out()
                return
            if self.task.cancelled():
                return  # cancelled by a disconnect: nobody to answer
            self.task.result()  # the app's own failure, for the server to log
        finally:
            if self.watcher is not None:
                self.watcher.cancel()
            if not self.task.done():
                self.task.cancel()

    async def _timed_out(self) -> None:
        path = self.scope["path"]
        message = f"request timed out after {self.timeout_s:g} s (llamanative serve --timeout)"
        if not self.started:
            await self._send_error_response(path, message)
            return
        if b"text/event-stream" in self.content_type:
            body = b"data: " + error_body(path, 504, message, "timeout") + b"\n\n"
        else:  # NDJSON, as Ollama ends a failed stream
            body = json.dumps({"error": message}, separators=(",", ":")).encode() + b"\n"
        await self._send({"type": "http.response.body", "body": body, "more_body": True})
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _send_error_response(self, path: str, message: str) -> None:
        async def nothing() -> Message:
            return {"type": "http.disconnect"}

        code = "timeout" if is_openai_path(path) else None
        await error_response(path, 504, message, code=code)(self.scope, nothing, self._send)
