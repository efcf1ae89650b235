"""ollama-python's ``ollama._types`` module path, for programs that import from it.

``from ollama._types import ChatResponse, Message, Tool, ResponseError`` works
as ``from llamanative._types import ...``: the names are those of
:mod:`llamanative.types` (the same classes), under ollama-python's spelling
where it differs (``EmbeddingsRequest``). Its web search, web fetch and
System One types have no counterpart here.
"""

from .errors import RequestError, ResponseError
from .types import (
    ChatRequest,
    ChatResponse,
    CopyRequest,
    CreateRequest,
    DeleteRequest,
    EmbeddingRequest,
    EmbeddingsResponse,
    EmbedRequest,
    EmbedResponse,
    GenerateRequest,
    GenerateResponse,
    Image,
    ListResponse,
    Logprob,
    Message,
    ModelDetails,
    Options,
    ProcessResponse,
    ProgressResponse,
    PullRequest,
    PushRequest,
    ShowRequest,
    ShowResponse,
    StatusResponse,
    SubscriptableBaseModel,
    TokenLogprob,
    Tool,
)

EmbeddingsRequest = EmbeddingRequest
"ollama-python's name for the legacy embedding request."

__all__ = [
    "ChatRequest",
    "ChatResponse",
    "CopyRequest",
    "CreateRequest",
    "DeleteRequest",
    "EmbedRequest",
    "EmbedResponse",
    "EmbeddingsRequest",
    "EmbeddingsResponse",
    "GenerateRequest",
    "GenerateResponse",
    "Image",
    "ListResponse",
    "Logprob",
    "Message",
    "ModelDetails",
    "Options",
    "ProcessResponse",
    "ProgressResponse",
    "PullRequest",
    "PushRequest",
    "RequestError",
    "ResponseError",
    "ShowRequest",
    "ShowResponse",
    "StatusResponse",
    "SubscriptableBaseModel",
    "TokenLogprob",
    "Tool",
]
