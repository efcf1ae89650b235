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

Child registries (:meth:`Registry.new_child`) see their parent's actions and
add their own without changing the parent.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .embedder import Embedder, EmbedderInfo, EmbedResponse, new_embedder
from .errors import AlreadyExistsError, InvalidArgumentError, NotFoundError
from .evaluator import EvaluationResult, Evaluator, Example, evaluate, new_batch_evaluator, new_evaluator
from .formats import BUILTIN_FORMATS, Formatter
from .messages import Document
from .model import BackgroundModel, InfoArg, Model, new_background_model, new_model
from .model_ref import ModelRef
from .model_types import ModelResponse, Operation
from .resource import Resource, ResourceInput, new_resource
from .retriever import Retriever, RetrieverInfo, RetrieverRequest, RetrieverResponse, new_retriever, query_document
from .schema import schema_for
from .tools import Tool, new_multipart_tool, new_tool

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .. import Client
    from .generate import GenerateActionOptions, GenerateKwargs
    from .prompt import DataPrompt, Prompt
    from .streaming import AsyncGenerateStream, GenerateStream

__all__ = ["Genkit", "Registry", "Resolver"]

Resolver = Callable[[str, str], Any]
"""A dynamic provider: ``resolver(kind, name) -> action | None`` (kind ``"model"``, ``"embedder"`` ...)."""

_KINDS = (
    "model",
    "background-model",
    "embedder",
    "retriever",
    "evaluator",
    "tool",
    "prompt",
    "format",
    "resource",
    "schema",
)


