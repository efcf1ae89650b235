"""ollama-python's ``ollama._client`` module path, for programs that import from it.

``from ollama._client import Client, AsyncClient`` works as
``from llamanative._client import ...``: the same classes as
:mod:`llamanative.client`.
"""

from .client import AsyncClient, Client

__all__ = ["AsyncClient", "Client"]
