"""Tools: Python functions a model may call, with schemas, interrupts and resume helpers.

A tool function takes its input, and optionally a :class:`ToolContext`:

- one input parameter (Go's ``func(ctx, In) (Out, error)``): its annotation
  gives the input schema (a pydantic model, a dataclass, ``str`` ...), and the
  model's JSON input is converted to it before the call;
- several input parameters: the input is an object with one property per
  parameter, passed as keyword arguments;
- the context parameter is the one annotated ``ToolContext`` (or named ``ctx``).

The return annotation gives the output schema. Return values are converted
to JSON data (pydantic models and dataclasses included). Input is validated
against the input schema before the function runs; an explicit
``input_schema=`` passes the raw JSON value instead of converting it.

A tool pauses the generation by calling ``ctx.interrupt(metadata)``: the
response comes back with finish reason ``interrupted`` and the interrupted
request in ``response.interrupts()``. Build the answers with
:meth:`Tool.respond_with` / :meth:`Tool.restart_with` (or the module
functions) and pass them to ``generate(messages=resp.history(),
tool_responses=[...], tool_restarts=[...])``.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import typing
from collections.abc import Callable
from typing import Any, NoReturn

from pydantic import create_model

from ._wire import WireModel
from .errors import InvalidArgumentError, InvalidPart
from .model_types import ToolDefinition
from .parts import (
    Part,
    ToolRequest,
    ToolResponse,
    new_partial_tool_response_part,
    new_response_for_tool_request,
    tool_request_of,
)
from .schema import convert, schema_for, to_jsonable, validate

__all__ = [
    "MultipartToolResponse",
    "Tool",
    "ToolContext",
    "ToolInterrupt",
    "interrupt_as",
    "new_multipart_tool",
    "new_tool",
    "respond_with",
    "restart_with",
]

_UNSET: Any = object()


class MultipartToolResponse(WireModel):
    """What a multipart tool returns: an output and extra content parts."""

    output: Any = None
    content: list[Part] | None = None
    metadata: dict[str, Any] | None = None


class ToolInterrupt(Exception):
    """Raised by :meth:`ToolContext.interrupt`: the tool pauses the generation (not an error)."""

    def __init__(self, metadata: dict[str, Any] | None = None) -> None:
        super().__init__("tool execution interrupted")
        self.metadata = metadata


class ToolContext:
    """What a running tool can see and do.

    Attributes:
        tool_name: the tool's name.
        ref: the ``ref`` of the request being run.
        resumed: on a restart, the ``resumed`` metadata of the restart part
            (``{}`` for ``True``); None on a first run.
        original_input: on a restart with a new input, the input the model gave.
        context: the ``context=`` mapping given to generate (request-scoped data, e.g. auth).
    """

    def __init__(
        self,
        tool_name: str,
        ref: str | None = None,
        *,
        resumed: dict[str, Any] | None = None,
        original_input: Any = None,
        context: dict[str, Any] | None = None,
        send_partial: Callable[[Any], None] | None = None,
    ) -> None:
        self.tool_name = tool_name
        self.ref = ref
        self.resumed = resumed
        self.original_input = original_input
        self.context = context or {}
        self._send_partial = send_partial

    def is_resumed(self) -> bool:
        """True when this run is a restart (``tool_restarts``)."""
        return self.resumed is not None

    def interrupt(self, metadata: dict[str, Any] | None = None) -> NoReturn:
        """Pause the generation: the request is returned with ``metadata["interrupt"] = metadata`` (or True).

        Raises:
            ToolInterrupt: always (the loop catches it).
        """
        raise ToolInterrupt(metadata)

    def interrupt_with(self, value: Any) -> NoReturn:
        """:meth:`interrupt` with typed metadata (a pydantic model, a dataclass, a dict)."""
        data = to_jsonable(value)
        if not isinstance(data, dict):
            raise InvalidArgumentError(f"interrupt metadata must be an object, got {type(value).__name__}")
        raise ToolInterrupt(data)

    def resumed_value(self, key: str, type_: Any = None) -> Any:
        """``resumed[key]`` (converted to ``type_`` if given), or None."""
        if not self.resumed or key not in self.resumed:
            return None
        value = self.resumed[key]
        return convert(value, type_) if type_ is not None else value

    def original_input_as(self, type_: Any) -> Any:
        """The original input converted to ``type_`` (None on a first run)."""
        return None if self.original_input is None else convert(self.original_input, type_)

    def send_partial(self, output: Any) -> None:
        """Stream a progress update (a partial tool response); a no-op when not streaming."""
        if self._send_partial is not None:
            self._send_partial(to_jsonable(output))


def interrupt_as(part: Part, type_: Any) -> Any:
    """The interrupt metadata of ``part`` converted to ``type_``, or None if it is not an interrupt."""
    if not part.is_interrupt():
        return None
    meta = (part.metadata or {}).get("interrupt")
    if not isinstance(meta, dict):
        return None
    try:
        return convert(meta, type_)
    except ValueError:
        return None


def _check_request(part: Part | None, where: str, tool_name: str | None = None) -> ToolRequest:
    """The part's tool request, checked: a tool request part, for ``tool_name`` when given."""
    if part is None:
        raise InvalidArgumentError(f"{where}: tool request part is None")
    if not part.is_tool_request():
        raise InvalidPart(f"{where}: part is not a tool request")
    req = tool_request_of(part)
    if tool_name is not None and req.name != tool_name:
        raise InvalidArgumentError(f"{where}: tool request is for {req.name!r}, not {tool_name!r}")
    return req


