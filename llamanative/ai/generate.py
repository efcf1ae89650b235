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
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypedDict

from pydantic import ValidationError

from ._wire import WireModel
from .errors import (
    FailedPreconditionError,
    GenkitError,
    InternalError,
    InvalidArgumentError,
    InvalidOutput,
    InvalidPart,
    MaxTurnsExceeded,
    ModelNotFound,
    NotFoundError,
    ToolFailed,
    ToolNotFound,
    UnresolvedToolRequest,
)
from .formats import FormatHandler, inject_instructions, resolve_format_name, unknown_format
from .hooks import (
    GenerateParams,
    Hooks,
    ToolRunner,
    build_generate_chain,
    build_model_chain,
    build_tool_runner,
    resolve_hooks,
)
from .messages import Document, Message, Role, as_document, as_message
from .middleware import chain
from .model import BackgroundModel, Model
from .model_ref import ModelRef, resolve_config
from .model_types import ABNORMAL_FINISH, ModelOutputConfig, ModelRequest, ModelResponse, ModelResponseChunk, Operation
from .parts import Part, ToolRequest, ToolResponse, new_response_for_tool_request, new_text_part, new_tool_response_part
from .resource import Resource
from .schema import SchemaValidationError, schema_for, validate
from .tools import MultipartToolResponse, Tool, ToolContext, ToolInterrupt, _PartialSender

if TYPE_CHECKING:
    from .registry import Registry

