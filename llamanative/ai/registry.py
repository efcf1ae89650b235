"""``Genkit`` (alias ``Registry``): where models, tools, prompts ... are defined, found and run.

>>> from llamanative.ai import Genkit
>>> ai = Genkit(model="llamanative/smollm2")           # doctest: +SKIP
>>> ai.generate_text(prompt="Say hi")                  # doctest: +SKIP

Local models need no definition: ``llamanative/<name>`` resolves, on first
use, to a model of the store (``llamanative/smollm2``) or a GGUF file
(``llamanative//path/to/model.gguf``; a bare ``*.gguf`` path works too),
loaded through one shared :class:`llamanative.Client` per ``Genkit`` object.
``llamanative/<name>`` also resolves as an embedder (``Client.embed``, one
batched call per ``embed``).

Every kind of action has three forms:

- ``define_x(name, ...)`` registers it (names are unique per kind: a second
  definition raises :class:`AlreadyExistsError`) and returns it;
- ``new_x(name, ...)`` builds it without registering; pass the object where a
  name is accepted (``model=``, ``tools=[...]``, ``resources=[...]``) and it
  is visible to that call only;
- ``lookup_x(name)`` finds a registered (or dynamically resolvable) one, or None.

``lookup_action("/<type>/<name>")`` finds any of them by Genkit's action key
(Go's ``LookupAction``); ``/util/generate`` is the generate action that every
``Genkit`` object defines when it is created (:mod:`.generate_action`).

Child registries (:meth:`Registry.new_child`) see their parent's actions and
add their own without changing the parent.

The class is built in layers, each module depending only on those before it:
:mod:`.actions` (the registry of actions: kinds, names, resolvers, lookups),
then the generate loop (:mod:`.request`, :mod:`.tool_rounds`,
:mod:`.generate`, :mod:`.streaming`) and :mod:`.prompt`, which work on an
``ActionRegistry``, then :mod:`.definitions` (the ``define_*`` forms), and
this module: the entry points (generate, embed, retrieve, evaluate, their
async twins) and the client that local models run on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import Client
from .actions import Resolver
from .definitions import Definitions
from .embedder import Embedder, EmbedResponse
from .errors import NotFoundError
from .evaluator import EvaluationResult, Evaluator, Example, evaluate
from .generate import generate, generate_data, generate_operation, generate_with_request
from .generate_action import define_generate_action
from .local import LocalProvider
from .messages import Document
from .model import BackgroundModel
from .model_types import ModelResponse, Operation
from .refs import EmbedderRef, EvaluatorRef, RetrieverRef, resolve_ref
from .request import GenerateActionOptions, GenerateDataKwargs, GenerateKwargs
from .retrieval.rerankers import rerank
from .retrieval.types import RankedDocument
from .retriever import Retriever, RetrieverRequest, RetrieverResponse, query_document
from .streaming import AsyncGenerateStream, GenerateStream, generate_data_stream, generate_stream

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["Genkit", "Registry", "Resolver"]


class Registry(Definitions):
    """The registry and entry point of the ``ai`` layer (``Genkit`` is the same class).

    Args:
        model: the default model name, used when a call names none.
        client: the :class:`llamanative.Client` that local models and
            embedders run on. Default: one created on first use (closed by
            :meth:`close`).
        models_dir: the model store of that default client.
        parent: for a child registry (see :meth:`new_child`).
    """

    def __init__(
        self,
        *,
        model: str | None = None,
        client: Client | None = None,
        models_dir: str | Path | None = None,
        parent: Registry | None = None,
    ) -> None:
        super().__init__(model=model, parent=parent)
        self._client = client
        self._own_client = False
        self._models_dir = str(models_dir) if models_dir is not None else None
        if parent is None:
            self.register_resolver("llamanative", LocalProvider(lambda: self.client).resolve)
            define_generate_action(self)  # /util/generate, as Genkit's Init defines it

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def client(self) -> Client:
        """The shared :class:`llamanative.Client` (created on first use unless one was given)."""
        if isinstance(self.parent, Registry) and self._client is None:
            return self.parent.client
        with self._lock:
            if self._client is None:
                self._client = Client(models_dir=self._models_dir)
                self._own_client = True
            return self._client

    def close(self) -> None:
        """Close the client this object created (unloading its models); a given client stays open."""
        with self._lock:
            if self._own_client and self._client is not None:
                self._client.close()
                self._client = None
                self._own_client = False

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- generation ------------------------------------------------------------------------------
    def generate(self, **options: Unpack[GenerateKwargs]) -> ModelResponse:
        """Generate a response, running the tool loop (Go's ``Generate``).

        See :class:`llamanative.ai.generate.GenerateKwargs` for the options
        (model, prompt, system, messages, config, tools, output_* ...).

        Raises:
            InvalidArgumentError: no model, negative ``max_turns``, duplicate tools, bad format ...
            ModelNotFound, ToolNotFound: unknown names.
            MaxTurnsExceeded: the model still asked for tools after ``max_turns`` rounds.
            ToolFailed: a tool raised.
            InvalidOutput: the final output does not match the output format/schema.
        """
        return generate(self, **options)

    def generate_text(self, **options: Unpack[GenerateKwargs]) -> str:
        """:meth:`generate` and return the text."""
        return self.generate(**options).text()

    def generate_data(self, output_type: Any, **options: Unpack[GenerateDataKwargs]) -> tuple[Any, ModelResponse]:
        """Generate structured output: ``(output, response)``.

        ``output_type`` is a pydantic model, a dataclass, any type pydantic
        validates, or a JSON schema dict (the output is then plain JSON data).
        The output is None when the response has no text (tool requests kept
        with ``return_tool_requests``, or an interrupt).
        """
        return generate_data(self, output_type, **options)

    def generate_stream(self, **options: Unpack[GenerateKwargs]) -> GenerateStream:
        """Stream a generation: an iterator of :class:`StreamValue`.

        Values with ``done=False`` carry a ``chunk``; the last one has
        ``done=True`` and the ``response``. Errors are raised from the
        iteration. Stopping early (``break`` then ``close()``, or a ``with``
        block) aborts the generation and frees the model's slot.
        """
        return generate_stream(self, **options)

    def generate_data_stream(self, output_type: Any, **options: Unpack[GenerateDataKwargs]) -> GenerateStream:
        """:meth:`generate_stream` with typed output: chunk values carry ``output`` (chunks with no output
        yet are skipped), the last one the final ``output`` and the ``response``."""
        return generate_data_stream(self, output_type, **options)

    def generate_with_request(
        self,
        options: GenerateActionOptions,
        *,
        use: Sequence[Any] | None = None,
        middleware: Sequence[Any] | None = None,
        on_chunk: Callable[..., None] | None = None,
        context: dict[str, Any] | None = None,
    ) -> ModelResponse:
        """Run a rendered request (``GenerateActionOptions``, e.g. from ``Prompt.render``), Go's
        ``GenerateWithRequest``. ``use`` and ``middleware`` are as in :meth:`generate`."""
        return generate_with_request(
            self, options, use=use or (), middleware=middleware or (), on_chunk=on_chunk, context=context
        )

    def generate_operation(self, **options: Unpack[GenerateKwargs]) -> Operation:
        """Start a background model's operation (``model=`` must name one).

        Raises:
            FailedPreconditionError: the model did not return an operation.
        """
        return generate_operation(self, **options)

    def check_model_operation(self, operation: Operation) -> Operation:
        """Poll an operation of a background model (found by ``operation.action``).

        Raises:
            NotFoundError: no background model owns the operation.
        """
        return self._operation_model(operation).check(operation)

    def cancel_model_operation(self, operation: Operation) -> Operation:
        """Cancel an operation (if its model supports it)."""
        return self._operation_model(operation).cancel(operation)

    def _operation_model(self, operation: Operation) -> BackgroundModel:
        name = operation.action.removeprefix("/background-model/")
        bm = self.lookup_background_model(name)
        if bm is None:
            raise NotFoundError(f"background model for operation {operation.action!r} not found")
        return bm

    def embed(
        self,
        embedder: str | Embedder | EmbedderRef,
        documents: Sequence[Document | str] | Document | str,
        options: Any = None,
    ) -> EmbedResponse:
        """Embed documents (or texts): an :class:`EmbedResponse` with one vector per document, in order.

        ``response.as_array()`` is the float32 matrix ``(n, dim)``,
        ``response.vectors()`` the list of float lists. For a local embedder
        (``llamanative/<name>``) the whole list is one batched ``Client.embed``
        call; ``options`` may hold ``dimensions``, ``truncate`` and model options.

        Raises:
            NotFoundError: unknown embedder.
        """
        target, options = resolve_ref(embedder, options)
        return self._resolve("embedder", target, Embedder).embed(documents, options)

    def rerank(
        self, reranker: Any, query: Document | str, documents: Sequence[Any], options: Any = None
    ) -> list[RankedDocument]:
        """Order ``documents`` by relevance to ``query``, best first, with their scores.

        ``reranker`` is a reranker object or function, or a name: a registered
        one or ``llamanative/<name>`` (a local reranker model: every pair
        scored in one batched ``Client.rerank`` call). Documents may be texts,
        documents or search hits; ``options`` may hold ``k`` (keep the best n)
        and, for a local reranker, ``truncate``, ``keep_alive`` and model options.

        Raises:
            NotFoundError: unknown reranker name.
        """
        if isinstance(reranker, str):
            found = self.lookup_reranker(reranker)
            if found is None:
                raise NotFoundError(f"reranker {reranker!r} not found")
            reranker = found
        return rerank(reranker, query, documents, options)

    def retrieve(
        self,
        retriever: str | Retriever | RetrieverRef,
        query: Document | str | Sequence[Document | str],
        options: Any = None,
    ) -> RetrieverResponse:
        """Run a retriever with one query document (:func:`llamanative.ai.retriever.query_document`).

        Raises:
            InvalidArgumentError: no query, or more than one query document.
            NotFoundError: unknown retriever.
        """
        target, options = resolve_ref(retriever, options)
        r = self._resolve("retriever", target, Retriever)
        return r.retrieve(RetrieverRequest(query=query_document(query), options=options))

    def evaluate(
        self,
        evaluator: str | Evaluator | EvaluatorRef,
        dataset: Sequence[Example | dict[str, Any]],
        options: Any = None,
        eval_run_id: str | None = None,
    ) -> list[EvaluationResult]:
        """Score a dataset with an evaluator, by name or object (:func:`llamanative.ai.evaluator.evaluate`).

        Raises:
            NotFoundError: unknown evaluator name.
            InvalidArgumentError: not an evaluator, or a malformed example.
        """
        target, options = resolve_ref(evaluator, options)
        e = self._resolve("evaluator", target, Evaluator) if isinstance(target, str) else target
        return evaluate(e, dataset, options=options, eval_run_id=eval_run_id)

    # -- async twins (the sync call in a worker thread) ----------------------------------------
    async def agenerate(self, **options: Unpack[GenerateKwargs]) -> ModelResponse:
        """:meth:`generate` run in a worker thread (``asyncio.to_thread``)."""
        return await asyncio.to_thread(lambda: self.generate(**options))

    async def agenerate_text(self, **options: Unpack[GenerateKwargs]) -> str:
        return await asyncio.to_thread(lambda: self.generate_text(**options))

    async def agenerate_data(
        self, output_type: Any, **options: Unpack[GenerateDataKwargs]
    ) -> tuple[Any, ModelResponse]:
        return await asyncio.to_thread(lambda: self.generate_data(output_type, **options))

    def agenerate_stream(self, **options: Unpack[GenerateKwargs]) -> AsyncGenerateStream:
        """:meth:`generate_stream` as an async iterator (each step awaits the worker thread)."""
        return AsyncGenerateStream(self.generate_stream(**options))

    def agenerate_data_stream(self, output_type: Any, **options: Unpack[GenerateDataKwargs]) -> AsyncGenerateStream:
        return AsyncGenerateStream(self.generate_data_stream(output_type, **options))

    async def aembed(
        self,
        embedder: str | Embedder | EmbedderRef,
        documents: Sequence[Document | str] | Document | str,
        options: Any = None,
    ) -> EmbedResponse:
        return await asyncio.to_thread(self.embed, embedder, documents, options)

    async def aretrieve(
        self,
        retriever: str | Retriever | RetrieverRef,
        query: Document | str | Sequence[Document | str],
        options: Any = None,
    ) -> RetrieverResponse:
        return await asyncio.to_thread(self.retrieve, retriever, query, options)

    async def aevaluate(
        self,
        evaluator: str | Evaluator | EvaluatorRef,
        dataset: Sequence[Example | dict[str, Any]],
        options: Any = None,
        eval_run_id: str | None = None,
    ) -> list[EvaluationResult]:
        return await asyncio.to_thread(self.evaluate, evaluator, dataset, options, eval_run_id)


Genkit = Registry