def respond_with(part: Part, output: Any, metadata: dict[str, Any] | None = None) -> Part:
    """A response to an interrupted tool request, for ``tool_responses=``.

    The part carries the request's name and ref and
    ``metadata {"interruptResponse": metadata or True}``.

    Raises:
        InvalidPart: ``part`` is not a tool request.
    """
    _check_request(part, "respond_with")
    resp = new_response_for_tool_request(part, to_jsonable(output))
    resp.metadata = {"interruptResponse": metadata if metadata is not None else True}
    return resp


def restart_with(part: Part, new_input: Any = _UNSET, resumed_metadata: dict[str, Any] | None = None) -> Part:
    """A request to run an interrupted tool again, for ``tool_restarts=``.

    The metadata is copied with ``resumed = resumed_metadata or True``,
    ``replacedInput = <old input>`` when ``new_input`` is given, and
    ``interrupt`` removed.

    Raises:
        InvalidPart: ``part`` is not a tool request.
    """
    req = _check_request(part, "restart_with")
    meta = dict(part.metadata or {})
    meta["resumed"] = resumed_metadata if resumed_metadata is not None else True
    new = req.input
    if new_input is not _UNSET:
        meta["replacedInput"] = req.input
        new = to_jsonable(new_input)
    meta.pop("interrupt", None)
    return Part(tool_request=ToolRequest(name=req.name, ref=req.ref, input=new), metadata=meta)


