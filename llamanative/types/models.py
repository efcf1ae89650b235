"""Responses about models: list, ps, show, pull progress, props, version.

Sizes are ``ByteSize`` values: plain ``int`` subclasses (``size.real`` and
arithmetic work; ``size.human_readable()`` gives ``'4.7GiB'``), integers in
JSON. Timestamps are timezone-aware ``datetime`` values, RFC 3339 in JSON.
ollama-python's nested names work: ``ListResponse.Model``,
``ProcessResponse.Model``.
"""

from __future__ import annotations

from typing import Any, ClassVar  # noqa: UP035 (a field named `type` shadows the builtin)

from pydantic import AliasChoices, ByteSize, Field

from .base import SubscriptableBaseModel, Timestamp
from .messages import Message

__all__ = [
    "DevicePlacement",
    "ListModelResponse",
    "ListResponse",
    "Modalities",
    "ModelDetails",
    "ProcessModelResponse",
    "ProcessResponse",
    "ProgressResponse",
    "PropsResponse",
    "ShowResponse",
    "StatusResponse",
    "Tensor",
    "TokenResponse",
    "VersionResponse",
]


class ModelDetails(SubscriptableBaseModel):
    """What a model is: format, family, size class and quantization."""

    parent_model: str | None = None
    "The model this one was created from."

    format: str | None = None
    "File format, e.g. ``'gguf'``."

    family: str | None = None
    "Architecture family, e.g. ``'llama'``."

    families: list[str] | None = None
    "All families (a vision model also lists its projector's)."

    parameter_size: str | None = None
    "Parameter count, e.g. ``'8.0B'``."

    quantization_level: str | None = None
    "Quantization, e.g. ``'Q4_K_M'``."

    context_length: int | None = None
    "Training context length."

    embedding_length: int | None = None
    "Embedding size."

    _omitempty = frozenset({"context_length", "embedding_length"})


class ListModelResponse(SubscriptableBaseModel):
    """One model in the local store (``list``)."""

    name: str | None = None
    "Display name, e.g. ``'llama3.2:latest'``."

    model: str | None = None
    "Model name (same as ``name``)."

    remote_model: str | None = None
    "The upstream model, for a model that runs on a remote host (never set for a local model)."

    remote_host: str | None = None
    "The upstream host of a remote model (never set for a local model)."

    modified_at: Timestamp | None = None
    "When the model was last written."

    size: ByteSize | None = None
    "Size on disk, in bytes."

    digest: str | None = None
    "Digest of the model's manifest."

    details: ModelDetails | None = None
    "Format, family, size class, quantization."

    capabilities: list[str] | None = None
    "What the model can do: 'completion', 'tools', 'vision', 'embedding', 'thinking' ..."

    _omitempty = frozenset({"remote_model", "remote_host", "capabilities"})


class ListResponse(SubscriptableBaseModel):
    """The models in the local store (``list``)."""

    Model: ClassVar[type[ListModelResponse]] = ListModelResponse

    models: list[ListModelResponse] = Field(default_factory=list)
    "The models."


class DevicePlacement(SubscriptableBaseModel):
    """Part of a loaded model on one device (``ps``; a llamanative extension)."""

    device: str
    "ggml's device name: ``CPU``, ``CUDA0``, ``RPC0``..."

    backend: str
    "The backend that runs it: ``CPU``, ``CUDA``, ``RPC``..."

    description: str
    "The device's description; an RPC server's ``host:port`` for an RPC device."

    layers: int
    "Layers it holds, counting the output layer (``n_layer + 1`` over all devices)."

    size: ByteSize
    "Bytes of the weights it holds."


class ProcessModelResponse(SubscriptableBaseModel):
    """One loaded model (``ps``)."""

    name: str | None = None
    "Display name."

    model: str | None = None
    "Model name (same as ``name``)."

    size: ByteSize | None = None
    "Memory in use, in bytes (weights, KV cache and buffers)."

    digest: str | None = None
    "Digest of the model's manifest."

    details: ModelDetails | None = None
    "Format, family, size class, quantization."

    expires_at: Timestamp | None = None
    "When the model will be unloaded if it stays idle."

    size_vram: ByteSize | None = None
    "Part of ``size`` in GPU memory, in bytes."

    context_length: int | None = None
    "The context length the model was loaded with (per sequence)."

    devices: list[DevicePlacement] | None = None
    "Where the layers are, the CPU first (a llamanative extension; RPC servers included)."


