"""Genkit's ``ai`` layer in Python, with llamanative's local models as the built-in provider.

>>> from llamanative.ai import Genkit
>>> ai = Genkit(model="llamanative/smollm2")                        # doctest: +SKIP
>>> ai.generate_text(prompt="Why is the sky blue?", config={"maxOutputTokens": 64})   # doctest: +SKIP

The semantics follow Go Genkit's ``ai`` package (tool loop, interrupts and
resume, output formats, streaming), and the data is wire-compatible with
Genkit's JSON (``part.to_dict()`` → ``{"toolRequest": {...}}``). Everything
is synchronous; ``agenerate``-style twins run the sync call in a thread.
"""

from __future__ import annotations

from .embedder import EmbedderInfo, EmbedRequest, EmbedResponse, Embedder, Embedding, new_embedder
from .errors import (AbortedError, ActionNotFound, AlreadyExistsError, CancelledError, FailedPreconditionError,
                     GenkitError, InputTypeMismatch, InternalError, InvalidArgumentError, InvalidInput,
                     InvalidOutput, InvalidPart, InvalidSchema, MaxTurnsExceeded, ModelNotFound, NotFoundError,
                     ToolFailed, ToolNotFound, UnavailableError, UnimplementedError, UnresolvedToolRequest,
                     UnsupportedByModel)
from .evaluator import (EvaluationResult, Evaluator, EvaluatorCallbackRequest, EvaluatorRequest, Example, Score,
                        new_batch_evaluator, new_evaluator)
from .formats import BaseFormatHandler, FormatHandler, Formatter, inject_instructions
from .generate import DEFAULT_MAX_TURNS, GenerateActionOptions, GenerateKwargs
from .hooks import GenerateParams, Hooks, Middleware, ModelParams, ToolParams
from .messages import (Document, Message, Role, document_from_text, new_message, new_model_message,
                       new_model_text_message, new_system_message, new_system_text_message, new_text_message,
                       new_user_message, new_user_text_message)
from .middleware import (ModelFn, ModelMiddleware, StreamCallback, augment_with_context, download_request_media,
                         simulate_system_prompt, validate_support)
from .model import BackgroundModel, Model, new_background_model, new_model
from .model_ref import ModelRef, model_ref
from .model_types import (ConstrainedSupport, FinishReason, GenerationCommonConfig, GenerationUsage, ModelInfo,
                          ModelOutputConfig, ModelRequest, ModelResponse, ModelResponseChunk, ModelStage,
                          ModelSupports, Operation, OperationError, ToolChoice, ToolDefinition)
from .parts import (Media, Part, ResourceRef, ToolRequest, ToolResponse, new_custom_part, new_data_part,
                    new_json_part, new_media_part, new_partial_tool_response_part, new_reasoning_part,
                    new_resource_part, new_response_for_tool_request, new_text_part, new_tool_request_part,
                    new_tool_response_part)
from .prompt import DataPrompt, Prompt
from .registry import Genkit, Registry
from .resource import Resource, ResourceInput, ResourceOutput, new_resource
from .retriever import Retriever, RetrieverInfo, RetrieverRequest, RetrieverResponse, new_retriever
from .schema import SchemaValidationError
from .streaming import AsyncGenerateStream, GenerateStream, StreamValue
from .tools import (MultipartToolResponse, Tool, ToolContext, ToolInterrupt, interrupt_as, new_multipart_tool,
                    new_tool, respond_with, restart_with)

__all__ = [
    "DEFAULT_MAX_TURNS", "AbortedError", "ActionNotFound", "AlreadyExistsError", "AsyncGenerateStream",
    "BackgroundModel", "BaseFormatHandler", "CancelledError", "ConstrainedSupport", "DataPrompt", "Document",
    "EmbedRequest", "EmbedResponse", "Embedder", "EmbedderInfo", "Embedding", "EvaluationResult", "Evaluator",
    "EvaluatorCallbackRequest", "EvaluatorRequest", "Example", "FailedPreconditionError", "FinishReason",
    "FormatHandler", "Formatter", "GenerateActionOptions", "GenerateKwargs", "GenerateParams", "GenerateStream",
    "GenerationCommonConfig", "GenerationUsage", "Genkit", "GenkitError", "Hooks", "InputTypeMismatch",
    "InternalError", "InvalidArgumentError", "InvalidInput", "InvalidOutput", "InvalidPart", "InvalidSchema",
    "MaxTurnsExceeded", "Media", "Message", "Middleware", "Model", "ModelFn", "ModelInfo", "ModelMiddleware",
    "ModelNotFound", "ModelOutputConfig", "ModelParams", "ModelRef", "ModelRequest", "ModelResponse",
    "ModelResponseChunk", "ModelStage", "ModelSupports", "MultipartToolResponse", "NotFoundError", "Operation",
    "OperationError", "Part", "Prompt", "Registry", "Resource", "ResourceInput", "ResourceOutput", "ResourceRef",
    "Retriever", "RetrieverInfo", "RetrieverRequest", "RetrieverResponse", "Role", "SchemaValidationError", "Score",
    "StreamCallback", "StreamValue", "Tool", "ToolChoice", "ToolContext", "ToolDefinition", "ToolFailed",
    "ToolInterrupt", "ToolNotFound", "ToolParams", "ToolRequest", "ToolResponse", "UnavailableError",
    "UnimplementedError", "UnresolvedToolRequest", "UnsupportedByModel", "augment_with_context",
    "document_from_text", "download_request_media", "inject_instructions", "interrupt_as", "model_ref",
    "new_background_model", "new_batch_evaluator", "new_custom_part", "new_data_part", "new_embedder",
    "new_evaluator", "new_json_part", "new_media_part", "new_message", "new_model", "new_model_message",
    "new_model_text_message", "new_multipart_tool", "new_partial_tool_response_part", "new_reasoning_part",
    "new_resource", "new_resource_part", "new_response_for_tool_request", "new_retriever", "new_system_message",
    "new_system_text_message", "new_text_message", "new_text_part", "new_tool", "new_tool_request_part",
    "new_tool_response_part", "new_user_message", "new_user_text_message", "respond_with", "restart_with",
    "simulate_system_prompt", "validate_support",
]
