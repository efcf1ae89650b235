"""create_app: the ASGI application, Ollama's routes and OpenAI's over one AsyncClient.

The middleware, outermost first: CORS (only with configured origins; a
preflight is answered here, before the key check, as browsers send it
without credentials), the API key (:mod:`.auth`), the body size limit and
the model routes' guard (:mod:`.limits`). Unknown paths and methods are
answered as errors of the path's API.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from ..client import AsyncClient
from . import ollama
from . import openai as _openai
from ._http import error_response
from .auth import BearerAuth
from .config import origins_regex, parse_origins
from .limits import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_QUEUED, DEFAULT_TIMEOUT_S, BodyLimit, RequestGuard

__all__ = ["create_app"]

_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def create_app(
    client: AsyncClient | None = None,
    *,
    api_key: str | None = None,
    origins: Sequence[str] = (),
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_queued: int = DEFAULT_MAX_QUEUED,
    request_timeout_s: float | None = DEFAULT_TIMEOUT_S,
) -> Starlette:
    """The server's ASGI application.

    Args:
        client: the AsyncClient every route calls (default: a new one on the
            default store, closed when the application shuts down; one passed
            in is left open).
        api_key: when set, every route but ``/`` needs ``Authorization: Bearer <api_key>`` (401 otherwise).
        origins: origins allowed by CORS (``*`` matches any text; ``"*"`` alone any origin). Empty: no CORS
            headers at all, so browsers refuse cross-origin calls.
        max_body_bytes: largest request body (413 past it); blob uploads are exempt.
        max_queued: model requests (generate, chat, embed ...) admitted at once, running or waiting for a
            slot; one more is answered 503 with ``Retry-After``.
        request_timeout_s: seconds a model request may run before it is cancelled (504, or an error line
            in a stream that has begun); None or 0: no limit.
    """
    owned = client is None
    the_client = client if client is not None else AsyncClient()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        try:
            yield
        finally:
            if owned:
                await the_client.close()

    routes: list[BaseRoute] = [*ollama.routes(the_client), *_openai.routes(the_client)]

    middleware = []
    allowed = parse_origins(origins)
    if allowed:
        cors: dict[str, Any] = {"allow_methods": _METHODS, "allow_headers": ["*"]}
        if "*" in allowed:
            cors["allow_origins"] = ["*"]
        else:
            cors["allow_origin_regex"] = origins_regex(allowed)
        middleware.append(Middleware(CORSMiddleware, **cors))
    if api_key:
        middleware.append(Middleware(BearerAuth, api_key=api_key))
    middleware.append(Middleware(BodyLimit, max_bytes=max_body_bytes))
    middleware.append(Middleware(RequestGuard, max_queued=max_queued, timeout_s=request_timeout_s))

    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.client = the_client
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 and 405 answers in the path's API's error shape."""
    assert isinstance(exc, HTTPException)
    message = {404: "not found", 405: "method not allowed"}.get(exc.status_code, str(exc.detail))
    return error_response(
        request.url.path,
        exc.status_code,
        f"{message}: {request.method} {request.url.path}",
        headers=exc.headers,
    )
