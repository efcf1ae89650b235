"""The HTTP server: Ollama's ``/api/*`` and OpenAI's ``/v1/*`` over one :class:`~llamanative.AsyncClient`.

Optional: needs the ``serve`` extra (Starlette, Uvicorn and orjson). ``create_app``
builds the ASGI application; ``llamanative serve`` runs it under Uvicorn.
Every route calls the same AsyncClient a Python program would: there is no
second implementation of any request here, only translation between HTTP and
the Client's types.
"""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