class ProcessResponse(SubscriptableBaseModel):
    """The loaded models (``ps``), the latest to expire first."""

    Model: ClassVar[type[ProcessModelResponse]] = ProcessModelResponse

    models: list[ProcessModelResponse] = Field(default_factory=list)
    "The models."


class Tensor(SubscriptableBaseModel):
    """One tensor of a model file (``show`` with ``verbose``)."""

    name: str
    "Tensor name."

    type: str
    "Data type, e.g. ``'Q4_K'``."

    shape: list[int]
    "Dimensions."


class ShowResponse(SubscriptableBaseModel):
    """A model's details (``show``).

    ``model_info`` (the GGUF metadata) is also reachable as ``modelinfo``,
    ollama-python's name: ``resp.modelinfo`` and ``resp["modelinfo"]``.

    >>> r = ShowResponse(model_info={"general.architecture": "llama"})
    >>> r.modelinfo["general.architecture"], r["modelinfo"] is r["model_info"]
    ('llama', True)
    """

    license: str | None = None
    "License text."

    modelfile: str | None = None
    "A Modelfile that recreates the model."

    parameters: str | None = None
    "Model parameters, one ``name value`` per line."

    template: str | None = None
    "The chat template."

    system: str | None = None
    "The system prompt."

    renderer: str | None = None
    "Name of the built-in prompt renderer, if any."

    parser: str | None = None
    "Name of the built-in output parser, if any."

    details: ModelDetails | None = None
    "Format, family, size class, quantization."

    messages: list[Message] | None = None
    "Messages put before every conversation."

    remote_model: str | None = None
    "The upstream model, for a model that runs on a remote host (never set for a local model)."

    remote_host: str | None = None
    "The upstream host of a remote model (never set for a local model)."

    model_info: dict[str, Any] | None = Field(None, validation_alias=AliasChoices("model_info", "modelinfo"))
    "GGUF metadata (key -> value); long arrays are emptied unless ``verbose``."

    projector_info: dict[str, Any] | None = None
    "Metadata of the vision/audio projector, if any."

    tensors: list[Tensor] | None = None
    "The model's tensors (``verbose`` only)."

    capabilities: list[str] | None = None
    "What the model can do: 'completion', 'tools', 'vision', 'embedding', 'thinking' ..."

    modified_at: Timestamp | None = None
    "When the model was last written."

    _omitempty = frozenset(
        {
            "license",
            "modelfile",
            "parameters",
            "template",
            "system",
            "renderer",
            "parser",
            "messages",
            "remote_model",
            "remote_host",
            "projector_info",
            "tensors",
            "capabilities",
        }
    )
    _key_aliases = {"modelinfo": "model_info"}

    @property
    def modelinfo(self) -> dict[str, Any] | None:
        """``model_info`` under ollama-python's name."""
        return self.model_info


class StatusResponse(SubscriptableBaseModel):
    """A status line (ollama-python's ``StatusResponse``)."""

    status: str | None = None
    "Status text, e.g. ``'success'``."


class ProgressResponse(StatusResponse):
    """Progress of a pull, push or create: a status, and byte counts while downloading."""

    digest: str | None = None
    "The blob being transferred."

    total: int | None = None
    "Size of the blob, in bytes."

    completed: int | None = None
    "Bytes transferred so far."

    _omitempty = frozenset({"digest", "total", "completed"})


class Modalities(SubscriptableBaseModel):
    """Input kinds a loaded model accepts besides text."""

    vision: bool = False
    "Accepts images."

    audio: bool = False
    "Accepts audio."


class PropsResponse(SubscriptableBaseModel):
    """Properties of the engine and a loaded model (the spec's ``PropsResponse``)."""

    build_info: str | None = None
    "Build description (llama.cpp commit, backends)."

    model_path: str | None = None
    "Path of the loaded model file."

    n_ctx: int | None = None
    "Context length of the loaded model."

    modalities: Modalities = Field(default_factory=Modalities)
    "Input kinds besides text."


class TokenResponse(SubscriptableBaseModel):
    """A token (the spec's ``TokenResponse``)."""

    token: str
    "The token."


class VersionResponse(SubscriptableBaseModel):
    """The library version (``version``)."""

    version: str
    "Version string."