class Registry:
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
        self.parent = parent
        self.default_model = model if model is not None else (parent.default_model if parent else None)
        self._client = client
        self._own_client = False
        self._models_dir = str(models_dir) if models_dir is not None else None
        self._lock = threading.RLock()
        self._actions: dict[str, dict[str, Any]] = {k: {} for k in _KINDS}
        self._resolvers: dict[str, Resolver] = {}
        self.template_renderer: Callable[[str, dict[str, Any]], str] | None = None
        """Renders string templates of prompts (``system``/``prompt``) with their input; None = built-in
        ``{{name}}`` substitution. The prompts package sets a full renderer here."""
        if parent is None:
            for f in BUILTIN_FORMATS:
                self._actions["format"][f.name] = f
            from .local import LocalProvider

            self.register_resolver("llamanative", LocalProvider(lambda: self.client).resolve)

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def client(self) -> Client:
        """The shared :class:`llamanative.Client` (created on first use unless one was given)."""
        if self.parent is not None and self._client is None:
            return self.parent.client
        with self._lock:
            if self._client is None:
                from .. import Client

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

    def new_child(self) -> Registry:
        """A registry that sees this one's actions and adds its own (for one call's dynamic tools)."""
        return Registry(parent=self)

    # -- registration ------------------------------------------------------------------------
    def register(self, kind: str, name: str, action: Any) -> Any:
        """Register ``action`` under ``kind``/``name`` and return it.

        Raises:
            AlreadyExistsError: that name is taken for that kind in this registry.
            InvalidArgumentError: unknown kind or empty name.
        """
        if kind not in self._actions:
            raise InvalidArgumentError(f"unknown action kind {kind!r}; one of {', '.join(_KINDS)}")
        if not name:
            raise InvalidArgumentError(f"a {kind} needs a name")
        with self._lock:
            if name in self._actions[kind]:
                raise AlreadyExistsError(f"{kind} {name!r} is already defined")
            self._actions[kind][name] = action
        return action

    def register_resolver(self, namespace: str, resolver: Resolver) -> None:
        """Resolve names ``<namespace>/<id>`` on demand: ``resolver(kind, id)`` returns an action or None.

        A resolved action is registered (under its full name), so it is built once.
        """
        with self._lock:
            self._resolvers[namespace] = resolver

    def define_model(
        self,
        name: str,
        fn: Callable[..., Any],
        *,
        info: InfoArg = None,
        config_schema: dict[str, Any] | type | None = None,
    ) -> Model:
        """Register a model: ``fn(request: ModelRequest, on_chunk) -> ModelResponse`` (or ``fn(request)``).

        ``on_chunk`` is None unless the caller streams; call it with each
        :class:`ModelResponseChunk`. ``info.supports`` says what the model can
        do (unset = no; a tool loop needs ``multiturn`` and ``tools``).
        ``config_schema`` is a JSON schema the config is checked against, or a
        type the config is converted to. See :func:`llamanative.ai.new_model`.
        """
        return self.register("model", name, new_model(name, fn, info=info, config_schema=config_schema))

    def define_background_model(
        self,
        name: str,
        start: Callable[..., Operation],
        check: Callable[..., Operation],
        *,
        cancel: Callable[..., Operation] | None = None,
        info: InfoArg = None,
        config_schema: dict[str, Any] | type | None = None,
    ) -> BackgroundModel:
        """Register a long-running model: ``start(request) -> Operation``, ``check(op) -> Operation``."""
        return self.register(
            "background-model",
            name,
            new_background_model(name, start, check, cancel=cancel, info=info, config_schema=config_schema),
        )

    def define_embedder(
        self,
        name: str,
        fn: Callable[..., Any],
        *,
        info: EmbedderInfo | dict[str, Any] | None = None,
        config_schema: dict[str, Any] | None = None,
    ) -> Embedder:
        """Register an embedder: ``fn(documents: list[Document], options) -> vectors`` (or ``fn(documents)``).

        The vectors are a 2-D numpy array (one row per document), a list of
        float lists, or a list of :class:`Embedding`; one per document, in order.
        """
        return self.register("embedder", name, new_embedder(name, fn, info=info, config_schema=config_schema))

    def define_retriever(
        self,
        name: str,
        fn: Callable[[RetrieverRequest], Any],
        *,
        info: RetrieverInfo | dict[str, Any] | None = None,
        config_schema: dict[str, Any] | None = None,
    ) -> Retriever:
        """Register a retriever: ``fn(request: RetrieverRequest) -> RetrieverResponse`` (or a list of documents).

        ``request.query`` is the query :class:`Document`, ``request.options``
        what the caller passed as ``options``.
        """
        return self.register("retriever", name, new_retriever(name, fn, info=info, config_schema=config_schema))

    def define_evaluator(
        self,
        name: str,
        fn: Callable[..., Any],
        *,
        display_name: str = "",
        definition: str = "",
        is_billed: bool = False,
        config_schema: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Evaluator:
        """Register a per-example evaluator: ``fn(request: EvaluatorCallbackRequest) -> EvaluationResult``.

        A :class:`Score` or a list of scores may be returned instead of the
        result. Examples run in order; a raising example is scored ``FAIL``.
        """
        return self.register(
            "evaluator",
            name,
            new_evaluator(
                name,
                fn,
                display_name=display_name,
                definition=definition,
                is_billed=is_billed,
                config_schema=config_schema,
                metadata=metadata,
            ),
        )

    def define_batch_evaluator(
        self,
        name: str,
        fn: Callable[..., Any],
        *,
        display_name: str = "",
        definition: str = "",
        is_billed: bool = False,
        config_schema: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Evaluator:
        """Register a batch evaluator: ``fn(request: EvaluatorRequest) -> list[EvaluationResult]``."""
        return self.register(
            "evaluator",
            name,
            new_batch_evaluator(
                name,
                fn,
                display_name=display_name,
                definition=definition,
                is_billed=is_billed,
                config_schema=config_schema,
                metadata=metadata,
            ),
        )

    def define_tool(
        self,
        name: str,
        fn: Callable[..., Any],
        *,
        description: str | None = None,
        input_schema: dict[str, Any] | None = None,
        output_schema: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Tool:
        """Register a tool (see :mod:`llamanative.ai.tools` for the function's parameters)."""
        return self.register(
            "tool",
            name,
            new_tool(
                name,
                fn,
                description=description,
                input_schema=input_schema,
                output_schema=output_schema,
                metadata=metadata,
            ),
        )

    def tool(
        self, name: str | None = None, *, description: str | None = None, input_schema: dict[str, Any] | None = None
    ) -> Callable[[Callable[..., Any]], Tool]:
        """Decorator form of :meth:`define_tool` (the name defaults to the function's)."""

        def decorate(fn: Callable[..., Any]) -> Tool:
            return self.define_tool(name or fn.__name__, fn, description=description, input_schema=input_schema)

        return decorate

    def define_multipart_tool(
        self,
        name: str,
        fn: Callable[..., Any],
        *,
        description: str | None = None,
        input_schema: dict[str, Any] | None = None,
        output_schema: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Tool:
        """Register a tool whose function returns a :class:`MultipartToolResponse` (output + content parts)."""
        return self.register(
            "tool",
            name,
            new_multipart_tool(
                name,
                fn,
                description=description,
                input_schema=input_schema,
                output_schema=output_schema,
                metadata=metadata,
            ),
        )

    def define_format(self, formatter: Formatter, name: str | None = None) -> Formatter:
        """Register an output format (an object with ``name`` and ``handler(schema)``; see :mod:`.formats`).

        Built-in names (text, json, jsonl, array, enum) cannot be redefined.
        """
        return self.register("format", name or formatter.name, formatter)

    def define_resource(
        self,
        name: str,
        fn: Callable[[ResourceInput], Any],
        *,
        uri: str | None = None,
        template: str | None = None,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Resource:
        """Register a resource with a fixed ``uri`` or a URI ``template`` (``file:///{+path}``).

        ``fn(input: ResourceInput) -> ResourceOutput`` (or a list of parts, or
        a string). ``resource`` parts with a matching URI are replaced by its
        content before the model is called.
        """
        return self.register(
            "resource",
            name,
            new_resource(name, fn, uri=uri, template=template, description=description, metadata=metadata),
        )

    def define_schema(self, name: str, schema: dict[str, Any] | type) -> dict[str, Any]:
        """Register a named JSON schema (or a type's schema): ``output_schema="<name>"`` finds it."""
        return self.register("schema", name, schema if isinstance(schema, dict) else schema_for(schema))

    def define_prompt(
        self,
        name: str,
        *,
        variant: str | None = None,
        model: str | Model | ModelRef | None = None,
        config: Any = None,
        description: str | None = None,
        system: Any = None,
        prompt: Any = None,
        messages: Any = None,
        tools: Sequence[str | Tool] | None = None,
        tool_choice: str | None = None,
        max_turns: int | None = None,
        return_tool_requests: bool | None = None,
        input_schema: dict[str, Any] | type | None = None,
        default_input: dict[str, Any] | None = None,
        output_type: Any = None,
        output_schema: dict[str, Any] | str | None = None,
        output_format: str | None = None,
        output_enums: Sequence[str] | None = None,
        output_instructions: str | None = None,
        custom_constrained: bool = False,
        docs: Any = None,
        use: Sequence[Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Prompt:
        """Register a prompt: a reusable generate request rendered from an input.

        ``system``, ``prompt`` and ``messages`` are each a string template (rendered
        with :attr:`template_renderer`), or a function ``fn(input, context)``
        (or ``fn(input)``) returning text, parts or (for ``messages``) a list
        of messages. The rendered messages are: system, then messages, then
        the user prompt. The key is ``name`` or ``name.variant``. See
        :class:`llamanative.ai.prompt.Prompt` for ``execute`` / ``render`` / ``stream``.
        """
        from .prompt import Prompt

        p = Prompt(
            self,
            name,
            variant=variant,
            model=model,
            config=config,
            description=description,
            system=system,
            prompt=prompt,
            messages=messages,
            tools=tools,
            tool_choice=tool_choice,
            max_turns=max_turns,
            return_tool_requests=return_tool_requests,
            input_schema=input_schema,
            default_input=default_input,
            output_type=output_type,
            output_schema=output_schema,
            output_format=output_format,
            output_enums=output_enums,
            output_instructions=output_instructions,
            custom_constrained=custom_constrained,
            docs=docs,
            use=use,
            metadata=metadata,
        )
        return self.register("prompt", p.key, p)

    def define_data_prompt(
        self,
        name: str,
        output_type: Any,
        *,
        variant: str | None = None,
        model: str | Model | ModelRef | None = None,
        config: Any = None,
        description: str | None = None,
        system: Any = None,
        prompt: Any = None,
        messages: Any = None,
        tools: Sequence[str | Tool] | None = None,
        tool_choice: str | None = None,
        max_turns: int | None = None,
        input_schema: dict[str, Any] | type | None = None,
        default_input: dict[str, Any] | None = None,
        output_format: str | None = None,
        output_instructions: str | None = None,
        custom_constrained: bool = False,
        docs: Any = None,
        use: Sequence[Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> DataPrompt:
        """Register a prompt whose ``execute`` returns ``(output, response)`` typed as ``output_type``."""
        from .prompt import DataPrompt

        p = DataPrompt(
            self,
            name,
            output_type,
            variant=variant,
            model=model,
            config=config,
            description=description,
            system=system,
            prompt=prompt,
            messages=messages,
            tools=tools,
            tool_choice=tool_choice,
            max_turns=max_turns,
            input_schema=input_schema,
            default_input=default_input,
            output_format=output_format,
            output_instructions=output_instructions,
            custom_constrained=custom_constrained,
            docs=docs,
            use=use,
            metadata=metadata,
        )
        return self.register("prompt", p.key, p)

    # -- unregistered forms --------------------------------------------------------------------
    new_model = staticmethod(new_model)
    new_background_model = staticmethod(new_background_model)
    new_tool = staticmethod(new_tool)
    new_multipart_tool = staticmethod(new_multipart_tool)
    new_embedder = staticmethod(new_embedder)
    new_retriever = staticmethod(new_retriever)
    new_evaluator = staticmethod(new_evaluator)
    new_batch_evaluator = staticmethod(new_batch_evaluator)
    new_resource = staticmethod(new_resource)

    # -- lookups -------------------------------------------------------------------------------
    def _lookup(self, kind: str, name: str) -> Any:
        reg: Registry | None = self
        while reg is not None:
            with reg._lock:
                found = reg._actions[kind].get(name)
            if found is not None:
                return found
            reg = reg.parent
        return self._resolve_dynamic(kind, name)

    def _root(self) -> Registry:
        reg = self
        while reg.parent is not None:
            reg = reg.parent
        return reg

    def _resolve_dynamic(self, kind: str, name: str) -> Any:
        if not name:
            return None
        root = self._root()
        namespace, _, rest = name.partition("/")
        if (
            namespace not in root._resolvers
            and kind in ("model", "embedder")
            and name.endswith(".gguf")
            and Path(name).expanduser().is_file()
        ):
            namespace, rest = "llamanative", name  # a bare GGUF path
        resolver = root._resolvers.get(namespace)
        if resolver is None or not rest:
            return None
        with root._lock:
            found = root._actions[kind].get(name)
            if found is not None:
                return found
            action = resolver(kind, rest)
            if action is not None:
                root._actions[kind][name] = action
            return action

    def lookup_model(self, name: str) -> Model | None:
        """A model by name (registered, or resolved: ``llamanative/<store name or .gguf path>``)."""
        return self._lookup("model", name)

    def lookup_background_model(self, name: str) -> BackgroundModel | None:
        return self._lookup("background-model", name)

    def lookup_embedder(self, name: str) -> Embedder | None:
        """An embedder by name (registered, or ``llamanative/<name>``)."""
        return self._lookup("embedder", name)

    def lookup_retriever(self, name: str) -> Retriever | None:
        return self._lookup("retriever", name)

    def lookup_evaluator(self, name: str) -> Evaluator | None:
        return self._lookup("evaluator", name)

    def lookup_tool(self, name: str) -> Tool | None:
        return self._lookup("tool", name)

    def lookup_prompt(self, name: str, variant: str | None = None) -> Prompt | None:
        """A prompt by name (``name.variant`` when a variant is given)."""
        return self._lookup("prompt", f"{name}.{variant}" if variant else name)

    def lookup_format(self, name: str) -> Formatter | None:
        return self._lookup("format", name)

    def lookup_resource(self, name: str) -> Resource | None:
        return self._lookup("resource", name)

    def lookup_schema(self, name: str) -> dict[str, Any] | None:
        return self._lookup("schema", name)

    def list_actions(self, kind: str | None = None) -> list[Any]:
        """The registered actions (of one kind, or all), this registry's and its parents'."""
        kinds = [kind] if kind else list(_KINDS)
        out: list[Any] = []
        seen: set[tuple[str, str]] = set()
        reg: Registry | None = self
        while reg is not None:
            with reg._lock:
                for k in kinds:
                    for name, action in reg._actions[k].items():
                        if (k, name) not in seen:
                            seen.add((k, name))
                            out.append(action)
            reg = reg.parent
        return out

    def find_matching_resource(self, uri: str) -> tuple[Resource, ResourceInput] | None:
        """The first resource matching ``uri`` (this registry first) and its input, or None."""
        for res in self.list_actions("resource"):
            if res.matches(uri):
                return res, ResourceInput(uri=uri, variables=res.extract_variables(uri))
        return None

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
        from .generate import generate

        return generate(self, **options)

    def generate_text(self, **options: Unpack[GenerateKwargs]) -> str:
        """:meth:`generate` and return the text."""
        return self.generate(**options).text()

    def generate_data(self, output_type: Any, **options: Unpack[GenerateKwargs]) -> tuple[Any, ModelResponse]:
        """Generate structured output: ``(output, response)``.

        ``output_type`` is a pydantic model, a dataclass, any type pydantic
        validates, or a JSON schema dict (the output is then plain JSON data).
        The output is None when the response has no text (tool requests kept
        with ``return_tool_requests``, or an interrupt).
        """
        from .generate import generate_data

        return generate_data(self, output_type, **options)

    def generate_stream(self, **options: Unpack[GenerateKwargs]) -> GenerateStream:
        """Stream a generation: an iterator of :class:`StreamValue`.

        Values with ``done=False`` carry a ``chunk``; the last one has
        ``done=True`` and the ``response``. Errors are raised from the
        iteration. Stopping early (``break`` then ``close()``, or a ``with``
        block) aborts the generation and frees the model's slot.
        """
        from .streaming import generate_stream

        return generate_stream(self, **options)

    def generate_data_stream(self, output_type: Any, **options: Unpack[GenerateKwargs]) -> GenerateStream:
        """:meth:`generate_stream` with typed output: chunk values carry ``output`` (chunks with no output
        yet are skipped), the last one the final ``output`` and the ``response``."""
        from .streaming import generate_data_stream

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
        from .generate import generate_with_request

        return generate_with_request(
            self, options, use=use or (), middleware=middleware or (), on_chunk=on_chunk, context=context
        )

    def generate_operation(self, **options: Unpack[GenerateKwargs]) -> Operation:
        """Start a background model's operation (``model=`` must name one).

        Raises:
            FailedPreconditionError: the model did not return an operation.
        """
        from .generate import generate_operation

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

    # -- embedders, retrievers, evaluators ------------------------------------------------------
    def _resolve(self, kind: str, value: Any, cls: type) -> Any:
        if isinstance(value, cls):
            return value
        found = self._lookup(kind, value) if isinstance(value, str) else None
        if found is None:
            raise NotFoundError(f"{kind} {value!r} not found")
        return found

    def embed(
        self, embedder: str | Embedder, documents: Sequence[Document | str] | Document | str, options: Any = None
    ) -> EmbedResponse:
        """Embed documents (or texts): an :class:`EmbedResponse` with one vector per document, in order.

        ``response.as_array()`` is the float32 matrix ``(n, dim)``,
        ``response.vectors()`` the list of float lists. For a local embedder
        (``llamanative/<name>``) the whole list is one batched ``Client.embed``
        call; ``options`` may hold ``dimensions``, ``truncate`` and model options.

        Raises:
            NotFoundError: unknown embedder.
        """
        return self._resolve("embedder", embedder, Embedder).embed(documents, options)

    def retrieve(
        self, retriever: str | Retriever, query: Document | str | Sequence[Document | str], options: Any = None
    ) -> RetrieverResponse:
        """Run a retriever with one query document (:func:`llamanative.ai.retriever.query_document`).

        Raises:
            InvalidArgumentError: no query, or more than one query document.
            NotFoundError: unknown retriever.
        """
        r = self._resolve("retriever", retriever, Retriever)
        return r.retrieve(RetrieverRequest(query=query_document(query), options=options))

    def evaluate(
        self,
        evaluator: str | Evaluator,
        dataset: Sequence[Example | dict[str, Any]],
        options: Any = None,
        eval_run_id: str | None = None,
    ) -> list[EvaluationResult]:
        """Score a dataset with an evaluator, by name or object (:func:`llamanative.ai.evaluator.evaluate`).

        Raises:
            NotFoundError: unknown evaluator name.
            InvalidArgumentError: not an evaluator, or a malformed example.
        """
        e = self._resolve("evaluator", evaluator, Evaluator) if isinstance(evaluator, str) else evaluator
        return evaluate(e, dataset, options=options, eval_run_id=eval_run_id)

    # -- async twins (the sync call in a worker thread) ----------------------------------------
    async def agenerate(self, **options: Unpack[GenerateKwargs]) -> ModelResponse:
        """:meth:`generate` run in a worker thread (``asyncio.to_thread``)."""
        return await asyncio.to_thread(lambda: self.generate(**options))

    async def agenerate_text(self, **options: Unpack[GenerateKwargs]) -> str:
        return await asyncio.to_thread(lambda: self.generate_text(**options))

    async def agenerate_data(self, output_type: Any, **options: Unpack[GenerateKwargs]) -> tuple[Any, ModelResponse]:
        return await asyncio.to_thread(lambda: self.generate_data(output_type, **options))

    def agenerate_stream(self, **options: Unpack[GenerateKwargs]) -> AsyncGenerateStream:
        """:meth:`generate_stream` as an async iterator (each step awaits the worker thread)."""
        from .streaming import AsyncGenerateStream

        return AsyncGenerateStream(self.generate_stream(**options))

    def agenerate_data_stream(self, output_type: Any, **options: Unpack[GenerateKwargs]) -> AsyncGenerateStream:
        from .streaming import AsyncGenerateStream

        return AsyncGenerateStream(self.generate_data_stream(output_type, **options))

    async def aembed(
        self, embedder: str | Embedder, documents: Sequence[Document | str] | Document | str, options: Any = None
    ) -> EmbedResponse:
        return await asyncio.to_thread(self.embed, embedder, documents, options)

    async def aretrieve(
        self, retriever: str | Retriever, query: Document | str | Sequence[Document | str], options: Any = None
    ) -> RetrieverResponse:
        return await asyncio.to_thread(self.retrieve, retriever, query, options)

    async def aevaluate(
        self,
        evaluator: str | Evaluator,
        dataset: Sequence[Example | dict[str, Any]],
        options: Any = None,
        eval_run_id: str | None = None,
    ) -> list[EvaluationResult]:
        return await asyncio.to_thread(self.evaluate, evaluator, dataset, options, eval_run_id)


Genkit = Registry
