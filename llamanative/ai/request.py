"""The generate request: Genkit's ``GenerateActionOptions``, the options of ``generate``, and how one becomes the other.

:class:`GenerateKwargs` are the keyword options of ``Genkit.generate`` (Go's
``With*`` options); :func:`build_options` renders them into a
:class:`GenerateActionOptions` (the JSON of Genkit's generate action, what
prompts render to), in the registry the call runs in: a child one when the
call brings its own model, tools or resources. ``resource`` parts are
replaced by the resources' content here, before any model is called.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypedDict

from ._wire import WireModel
from .actions import ActionRegistry
from .errors import GenkitError, InternalError, InvalidArgumentError, NotFoundError
from .messages import Document, Message, Role, as_document, as_message
from .model import BackgroundModel, Model
from .model_ref import ModelRef, resolve_config
from .model_types import ModelResponseChunk
from .parts import Part, new_text_part
from .resource import Resource
from .schema import schema_for
from .tools import Tool

__all__ = [
    "DEFAULT_MAX_TURNS",
    "GenerateActionOptions",
    "GenerateActionOutputConfig",
    "GenerateActionResume",
    "GenerateDataKwargs",
    "GenerateKwargs",
    "build_options",
    "process_resources",
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
    step_name: str | None = None
    "A name for this generate step (Go's ``StepName``, JSON ``stepName``): labels it in traces, nothing else."


class GenerateDataKwargs(TypedDict, total=False):
    """The options of ``generate_data`` and ``generate_data_stream``: those of :class:`GenerateKwargs` but
    ``output_type``, which is their first argument."""

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


class GenerateKwargs(GenerateDataKwargs, total=False):
    """The options of ``generate`` and its variants (Go's ``With*`` options): ``output_type`` and those of
    :class:`GenerateDataKwargs`.

    Collections (``tools``, ``docs`` ...) replace; unset options keep their default.
    """

    output_type: Any
    "A type for the output (pydantic model, dataclass ...): its schema is the output schema, format json."


# -- generate's options → the request -----------------------------------------------------------------------
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


def build_options(registry: ActionRegistry, options: Mapping[str, Any]) -> tuple[ActionRegistry, GenerateActionOptions]:
    """The registry a call runs in (a child one when it brings its own tools, model or resources) and its
    rendered request (Go's ``Generate`` before ``GenerateWithRequest``)."""
    unknown = set(options) - set(GenerateKwargs.__annotations__)
    if unknown:
        raise InvalidArgumentError(f"unknown generate option(s): {', '.join(sorted(unknown))}")
    r = registry
    child: ActionRegistry | None = None

    def local() -> ActionRegistry:
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
        known = registry.lookup_model(model.name) or registry.lookup_background_model(model.name)
        if known is not model:
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


def process_resources(registry: ActionRegistry, messages: list[Message]) -> list[Message]:
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
            uri = p.resource.uri if p.resource is not None else ""
            matched = registry.find_matching_resource(uri)
            if matched is None:
                raise NotFoundError(f"no resource found for URI {uri!r}")
            res, inp = matched
            content.extend(res.execute(inp).content)
        out.append(m.model_copy(update={"content": content}))
    return out
