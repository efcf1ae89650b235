"""``generate``: a GenerateRequest to the engine and its events back as GenerateResponses.

Like chat's (:mod:`._chat`), a step generator: the prompt pipeline builds
the prompt (a user turn of the template, the raw text, or a fill-in-the-
middle prompt), the model's runner completes it.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from typing import Any

from ..engine import Finished
from ..engine.scheduler import Loaded
from ..errors import StatusError
from ..prompting import Prompt, PromptPipeline, json_schema_of
from ..types import Choice, DebugInfo, GenerateRequest, GenerateResponse, Logprob
from ._options import completion_job
from ._session import Prepared, Session, check_audio, check_images, load_ns, now
from ._stream import NEED_EVENT, Submit, checked, drive, ns_since


def generate_stream(
    session: Session, req: GenerateRequest, prep: Prepared, per_token: bool
) -> Iterator[GenerateResponse]:
    """The responses of ``req`` on this thread (the last with ``done=True``)."""
    t0 = time.perf_counter_ns()
    with session.use(prep) as entry:
        yield from drive(generate_steps(req, prep, entry, t0, per_token))


def _prompt(req: GenerateRequest, prep: Prepared, prompts: PromptPipeline) -> Prompt:
    """The prompt of ``req``: fill-in-the-middle with a ``suffix``, else the text raw or as a user turn."""
    schema = json_schema_of(req.format)
    if req.suffix is not None:
        # Fill-in-the-middle bypasses the template: the schema is compiled here.
        grammar = prompts.schema_grammar(schema) if schema is not None else {}
        if not prompts.supports_insert:
            raise StatusError.bad_request(f"{req.model} does not support insert")
        return prompts.fill_in_middle(req.prompt or "", req.suffix, grammar)
    return prompts.completion(
        req.prompt or "",
        raw=bool(req.raw),
        template=req.template,
        system=req.system if req.system is not None else prep.system,
        history=list(prep.messages) if not req.context else [],  # as Ollama: not with a context
        context=req.context,
        schema=schema,
        think=req.think,
        images=req.images,
        audio=req.audio,
    )


def generate_steps(
    req: GenerateRequest, prep: Prepared, entry: Loaded, t0: int, per_token: bool = True
) -> Generator[Any, Any, None]:
    """The generate logic as a step generator (see ``_stream``); ``per_token`` as in chat's."""
    name = req.model
    created = int(time.time())
    runner, prompts = entry.runner, entry.prompts
    if not req.prompt and req.suffix is None:  # the load / unload idiom
        reason = "unload" if prep.keep_alive_s == 0 else "load"
        yield GenerateResponse(
            model=name, created_at=now(), created=created, response="", done=True, done_reason=reason
        )
        return
    if runner.is_embedding_model:
        raise StatusError.bad_request(f'"{name}" does not support generate')
    if req.images:
        check_images(name, prep)
    if req.audio:
        check_audio(name, prep)
    if req.context and (min(req.context) < 0 or max(req.context) >= prompts.n_vocab):
        raise StatusError.bad_request(f"context has token ids outside the vocabulary (0..{prompts.n_vocab - 1})")
    prompt = _prompt(req, prep, prompts)
    tokens = prompt.tokens
    if len(tokens) >= runner.n_ctx:
        raise StatusError.bad_request(
            f"the prompt has {len(tokens)} tokens, more than the context length of {runner.n_ctx}"
        )
    if req.debug_render_only:
        yield GenerateResponse(
            model=name,
            created_at=now(),
            created=created,
            response="",
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
    gen_id = f"gen-{created}-{id(job) & 0xFFFFFF:06x}"
    parser = prompt.parser  # None for raw and fill-in-the-middle prompts: their output is taken as it is
    held: list[str] = []  # not per token, with a parser: the output, parsed once at the end
    yield Submit(runner, job)
    while True:
        ev = checked((yield NEED_EVENT))
        if isinstance(ev, Finished):
            tail, thinking = parser.feed("".join(held), final=True)[:2] if parser else ("", "")
            yield GenerateResponse(
                model=name,
                created_at=now(),
                created=created,
                id=gen_id,
                object="text_completion",
                response=tail,
                thinking=thinking or None,
                done=True,
                done_reason=ev.reason,
                choices=[Choice(text=tail, index=0, finish_reason=ev.reason)],
                logprobs=[] if job.logprobs >= 0 else None,
                context=[int(t) for t in tokens] + list(ev.tokens),
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
        if parser is not None and not per_token:
            held.append(ev.text)  # parsed at the end; its logprobs go out now, as they did
            text, thinking = "", ""
        else:
            text, thinking = parser.feed(ev.text)[:2] if parser else (ev.text, "")
        if text or thinking or ev.logprobs:
            lp: list[Logprob] | None = prompts.logprobs(ev.logprobs) if ev.logprobs else None
            yield GenerateResponse(
                model=name,
                created_at=now(),
                created=created,
                id=gen_id,
                object="text_completion",
                response=text,
                thinking=thinking or None,
                done=False,
                logprobs=lp,
                choices=[Choice(text=text, index=0, logprobs=lp)],
            )


def join_generate(chunks: Iterator[GenerateResponse]) -> GenerateResponse:
    """A non-streamed generate: the partial responses joined into the final one."""
    text: list[str] = []
    thinking: list[str] = []
    logprobs: list[Logprob] = []
    last = None
    for c in chunks:
        text.append(c.response or "")
        thinking.append(c.thinking or "")
        logprobs.extend(c.logprobs or ())
        last = c
    assert last is not None  # every stream ends with a done response
    last.response = "".join(text)
    last.thinking = "".join(thinking) or None
    if last.logprobs is not None:
        last.logprobs = logprobs
    if last.choices:
        last.choices[0].text = last.response
    return last
