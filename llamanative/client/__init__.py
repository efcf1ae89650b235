"""The documented API, in-process: :class:`Client` and the module-level functions."""

from .async_client import AsyncClient
from .client import Client

__all__ = ["AsyncClient", "Client"]
