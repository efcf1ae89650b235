"""The ``define_*`` forms: build an action and register it (and the ``new_*`` forms that only build one).

Each ``define_x(name, ...)`` is ``register(kind, name, new_x(name, ...))``:
names are unique per kind in a registry (a second definition raises
:class:`AlreadyExistsError`); the action is returned. The ``new_*`` forms
are the module-level constructors, reachable from a registry object too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .actions import ActionRegistry
from .embedder import Embedder, EmbedderInfo, new_embedder
from .evaluator import Evaluator, new_batch_evaluator, new_evaluator
from .formats import Formatter
from .model import BackgroundModel, InfoArg, Model, new_background_model, new_model
from .model_ref import ModelRef
from .model_types import Operation
from .prompt import DataPrompt, Prompt, lookup_data_prompt
from .resource import Resource, ResourceInput, new_resource
from .retriever import Retriever, RetrieverInfo, RetrieverRequest, new_retriever
from .schema import schema_for
from .tools import Tool, new_multipart_tool, new_tool

__all__ = ["Definitions"]


class Definitions(ActionRegistry):
    """An :class:`ActionRegistry` with the ``define_*`` and ``new_*`` forms of every kind of action."""

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
        input_schema: dict[str, Any] | type | str | None = None,
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

        ``input_schema`` is a JSON schema, a type (the input is converted to
        it), or the name of a schema registered with :meth:`define_schema`
        (Go's ``WithInputSchemaName``), looked up each time the prompt renders:
        a name that is still not registered then is an ``InvalidSchema`` error.
        ``output_schema`` may name a registered schema the same way.
        """
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
        input_schema: dict[str, Any] | type | str | None = None,
        default_input: dict[str, Any] | None = None,
        output_format: str | None = None,
        output_instructions: str | None = None,
        custom_constrained: bool = False,
        docs: Any = None,
        use: Sequence[Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> DataPrompt:
        """Register a prompt whose ``execute`` returns ``(output, response)`` typed as ``output_type`` (Go's
        ``DefineDataPrompt``): the type sets the output schema (format ``json``), except ``str``, whose output
        is the text. The other options are :meth:`define_prompt`'s."""
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

    def lookup_data_prompt(self, name: str, output_type: Any = str, *, variant: str | None = None) -> DataPrompt | None:
        """The prompt ``name`` (or its ``variant``) with typed output (Go's ``LookupDataPrompt``), None when
        not defined: see :func:`llamanative.ai.lookup_data_prompt`. For prompts loaded from ``.prompt``
        files, their output schema makes the output; ``output_type`` reads it."""
        return lookup_data_prompt(self, name, output_type, variant=variant)

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
