"""llamanative's local models and embedders in the official Genkit Python SDK (``llamanative[genkit]``).

    from genkit import Genkit
    from llamanative.genkit import LlamaNative

    ai = Genkit(plugins=[LlamaNative()], model="llamanative/smollm2")
    response = await ai.generate(prompt="Why is the sky blue?", config={"maxOutputTokens": 64})
    vectors = await ai.embed(embedder="llamanative/all-minilm", content="a cat")

Names are those of :mod:`llamanative.ai`: ``llamanative/<store name>`` or
``llamanative/<path to a .gguf file>``, resolved on first use (nothing is
loaded before a call). The models run in-process through one
:class:`llamanative.Client`; each call runs in a worker thread, streams its
chunks back to Genkit's event loop, and stops at the next token when Genkit
aborts it. The requests, responses and chunks are converted through
Genkit's JSON, which :mod:`llamanative.ai` shares, so tool requests,
constrained output (a grammar: the output always parses) and usage come
through as they are. Genkit runs the tool loop.

This module needs ``genkit>=0.12,<0.13`` (``pip install 'llamanative[genkit]'``);
``llamanative`` itself never imports it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

try:
    from genkit import ModelInfo as GenkitModelInfo
    from genkit import ModelRequest as GenkitModelRequest
    from genkit import ModelResponse as GenkitModelResponse
    from genkit import ModelResponseChunk as GenkitModelResponseChunk
    from genkit.embedder import EmbedderInfo as GenkitEmbedderInfo
    from genkit.embedder import Embedding as GenkitEmbedding
    from genkit.embedder import EmbedRequest as GenkitEmbedRequest
    from genkit.embedder import EmbedResponse as GenkitEmbedResponse
    from genkit.plugin_api import (
        Action,
        ActionKind,
        ActionMetadata,
        ActionRunContext,
        Plugin,
        embedder,
        embedder_action_metadata,
        model,
        model_action_metadata,
    )
except ImportError as exc:  # the optional extra
    raise ImportError(
        "llamanative.genkit needs the Genkit SDK: pip install 'llamanative[genkit]' (genkit>=0.12,<0.13)"
    ) from exc

from .ai import CancelledError, Document, Embedder, Model, ModelRequest, ModelResponseChunk
from .ai.registry import Registry

if TYPE_CHECKING:
    from . import Client

__all__ = ["NAMESPACE", "LlamaNative"]

NAMESPACE = "llamanative"
_EMBEDDING_FAMILIES = ("bert", "nomic-bert", "jina-bert", "t5encoder")


def _local_name(name: str) -> str | None:
    """``<id>`` of ``llamanative/<id>`` (None for other namespaces)."""
    prefix = NAMESPACE + "/"
    return name[len(prefix) :] if name.startswith(prefix) and len(name) > len(prefix) else None


def _wire(value: Any) -> Any:
    """A Genkit SDK value as Genkit JSON (what :mod:`llamanative.ai` types validate from)."""
    return value.model_dump(by_alias=True, exclude_none=True, mode="json")


class LlamaNative(Plugin):
    """The Genkit plugin of llamanative's local models and embedders.

    Args:
        models: model names (``smollm2`` or ``llamanative/smollm2``) registered
            when Genkit starts; any other ``llamanative/...`` model resolves on
            first use anyway.
        embedders: embedder names registered when Genkit starts (the same rule).
        client: the :class:`llamanative.Client` to run on. Default: one created
            on first use (see :meth:`close`).
        models_dir: the model store of that default client.
    """

    name = NAMESPACE

    def __init__(
        self,
        models: Sequence[str] = (),
        embedders: Sequence[str] = (),
        *,
        client: Client | None = None,
        models_dir: str | Path | None = None,
    ) -> None:
        self._ai = Registry(client=client, models_dir=models_dir)
        self._models = [_local_name(n) or n for n in models]
        self._embedders = [_local_name(n) or n for n in embedders]

    @property
    def client(self) -> Client:
        """The client the models run on."""
        return self._ai.client

    def close(self) -> None:
        """Close the client this plugin created (a given client stays open)."""
        self._ai.close()

    # -- the plugin contract ---------------------------------------------------------------------
    async def init(self) -> list[Action]:
        """Actions for the models and embedders named at construction (their weights load on first call)."""
        actions = [await self._model_action(n) for n in self._models]
        actions += [await self._embedder_action(n) for n in self._embedders]
        return [a for a in actions if a is not None]

    async def resolve(self, action_type: ActionKind, name: str) -> Action | None:
        """The action for ``llamanative/<name>`` (a model or an embedder), or None."""
        local = _local_name(name)
        if local is None:
            return None
        if action_type == ActionKind.MODEL:
            return await self._model_action(local)
        if action_type == ActionKind.EMBEDDER:
            return await self._embedder_action(local)
        return None

    async def list_actions(self) -> list[ActionMetadata]:
        """The store's models (as models; BERT-family ones as embedders), from the store only: nothing loads."""
        listing = await asyncio.to_thread(self.client.list)
        out = []
        for m in listing.models:
            name = f"{NAMESPACE}/{m.model.removesuffix(':latest')}"
            family = (m.details.family or "") if m.details else ""
            if family in _EMBEDDING_FAMILIES:
                out.append(embedder_action_metadata(name, GenkitEmbedderInfo(label=name)))
            else:
                out.append(model_action_metadata(name))
        return out

    # -- actions ---------------------------------------------------------------------------------
    async def _model_action(self, local: str) -> Action | None:
        found = await asyncio.to_thread(self._ai.lookup_model, f"{NAMESPACE}/{local}")
        if found is None:
            return None
        info = await asyncio.to_thread(lambda: found.info)  # reads the GGUF metadata once, no weights
        return model(found.name, _model_fn(found), info=GenkitModelInfo.model_validate(info.to_dict()))

    async def _embedder_action(self, local: str) -> Action | None:
        found = await asyncio.to_thread(self._ai.lookup_embedder, f"{NAMESPACE}/{local}")
        if found is None:
            return None
        return embedder(found.name, _embed_fn(found), info=GenkitEmbedderInfo(label=found.name))


def _model_fn(local: Model) -> Callable[..., Any]:
    async def generate(request: GenkitModelRequest, ctx: ActionRunContext) -> GenkitModelResponse:
        req = ModelRequest.model_validate(_wire(request))
        loop = asyncio.get_running_loop()
        streaming = ctx.is_streaming

        def on_chunk(chunk: ModelResponseChunk) -> None:
            # Runs on the worker thread: raising stops the generation at this token.
            if ctx.abort_signal.is_set():
                raise CancelledError("aborted by Genkit")
            if streaming:
                out = GenkitModelResponseChunk.model_validate(chunk.to_dict())
                loop.call_soon_threadsafe(ctx.send_chunk, out)

        resp = await asyncio.to_thread(local.generate, req, on_chunk)
        data = resp.to_dict()
        data.pop("request", None)  # Genkit sets its own
        return GenkitModelResponse.model_validate(data)

    return generate


def _embed_fn(local: Embedder) -> Callable[..., Any]:
    async def embed(request: GenkitEmbedRequest) -> GenkitEmbedResponse:
        docs = [Document.model_validate(_wire(d)) for d in request.input]
        resp = await asyncio.to_thread(local.embed, docs, request.options)
        return GenkitEmbedResponse(embeddings=[GenkitEmbedding(embedding=v) for v in resp.vectors()])

    return embed