class _Signature:
    """How to call a tool function: where the context goes and how the input is passed."""

    def __init__(self, fn: Callable, name: str, explicit_schema: bool) -> None:
        sig = inspect.signature(fn)
        try:
            hints = typing.get_type_hints(fn)
        except NameError as exc:  # a string annotation naming a type that is not in the module's globals
            raise InvalidArgumentError(
                f"tool {name!r}: cannot resolve an annotation ({exc}); define the types at module level"
            ) from exc
        params = [
            p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        self.ctx_name: str | None = None
        inputs = []
        for p in params:
            if hints.get(p.name) is ToolContext or (p.name == "ctx" and self.ctx_name is None):
                self.ctx_name = p.name
            else:
                inputs.append(p)
        self.ctx_first = bool(params) and params[0].name == self.ctx_name
        self.inputs = inputs
        self.kwargs = len(inputs) > 1
        self.input_type: Any = None
        self.input_schema: dict[str, Any] | None = None
        if explicit_schema:
            pass
        elif self.kwargs:
            fields: dict[str, Any] = {
                p.name: (hints.get(p.name, Any), ... if p.default is p.empty else p.default) for p in inputs
            }
            self.input_type = create_model(f"{name}_input", **fields)
            self.input_schema = schema_for(self.input_type)
        elif inputs:
            tp = hints.get(inputs[0].name, Any)
            if tp is not Any:
                self.input_type = tp
                self.input_schema = schema_for(tp)
        ret = hints.get("return", Any)
        self.output_schema = None if ret in (Any, type(None), None) else _safe_schema(ret)
        self.is_async = inspect.iscoroutinefunction(fn)

    def call(self, fn: Callable, value: Any, ctx: ToolContext) -> Any:
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        if self.kwargs:
            model = convert(value if value is not None else {}, self.input_type)
            kwargs = {p.name: getattr(model, p.name) for p in self.inputs}
        elif self.inputs:
            arg = convert(value, self.input_type) if self.input_type is not None else value
            if self.inputs[0].kind == inspect.Parameter.KEYWORD_ONLY:
                kwargs[self.inputs[0].name] = arg
            else:
                args.append(arg)
        if self.ctx_name is not None:
            if self.ctx_first:
                args.insert(0, ctx)
            else:
                kwargs[self.ctx_name] = ctx
        result = fn(*args, **kwargs)
        if self.is_async:
            result = _run_coroutine(result)
        return result


def _run_coroutine(coro: Any) -> Any:
    """Run an async tool's coroutine to completion from sync code (in a new thread if a loop runs here)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: list[Any] = []

    def run() -> None:
        try:
            box.append((asyncio.run(coro), None))
        except BaseException as exc:  # noqa: BLE001 (re-raised below)
            box.append((None, exc))

    t = threading.Thread(target=run)
    t.start()
    t.join()
    value, error = box[0]
    if error is not None:
        raise error
    return value


def _safe_schema(tp: Any) -> dict[str, Any] | None:
    try:
        return schema_for(tp)
    except Exception:  # a return type pydantic cannot describe: no output schema
        return None


class Tool:
    """A tool: a name, a description, schemas, and the function that runs it.

    Make one with :func:`new_tool` / :func:`new_multipart_tool` (not
    registered, pass it in ``tools=``) or ``ai.define_tool`` (registered,
    usable by name).
    """

    def __init__(
        self,
        name: str,
        fn: Callable[..., Any],
        *,
        description: str | None = None,
        input_schema: dict[str, Any] | None = None,
        output_schema: dict[str, Any] | None = None,
        multipart: bool = False,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if not name:
            raise InvalidArgumentError("a tool needs a name")
        self.name = name
        self.fn = fn
        self.description = description if description is not None else inspect.getdoc(fn) or ""
        self._sig = _Signature(fn, name, input_schema is not None)
        self.input_schema = input_schema if input_schema is not None else self._sig.input_schema
        self.output_schema = (
            output_schema if output_schema is not None else (None if multipart else self._sig.output_schema)
        )
        self.multipart = multipart
        self.metadata = metadata

    def __repr__(self) -> str:
        return f"Tool({self.name!r})"

    def definition(self) -> ToolDefinition:
        """The tool as the model sees it."""
        return ToolDefinition(
            name=self.name,
            description=self.description,
            input_schema=self.input_schema,
            output_schema=self.output_schema,
            metadata={"multipart": self.multipart},
        )

    def run(self, input: Any, ctx: ToolContext | None = None) -> MultipartToolResponse:
        """Validate ``input`` against the input schema and run the function.

        Raises:
            SchemaValidationError: the input does not match the schema.
            ToolInterrupt: the tool interrupted.
            Exception: whatever the function raised.
        """
        validate(input, self.input_schema)
        ctx = ctx or ToolContext(self.name)
        result = self._sig.call(self.fn, input, ctx)
        if self.multipart:
            if isinstance(result, MultipartToolResponse):
                return result
            return MultipartToolResponse.model_validate(to_jsonable(result))
        return MultipartToolResponse(output=to_jsonable(result))

    def __call__(self, input: Any = None) -> Any:
        """Run the tool directly and return its output."""
        return self.run(input).output

    def respond_with(self, part: Part, output: Any, metadata: dict[str, Any] | None = None) -> Part:
        """:func:`respond_with` for a request to this tool (its name is checked).

        Raises:
            InvalidPart: ``part`` is not a tool request.
            InvalidArgumentError: the request is for another tool.
        """
        _check_request(part, "respond_with", self.name)
        return respond_with(part, output, metadata)

    def restart_with(self, part: Part, new_input: Any = _UNSET, resumed_metadata: dict[str, Any] | None = None) -> Part:
        """:func:`restart_with` for a request to this tool (its name is checked)."""
        _check_request(part, "restart_with", self.name)
        return restart_with(part, new_input, resumed_metadata)


def new_tool(
    name: str,
    fn: Callable[..., Any],
    *,
    description: str | None = None,
    input_schema: dict[str, Any] | None = None,
    output_schema: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Tool:
    """A tool that is not registered: pass it in ``tools=`` (it is visible to that call only).

    Args:
        name: the name the model calls it by.
        fn: the function (see the module doc for its parameters).
        description: what it does (default: ``fn``'s docstring).
        input_schema: a JSON schema for the input; the function then gets the raw JSON value.
        output_schema: a JSON schema for the output (default: from the return annotation).
    """
    return Tool(
        name, fn, description=description, input_schema=input_schema, output_schema=output_schema, metadata=metadata
    )


def new_multipart_tool(
    name: str,
    fn: Callable[..., Any],
    *,
    description: str | None = None,
    input_schema: dict[str, Any] | None = None,
    output_schema: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Tool:
    """A tool whose function returns a :class:`MultipartToolResponse` (output plus content parts)."""
    return Tool(
        name,
        fn,
        description=description,
        input_schema=input_schema,
        output_schema=output_schema,
        multipart=True,
        metadata=metadata,
    )


class _PartialSender:
    """Sends a tool's partial responses through the stream callback (serialised across tools)."""

    def __init__(self, emit: Callable[[Any], None] | None) -> None:
        self._emit = emit
        self._lock = threading.Lock()

    def for_request(self, req: ToolRequest) -> Callable[[Any], None] | None:
        emit = self._emit
        if emit is None:
            return None

        def send(output: Any) -> None:
            part = new_partial_tool_response_part(ToolResponse(name=req.name, ref=req.ref, output=output))
            with self._lock:
                try:
                    emit(part)
                except Exception:  # streaming is best effort: a sink error never fails the tool
                    pass

        return send
