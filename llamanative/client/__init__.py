"""The documented API, in-process: :class:`Client` and the module-level functions."""

from .client import Client

__all__ = ["Client"]
