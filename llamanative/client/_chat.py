"""``chat``: a ChatRequest to the engine and its events back as ChatResponses.

The request logic is a step generator (see :mod:`._stream`), so that the
sync and the async client run the same code: the model's prompt pipeline
renders the conversation (``Loaded.prompts``), the job goes to the model's
runner, and each event comes back through the pipeline's output parser as
a partial message.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from typing import Any

from ..engine import Finished, TokenLogprobs
from ..engine.scheduler import Loaded
from ..errors import StatusError
from ..types import ChatRequest, ChatResponse, DebugInfo, Logprob, Message
from ._options import completion_job
from ._session import Prepared, Session, check_audio, check_images, load_ns, now
from ._stream import NEED_EVENT, Submit, checked, drive, ns_since


def chat_stream(session: Session, req: ChatRequest, prep: Prepared, per_token: bool) -> Iterator[ChatResponse]:
    """The responses of ``req`` on this thread (the last with ``done=True``)."""
    t0 = time.perf_counter_ns()
    with session.use(prep) as entry:
        yield from drive(chat_steps(req, prep, entry, t0, per_token))


def chat_steps(
    req: ChatRequest, prep: Prepared, entry: Loaded, t0: int, per_token: bool = True
) -> Generator[Any, Any, None]:
    """The chat logic as a step generator (see ``_stream``): renders, runs, parses.

    ``per_token``: the caller takes every partial response (a stream or a
    callback); otherwise the engine hands the text over once, at the end.
    """
    name = req.model
    runner, prompts = entry.runner, entry.prompts
    if not req.messages:  # the load / unload idiom
        reason = "unload" if prep.keep_alive_s == 0 else "load"
        yield ChatResponse(
            model=name,
            created_at=now(),
            message=Message(role="assistant", content=""),
            done=True,
            done_reason=reason,
        )
        return
    if runner.is_embedding_model:
        raise StatusError.bad_request(f'"{name}" does not support chat')
    if any(m.images for m in req.messages):
        check_images(name, prep)
    if any(m.audio for m in req.messages):
        check_audio(name, prep)
    if req.think is not None and req.think.bool() and not prompts.supports_thinking:
        raise StatusError.bad_request(f'"{name}" does not support thinking')
    prompt = prompts.chat(
        list(prep.messages) + list(req.messages),
        system=prep.system,
        tools=list(req.tools or ()),
        tool_choice=req.tool_choice,
        format=req.format,
        think=req.think,
        n_ctx=runner.n_ctx,
        truncate=req.truncate is not False,
    )
    if req.debug_render_only:
        yield ChatResponse(
            model=name,
            created_at=now(),
            message=Message(role="assistant", content=""),
            done=True,
            done_reason="stop",
            debug_info=DebugInfo(
                rendered_template=prompt.text,
                image_count=prompt.image_count or None,
                audio_count=prompt.audio_count or None,
            ),
        )
        return
    job = completion_job(
        req,
        prep.opts,
        prompt,
        per_token,
        len(runner.adapters),
        has_draft=runner.draft is not None,
        n_cvecs=len(runner.control_vectors),
        n_layer=runner.model.n_layer,
    )
    parser = prompt.parser
    assert parser is not None  # a rendered conversation always has one
    pending_lp: list[TokenLogprobs] = []  # logprobs of tokens whose text the parser still holds
    held: list[str] = []  # not per token: the output, parsed once at the end (the answer is that final parse)
    yield Submit(runner, job)
    while True:
        ev = checked((yield NEED_EVENT))
        if isinstance(ev, Finished):
            content, thinking, msg = parser.feed("".join(held), final=True)
            calls = parser.tool_calls(msg)
            yield ChatResponse(
                model=name,
                created_at=now(),
                done=True,
                done_reason=ev.reason,
                message=Message(role="assistant", content=content, thinking=thinking or None, tool_calls=calls or None),
                logprobs=prompts.logprobs(pending_lp) if job.logprobs >= 0 else None,
                total_duration=ns_since(t0),
                load_duration=load_ns(entry, t0),
                prompt_eval_count=ev.prompt_eval_count,
                prompt_eval_duration=ev.prompt_eval_duration,
                eval_count=ev.eval_count,
                eval_duration=ev.eval_duration,
                draft_count=ev.draft_count or None,
                draft_accepted_count=ev.draft_accepted if ev.draft_count else None,
            )
            return
        pending_lp.extend(ev.logprobs)
        if not per_token:
            held.append(ev.text)
            continue
        content, thinking, _ = parser.feed(ev.text)
        if content or thinking:
            lp: list[Logprob] | None = prompts.logprobs(pending_lp) if pending_lp else None
            pending_lp = []
            yield ChatResponse(
                model=name,
                created_at=now(),
                done=False,
                logprobs=lp,
                message=Message(role="assistant", content=content, thinking=thinking or None),
            )


def join_chat(chunks: Iterator[ChatResponse]) -> ChatResponse:
    """A non-streamed chat: the partial messages joined into the final response."""
    content: list[str] = []
    thinking: list[str] = []
    logprobs: list[Logprob] = []
    last = None
    for c in chunks:
        content.append(c.message.content or "")
        thinking.append(c.message.thinking or "")
        logprobs.extend(c.logprobs or ())
        last = c
    assert last is not None  # every stream ends with a done response
    last.message.content = "".join(content)
    last.message.thinking = "".join(thinking) or None
    if last.logprobs is not None:
        last.logprobs = logprobs
    return last
