"""API key check: ``Authorization: Bearer KEY`` on every route but ``/``.

The key is compared with :func:`hmac.compare_digest` (constant time for
inputs of equal length), so the answer's timing does not reveal how much of a
guess was right. ``/`` stays open because clients probe it to see whether a
server runs ("Ollama is running"); CORS preflights are answered by the CORS
middleware, outside this one, since browsers send them without credentials.
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from ._http import error_response

OPEN_PATHS = frozenset({"/"})


class BearerAuth:
    """ASGI middleware: 401 unless the request carries ``Authorization: Bearer <api_key>``."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        if not api_key:
            raise ValueError("api_key must not be empty")
        self.app = app
        self._key = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        message = self._refusal(scope)
        if message is None:
            await self.app(scope, receive, send)
            return
        response = error_response(
            scope["path"], 401, message, headers={"WWW-Authenticate": "Bearer"}, code="invalid_api_key"
        )
        await response(scope, receive, send)

    def _refusal(self, scope: Scope) -> str | None:
        """Why the request is refused, or None when its key is right."""
        values = [v for k, v in scope["headers"] if k == b"authorization"]
        if not values:
            return "missing API key: send the header 'Authorization: Bearer <key>'"
        scheme, _, token = values[0].strip().partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self._key):
            return "invalid API key"
        return None
