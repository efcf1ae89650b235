"""The Ollama-compatible API types: requests, responses, options, messages, tools.

Pure Python (pydantic); nothing here touches the native core. The spec is the
Go ``api`` package (Ollama / llama.go); the names and behaviours that
ollama-python users rely on are kept (dict-style access, ``ResponseError``,
``Image``, ``ListResponse.Model``, ``ShowResponse.modelinfo`` ...).

- :mod:`.base` — ``SubscriptableBaseModel`` (dict-style access, spec JSON)
- :mod:`.duration` — ``Duration`` (``keep_alive``)
- :mod:`.think` — ``ThinkValue`` (``think``)
- :mod:`.options` — ``Options``, ``default_options``, ``format_params``
- :mod:`.images` — ``Image`` (and ``EncodedMedia``, its base)
- :mod:`.audio` — ``Audio`` (a llamanative extension)
- :mod:`.tools` — ``Tool`` and its parts, ``ToolCall``
- :mod:`.tool_builder` — ``tool_from_function``
- :mod:`.messages` — ``Message``
- :mod:`.metrics` — ``Metrics``
- :mod:`.requests` — the request types (validation happens there)
- :mod:`.responses` — chat, generate and embedding responses
- :mod:`.models` — list, ps, show, progress, props, version responses
- :mod:`.rerank` — ``RerankRequest``, ``RerankResponse`` (a llamanative extension)
"""

from ..errors import AuthorizationError, RequestError, ResponseError, StatusError
from .audio import Audio
from .base import SubscriptableBaseModel, Timestamp
from .duration import DEFAULT_KEEP_ALIVE, Duration, format_go_duration, parse_go_duration
from .images import Image
from .messages import Message
from .metrics import Metrics
from .models import (
    DevicePlacement,
    ListModelResponse,
    ListResponse,
    Modalities,
    ModelDetails,
    ProcessModelResponse,
    ProcessResponse,
    ProgressResponse,
    PropsResponse,
    ShowResponse,
    StatusResponse,
    Tensor,
    TokenResponse,
    VersionResponse,
)
from .options import LEGACY_OPTIONS, RUNNER_OPTIONS, LoadOptions, Options, default_options, format_params
from .requests import (
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
from .rerank import RerankRequest, RerankResponse, RerankResult
from .responses import (
    ChatResponse,
    Choice,
    DebugInfo,
    EmbeddingResponse,
    EmbedResponse,
    GenerateResponse,
    Logprob,
    TokenLogprob,
)
from .think import THINK_LEVELS, ThinkValue
from .tool_builder import tool_from_function
from .tools import (
    PropertyType,
    Tool,
    ToolCall,
    ToolCallFunction,
    ToolCallFunctionArguments,
    ToolFunction,
    ToolFunctionParameters,
    ToolProperty,
    Tools,
)

# ollama-python's name for the legacy embedding response.
EmbeddingsResponse = EmbeddingResponse

__all__ = [
    "DEFAULT_KEEP_ALIVE",
    "LEGACY_OPTIONS",
    "RUNNER_OPTIONS",
    "THINK_LEVELS",
    "Audio",
    "AuthorizationError",
    "ChatRequest",
    "ChatResponse",
    "Choice",
    "CopyRequest",
    "CreateRequest",
    "DebugInfo",
    "DeleteRequest",
    "Duration",
    "EmbedRequest",
    "EmbedResponse",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "EmbeddingsResponse",
    "GenerateRequest",
    "GenerateResponse",
    "Image",
    "ListModelResponse",
    "ListResponse",
    "LoadOptions",
    "Logprob",
    "Message",
    "Metrics",
    "Modalities",
    "ModelDetails",
    "Options",
    "DevicePlacement",
    "ProcessModelResponse",
    "ProcessResponse",
    "ProgressResponse",
    "PropertyType",
    "PropsResponse",
    "PullRequest",
    "PushRequest",
    "RequestError",
    "RerankRequest",
    "RerankResponse",
    "RerankResult",
    "ResponseError",
    "ShowRequest",
    "ShowResponse",
    "StatusError",
    "StatusResponse",
    "SubscriptableBaseModel",
    "Tensor",
    "ThinkValue",
    "Timestamp",
    "TokenLogprob",
    "TokenResponse",
    "Tool",
    "ToolCall",
    "ToolCallFunction",
    "ToolCallFunctionArguments",
    "ToolFunction",
    "ToolFunctionParameters",
    "ToolProperty",
    "Tools",
    "VersionResponse",
    "default_options",
    "format_go_duration",
    "format_params",
    "parse_go_duration",
    "tool_from_function",
]
