"""create_app: the Starlette application with Ollama's routes and the OpenAI ones."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from ..client import AsyncClient

try:  # written beside this module; the app works without it meanwhile
    from . import openai as _openai
except ImportError:  # pragma: no cover
    _openai = None  # type: ignore[assignment]

__all__ = ["create_app"]


def create_app(
    client: AsyncClient | None = None,
    *,
    api_key: str | None = None,
    origins: Sequence[str] = (),
    max_body_bytes: int = 100 * 1024 * 1024,
    max_queued: int = 512,
    request_timeout_s: float | None = None,
) -> Starlette:
    """The ASGI application (skeleton: routes follow)."""
    client = client or AsyncClient()
    routes: list[BaseRoute] = []
    if _openai is not None:
        routes += _openai.routes(client)
    return Starlette(routes=routes)