__all__ = [
    "DEFAULT_MAX_TURNS",
    "GenerateActionOptions",
    "GenerateActionOutputConfig",
    "GenerateActionResume",
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

DEFAULT_MAX_TURNS = 5


# -- the request, as Genkit's GenerateActionOptions --------------------------------------------
class GenerateActionOutputConfig(WireModel):
    format: str | None = None
    json_schema: dict[str, Any] | None = None
    instructions: str | None = None
    "Instructions to inject instead of the format's (an empty string: none); None = the format's own."

    constrained: bool | None = None
    "Ask for native constrained output (used only when the format, schema and model allow it)."

    content_type: str | None = None


class GenerateActionResume(WireModel):
    respond: list[Part] | None = None
    restart: list[Part] | None = None
    metadata: dict[str, Any] | None = None


class GenerateActionOptions(WireModel):
    """A fully rendered generate request (what prompts render to; the JSON of Genkit's generate action)."""

    model: str | None = None
    messages: list[Message] = []
    tools: list[str] | None = None
    "Tool names, resolved in the registry the request runs in."

    config: Any = None
    tool_choice: str | None = None
    docs: list[Document] | None = None
    max_turns: int | None = None
    return_tool_requests: bool | None = None
    output: GenerateActionOutputConfig | None = None
    resume: GenerateActionResume | None = None


class GenerateKwargs(TypedDict, total=False):
    """The options of ``generate`` and its variants (Go's ``With*`` options).

    Collections (``tools``, ``docs`` ...) replace; unset options keep their default.
    """

    model: str | Model | BackgroundModel | ModelRef
    """The model: a name (``llamanative/smollm2``), a model object, or a :class:`ModelRef` (whose config is used
    when ``config`` is not given). Default: the registry's default model."""

    config: Any
    """Model config: ``{"temperature": 0, "maxOutputTokens": 64}``, a ``GenerationCommonConfig``, llamanative
    ``Options`` (for local models), or the model's own config type. Replaces a ``ModelRef``'s config whole."""

    prompt: str | Part | Sequence[Part | str] | Callable[[], Any]
    "The user message (text, parts, or a function returning either), added after ``messages``."

    system: str | Part | Sequence[Part | str] | Callable[[], Any]
    "The system message, put first."

    messages: Sequence[Message | dict[str, Any]]
    "The conversation so far (e.g. ``response.history()``)."

    messages_fn: Callable[[], Sequence[Message | dict[str, Any]]]
    "A function returning the messages (called once per generate)."

    docs: Sequence[Document | str]
    "Context documents (appended to the last user message unless the model takes them itself)."

    tools: Sequence[str | Tool]
    "Tools the model may call, by name or object (objects not registered are visible to this call only)."

    tool_choice: str
    "``auto`` (default), ``required`` or ``none``."

    max_turns: int
    "Most tool rounds (default 5; 0 = default; negative is an error)."

    return_tool_requests: bool
    "Return the model's tool requests instead of running them."

    output_type: Any
    "A type for the output (pydantic model, dataclass ...): its schema is the output schema, format json."

    output_schema: dict[str, Any] | str
    "A JSON schema for the output, or the name of a schema defined with ``define_schema``."

    output_format: str
    "``text``, ``json``, ``jsonl``, ``array``, ``enum`` or a format defined with ``define_format``."

    output_enums: Sequence[str]
    "The allowed values: format enum."

    output_instructions: str
    "Instructions to inject instead of the format's (an empty string for none); implies ``custom_constrained``."

    custom_constrained: bool
    "Do not ask the model to constrain output natively: the format's instructions are injected instead."

    resources: Sequence[Resource]
    "Resources visible to this call (for ``resource`` parts)."

    use: Sequence[Any]
    """Per-call middleware (Go's ``WithUse``), first listed outermost: :class:`~llamanative.ai.Middleware`
    objects with ``wrap_generate`` / ``wrap_model`` / ``wrap_tool`` hooks, or plain model middleware
    (``next -> fn``) acting as a ``wrap_model`` hook. See :mod:`llamanative.ai.hooks`."""

    middleware: Sequence[Any]
    "Model middleware (``next -> fn``, Go's deprecated ``WithMiddleware``), outside every ``wrap_model`` hook."

    on_chunk: Callable[[ModelResponseChunk], None]
    "Streaming callback, called with every chunk (model text, tool results). Raising stops the generation."

    tool_responses: Sequence[Part]
    "Resume: responses to interrupted tool requests (``respond_with``)."

    tool_restarts: Sequence[Part]
    "Resume: tool requests to run again (``restart_with``)."

    resume_metadata: dict[str, Any]
    'Resume: metadata for the tool message (default ``{"resumed": true}``).'

    context: dict[str, Any]
    "Request-scoped data handed to tools (``ToolContext.context``)."


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
            role = chunk.role or Role.MODEL.value
            if role != self.role:
                self.index += 1
                self.role = role
            if self.on_chunk is None:
                return
            chunk.role = role
            chunk.index = self.index
            chunk.attach_output(self.handler)
            self.on_chunk(chunk)

    def emit_as_is(self, chunk: ModelResponseChunk) -> None:
        """A chunk sent by a ``wrap_generate`` hook: its index is kept, its role defaults to model."""
        if self.on_chunk is None:
            return
        with self.lock:
            chunk.role = chunk.role or Role.MODEL.value
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


# -- tool rounds -------------------------------------------------------------------------------------
def _ensure_refs(message: Message | None) -> None:
    for p in message.content if message else ():
        if p.is_tool_request() and not p.tool_request.ref:
            p.tool_request.ref = str(uuid.uuid4())


def _run_tool(
    registry: Registry, run_tool: ToolRunner, request: ToolRequest, ctx: ToolContext
) -> MultipartToolResponse:
    """Run one tool request through the ``wrap_tool`` hooks; ToolInterrupt passes through, any other failure
    (of the tool or a hook) becomes ToolFailed."""
    name = request.name
    tool = registry.lookup_tool(name)
    if tool is None:
        raise ToolNotFound(f"tool {name!r} not found")
    try:
        return run_tool(tool, request, ctx)
    except ToolInterrupt:
        raise
    except Exception as exc:
        raise ToolFailed(f"tool {name!r} failed: {exc}", tool_name=name) from exc


def _parallel(fns: list[Callable[[], Any]]) -> list[tuple[Any, BaseException | None]]:
    """Run the functions concurrently (one thread each); (result, error) pairs in order."""

    def safe(fn: Callable[[], Any]) -> tuple[Any, BaseException | None]:
        try:
            return fn(), None
        except BaseException as exc:  # noqa: BLE001 (returned to the caller, re-raised there)
            return None, exc

    if len(fns) <= 1:
        return [safe(fn) for fn in fns]
    with ThreadPoolExecutor(max_workers=len(fns), thread_name_prefix="genkit-tool") as pool:
        return list(pool.map(safe, fns))


def _handle_tool_requests(
    registry: Registry, message: Message, stream: _Stream, context: dict[str, Any] | None, run_tool: ToolRunner
) -> tuple[Message | None, Message | None]:
    """Run the message's tool requests concurrently: (tool message, None), or (None, revised message)
    when a tool interrupted."""
    revised = message.clone()
    idxs = [i for i, p in enumerate(revised.content) if p.is_tool_request()]
    sender = _PartialSender(
        (lambda part: stream.emit(ModelResponseChunk(role=Role.TOOL, content=[part]))) if stream.callback else None
    )

    def job(i: int) -> Callable[[], Any]:
        req = revised.content[i].tool_request

        def run() -> Any:
            ctx = ToolContext(req.name, req.ref, context=context, send_partial=sender.for_request(req))
            try:
                return _run_tool(registry, run_tool, req, ctx)
            except ToolInterrupt as ti:
                return ti

        return run

    results = _parallel([job(i) for i in idxs])
    for _, err in results:
        if err is not None:
            raise err
    responses: list[Part] = []
    interrupted = False
    for i, (res, _) in zip(idxs, results):
        part = revised.content[i]
        meta = dict(part.metadata or {})
        if isinstance(res, ToolInterrupt):
            interrupted = True
            meta["interrupt"] = res.metadata if res.metadata is not None else True
        else:
            meta["pendingOutput"] = res.output
            resp = new_tool_response_part(
                ToolResponse(
                    name=part.tool_request.name, ref=part.tool_request.ref, output=res.output, content=res.content
                )
            )
            resp.metadata = res.metadata
            responses.append(resp)
        revised.content[i] = part.model_copy(update={"metadata": meta})
    if interrupted:
        return None, revised
    return Message(role=Role.TOOL, content=responses), None


def _handle_resume(
    registry: Registry,
    messages: list[Message],
    resume: GenerateActionResume,
    context: dict[str, Any] | None,
    run_tool: ToolRunner,
) -> tuple[list[Message], Message]:
    """Resolve the last model message's tool requests from pending outputs, responses and restarts.

    Returns the revised messages (ending with the revised model message and
    the new tool message) and the tool message.
    """
    respond = list(resume.respond or ())
    restart = list(resume.restart or ())
    for p in respond:
        if not p.is_tool_response():
            raise InvalidArgumentError("respond part is not a tool response")
    for p in restart:
        if not p.is_tool_request():
            raise InvalidPart("restart part is not a tool request")
    if not messages:
        raise FailedPreconditionError("cannot resume generation with no messages")
    last = messages[-1]
    if last.role != Role.MODEL or not last.tool_requests():
        raise FailedPreconditionError(
            "cannot resume generation unless the last message is by a model with at least one tool request"
        )

    def resolve(p: Part) -> Callable[[], tuple[Part, Part | None]]:
        def run() -> tuple[Part, Part | None]:
            req = p.tool_request
            meta = dict(p.metadata or {})
            if "pendingOutput" in meta:
                out = meta.pop("pendingOutput")
                resp = new_response_for_tool_request(p, out)
                resp.metadata = {"source": "pending"}
                return p.model_copy(update={"metadata": meta}), resp
            if "interrupt" in meta:
                meta["resolvedInterrupt"] = meta.pop("interrupt")
            for r in respond:
                if r.tool_response.name == req.name and r.tool_response.ref == req.ref:
                    tool = registry.lookup_tool(req.name)
                    if tool is None:
                        raise ToolNotFound(f"tool {req.name!r} not found")
                    if tool.output_schema:
                        try:
                            validate(r.tool_response.output, tool.output_schema)
                        except SchemaValidationError as exc:
                            raise InvalidArgumentError(f"tool {req.name!r} output validation failed: {exc}") from exc
                    resp = new_tool_response_part(r.tool_response)
                    resp.metadata = r.metadata
                    return p.model_copy(update={"metadata": meta}), resp
            for r in restart:
                if r.tool_request.name == req.name and r.tool_request.ref == req.ref:
                    rmeta = r.metadata or {}
                    resumed = rmeta.get("resumed")
                    if not isinstance(resumed, dict):
                        resumed = {} if resumed is True else None
                    ctx = ToolContext(
                        req.name, req.ref, context=context, resumed=resumed, original_input=rmeta.get("replacedInput")
                    )
                    try:
                        out = _run_tool(
                            registry, run_tool, ToolRequest(name=req.name, ref=req.ref, input=r.tool_request.input), ctx
                        )
                    except ToolInterrupt:
                        return p, None  # interrupted again
                    resp = new_tool_response_part(
                        ToolResponse(name=req.name, ref=req.ref, output=out.output, content=out.content)
                    )
                    resp.metadata = out.metadata
                    return p.model_copy(update={"metadata": meta}), resp
            label = f"#{req.ref}" if req.ref else req.name
            raise UnresolvedToolRequest(
                f"unresolved tool request {label!r} was not handled by the resume arguments; supply "
                "tool_responses or tool_restarts, or ensure there is pending output from a previous tool call"
            )

        return run

    idxs = [i for i, p in enumerate(last.content) if p.is_tool_request()]
    results = _parallel([resolve(last.content[i]) for i in idxs])
    for _, err in results:
        if err is not None:
            raise err
    if any(resp is None for (_, resp), _ in results):
        raise FailedPreconditionError("One or more tools triggered an interrupt during a restarted execution.")
    content = list(last.content)
    responses = []
    for i, ((req_part, resp), _) in zip(idxs, results):
        content[i] = req_part
        responses.append(resp)
    tool_msg = Message(
        role=Role.TOOL,
        content=responses,
        metadata={"resumed": resume.metadata if resume.metadata is not None else True},
    )
    return [*messages[:-1], last.model_copy(update={"content": content}), tool_msg], tool_msg


# -- the loop ------------------------------------------------------------------------------------------
def _call_tools(registry: Registry, opts: GenerateActionOptions, hooks: Sequence[Hooks]) -> tuple[Registry, list[Tool]]:
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
    registry: Registry,
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
    if model is None and bg is None:
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
    model_fn = chain(middleware, build_model_chain(hooks, bg.as_model_fn() if bg is not None else model.generate))
    run_tool = build_tool_runner(hooks)
    stream = _Stream(on_chunk, handler)
    resume = opts.resume if opts.resume is not None and (opts.resume.respond or opts.resume.restart) else None

    def step(params: GenerateParams) -> ModelResponse | GenerateParams:
        """One iteration: the final response, or the params of the next iteration."""
        request = params.request
        stream.begin(params.message_index)
        if params.iteration == 0 and resume is not None:
            revised, tool_msg = _handle_resume(registry, request.messages, resume, context, run_tool)
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
        _ensure_refs(resp.message)
        if bg is not None and resp.operation is not None:
            return resp
        if handler is not None:
            resp.attach_format(handler)
            if resp.finish_reason not in ABNORMAL_FINISH:
                try:
                    resp.message = handler.parse_message(resp.message)
                except GenkitError as exc:
                    raise InvalidOutput(f"model failed to generate output matching expected schema: {exc}") from exc
        if not resp.tool_requests() or opts.return_tool_requests:
            return resp
        if params.iteration + 1 > max_turns:
            raise MaxTurnsExceeded(f"exceeded maximum tool call iterations ({max_turns})")
        tool_msg, interrupted = _handle_tool_requests(registry, resp.message, stream, context, run_tool)
        if interrupted is not None:
            resp.finish_reason = "interrupted"
            resp.finish_message = "One or more tool calls resulted in interrupts."
            resp.message = interrupted
            return resp
        stream.emit(ModelResponseChunk(role=Role.TOOL, content=tool_msg.content))
        return replace(
            params,
            request=request.model_copy(update={"messages": [*request.messages, resp.message, tool_msg]}),
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


# -- Generate: options → request -----------------------------------------------------------------------
def _content(value: Any) -> list[Part]:
    if callable(value) and not isinstance(value, (str, Part)):
        value = value()
    if value is None:
        return []
    if isinstance(value, (str, Part, dict)):
        value = [value]
    return [
        new_text_part(v) if isinstance(v, str) else (v if isinstance(v, Part) else Part.model_validate(v))
        for v in value
    ]


def build_options(registry: Registry, options: GenerateKwargs) -> tuple[Registry, GenerateActionOptions]:
    """The registry a call runs in (a child one when it brings its own tools, model or resources) and its
    rendered request (Go's ``Generate`` before ``GenerateWithRequest``)."""
    unknown = set(options) - set(GenerateKwargs.__annotations__)
    if unknown:
        raise InvalidArgumentError(f"unknown generate option(s): {', '.join(sorted(unknown))}")
    r = registry
    child: Registry | None = None

    def local() -> Registry:
        nonlocal child, r
        if child is None:
            child = registry.new_child()
            r = child
        return child

    # output
    schema: dict[str, Any] | None = None
    fmt = options.get("output_format")
    if options.get("output_type") is not None:
        tp = options["output_type"]
        schema = tp if isinstance(tp, dict) else schema_for(tp)
    if options.get("output_schema") is not None:
        s = options["output_schema"]
        if isinstance(s, str):
            found = registry.lookup_schema(s)
            if found is None:
                raise InvalidArgumentError(f"invalid output schema: schema {s!r} is not defined")
            s = found
        schema = s
    if options.get("output_enums") is not None:
        schema = {"type": "string", "enum": list(options["output_enums"])}
        fmt = fmt or "enum"
    if schema is not None and not fmt:
        fmt = "json"
    instructions = options.get("output_instructions")
    constrained = not (options.get("custom_constrained") or instructions is not None)

    # model, tools, resources
    model = options.get("model")
    model_name: str | None = None
    if isinstance(model, ModelRef):
        model_name = model.name
    elif isinstance(model, (Model, BackgroundModel)):
        model_name = model.name
        found = registry.lookup_model(model.name) or registry.lookup_background_model(model.name)
        if found is not model:
            local().register(model.kind, model.name, model)
    elif model is not None:
        model_name = str(model)
    tool_names: list[str] = []
    for t in options.get("tools") or ():
        tname = t.name if isinstance(t, Tool) else str(t)
        if tname in tool_names:
            raise InvalidArgumentError(f"duplicate tool {tname!r}")
        tool_names.append(tname)
        if isinstance(t, Tool) and registry.lookup_tool(tname) is None:
            local().register("tool", tname, t)
    for res in options.get("resources") or ():
        local().register("resource", res.name, res)

    # messages: system, messages, prompt
    messages: list[Message] = []
    system = _content(options.get("system"))
    if system:
        messages.append(Message(role=Role.SYSTEM, content=system))
    if options.get("messages_fn") is not None:
        messages.extend(as_message(m) for m in options["messages_fn"]())
    messages.extend(as_message(m) for m in options.get("messages") or ())
    prompt = _content(options.get("prompt"))
    if prompt:
        messages.append(Message(role=Role.USER, content=prompt))
    try:
        messages = process_resources(r, messages)
    except GenkitError:
        raise
    except Exception as exc:
        raise InternalError(f"error processing resources: {exc}") from exc

    resume = None
    if options.get("tool_responses") or options.get("tool_restarts"):
        resume = GenerateActionResume(
            respond=list(options.get("tool_responses") or ()) or None,
            restart=list(options.get("tool_restarts") or ()) or None,
            metadata=options.get("resume_metadata"),
        )
    tool_choice = options.get("tool_choice")
    opts = GenerateActionOptions(
        model=model_name,
        messages=messages,
        tools=tool_names or None,
        config=resolve_config(model, options.get("config")),
        tool_choice=getattr(tool_choice, "value", tool_choice),
        docs=[as_document(d) for d in options.get("docs") or ()] or None,
        max_turns=options.get("max_turns"),
        return_tool_requests=options.get("return_tool_requests"),
        output=GenerateActionOutputConfig(
            format=fmt, json_schema=schema, instructions=instructions, constrained=constrained
        ),
        resume=resume,
    )
    return r, opts


def process_resources(registry: Registry, messages: list[Message]) -> list[Message]:
    """The messages with every ``resource`` part replaced by the matching resource's content.

    Raises:
        NotFoundError: no resource matches a part's URI.
    """
    if not any(p.is_resource() for m in messages for p in m.content):
        return messages
    out = []
    for m in messages:
        content: list[Part] = []
        for p in m.content:
            if not p.is_resource():
                content.append(p)
                continue
            found = registry.find_matching_resource(p.resource.uri)
            if found is None:
                raise NotFoundError(f"no resource found for URI {p.resource.uri!r}")
            res, inp = found
            content.extend(res.execute(inp).content)
        out.append(m.model_copy(update={"content": content}))
    return out


def generate(registry: Registry, **options: Any) -> ModelResponse:
    """See :meth:`Registry.generate`."""
    use = options.pop("use", None) or ()
    middleware = options.pop("middleware", None) or ()
    on_chunk = options.pop("on_chunk", None)
    context = options.pop("context", None)
    r, opts = build_options(registry, options)
    return generate_with_request(r, opts, use=use, middleware=middleware, on_chunk=on_chunk, context=context)


def generate_text(registry: Registry, **options: Any) -> str:
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


def generate_data(registry: Registry, output_type: Any, **options: Any) -> tuple[Any, ModelResponse]:
    """See :meth:`Registry.generate_data`."""
    options = {"output_type": output_type, **options}
    resp = generate(registry, **options)
    return typed_output(resp, output_type), resp


def generate_operation(registry: Registry, **options: Any) -> Operation:
    """See :meth:`Registry.generate_operation`."""
    resp = generate(registry, **options)
    if resp.operation is None:
        raise FailedPreconditionError("background model did not return an operation")
    return resp.operation
