"""Client: the documented API (chat, generate, embed, list, show, ...) in-process.

Each method validates its request once (the request types), resolves the
model in the store, and hands the work to the engine's scheduler; it knows
nothing of llama.cpp itself. Keyword arguments follow ollama-python, so code
written for it runs unchanged; the spec's request objects with a callback
(``client.chat(ChatRequest(...), fn)``) work too.

The work of each method is done by a module per responsibility: ``_chat``
and ``_generate`` (completions), ``_embed``, ``_models`` (the store),
``_tokens`` (llama-server's props/tokenize/detokenize) and ``_status``
(ps/version/heartbeat), over the store and scheduler of ``_session``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..types import (
    ChatRequest,
    CopyRequest,
    CreateRequest,
    DeleteRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbedRequest,
    EmbedResponse,
    GenerateRequest,
    ListResponse,
    Options,
    ProcessResponse,
    PropsResponse,
    PullRequest,
    ShowRequest,
    ShowResponse,
    StatusResponse,
    TokenResponse,
    VersionResponse,
)
from . import _embed, _models, _status, _tokens
from ._chat import chat_stream, join_chat
from ._generate import generate_stream, join_generate
from ._session import Session, validate
from ._stream import with_callback


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
        self._session = Session(models_dir, max_loaded_models)
        self.store = self._session.store
        self._scheduler = self._session.scheduler

    def close(self) -> None:
        """Unload every model (after running requests finish)."""
        self._session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        fn: Callable[[Any], object] | None = None
        if isinstance(model, ChatRequest):
            req, fn = model, cast("Callable[[Any], object] | None", messages)
        else:
            req = validate(
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
        prep = self._session.prepare(req.model, req.options, req.keep_alive)
        chunks = chat_stream(self._session, req, prep, per_token=req.stream or fn is not None)
        if fn is not None:
            return with_callback(chunks, fn)
        return chunks if req.stream else join_chat(chunks)

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
        fn: Callable[[Any], object] | None = None
        if isinstance(model, GenerateRequest):
            req, fn = model, cast("Callable[[Any], object] | None", prompt)
        else:
            req = validate(
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
        prep = self._session.prepare(req.model, req.options, req.keep_alive)
        chunks = generate_stream(self._session, req, prep, per_token=req.stream or fn is not None)
        if fn is not None:
            return with_callback(chunks, fn)
        return chunks if req.stream else join_generate(chunks)

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
        req = validate(
            EmbedRequest,
            model=model,
            input=input,
            truncate=truncate,
            options=options,
            keep_alive=keep_alive,
            dimensions=dimensions,
            **extra,
        )
        return _embed.embed(self._session, req)

    def embeddings(
        self,
        model: str = "",
        prompt: str | None = None,
        options: Options | dict | None = None,
        keep_alive=None,
        **extra: Any,
    ) -> EmbeddingResponse:
        """The legacy single-prompt embedding: not normalised."""
        req = validate(EmbeddingRequest, model=model, prompt=prompt, options=options, keep_alive=keep_alive, **extra)
        return _embed.embeddings(self._session, req)

    # -- llama-server's props / tokenize / detokenize, in-process -------------------------------
    def props(self, model: str, *, keep_alive=None) -> PropsResponse:
        """Build info, model path, context size and modalities of a (loaded) model."""
        return _tokens.props(self._session, model, keep_alive)

    def tokenize(
        self, model: str, text: str, *, add_special: bool = True, parse_special: bool = False, keep_alive=None
    ) -> np.ndarray:
        """Token ids of ``text`` as an int32 array (the model is loaded if needed)."""
        return _tokens.tokenize(
            self._session, model, text, add_special=add_special, parse_special=parse_special, keep_alive=keep_alive
        )

    def token_pieces(self, model: str, tokens: Sequence[int], *, keep_alive=None) -> list[TokenResponse]:
        """Each token's text (pieces of a multi-byte character are shown with replacement characters)."""
        return _tokens.token_pieces(self._session, model, tokens, keep_alive)

    def detokenize(self, model: str, tokens: Sequence[int], *, keep_alive=None) -> str:
        """The text of token ids."""
        return _tokens.detokenize(self._session, model, tokens, keep_alive)

    def version(self) -> VersionResponse:
        """The library version (the llama.cpp commit is ``llamanative.LLAMA_CPP_COMMIT``)."""
        return _status.version()

    def heartbeat(self) -> None:
        """Raise if the engine cannot run (no compute backend found)."""
        _status.heartbeat()

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
        req = validate(
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
        return _models.create(self._session, req)

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
            req = validate(PullRequest, model=model, insecure=insecure, stream=stream, **extra)
        return _models.pull(self._session, req, fn)

    def copy(self, source: str, destination: str) -> StatusResponse:
        req = validate(CopyRequest, source=source, destination=destination)
        return _models.copy(self._session, req)

    def unload(self, model: str) -> bool:
        """Unload ``model`` now (after its running requests), whatever options it was loaded with.

        A llamanative extension (Ollama's idiom, ``generate(model, keep_alive=0)``,
        would first reload a model loaded with other load-time options).
        Returns whether it was loaded.

        Raises:
            StatusError: 404 unknown model.
        """
        return _models.unload(self._session, model)

    def delete(self, model: str) -> StatusResponse:
        req = validate(DeleteRequest, model=model)
        return _models.delete(self._session, req)

    # -- what is stored and loaded -----------------------------------------------------------------
    # Last in the class body: from here on, `list` in an annotation would name the method.
    def list(self) -> ListResponse:
        """The models in the store, newest first."""
        return _models.list_models(self._session)

    def show(self, model: str = "", *, verbose: bool | None = None, **extra: Any) -> ShowResponse:
        """Details, GGUF metadata (``model_info``/``modelinfo``), template, parameters and capabilities."""
        req = validate(ShowRequest, model=model, verbose=verbose, **extra)
        return _models.show(self._session, req)

    def ps(self) -> ProcessResponse:
        """The loaded models (``list_running``), the latest to expire first."""
        return _status.running(self._session)

    list_running = ps
