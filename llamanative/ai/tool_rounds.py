"""Tool rounds of the generate loop: running a model message's tool requests, and resuming after interrupts.

The requests of one message run concurrently (one thread each), each through
the call's ``wrap_tool`` hooks. A tool that raises :class:`ToolInterrupt`
marks its request ``interrupt`` and the round ends with the revised model
message instead of a tool message; a later call resumes it with responses
(``respond``) or re-runs (``restart``), and requests that completed before
the interrupt reuse their ``pendingOutput``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .actions import ActionRegistry
from .errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    InvalidPart,
    ToolFailed,
    ToolNotFound,
    UnresolvedToolRequest,
)
from .hooks import ToolRunner
from .messages import Message, Role
from .model_types import ModelResponseChunk
from .parts import (
    Part,
    ToolRequest,
    ToolResponse,
    new_response_for_tool_request,
    new_tool_response_part,
    tool_request_of,
    tool_response_of,
)
from .request import GenerateActionResume
from .schema import SchemaValidationError, validate
from .tools import MultipartToolResponse, ToolContext, ToolInterrupt, _PartialSender

__all__ = ["ensure_refs", "handle_resume", "handle_tool_requests"]


def ensure_refs(message: Message | None) -> None:
    """Give every tool request of the message that has none a ``ref`` (a fresh UUID)."""
    for p in message.content if message else ():
        if p.is_tool_request() and not (req := tool_request_of(p)).ref:
            req.ref = str(uuid.uuid4())


def _run_tool(
    registry: ActionRegistry, run_tool: ToolRunner, request: ToolRequest, ctx: ToolContext
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


def handle_tool_requests(
    registry: ActionRegistry,
    message: Message,
    emit: Callable[[ModelResponseChunk], None] | None,
    context: dict[str, Any] | None,
    run_tool: ToolRunner,
) -> tuple[Message, bool]:
    """Run the message's tool requests concurrently: (the tool message, False), or (the revised model
    message, True) when a tool interrupted. ``emit`` (None when nobody streams) receives the tools'
    partial responses."""
    revised = message.clone()
    idxs = [i for i, p in enumerate(revised.content) if p.is_tool_request()]
    sender = _PartialSender(
        (lambda part: emit(ModelResponseChunk(role=Role.TOOL, content=[part]))) if emit is not None else None
    )

    def job(i: int) -> Callable[[], Any]:
        req = tool_request_of(revised.content[i])

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
            req = tool_request_of(part)
            resp = new_tool_response_part(
                ToolResponse(name=req.name, ref=req.ref, output=res.output, content=res.content)
            )
            resp.metadata = res.metadata
            responses.append(resp)
        revised.content[i] = part.model_copy(update={"metadata": meta})
    if interrupted:
        return revised, True
    return Message(role=Role.TOOL, content=responses), False


def handle_resume(
    registry: ActionRegistry,
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
            req = tool_request_of(p)
            meta = dict(p.metadata or {})
            if "pendingOutput" in meta:
                out = meta.pop("pendingOutput")
                resp = new_response_for_tool_request(p, out)
                resp.metadata = {"source": "pending"}
                return p.model_copy(update={"metadata": meta}), resp
            if "interrupt" in meta:
                meta["resolvedInterrupt"] = meta.pop("interrupt")
            for r in respond:
                answer = tool_response_of(r)
                if answer.name == req.name and answer.ref == req.ref:
                    tool = registry.lookup_tool(req.name)
                    if tool is None:
                        raise ToolNotFound(f"tool {req.name!r} not found")
                    if tool.output_schema:
                        try:
                            validate(answer.output, tool.output_schema)
                        except SchemaValidationError as exc:
                            raise InvalidArgumentError(f"tool {req.name!r} output validation failed: {exc}") from exc
                    resp = new_tool_response_part(answer)
                    resp.metadata = r.metadata
                    return p.model_copy(update={"metadata": meta}), resp
            for r in restart:
                again = tool_request_of(r)
                if again.name == req.name and again.ref == req.ref:
                    rmeta = r.metadata or {}
                    resumed = rmeta.get("resumed")
                    if not isinstance(resumed, dict):
                        resumed = {} if resumed is True else None
                    ctx = ToolContext(
                        req.name, req.ref, context=context, resumed=resumed, original_input=rmeta.get("replacedInput")
                    )
                    try:
                        out = _run_tool(
                            registry, run_tool, ToolRequest(name=req.name, ref=req.ref, input=again.input), ctx
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
