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
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, cast, overload

import numpy as np
from pydantic import BaseModel

from ..types import (
    ChatRequest,
    ChatResponse,
    CopyRequest,
    CreateRequest,
    DeleteRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbedRequest,
    EmbedResponse,
    GenerateRequest,
    GenerateResponse,
    ListResponse,
    Options,
    ProcessResponse,
    ProgressResponse,
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

# httpx.Client's keywords (0.27 and 0.28), which ollama-python passes through to it.
HTTPX_CLIENT_KEYWORDS = frozenset(
    {
        "auth",
        "params",
        "headers",
        "cookies",
        "verify",
        "cert",
        "trust_env",
        "http1",
        "http2",
        "proxy",
        "proxies",
        "mounts",
        "timeout",
        "follow_redirects",
        "limits",
        "max_redirects",
        "event_hooks",
        "base_url",
        "transport",
        "app",
        "default_encoding",
    }
)

Format = str | Mapping[str, Any] | type[BaseModel] | None
"""``format``: ``""``, ``"json"``, a JSON schema (a dict or its text) or a pydantic model class."""


def check_http_keywords(owner: str, kwargs: Mapping[str, Any]) -> None:
    """Raise ``TypeError`` for a keyword that neither ollama-python's client nor httpx's takes (a misspelling)."""
    for name in kwargs:
        if name not in HTTPX_CLIENT_KEYWORDS:
            raise TypeError(f"{owner}.__init__() got an unexpected keyword argument {name!r}")


class Client:
    """Runs models in this process.

    Takes ollama-python's arguments, so that code written for it runs
    unchanged: ``host``, ``follow_redirects``, ``timeout``, ``headers`` and
    the keywords it passes to ``httpx.Client`` (``auth``, ``verify``,
    ``proxy``, ``transport`` ...) are accepted and ignored, since no request
    goes over HTTP. Any other keyword raises ``TypeError``, as it does with
    ollama-python.

    Args:
        host: ignored (ollama-python's server address).
        follow_redirects: ignored.
        timeout: ignored.
        headers: ignored.
        models_dir: the model store (default ``LLAMANATIVE_MODELS`` or the user cache dir).
        max_loaded_models: most models loaded at once (default ``LLAMANATIVE_MAX_LOADED_MODELS`` or 3).
        **kwargs: httpx.Client's keywords, ignored.

    Raises:
        TypeError: a keyword that is none of these.
    """

    def __init__(
        self,
        host: str | None = None,
        *,
        follow_redirects: bool = True,
        timeout: Any = None,
        headers: Mapping[str, str] | None = None,
        models_dir: str | os.PathLike[str] | None = None,
        max_loaded_models: int | None = None,
        **kwargs: Any,
    ) -> None:
        check_http_keywords(type(self).__name__, kwargs)
        self._session = Session(None if models_dir is None else os.fspath(models_dir), max_loaded_models)
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
    @overload
    def chat(
        self,
        model: str = "",
        messages: Sequence[Any] | None = None,
        *,
        stream: Literal[False] = False,
        tools: Sequence[Any] | None = None,
        think: bool | str | None = None,
        format: Format = None,
        options: Options | Mapping[str, Any] | None = None,
        keep_alive: float | str | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
        truncate: bool | None = None,
        shift: bool | None = None,
        _debug_render_only: bool | None = None,
    ) -> ChatResponse: ...

    @overload
    def chat(
        self,
        model: str = "",
        messages: Sequence[Any] | None = None,
        *,
        stream: Literal[True],
        tools: Sequence[Any] | None = None,
        think: bool | str | None = None,
        format: Format = None,
        options: Options | Mapping[str, Any] | None = None,
        keep_alive: float | str | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
        truncate: bool | None = None,
        shift: bool | None = None,
        _debug_render_only: bool | None = None,
    ) -> Iterator[ChatResponse]: ...

    @overload
    def chat(
        self,
        model: str = "",
        messages: Sequence[Any] | None = None,
        *,
        stream: bool,
        tools: Sequence[Any] | None = None,
        think: bool | str | None = None,
        format: Format = None,
        options: Options | Mapping[str, Any] | None = None,
        keep_alive: float | str | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
        truncate: bool | None = None,
        shift: bool | None = None,
        _debug_render_only: bool | None = None,
    ) -> ChatResponse | Iterator[ChatResponse]: ...

    @overload
    def chat(self, model: ChatRequest, messages: Callable[[ChatResponse], object]) -> ChatResponse: ...

    @overload
    def chat(self, model: ChatRequest) -> ChatResponse | Iterator[ChatResponse]: ...

    def chat(
        self,
        model: str | ChatRequest = "",
        messages: Sequence[Any] | Callable[[ChatResponse], object] | None = None,
        *,
        stream: bool = False,
        tools: Sequence[Any] | None = None,
        think: bool | str | None = None,
        format: Format = None,
        options: Options | Mapping[str, Any] | None = None,
        keep_alive: float | str | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
        truncate: bool | None = None,
        shift: bool | None = None,
        _debug_render_only: bool | None = None,
    ) -> ChatResponse | Iterator[ChatResponse]:
        """Chat with a model: the next assistant message for ``messages``.

        Returns a :class:`ChatResponse`, or with ``stream=True`` an iterator of
        partial responses (the last with ``done=True``, ``done_reason`` and the
        metrics). Called as ``chat(ChatRequest, fn)``, calls ``fn`` with every
        partial response and returns the last.

        The keywords are ollama-python's, and llamanative's ``tool_choice``,
        ``truncate``, ``shift`` and ``_debug_render_only`` (see the request
        types); any other raises ``TypeError``.

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
                truncate=truncate,
                shift=shift,
                _debug_render_only=_debug_render_only,
            )
        prep = self._session.prepare(req.model, req.options, req.keep_alive)
        chunks = chat_stream(self._session, req, prep, per_token=req.stream or fn is not None)
        if fn is not None:
            return cast(ChatResponse, with_callback(chunks, fn))
        return chunks if req.stream else join_chat(chunks)

    # -- generate -----------------------------------------------------------------------------
    @overload
    def generate(
        self,
        model: str = "",
        prompt: str | None = None,
        suffix: str | None = None,
        *,
        stream: Literal[False] = False,
        system: str | None = None,
        template: str | None = None,
        context: Sequence[int] | None = None,
        think: bool | str | None = None,
        raw: bool | None = None,
        format: Format = None,
        images: Sequence[Any] | None = None,
        options: Options | Mapping[str, Any] | None = None,
        keep_alive: float | str | None = None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
        truncate: bool | None = None,
        shift: bool | None = None,
        _debug_render_only: bool | None = None,
    ) -> GenerateResponse: ...

    @overload
    def generate(
        self,
        model: str = "",
        prompt: str | None = None,
        suffix: str | None = None,
        *,
        stream: Literal[True],
        system: str | None = None,
        template: str | None = None,
        context: Sequence[int] | None = None,
        think: bool | str | None = None,
        raw: bool | None = None,
        format: Format = None,
        images: Sequence[Any] | None = None,
        options: Options | Mapping[str, Any] | None = None,
        keep_alive: float | str | None = None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
        truncate: bool | None = None,
        shift: bool | None = None,
        _debug_render_only: bool | None = None,
    ) -> Iterator[GenerateResponse]: ...

    @overload
    def generate(
        self,
        model: str = "",
        prompt: str | None = None,
        suffix: str | None = None,
        *,
        stream: bool,
        system: str | None = None,
        template: str | None = None,
        context: Sequence[int] | None = None,
        think: bool | str | None = None,
        raw: bool | None = None,
        format: Format = None,
        images: Sequence[Any] | None = None,
        options: Options | Mapping[str, Any] | None = None,
        keep_alive: float | str | None = None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
        truncate: bool | None = None,
        shift: bool | None = None,
        _debug_render_only: bool | None = None,
    ) -> GenerateResponse | Iterator[GenerateResponse]: ...

    @overload
    def generate(self, model: GenerateRequest, prompt: Callable[[GenerateResponse], object]) -> GenerateResponse: ...

    @overload
    def generate(self, model: GenerateRequest) -> GenerateResponse | Iterator[GenerateResponse]: ...

    def generate(
        self,
        model: str | GenerateRequest = "",
        prompt: str | Callable[[GenerateResponse], object] | None = None,
        suffix: str | None = None,
        *,
        stream: bool = False,
        system: str | None = None,
        template: str | None = None,
        context: Sequence[int] | None = None,
        think: bool | str | None = None,
        raw: bool | None = None,
        format: Format = None,
        images: Sequence[Any] | None = None,
        options: Options | Mapping[str, Any] | None = None,
        keep_alive: float | str | None = None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
        truncate: bool | None = None,
        shift: bool | None = None,
        _debug_render_only: bool | None = None,
    ) -> GenerateResponse | Iterator[GenerateResponse]:
        """Complete ``prompt`` (rendered as a user turn with the model's template unless ``raw``).

        ``suffix`` asks for fill-in-the-middle (models with FIM tokens);
        ``context`` continues a previous generate (its returned ``context``).
        Returns like :meth:`chat` (a :class:`GenerateResponse`, an iterator, or
        via a callback with ``generate(GenerateRequest, fn)``). The keywords are
        ollama-python's (but its image-generation ``width``, ``height`` and
        ``steps``), and llamanative's ``truncate``, ``shift`` and
        ``_debug_render_only``; any other raises ``TypeError``.
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
                truncate=truncate,
                shift=shift,
                _debug_render_only=_debug_render_only,
            )
        prep = self._session.prepare(req.model, req.options, req.keep_alive)
        chunks = generate_stream(self._session, req, prep, per_token=req.stream or fn is not None)
        if fn is not None:
            return cast(GenerateResponse, with_callback(chunks, fn))
        return chunks if req.stream else join_generate(chunks)

    # -- embeddings ---------------------------------------------------------------------------
    def embed(
        self,
        model: str = "",
        input: str | Sequence[str] = "",
        truncate: bool | None = None,
        options: Options | Mapping[str, Any] | None = None,
        keep_alive: float | str | None = None,
        dimensions: int | None = None,
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
        )
        return _embed.embed(self._session, req)

    def embeddings(
        self,
        model: str = "",
        prompt: str | None = None,
        options: Options | Mapping[str, Any] | None = None,
        keep_alive: float | str | None = None,
    ) -> EmbeddingResponse:
        """The legacy single-prompt embedding: not normalised."""
        req = validate(EmbeddingRequest, model=model, prompt=prompt, options=options, keep_alive=keep_alive)
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

    @overload
    def create(
        self,
        model: str = "",
        quantize: str | None = None,
        from_: str | None = None,
        files: dict[str, str] | None = None,
        adapters: dict[str, str] | None = None,
        template: str | None = None,
        license: str | Sequence[str] | None = None,
        system: str | None = None,
        parameters: Options | Mapping[str, Any] | None = None,
        messages: Sequence[Any] | None = None,
        *,
        stream: Literal[False] = False,
    ) -> StatusResponse: ...

    @overload
    def create(
        self,
        model: str = "",
        quantize: str | None = None,
        from_: str | None = None,
        files: dict[str, str] | None = None,
        adapters: dict[str, str] | None = None,
        template: str | None = None,
        license: str | Sequence[str] | None = None,
        system: str | None = None,
        parameters: Options | Mapping[str, Any] | None = None,
        messages: Sequence[Any] | None = None,
        *,
        stream: Literal[True],
    ) -> Iterator[ProgressResponse]: ...

    @overload
    def create(
        self,
        model: str = "",
        quantize: str | None = None,
        from_: str | None = None,
        files: dict[str, str] | None = None,
        adapters: dict[str, str] | None = None,
        template: str | None = None,
        license: str | Sequence[str] | None = None,
        system: str | None = None,
        parameters: Options | Mapping[str, Any] | None = None,
        messages: Sequence[Any] | None = None,
        *,
        stream: bool,
    ) -> StatusResponse | Iterator[ProgressResponse]: ...

    def create(
        self,
        model: str = "",
        quantize: str | None = None,
        from_: str | None = None,
        files: dict[str, str] | None = None,
        adapters: dict[str, str] | None = None,
        template: str | None = None,
        license: str | Sequence[str] | None = None,
        system: str | None = None,
        parameters: Options | Mapping[str, Any] | None = None,
        messages: Sequence[Any] | None = None,
        *,
        stream: bool = False,
    ) -> StatusResponse | Iterator[ProgressResponse]:
        """Store a model under ``model`` from a GGUF path (``from_``) or another stored model.

        The model is stored before this returns; with ``stream=True`` the
        result is an iterator of one progress response (status "success"), as
        ollama-python's streamed create ends.
        """
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
            license=license if license is None or isinstance(license, str) else list(license),
            system=system,
            parameters=parameters,
            messages=messages,
            stream=stream,
        )
        done = _models.create(self._session, req)
        return iter([ProgressResponse(status=done.status)]) if stream else done

    def create_blob(self, path: str | os.PathLike) -> str:
        """Put the file at ``path`` into the store's blobs; return its digest for ``create(files=...)``.

        The digest is ``sha256:<hex>``.

        Raises:
            FileNotFoundError: no such file.
        """
        return self.store.put_blob(Path(path))

    @overload
    def pull(
        self,
        model: str,
        fn: None = None,
        *,
        insecure: bool = False,
        stream: Literal[False] = False,
    ) -> ProgressResponse: ...

    @overload
    def pull(
        self,
        model: str,
        fn: None = None,
        *,
        insecure: bool = False,
        stream: Literal[True],
    ) -> Iterator[ProgressResponse]: ...

    @overload
    def pull(
        self,
        model: str,
        fn: None = None,
        *,
        insecure: bool = False,
        stream: bool,
    ) -> ProgressResponse | Iterator[ProgressResponse]: ...

    @overload
    def pull(
        self,
        model: str | PullRequest,
        fn: Callable[[ProgressResponse], object],
        *,
        insecure: bool = False,
        stream: bool = False,
    ) -> ProgressResponse: ...

    @overload
    def pull(self, model: PullRequest) -> ProgressResponse | Iterator[ProgressResponse]: ...

    def pull(
        self,
        model: str | PullRequest = "",
        fn: Callable[[ProgressResponse], object] | None = None,
        *,
        insecure: bool = False,
        stream: bool = False,
    ) -> ProgressResponse | Iterator[ProgressResponse]:
        """Bring a model into the store (see :mod:`llamanative.store.pull` for the sources).

        Returns the last :class:`ProgressResponse` (status "success"), an
        iterator of them with ``stream=True``, or calls ``fn`` with each one
        (``pull(PullRequest(...), fn)``; if ``fn`` raises, the pull stops).
        """
        if isinstance(model, PullRequest):
            req = model
        else:
            req = validate(PullRequest, model=model, insecure=insecure, stream=stream)
        return cast("ProgressResponse | Iterator[ProgressResponse]", _models.pull(self._session, req, fn))

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

    def show(self, model: str = "", *, verbose: bool | None = None) -> ShowResponse:
        """Details, GGUF metadata (``model_info``/``modelinfo``), template, parameters and capabilities."""
        req = validate(ShowRequest, model=model, verbose=verbose)
        return _models.show(self._session, req)

    def ps(self) -> ProcessResponse:
        """The loaded models (``list_running``), the latest to expire first."""
        return _status.running(self._session)

    list_running = ps
