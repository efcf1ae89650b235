"""The generate loop: model calls, tool rounds, interrupts and resume, output parsing.

The rules are Go Genkit's ``ai`` package (v1.12), with three deliberate
differences: tools are offered in declaration order (Go's come from a map),
resumed tool responses are recorded in request order too, and the loop sets
``response.request`` itself so ``history()`` is always complete. Built-in
model middleware works on copies, so the history holds the messages as the
loop sent them.

Turns: ``max_turns`` (default 5; 0 means the default; negative is an error)
counts tool rounds. N rounds allow N+1 model calls; a model that asks for
tools once more raises :class:`MaxTurnsExceeded` before the tools run. A
resume counts as a round.

Per-call middleware (``use=``, :mod:`.hooks`) wraps each iteration of the
loop (the iterations nest, as in Go), each model call and each tool run.

The request types and how ``generate``'s options become a request are in
:mod:`.request` (re-exported here); the tool rounds and resume in
:mod:`.tool_rounds`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, cast

from pydantic import ValidationError

from .actions import ActionRegistry
from .errors import (
    FailedPreconditionError,
    GenkitError,
    InternalError,
    InvalidArgumentError,
    InvalidOutput,
    MaxTurnsExceeded,
    ModelNotFound,
    ToolNotFound,
)
from .formats import FormatHandler, inject_instructions, resolve_format_name, unknown_format
from .hooks import GenerateParams, Hooks, build_generate_chain, build_model_chain, build_tool_runner, resolve_hooks
from .messages import Role
from .middleware import ModelFn, chain
from .model_types import (
    ABNORMAL_FINISH,
    FinishReason,
    ModelOutputConfig,
    ModelRequest,
    ModelResponse,
    ModelResponseChunk,
    Operation,
)
from .request import (
    DEFAULT_MAX_TURNS,
    GenerateActionOptions,
    GenerateActionOutputConfig,
    GenerateActionResume,
    GenerateDataKwargs,
    GenerateKwargs,
    build_options,
    process_resources,
)
from .tool_rounds import ensure_refs, handle_resume, handle_tool_requests
from .tools import Tool

__all__ = [
    "DEFAULT_MAX_TURNS",
    "GenerateActionOptions",
    "GenerateActionOutputConfig",
    "GenerateActionResume",
    "GenerateDataKwargs",
    "GenerateKwargs",
    "build_options",
    "generate",
    "generate_data",
    "generate_operation",
    "generate_text",
    "generate_with_request",
    "process_resources",
    "typed_output",
]


# -- streaming: chunk indexes and roles ------------------------------------------------------------
class _Stream:
    """Assigns chunk roles and indexes (one more per role change), parses their output, calls back.

    Indexes are tracked even when nobody streams, so every iteration knows
    the index its model message gets (``GenerateParams.message_index``).
    """

    def __init__(self, on_chunk: Callable[[ModelResponseChunk], None] | None, handler: FormatHandler | None) -> None:
        self.on_chunk = on_chunk
        self.handler = handler
        self.role = Role.MODEL.value
        self.index = 0
        self.lock = threading.Lock()

    def begin(self, index: int) -> None:
        """Start a model message at ``index`` (each iteration of the loop)."""
        with self.lock:
            self.role = Role.MODEL.value
            self.index = index

    def emit(self, chunk: ModelResponseChunk) -> None:
        with self.lock:
            role: str = chunk.role or Role.MODEL.value
            if role != self.role:
                self.index += 1
                self.role = role
            if self.on_chunk is None:
                return
            chunk.role = cast(Role, role)  # wire models hold an enum field's value (use_enum_values)
            chunk.index = self.index
            chunk.attach_output(self.handler)
            self.on_chunk(chunk)

    def emit_as_is(self, chunk: ModelResponseChunk) -> None:
        """A chunk sent by a ``wrap_generate`` hook: its index is kept, its role defaults to model."""
        if self.on_chunk is None:
            return
        with self.lock:
            chunk.role = chunk.role or cast(Role, Role.MODEL.value)
            chunk.attach_output(self.handler)
            self.on_chunk(chunk)

    @property
    def next_index(self) -> int:
        """The index of the next model message (after the messages streamed so far)."""
        return self.index + 1

    @property
    def callback(self) -> Callable[[ModelResponseChunk], None] | None:
        return self.emit if self.on_chunk is not None else None

    @property
    def hook_callback(self) -> Callable[[ModelResponseChunk], None] | None:
        return self.emit_as_is if self.on_chunk is not None else None


# -- the loop ------------------------------------------------------------------------------------------
def _call_tools(
    registry: ActionRegistry, opts: GenerateActionOptions, hooks: Sequence[Hooks]
) -> tuple[ActionRegistry, list[Tool]]:
    """The call's tools (declared ones in order, then those its middleware adds) and the registry to run them
    in (a child one when middleware adds tools).

    Raises:
        InvalidArgumentError: a duplicate tool name.
        ToolNotFound: a declared tool is unknown.
    """
    tools: list[Tool] = []
    for tname in opts.tools or ():
        if any(t.name == tname for t in tools):
            raise InvalidArgumentError(f"duplicate tool {tname!r}")
        tool = registry.lookup_tool(tname)
        if tool is None:
            raise ToolNotFound(f"tool {tname!r} not found")
        tools.append(tool)
    added = [t for h in hooks for t in h.tools]
    if not added:
        return registry, tools
    child = registry.new_child()
    for t in added:
        if any(x.name == t.name for x in tools):
            raise InvalidArgumentError(f"tool {t.name!r} is contributed by middleware but already declared elsewhere")
        child.register("tool", t.name, t)
        tools.append(t)
    return child, tools


def generate_with_request(
    registry: ActionRegistry,
    opts: GenerateActionOptions,
    *,
    use: Sequence[Any] = (),
    middleware: Sequence[Any] = (),
    on_chunk: Callable[[ModelResponseChunk], None] | None = None,
    context: dict[str, Any] | None = None,
) -> ModelResponse:
    """Run a rendered request: resolve the model, tools and format, then the loop (Go's ``GenerateWithRequest``).

    ``use`` is the per-call middleware (:mod:`.hooks`), ``middleware`` the
    legacy model middleware (outside every ``wrap_model`` hook).

    Raises:
        See :meth:`Registry.generate`.
    """
    name = opts.model or registry.default_model
    if not name:
        raise InvalidArgumentError("model is required")
    model = registry.lookup_model(name)
    bg = registry.lookup_background_model(name) if model is None else None
    if model is not None:
        base_fn: ModelFn = model.generate
    elif bg is not None:
        base_fn = bg.as_model_fn()
    else:
        raise ModelNotFound(f"model {name!r} not found")

    hooks = resolve_hooks(use)
    registry, tools = _call_tools(registry, opts, hooks)

    max_turns = opts.max_turns or 0
    if max_turns < 0:
        raise InvalidArgumentError(f"max turns must be greater than 0, got {max_turns}")
    max_turns = max_turns or DEFAULT_MAX_TURNS

    messages = list(opts.messages)
    output_cfg = ModelOutputConfig()
    handler: FormatHandler | None = None
    if opts.output is not None:
        schema = opts.output.json_schema
        fmt = resolve_format_name(schema, opts.output.format)
        formatter = registry.lookup_format(fmt)
        if formatter is None:
            raise unknown_format(fmt)
        handler = formatter.handler(schema)
        output_cfg = handler.config()
        output_cfg.constrained = bool(
            schema is not None
            and opts.output.constrained
            and output_cfg.constrained
            and model is not None
            and model.supports_constrained(bool(tools))
        )
        if not output_cfg.constrained:
            instructions = opts.output.instructions if opts.output.instructions is not None else handler.instructions()
            messages = inject_instructions(messages, instructions)
            output_cfg.schema_ = None

    request = ModelRequest(
        messages=messages,
        config=opts.config,
        docs=opts.docs or None,
        tool_choice=opts.tool_choice or None,
        tools=[t.definition() for t in tools] or None,
        output=output_cfg,
    )
    model_fn = chain(middleware, build_model_chain(hooks, base_fn))
    run_tool = build_tool_runner(hooks)
    stream = _Stream(on_chunk, handler)
    resume = opts.resume if opts.resume is not None and (opts.resume.respond or opts.resume.restart) else None

    def step(params: GenerateParams) -> ModelResponse | GenerateParams:
        """One iteration: the final response, or the params of the next iteration."""
        request = params.request
        stream.begin(params.message_index)
        if params.iteration == 0 and resume is not None:
            revised, tool_msg = handle_resume(registry, request.messages, resume, context, run_tool)
            stream.emit(ModelResponseChunk(role=Role.TOOL, content=tool_msg.content))
            return replace(
                params,
                request=request.model_copy(update={"messages": revised}),
                iteration=1,
                message_index=stream.next_index,
            )
        resp = model_fn(request, stream.callback)
        if not isinstance(resp, ModelResponse):
            raise InternalError(f"model {name!r} returned {type(resp).__name__}, not a ModelResponse")
        resp.request = request
        ensure_refs(resp.message)
        if bg is not None and resp.operation is not None:
            return resp
        if handler is not None:
            resp.attach_format(handler)
            if resp.finish_reason not in ABNORMAL_FINISH:
                try:
                    resp.message = handler.parse_message(resp.message)
                except GenkitError as exc:
                    raise InvalidOutput(f"model failed to generate output matching expected schema: {exc}") from exc
        message = resp.message
        if message is None or not message.tool_requests() or opts.return_tool_requests:
            return resp
        if params.iteration + 1 > max_turns:
            raise MaxTurnsExceeded(f"exceeded maximum tool call iterations ({max_turns})")
        out, interrupted = handle_tool_requests(registry, message, stream.callback, context, run_tool)
        if interrupted:
            resp.finish_reason = cast(FinishReason, FinishReason.INTERRUPTED.value)
            resp.finish_message = "One or more tool calls resulted in interrupts."
            resp.message = out
            return resp
        stream.emit(ModelResponseChunk(role=Role.TOOL, content=out.content))
        return replace(
            params,
            request=request.model_copy(update={"messages": [*request.messages, message, out]}),
            iteration=params.iteration + 1,
            message_index=stream.next_index,
        )

    nested = any(h.wrap_generate is not None for h in hooks)

    def run(params: GenerateParams) -> ModelResponse:
        while True:
            out = step(params)
            if isinstance(out, ModelResponse):
                return out
            if nested:  # the next iteration runs inside this one's hooks, as in Go
                return hooked(out)
            params = out

    hooked = build_generate_chain(hooks, run)
    return hooked(
        GenerateParams(options=opts, request=request, iteration=0, message_index=0, on_chunk=stream.hook_callback)
    )


def generate(registry: ActionRegistry, **options: Any) -> ModelResponse:
    """See :meth:`Registry.generate`."""
    use = options.pop("use", None) or ()
    middleware = options.pop("middleware", None) or ()
    on_chunk = options.pop("on_chunk", None)
    context = options.pop("context", None)
    r, opts = build_options(registry, options)
    return generate_with_request(r, opts, use=use, middleware=middleware, on_chunk=on_chunk, context=context)


def generate_text(registry: ActionRegistry, **options: Any) -> str:
    return generate(registry, **options).text()


def typed_output(resp: ModelResponse, output_type: Any) -> Any:
    """The response's output as ``output_type`` (a dict type is a JSON schema: plain data), or None without text.

    Raises:
        InvalidOutput: the output does not parse or does not fit the type.
    """
    if resp.text() == "":
        return None
    try:
        if output_type is str:
            return resp.text()
        return resp.output(None if isinstance(output_type, dict) else output_type)
    except ValidationError as exc:
        raise InvalidOutput(f"failed to parse output: {exc}") from exc


def generate_data(registry: ActionRegistry, output_type: Any, **options: Any) -> tuple[Any, ModelResponse]:
    """See :meth:`Registry.generate_data`."""
    options = {"output_type": output_type, **options}
    resp = generate(registry, **options)
    return typed_output(resp, output_type), resp


def generate_operation(registry: ActionRegistry, **options: Any) -> Operation:
    """See :meth:`Registry.generate_operation`."""
    resp = generate(registry, **options)
    if resp.operation is None:
        raise FailedPreconditionError("background model did not return an operation")
    return resp.operation
