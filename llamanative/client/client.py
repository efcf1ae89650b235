"""Client: the documented API (chat, generate, embed, list, show, ...) in-process.

Each method validates its request once (the request types), resolves the
model in the store, and hands the work to the engine's scheduler; it knows
nothing of llama.cpp itself. Keyword arguments follow ollama-python, so code
written for it runs unchanged; the spec's request objects with a callback
(``client.chat(ChatRequest(...), fn)``) work too.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from .. import __version__, _core
from ..engine import CompletionJob, EmbedJob, Finished
from ..engine.scheduler import Loaded, Scheduler
from ..errors import LlamaError, StatusError
from ..store import ModelStore, StoredModel
from ..store.store import is_digest
from ..types import (
    ChatRequest,
    ChatResponse,
    Choice,
    CopyRequest,
    CreateRequest,
    DebugInfo,
    DeleteRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbedRequest,
    EmbedResponse,
    GenerateRequest,
    GenerateResponse,
    ListModelResponse,
    ListResponse,
    Message,
    Modalities,
    Options,
    ProcessModelResponse,
    ProcessResponse,
    PropsResponse,
    PullRequest,
    ShowRequest,
    ShowResponse,
    StatusResponse,
    TokenResponse,
    VersionResponse,
)
from . import _details
from . import _generic_tools as generic
from ._logprobs import to_logprobs, top_count
from ._options import effective_options, keep_alive_seconds, runner_config, sampling_params
from ._prompt import OutputParser, json_schema_of, oai_messages, render_chat
from ._stream import NEED_EVENT, Submit, checked, drive, ns_since, with_callback


def _validate(cls, **fields):
    """Build a request type; its validation errors become 400s (as the server answers)."""
    try:
        return cls.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()))
        msg = err["msg"].removeprefix("Value error, ")
        raise StatusError.bad_request(f"{where}: {msg}" if where else msg) from exc


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class _Prepared:
    """A request resolved against the store: what to load and how."""

    stored: StoredModel
    opts: Options
    keep_alive_s: float
    system: str | None
    has_projector: bool = False
    messages: tuple[Message, ...] = ()  # the model's MESSAGE lines, prepended to each conversation

    @property
    def config(self):
        return runner_config(self.opts)


class Client:
    """Runs models in this process. ``host``, ``headers``, ``timeout`` (ollama-python's) are accepted and ignored.

    Args:
        models_dir: the model store (default ``LLAMANATIVE_MODELS`` or the user cache dir).
        max_loaded_models: most models loaded at once (default ``LLAMANATIVE_MAX_LOADED_MODELS`` or 3).
    """

    def __init__(
        self,
        host: str | None = None,
        *,
        models_dir: str | None = None,
        max_loaded_models: int | None = None,
        **_ignored: Any,
    ) -> None:
        self.store = ModelStore(models_dir)
        self._scheduler = Scheduler(max_loaded_models)

    def close(self) -> None:
        """Unload every model (after running requests finish)."""
        self._scheduler.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- shared steps ---------------------------------------------------------------------
    def _prepare(self, model: str, options, keep_alive) -> _Prepared:
        stored = self.store.resolve(model)  # 404 here, before anything loads
        _template, system, params, _license, projector = _details.stored_layers(stored)
        messages = tuple(Message.model_validate(m) for m in _details.stored_messages(stored))
        return _Prepared(
            stored, effective_options(params, options), keep_alive_seconds(keep_alive), system, projector, messages
        )

    @contextmanager
    def _use(self, prep: _Prepared) -> Iterator[Loaded]:
        """The loaded model for a request (loading it if needed), named as the request named it."""
        with ExitStack() as stack:
            try:
                entry = stack.enter_context(self._scheduler.use(prep.stored.path, prep.config, prep.keep_alive_s))
            except (LlamaError, OSError) as exc:  # the file is not a loadable model
                raise StatusError.internal(f"failed to load model {prep.stored.name!r}: {exc}") from exc
            entry.name = prep.stored.name
            yield entry

    @staticmethod
    def _chat_templates(entry: Loaded, override: str | None = None) -> _core.ChatTemplates:
        """The model's parsed chat templates, kept with the loaded model (or a one-off override)."""
        if override:
            return _core.ChatTemplates(entry.runner.model, override)
        if "templates" not in entry.cache:
            entry.cache["templates"] = _core.ChatTemplates(entry.runner.model)
        return entry.cache["templates"]

    @staticmethod
    def _load_ns(entry: Loaded, t0: int) -> int:
        # The model was loaded by this request when its load ended after t0.
        return entry.runner.load_duration if entry.runner.loaded_at_ns >= t0 else 0

    # -- chat -------------------------------------------------------------------------------
    def chat(
        self,
        model: str | ChatRequest = "",
        messages: Sequence[Any] | Callable | None = None,
        *,
        tools: Sequence[Any] | None = None,
        stream: bool = False,
        think=None,
        format=None,
        options: Options | dict | None = None,
        keep_alive=None,
        tool_choice=None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
        **extra: Any,
    ):
        """Chat with a model: the next assistant message for ``messages``.

        Returns a :class:`ChatResponse`, or with ``stream=True`` an iterator of
        partial responses (the last with ``done=True``, ``done_reason`` and the
        metrics). Called as ``chat(ChatRequest, fn)``, calls ``fn`` with every
        partial response and returns the last.

        Raises:
            StatusError: 404 unknown model, 400 invalid request or missing
                capability ("<model> does not support tools"), 500 engine failure.
        """
        fn = None
        if isinstance(model, ChatRequest):
            req, fn = model, messages
        else:
            req = _validate(
                ChatRequest,
                model=model,
                messages=messages,
                tools=tools,
                stream=stream,
                think=think,
                format=format,
                options=options,
                keep_alive=keep_alive,
                tool_choice=tool_choice,
                logprobs=logprobs,
                top_logprobs=top_logprobs,
                **extra,
            )
        prep = self._prepare(req.model, req.options, req.keep_alive)
        chunks = self._chat_stream(req, prep, per_token=req.stream or fn is not None)
        if fn is not None:
            return with_callback(chunks, fn)
        return chunks if req.stream else _join_chat(chunks)

    def _chat_stream(self, req: ChatRequest, prep: _Prepared, per_token: bool) -> Iterator[ChatResponse]:
        t0 = time.perf_counter_ns()
        with self._use(prep) as entry:
            yield from drive(self._chat_steps(req, prep, entry, t0, per_token))

    def _chat_steps(
        self, req: ChatRequest, prep: _Prepared, entry: Loaded, t0: int, per_token: bool = True
    ) -> Generator:
        """The chat logic as a step generator (see ``_stream``): renders, runs, parses.

        ``per_token``: the caller takes every partial response (a stream or a
        callback); otherwise the engine hands the text over once, at the end.
        """
        name = req.model
        runner = entry.runner
        if not req.messages:  # the load / unload idiom
            reason = "unload" if prep.keep_alive_s == 0 else "load"
            yield ChatResponse(
                model=name,
                created_at=_now(),
                message=Message(role="assistant", content=""),
                done=True,
                done_reason=reason,
            )
            return
        if runner.is_embedding_model:
            raise StatusError.bad_request(f'"{name}" does not support chat')
        if any(m.images for m in req.messages):
            _check_images(name, prep)
        templates = self._chat_templates(entry)
        caps = entry.cache.get("caps") or entry.cache.setdefault("caps", templates.caps())
        if req.think is not None and req.think.bool() and not caps.get("supports_thinking"):
            raise StatusError.bad_request(f'"{name}" does not support thinking')
        think = req.think
        try:
            tools, mode = generic.chosen_tools(list(req.tools or ()), req.tool_choice)
        except ValueError as exc:
            raise StatusError.bad_request(str(exc)) from exc
        # A template without tool syntax gets the generic JSON form (see _generic_tools).
        use_generic = bool(tools) and not caps.get("supports_tool_calls")
        schema = json_schema_of(req.format)
        messages = list(prep.messages) + list(req.messages)
        while True:
            msgs = oai_messages(messages, prep.system)
            if use_generic:
                msgs = generic.rewrite_messages(msgs, tools, mode, bool(caps.get("supports_system_role")))
                rendered = render_chat(
                    templates,
                    runner.vocab,
                    msgs,
                    None,
                    None,
                    schema if mode == "none" else generic.reply_schema(tools, mode, schema),
                    think,
                )
            else:
                rendered = render_chat(templates, runner.vocab, msgs, tools, mode if tools else None, schema, think)
            tokens = runner.vocab.tokenize(rendered.prompt, add_special=True, parse_special=True)
            if len(tokens) < runner.n_ctx:
                break
            # Too long: drop the oldest non-system message (as Ollama), never cut one.
            droppable = [i for i, m in enumerate(messages[:-1]) if m.role != "system"]
            if req.truncate is False or not droppable:
                raise StatusError.bad_request(
                    f"the prompt has {len(tokens)} tokens, more than the context length of {runner.n_ctx}"
                )
            del messages[droppable[0]]
        if req.debug_render_only:
            yield ChatResponse(
                model=name,
                created_at=_now(),
                message=Message(role="assistant", content=""),
                done=True,
                done_reason="stop",
                debug_info=DebugInfo(rendered_template=rendered.prompt),
            )
            return
        job = _completion_job(req, prep.opts, tokens, rendered.grammar, rendered.stops, per_token)
        parser = OutputParser(rendered.params)
        if use_generic and mode != "none":
            parser = generic.GenericReplyParser(parser)
        pending_lp: list = []  # logprobs of tokens whose text the parser still holds
        yield Submit(runner, job)
        while True:
            ev = checked((yield NEED_EVENT))
            if isinstance(ev, Finished):
                content, thinking, msg = parser.feed("", final=True)
                calls = parser.tool_calls(msg)
                yield ChatResponse(
                    model=name,
                    created_at=_now(),
                    done=True,
                    done_reason=ev.reason,
                    message=Message(
                        role="assistant", content=content, thinking=thinking or None, tool_calls=calls or None
                    ),
                    logprobs=to_logprobs(runner.vocab, pending_lp) if job.logprobs >= 0 else None,
                    total_duration=ns_since(t0),
                    load_duration=self._load_ns(entry, t0),
                    prompt_eval_count=ev.prompt_eval_count,
                    prompt_eval_duration=ev.prompt_eval_duration,
                    eval_count=ev.eval_count,
                    eval_duration=ev.eval_duration,
                )
                return
            pending_lp.extend(ev.logprobs)
            content, thinking, _ = parser.feed(ev.text)
            if content or thinking:
                lp = to_logprobs(runner.vocab, pending_lp) if pending_lp else None
                pending_lp = []
                yield ChatResponse(
                    model=name,
                    created_at=_now(),
                    done=False,
                    logprobs=lp,
                    message=Message(role="assistant", content=content, thinking=thinking or None),
                )

    # -- generate -----------------------------------------------------------------------------
    def generate(
        self,
        model: str | GenerateRequest = "",
        prompt: str | Callable | None = None,
        suffix: str | None = None,
        *,
        system: str | None = None,
        template: str | None = None,
        context: Sequence[int] | None = None,
        stream: bool = False,
        think=None,
        raw: bool | None = None,
        format=None,
        images=None,
        options: Options | dict | None = None,
        keep_alive=None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
        **extra: Any,
    ):
        """Complete ``prompt`` (rendered as a user turn with the model's template unless ``raw``).

        ``suffix`` asks for fill-in-the-middle (models with FIM tokens);
        ``context`` continues a previous generate (its returned ``context``).
        Returns like :meth:`chat` (a :class:`GenerateResponse`, an iterator, or
        via a callback with ``generate(GenerateRequest, fn)``).
        """
        fn = None
        if isinstance(model, GenerateRequest):
            req, fn = model, prompt
        else:
            req = _validate(
                GenerateRequest,
                model=model,
                prompt=prompt,
                suffix=suffix,
                system=system,
                template=template,
                context=list(context) if context is not None else None,
                stream=stream,
                think=think,
                raw=raw,
                format=format,
                images=images,
                options=options,
                keep_alive=keep_alive,
                logprobs=logprobs,
                top_logprobs=top_logprobs,
                **extra,
            )
        prep = self._prepare(req.model, req.options, req.keep_alive)
        chunks = self._generate_stream(req, prep, per_token=req.stream or fn is not None)
        if fn is not None:
            return with_callback(chunks, fn)
        return chunks if req.stream else _join_generate(chunks)

    def _generate_prompt(
        self, req: GenerateRequest, prep: _Prepared, entry: Loaded
    ) -> tuple[np.ndarray, dict, str, dict | None]:
        """Prompt tokens, grammar fields, the rendered text, and ``common``'s parse
        parameters (None for raw and fill-in-the-middle prompts, whose output is taken as it is)."""
        vocab = entry.runner.vocab
        schema = json_schema_of(req.format)
        grammar: dict = {}
        if schema is not None and (req.raw or req.suffix is not None):
            # Raw and fill-in-the-middle prompts bypass the template: compile the schema here.
            try:
                grammar = {"grammar": _core.json_schema_to_grammar(schema)}
            except ValueError as exc:
                raise StatusError.bad_request(f"invalid format schema: {exc}") from exc
        if req.suffix is not None:
            if min(vocab.fim_pre, vocab.fim_suf, vocab.fim_mid) < 0:
                raise StatusError.bad_request(f"{req.model} does not support insert")
            pre = vocab.tokenize(req.prompt or "", add_special=False)
            suf = vocab.tokenize(req.suffix, add_special=False)
            bos = [vocab.bos] if vocab.add_bos and vocab.bos >= 0 else []
            toks = np.concatenate(
                [
                    np.array(bos + [vocab.fim_pre], np.int32),
                    pre,
                    np.array([vocab.fim_suf], np.int32),
                    suf,
                    np.array([vocab.fim_mid], np.int32),
                ]
            )
            return toks, grammar, vocab.detokenize(toks, unparse_special=True), None
        params = None
        if req.raw:
            text = req.prompt or ""
        else:
            templates = self._chat_templates(entry, req.template)
            system = req.system if req.system is not None else prep.system
            history = list(prep.messages) if not req.context else []  # as Ollama: not with a context
            messages = oai_messages(history + [Message(role="user", content=req.prompt or "")], system)
            rendered = render_chat(templates, vocab, messages, None, None, schema, req.think)
            text, grammar, params = rendered.prompt, rendered.grammar, rendered.params
        toks = vocab.tokenize(text, add_special=not req.context, parse_special=not req.raw)
        if req.context:
            toks = np.concatenate([np.asarray(req.context, np.int32), toks])
        return toks, grammar, text, params

    def _generate_stream(self, req: GenerateRequest, prep: _Prepared, per_token: bool) -> Iterator[GenerateResponse]:
        t0 = time.perf_counter_ns()
        with self._use(prep) as entry:
            yield from drive(self._generate_steps(req, prep, entry, t0, per_token))

    def _generate_steps(
        self, req: GenerateRequest, prep: _Prepared, entry: Loaded, t0: int, per_token: bool = True
    ) -> Generator:
        """The generate logic as a step generator (see ``_stream``); ``per_token`` as in chat's."""
        name = req.model
        created = int(time.time())
        runner = entry.runner
        if not req.prompt and req.suffix is None:  # the load / unload idiom
            reason = "unload" if prep.keep_alive_s == 0 else "load"
            yield GenerateResponse(
                model=name, created_at=_now(), created=created, response="", done=True, done_reason=reason
            )
            return
        if runner.is_embedding_model:
            raise StatusError.bad_request(f'"{name}" does not support generate')
        if req.images:
            _check_images(name, prep)
        vocab = runner.vocab
        if req.context and (min(req.context) < 0 or max(req.context) >= vocab.n_vocab):
            raise StatusError.bad_request(f"context has token ids outside the vocabulary (0..{vocab.n_vocab - 1})")
        tokens, grammar, text, params = self._generate_prompt(req, prep, entry)
        if len(tokens) >= runner.n_ctx:
            raise StatusError.bad_request(
                f"the prompt has {len(tokens)} tokens, more than the context length of {runner.n_ctx}"
            )
        if req.debug_render_only:
            yield GenerateResponse(
                model=name,
                created_at=_now(),
                created=created,
                response="",
                done=True,
                done_reason="stop",
                debug_info=DebugInfo(rendered_template=text),
            )
            return
        job = _completion_job(req, prep.opts, tokens, grammar, per_token=per_token)
        gen_id = f"gen-{created}-{id(job) & 0xFFFFFF:06x}"
        # A templated prompt's output goes through common's parser, as in chat: it
        # separates thinking and unwraps structured output from a code fence.
        parser = OutputParser(params) if params is not None else None
        yield Submit(runner, job)
        while True:
            ev = checked((yield NEED_EVENT))
            if isinstance(ev, Finished):
                tail, thinking = parser.feed("", final=True)[:2] if parser else ("", "")
                yield GenerateResponse(
                    model=name,
                    created_at=_now(),
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
                    load_duration=self._load_ns(entry, t0),
                    prompt_eval_count=ev.prompt_eval_count,
                    prompt_eval_duration=ev.prompt_eval_duration,
                    eval_count=ev.eval_count,
                    eval_duration=ev.eval_duration,
                )
                return
            text, thinking = parser.feed(ev.text)[:2] if parser else (ev.text, "")
            if text or thinking or ev.logprobs:
                lp = to_logprobs(runner.vocab, ev.logprobs) if ev.logprobs else None
                yield GenerateResponse(
                    model=name,
                    created_at=_now(),
                    created=created,
                    id=gen_id,
                    object="text_completion",
                    response=text,
                    thinking=thinking or None,
                    done=False,
                    logprobs=lp,
                    choices=[Choice(text=text, index=0, logprobs=lp)],
                )

    # -- embeddings ---------------------------------------------------------------------------
    def embed(
        self,
        model: str = "",
        input: str | Sequence[str] = "",
        truncate: bool | None = None,
        options: Options | dict | None = None,
        keep_alive=None,
        dimensions: int | None = None,
        **extra: Any,
    ) -> EmbedResponse:
        """L2-normalised float32 embeddings, one per input (``as_array()`` gives the matrix).

        ``truncate`` (default True) cuts inputs to the context; False makes an
        over-long input a 400. ``dimensions`` keeps the first N values and
        re-normalises.
        """
        req = _validate(
            EmbedRequest,
            model=model,
            input=input,
            truncate=truncate,
            options=options,
            keep_alive=keep_alive,
            dimensions=dimensions,
            **extra,
        )
        prep = self._prepare(req.model, req.options, req.keep_alive)
        texts = [req.input] if isinstance(req.input, str) else list(req.input or [])
        t0 = time.perf_counter_ns()
        with self._use(prep) as entry:
            if not texts or texts == [""]:
                return EmbedResponse(model=req.model, embeddings=[], load_duration=self._load_ns(entry, t0))
            job = self._embed_inputs(entry, texts, req.truncate is not False)
            entry.runner.submit(job)
            matrix = job.result.result()
            if req.dimensions:
                matrix = np.ascontiguousarray(matrix[:, : req.dimensions])
                matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
            if not np.isfinite(matrix).all():
                raise StatusError.internal("embedding contains NaN or Inf values")
            return EmbedResponse.from_array(
                matrix,
                model=req.model,
                total_duration=ns_since(t0),
                load_duration=self._load_ns(entry, t0),
                prompt_eval_count=job.n_tokens,
            )

    def _embed_inputs(self, entry: Loaded, texts: list[str], truncate: bool, normalize: bool = True) -> EmbedJob:
        """One packed job for ``texts``: tokenized in one native call, cut to the context when ``truncate``."""
        tokens, offsets = entry.runner.vocab.tokenize_many(texts, add_special=True)
        limit = entry.runner.n_ctx
        lengths = np.diff(offsets)
        over = np.flatnonzero(lengths > limit)
        if over.size:
            if not truncate:
                i = int(over[0])
                raise StatusError.bad_request(
                    f"input {i}: the input length exceeds the context length ({int(lengths[i])} > {limit} tokens)"
                )
            # Keep the first `limit` tokens of each input (position within its input < limit).
            within = np.arange(len(tokens)) - np.repeat(offsets[:-1], lengths)
            tokens = tokens[within < limit]
            offsets = np.concatenate(([0], np.cumsum(np.minimum(lengths, limit))))
        return EmbedJob(tokens, offsets, normalize)

    def embeddings(
        self,
        model: str = "",
        prompt: str | None = None,
        options: Options | dict | None = None,
        keep_alive=None,
        **extra: Any,
    ) -> EmbeddingResponse:
        """The legacy single-prompt embedding: not normalised."""
        req = _validate(EmbeddingRequest, model=model, prompt=prompt, options=options, keep_alive=keep_alive, **extra)
        prep = self._prepare(req.model, req.options, req.keep_alive)
        with self._use(prep) as entry:
            if not req.prompt:
                return EmbeddingResponse(embedding=[])
            job = self._embed_inputs(entry, [req.prompt], True, normalize=False)
            entry.runner.submit(job)
            return EmbeddingResponse(embedding=job.result.result()[0].tolist())

    # -- models -------------------------------------------------------------------------------
    def list(self) -> ListResponse:
        """The models in the store, newest first."""
        out = []
        for m in self.store.list():
            md = _details.read_metadata(m.path)
            out.append(
                ListModelResponse(
                    name=m.name,
                    model=m.name,
                    modified_at=m.modified_at,
                    size=m.size,
                    digest=m.digest.removeprefix("sha256:"),
                    details=_details.model_details(md, _details.parameter_count(m.path)),
                )
            )
        return ListResponse(models=out)

    def show(self, model: str = "", *, verbose: bool | None = None, **extra: Any) -> ShowResponse:
        """Details, GGUF metadata (``model_info``/``modelinfo``), template, parameters and capabilities."""
        req = _validate(ShowRequest, model=model, verbose=verbose, **extra)
        stored = self.store.resolve(req.model)
        md = _details.read_metadata(stored.path, verbose=bool(req.verbose))
        template, system, params, license_text, has_projector = _details.stored_layers(stored)
        gguf_template = md.get("tokenizer.chat_template")
        caps = _core.ChatTemplates(None, gguf_template).caps() if gguf_template else None
        return ShowResponse(
            license=license_text,
            template=template or gguf_template or "",
            system=system,
            parameters=_details.format_parameters(params),
            messages=_details.stored_messages(stored) or None,
            modelfile=_details.modelfile(stored, template or gguf_template or "", system, params),
            details=_details.model_details(md, _details.parameter_count(stored.path)),
            model_info=_details.model_info(md, bool(req.verbose)),
            capabilities=_details.capabilities(md, caps, has_projector),
            modified_at=stored.modified_at,
        )

    def ps(self) -> ProcessResponse:
        """The loaded models (``list_running``), the latest to expire first."""
        out = []
        for entry in self._scheduler.loaded():
            model = entry.runner.model
            try:
                out.append(
                    ProcessModelResponse(
                        name=entry.name,
                        model=entry.name,
                        size=model.size,
                        size_vram=0,
                        digest=self.store.resolve(entry.name).digest.removeprefix("sha256:"),
                        details=_details.model_details(_details.read_metadata(entry.runner.path), model.n_params),
                        expires_at=_expires_at(entry),
                        context_length=entry.runner.n_ctx,
                    )
                )
            except (ValueError, StatusError):
                continue  # unloaded (or deleted from the store) meanwhile
        out.sort(key=lambda m: m.expires_at, reverse=True)
        return ProcessResponse(models=out)

    list_running = ps

    # -- llama-server's props / tokenize / detokenize, in-process -------------------------------
    def props(self, model: str, *, keep_alive=None) -> PropsResponse:
        """Build info, model path, context size and modalities of a (loaded) model."""
        prep = self._prepare(model, None, keep_alive)
        with self._use(prep) as entry:
            return PropsResponse(
                build_info=f"llamanative {__version__}, llama.cpp {_core.LLAMA_CPP_COMMIT[:8]}",
                model_path=prep.stored.path,
                n_ctx=entry.runner.n_ctx,
                modalities=Modalities(),
            )

    def tokenize(
        self, model: str, text: str, *, add_special: bool = True, parse_special: bool = False, keep_alive=None
    ) -> np.ndarray:
        """Token ids of ``text`` as an int32 array (the model is loaded if needed)."""
        prep = self._prepare(model, None, keep_alive)
        with self._use(prep) as entry:
            return entry.runner.vocab.tokenize(text, add_special=add_special, parse_special=parse_special)

    def token_pieces(self, model: str, tokens: Sequence[int], *, keep_alive=None) -> list[TokenResponse]:
        """Each token's text (pieces of a multi-byte character are shown with replacement characters)."""
        prep = self._prepare(model, None, keep_alive)
        with self._use(prep) as entry:
            vocab = entry.runner.vocab
            try:
                return [
                    TokenResponse(token=vocab.token_to_piece(int(t), special=True).decode("utf-8", "replace"))
                    for t in tokens
                ]
            except ValueError as exc:
                raise StatusError.bad_request(str(exc)) from exc

    def detokenize(self, model: str, tokens: Sequence[int], *, keep_alive=None) -> str:
        """The text of token ids."""
        prep = self._prepare(model, None, keep_alive)
        with self._use(prep) as entry:
            try:
                return entry.runner.vocab.detokenize(tokens)
            except ValueError as exc:
                raise StatusError.bad_request(str(exc)) from exc

    def version(self) -> VersionResponse:
        """The library version (the llama.cpp commit is ``llamanative.LLAMA_CPP_COMMIT``)."""
        return VersionResponse(version=__version__)

    def heartbeat(self) -> None:
        """Raise if the engine cannot run (no compute backend found)."""
        if not _core.devices():
            raise StatusError.internal("no compute device found by the native backends")

    def create(
        self,
        model: str = "",
        quantize: str | None = None,
        from_: str | None = None,
        files: dict | None = None,
        adapters: dict | None = None,
        template: str | None = None,
        license: str | list[str] | None = None,
        system: str | None = None,
        parameters: Options | dict | None = None,
        messages: Sequence[Any] | None = None,
        *,
        stream: bool = False,
        **extra: Any,
    ) -> StatusResponse:
        """Store a model under ``model`` from a GGUF path (``from_``) or another stored model."""
        if isinstance(parameters, Options):
            parameters = parameters.model_dump(exclude_none=True)
        req = _validate(
            CreateRequest,
            model=model,
            quantize=quantize,
            from_=from_,
            files=files,
            adapters=adapters,
            template=template,
            license=license,
            system=system,
            parameters=parameters,
            messages=messages,
            stream=stream,
            **extra,
        )
        if req.quantize or req.adapters:
            raise StatusError.bad_request("quantize and adapters are not supported by create")
        source = req.from_ or next(iter((req.files or {}).values()), None)
        if not source:
            raise StatusError.bad_request("create needs from_ (a GGUF path or a model name) or files")
        if is_digest(source):  # files={"model.gguf": digest} after create_blob, as ollama-python does
            blob = self.store.blob_path(source)
            if not blob.is_file():
                raise StatusError.bad_request(f"blob {source} not found: upload it with create_blob(path) first")
            source = str(blob)
        if req.parameters:
            Options.from_map(req.parameters)  # validate before storing
        self.store.create(
            req.model,
            from_=source,
            template=req.template,
            system=req.system,
            parameters=req.parameters,
            license=req.license,
            messages=[m.model_dump(exclude_none=True) for m in req.messages] if req.messages else None,
        )
        return StatusResponse(status="success")

    def create_blob(self, path: str | os.PathLike) -> str:
        """Put the file at ``path`` into the store's blobs; return its digest for ``create(files=...)``.

        The digest is ``sha256:<hex>``.

        Raises:
            FileNotFoundError: no such file.
        """
        return self.store.put_blob(Path(path))

    def pull(
        self,
        model: str | PullRequest = "",
        fn: Callable | None = None,
        *,
        insecure: bool = False,
        stream: bool = False,
        **extra: Any,
    ):
        """Bring a model into the store (see :mod:`llamanative.store.pull` for the sources).

        Returns the last :class:`ProgressResponse` (status "success"), an
        iterator of them with ``stream=True``, or calls ``fn`` with each one
        (``pull(PullRequest(...), fn)``; if ``fn`` raises, the pull stops).
        """
        if isinstance(model, PullRequest):
            req = model
        else:
            req = _validate(PullRequest, model=model, insecure=insecure, stream=stream, **extra)
        from ..store.pull import pull as _pull

        progress = _pull(self.store, req.model, insecure=bool(req.insecure))
        if fn is not None:
            return with_callback(progress, fn)
        if req.stream:
            return progress
        last = None
        for item in progress:
            last = item
        return last

    def copy(self, source: str, destination: str) -> StatusResponse:
        req = _validate(CopyRequest, source=source, destination=destination)
        self.store.copy(req.source, req.destination)
        return StatusResponse(status="success")

    def unload(self, model: str) -> bool:
        """Unload ``model`` now (after its running requests), whatever options it was loaded with.

        A llamanative extension (Ollama's idiom, ``generate(model, keep_alive=0)``,
        would first reload a model loaded with other load-time options).
        Returns whether it was loaded.

        Raises:
            StatusError: 404 unknown model.
        """
        return self._scheduler.unload(self.store.resolve(model).path)

    def delete(self, model: str) -> StatusResponse:
        req = _validate(DeleteRequest, model=model)
        stored = self.store.resolve(req.model)
        self._scheduler.unload(stored.path)
        self.store.delete(req.model)
        return StatusResponse(status="success")


def _expires_at(entry: Loaded) -> datetime:
    """When an idle model unloads; for one in use, as Ollama estimates: now + keep_alive."""
    if entry.refs == 0 and not math.isinf(entry.expires_at):
        return datetime.fromtimestamp(entry.expires_at, timezone.utc)
    ka = entry.keep_alive_s
    forever = ka < 0 or math.isinf(ka)
    return _now() + (timedelta(days=365 * 100) if forever else timedelta(seconds=ka))


def _check_images(name: str, prep: _Prepared) -> None:
    """Images need a vision model; the engine does not run multimodal projectors yet, so say which case it is."""
    if not prep.has_projector:
        raise StatusError.bad_request(f'"{name}" does not support vision')
    raise StatusError.bad_request(f'"{name}" has a vision projector, but llamanative does not run images yet')


def _completion_job(
    req: ChatRequest | GenerateRequest,
    opts: Options,
    tokens: np.ndarray,
    grammar: dict,
    stops: tuple[str, ...] = (),
    per_token: bool = True,
) -> CompletionJob:
    """The engine job for a chat or generate request: sampler, limits, stops, context shift, logprobs,
    and whether the caller takes the text token by token."""
    return CompletionJob(
        tokens,
        sampling_params(opts, **grammar),
        opts.num_predict,
        tuple(opts.stop or ()) + stops,
        shift=req.shift is not False,
        n_keep=4 if opts.num_keep is None else opts.num_keep,
        logprobs=top_count(req.logprobs, req.top_logprobs),
        per_token=per_token,
    )


def _join_chat(chunks: Iterator[ChatResponse]) -> ChatResponse:
    """A non-streamed chat: the partial messages joined into the final response."""
    content, thinking, logprobs, last = [], [], [], None
    for c in chunks:
        content.append(c.message.content or "")
        thinking.append(c.message.thinking or "")
        logprobs.extend(c.logprobs or ())
        last = c
    last.message.content = "".join(content)
    last.message.thinking = "".join(thinking) or None
    if last.logprobs is not None:
        last.logprobs = logprobs
    return last


def _join_generate(chunks: Iterator[GenerateResponse]) -> GenerateResponse:
    text, thinking, logprobs, last = [], [], [], None
    for c in chunks:
        text.append(c.response or "")
        thinking.append(c.thinking or "")
        logprobs.extend(c.logprobs or ())
        last = c
    last.response = "".join(text)
    last.thinking = "".join(thinking) or None
    if last.logprobs is not None:
        last.logprobs = logprobs
    if last.choices:
        last.choices[0].text = last.response
    return last
