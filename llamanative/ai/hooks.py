"""Per-call middleware (Go's ``WithUse``): hooks around each generate iteration, model call and tool run.

Pass middleware to a call with ``use=[...]``. A middleware is a subclass of
:class:`Middleware` overriding any of its three hooks::

    class Audit(Middleware):
        def wrap_model(self, params, next):
            print("model call with", len(params.request.messages), "messages")
            return next(params)

        def wrap_tool(self, params, next):
            print("running", params.request.name, params.request.input)
            return next(params)

    ai.generate(prompt="...", tools=[weather], use=[Audit()])

The rules are Go Genkit's (``ai/middleware.go``, ``ai/generate.go``):

- For each kind of hook the first middleware listed is the outermost.
- ``wrap_generate(params, next)`` wraps each iteration of the tool loop: a
  call with N tool rounds runs it N+1 times (``params.iteration`` 0..N).
  The iterations nest: ``next`` of iteration 0 runs the model, the tools and
  all later iterations, so it returns the final response of the whole call.
  A resume (``tool_responses`` / ``tool_restarts``) happens inside iteration
  0; the model is then called in iteration 1.
- ``wrap_model(params, next)`` wraps each model call. It runs outside the
  model's built-in middleware (system-prompt simulation, context docs,
  support checks), so it sees the request as the loop built it.
- ``wrap_tool(params, next)`` wraps each tool run, restarts on resume
  included. The tools of one round run concurrently, so this hook may run
  in several threads at once: guard shared state with a lock. An exception
  escaping the chain becomes :class:`ToolFailed` naming the tool;
  ``params.context.interrupt(...)`` (from the tool or the hook) interrupts.
- :meth:`Middleware.new` is called once per generate call and returns the
  :class:`Hooks` used by that call: per-call state (counters, caches) lives
  there. ``Hooks.tools`` adds tools to that call only.
- A plain callable in ``use`` is model middleware (``next_fn -> fn``, see
  :mod:`.middleware`) and acts as a ``wrap_model`` hook at its place in the
  list. ``middleware=[...]`` (Go's deprecated ``WithMiddleware``) wraps
  outside every ``wrap_model`` hook.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import InternalError, InvalidArgumentError
from .middleware import ModelFn, StreamCallback, as_middleware
from .model_types import ModelRequest, ModelResponse
from .parts import ToolRequest
from .request import GenerateActionOptions
from .tools import MultipartToolResponse, Tool, ToolContext

__all__ = [
    "GenerateNext",
    "GenerateParams",
    "Hooks",
    "Middleware",
    "ModelNext",
    "ModelParams",
    "ToolNext",
    "ToolParams",
    "ToolRunner",
    "build_generate_chain",
    "build_model_chain",
    "build_tool_runner",
    "resolve_hooks",
]


@dataclass
class GenerateParams:
    """What a ``wrap_generate`` hook sees for one iteration of the tool loop."""

    options: GenerateActionOptions
    "The request of the call, as rendered (``messages`` are the first iteration's)."

    request: ModelRequest
    "The model request of this iteration, with the messages accumulated so far."

    iteration: int
    "The tool-loop iteration, from 0."

    message_index: int
    """The stream index the model's next message gets. A hook that streams a message of its own sends it at
    this index (through ``on_chunk``) and passes ``message_index + 1`` on to ``next``."""

    on_chunk: StreamCallback | None = None
    "The stream callback (None when not streaming); chunks sent here keep the index and role they carry."


@dataclass
class ModelParams:
    """What a ``wrap_model`` hook sees for one model call."""

    request: ModelRequest
    on_chunk: StreamCallback | None = None
    "The model's stream callback (None when not streaming)."


@dataclass
class ToolParams:
    """What a ``wrap_tool`` hook sees for one tool run."""

    request: ToolRequest
    "The tool request (name, ref, input) about to run."

    tool: Tool
    context: ToolContext
    "The tool's context (``resumed``, ``original_input``, the call's ``context`` mapping)."


GenerateNext = Callable[[GenerateParams], ModelResponse]
ModelNext = Callable[[ModelParams], ModelResponse]
ToolNext = Callable[[ToolParams], MultipartToolResponse]
ToolRunner = Callable[[Tool, ToolRequest, ToolContext], MultipartToolResponse]


@dataclass
class Hooks:
    """The hooks of one middleware for one generate call (Go's ``ai.Hooks``); unset hooks pass through."""

    wrap_generate: Callable[[GenerateParams, GenerateNext], ModelResponse] | None = None
    wrap_model: Callable[[ModelParams, ModelNext], ModelResponse] | None = None
    wrap_tool: Callable[[ToolParams, ToolNext], MultipartToolResponse] | None = None
    tools: Sequence[Tool] = field(default_factory=list)
    "Tools this middleware adds to the call (visible to that call only)."

    name: str = "inline"
    "For error messages."


class Middleware:
    """Base class of per-call middleware: override any of the ``wrap_*`` hooks (see the module doc).

    Class attributes:
        name: a name for error messages.
        tools: tools added to every call this middleware is used in.
    """

    name: str = "inline"
    tools: Sequence[Tool] = ()

    def new(self) -> Hooks:
        """The hooks for one generate call: by default this object's overridden ``wrap_*`` methods.

        Override it to give each call fresh state (return a :class:`Hooks`
        whose functions close over it).
        """
        cls = type(self)

        def own(hook: str) -> Any:
            return getattr(self, hook) if getattr(cls, hook) is not getattr(Middleware, hook) else None

        return Hooks(
            wrap_generate=own("wrap_generate"),
            wrap_model=own("wrap_model"),
            wrap_tool=own("wrap_tool"),
            tools=list(self.tools),
            name=self.name,
        )

    def wrap_generate(self, params: GenerateParams, next: GenerateNext) -> ModelResponse:
        """Wrap one iteration of the tool loop (and, through ``next``, the iterations after it)."""
        return next(params)

    def wrap_model(self, params: ModelParams, next: ModelNext) -> ModelResponse:
        """Wrap one model call."""
        return next(params)

    def wrap_tool(self, params: ToolParams, next: ToolNext) -> MultipartToolResponse:
        """Wrap one tool run."""
        return next(params)


def _model_middleware_hooks(mw: Callable[..., Any]) -> Hooks:
    """A ``next_fn -> fn`` model middleware as a ``wrap_model`` hook."""
    wrap = as_middleware(mw)

    def wrap_model(params: ModelParams, next: ModelNext) -> ModelResponse:
        inner = wrap(lambda request, on_chunk: next(ModelParams(request=request, on_chunk=on_chunk)))
        return inner(params.request, params.on_chunk)

    return Hooks(wrap_model=wrap_model, name=getattr(mw, "__name__", "inline"))


def resolve_hooks(use: Sequence[Any]) -> list[Hooks]:
    """The hooks of one call, in order: from :class:`Middleware` objects (``new()``), :class:`Hooks`, objects
    with ``wrap_*`` methods, or plain ``next_fn -> fn`` model middleware.

    Raises:
        InvalidArgumentError: an entry is none of these (a class instead of an instance, a name ...).
        InternalError: a middleware's ``new()`` did not return :class:`Hooks`.
    """
    out: list[Hooks] = []
    for mw in use:
        if mw is None:
            raise InvalidArgumentError("nil middleware in use=")
        if isinstance(mw, type):
            raise InvalidArgumentError(
                f"use= takes middleware objects, not the class {mw.__name__}: pass {mw.__name__}(...)"
            )
        if isinstance(mw, (str, Mapping)):
            # Go resolves {name, config} references through a middleware registry; there is none here.
            raise InvalidArgumentError(
                f"middleware {mw!r}: references by name are not supported; pass a Middleware object"
            )
        if isinstance(mw, Hooks):
            out.append(mw)
        elif callable(getattr(mw, "new", None)):
            hooks = mw.new()
            if not isinstance(hooks, Hooks):
                raise InternalError(
                    f"middleware {getattr(mw, 'name', mw)!r}: new() returned {type(hooks).__name__}, not Hooks"
                )
            out.append(hooks)
        elif any(hasattr(mw, h) for h in ("wrap_generate", "wrap_model", "wrap_tool")):
            out.append(
                Hooks(
                    wrap_generate=getattr(mw, "wrap_generate", None),
                    wrap_model=getattr(mw, "wrap_model", None),
                    wrap_tool=getattr(mw, "wrap_tool", None),
                    tools=list(getattr(mw, "tools", None) or ()),
                    name=getattr(mw, "name", "inline"),
                )
            )
        elif callable(mw):
            out.append(_model_middleware_hooks(mw))
        else:
            raise InvalidArgumentError(f"not a middleware: {mw!r}")
    return out


def build_generate_chain(hooks: Sequence[Hooks], run: GenerateNext) -> GenerateNext:
    """``run`` wrapped by the ``wrap_generate`` hooks, the first outermost."""
    chain = run
    for h in reversed(hooks):
        if h.wrap_generate is not None:
            chain = _bind(h.wrap_generate, chain)
    return chain


def build_model_chain(hooks: Sequence[Hooks], fn: ModelFn) -> ModelFn:
    """The model function ``fn`` wrapped by the ``wrap_model`` hooks, the first outermost."""
    chain: ModelNext = lambda p: fn(p.request, p.on_chunk)  # noqa: E731
    wrapped = False
    for h in reversed(hooks):
        if h.wrap_model is not None:
            chain = _bind(h.wrap_model, chain)
            wrapped = True
    if not wrapped:
        return fn
    top = chain
    return lambda request, on_chunk: top(ModelParams(request=request, on_chunk=on_chunk))


def build_tool_runner(hooks: Sequence[Hooks]) -> ToolRunner:
    """A function running a tool through the ``wrap_tool`` hooks, the first outermost (safe across threads:
    each run carries its own params)."""
    chain: ToolNext = lambda p: p.tool.run(p.request.input, p.context)  # noqa: E731
    for h in reversed(hooks):
        if h.wrap_tool is not None:
            chain = _bind(h.wrap_tool, chain)
    top = chain
    return lambda tool, request, ctx: top(ToolParams(request=request, tool=tool, context=ctx))


def _bind(hook: Callable[[Any, Callable[[Any], Any]], Any], next_fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    # A function of its own so each link keeps its own hook and next (a loop variable would be shared).
    return lambda params: hook(params, next_fn)
