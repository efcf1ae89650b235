"""llamanative: run GGUF models inside the Python process.

``import llamanative as ollama`` and ollama-python code runs unchanged:
``chat``, ``generate``, ``embed``, ``embeddings``, ``list``, ``ps`` /
``list_running``, ``show``, ``create``, ``copy``, ``delete``, ``version``,
``heartbeat`` (and llamanative's ``rerank``) are bound to a default :class:`Client`, created on first use
(importing the package loads the native module and nothing else: the backend
plugins are loaded on first use).
"""

from __future__ import annotations

import logging as _logging
import threading as _threading

__version__ = "0.1.0"

# The backend plugins (CPU variant, GPU backends) are loaded on first use
# (the first Model, backends(), devices()...), once, from the package
# directory; see llamanative/_backends.py.
from . import _core  # noqa: E402, F401  (llamanative._core is public)
from ._backends import PluginAttempt, backend_load_log  # noqa: E402
from ._core import LLAMA_CPP_COMMIT, backends, devices, set_log_level, system_info  # noqa: E402
from .client import AsyncClient, Client  # noqa: E402
from .errors import LlamaError, ModelLoadError, RequestError, ResponseError, StatusError  # noqa: E402
from .types import (  # noqa: E402
    Audio,
    ChatRequest,
    ChatResponse,
    Duration,
    EmbeddingResponse,
    EmbeddingsResponse,
    EmbedRequest,
    EmbedResponse,
    GenerateRequest,
    GenerateResponse,
    Image,
    ListResponse,
    Message,
    Options,
    ProcessResponse,
    ProgressResponse,
    RerankRequest,
    RerankResponse,
    ShowResponse,
    StatusResponse,
    ThinkValue,
    Tool,
    default_options,
    tool_from_function,
)

# A library stays silent unless the application configures logging: without
# this, Python's last-resort handler would print llama.cpp's warnings.
_logging.getLogger("llamanative").addHandler(_logging.NullHandler())

_default_client: Client | None = None
_default_lock = _threading.Lock()


def default_client() -> Client:
    """The shared :class:`Client` that the module-level functions (``llamanative.chat`` ...) use.

    Made on first use from the environment (``LLAMANATIVE_MODELS``,
    ``LLAMANATIVE_MAX_LOADED_MODELS``), as Go's ``ClientFromEnvironment``
    reads ``OLLAMA_HOST``; every later call returns the same client.
    Thread-safe.
    """
    global _default_client
    with _default_lock:
        if _default_client is None:
            _default_client = Client()
        return _default_client


_default = default_client


def chat(*args, **kwargs):
    """:meth:`Client.chat` on the default client."""
    return _default().chat(*args, **kwargs)


def generate(*args, **kwargs):
    """:meth:`Client.generate` on the default client."""
    return _default().generate(*args, **kwargs)


def embed(*args, **kwargs) -> EmbedResponse:
    """:meth:`Client.embed` on the default client."""
    return _default().embed(*args, **kwargs)


def embeddings(*args, **kwargs) -> EmbeddingResponse:
    """:meth:`Client.embeddings` on the default client."""
    return _default().embeddings(*args, **kwargs)


def rerank(*args, **kwargs) -> RerankResponse:
    """:meth:`Client.rerank` on the default client."""
    return _default().rerank(*args, **kwargs)


def list() -> ListResponse:  # noqa: A001 (ollama-python's name)
    """:meth:`Client.list` on the default client."""
    return _default().list()


def ps() -> ProcessResponse:
    """:meth:`Client.ps` on the default client."""
    return _default().ps()


list_running = ps


def show(*args, **kwargs) -> ShowResponse:
    """:meth:`Client.show` on the default client."""
    return _default().show(*args, **kwargs)


def create(*args, **kwargs) -> StatusResponse:
    """:meth:`Client.create` on the default client."""
    return _default().create(*args, **kwargs)


def pull(*args, **kwargs):
    """:meth:`Client.pull` on the default client."""
    return _default().pull(*args, **kwargs)


def copy(*args, **kwargs) -> StatusResponse:
    """:meth:`Client.copy` on the default client."""
    return _default().copy(*args, **kwargs)


def delete(*args, **kwargs) -> StatusResponse:
    """:meth:`Client.delete` on the default client."""
    return _default().delete(*args, **kwargs)


def version():
    """:meth:`Client.version` on the default client."""
    return _default().version()


def heartbeat() -> None:
    """:meth:`Client.heartbeat` on the default client."""
    _default().heartbeat()


__all__ = [
    "LLAMA_CPP_COMMIT",
    "AsyncClient",
    "Audio",
    "ChatRequest",
    "ChatResponse",
    "Client",
    "Duration",
    "EmbedRequest",
    "EmbedResponse",
    "EmbeddingResponse",
    "EmbeddingsResponse",
    "GenerateRequest",
    "GenerateResponse",
    "Image",
    "ListResponse",
    "LlamaError",
    "Message",
    "ModelLoadError",
    "Options",
    "PluginAttempt",
    "ProcessResponse",
    "ProgressResponse",
    "RequestError",
    "RerankRequest",
    "RerankResponse",
    "ResponseError",
    "ShowResponse",
    "StatusError",
    "StatusResponse",
    "ThinkValue",
    "Tool",
    "__version__",
    "backend_load_log",
    "backends",
    "chat",
    "copy",
    "create",
    "default_client",
    "default_options",
    "delete",
    "devices",
    "embed",
    "embeddings",
    "generate",
    "heartbeat",
    "list",
    "list_running",
    "ps",
    "pull",
    "rerank",
    "set_log_level",
    "show",
    "system_info",
    "tool_from_function",
    "version",
]
