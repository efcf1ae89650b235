"""The completion methods of :class:`~llamanative.Client`: ``chat`` and ``generate``.

Typed with ``@overload`` on ``stream``, as ollama-python types them: a
response when ``stream`` is false, an iterator of partial responses when it
is true. The work is done by ``_chat`` and ``_generate``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, cast, overload

from pydantic import BaseModel

from ..types import ChatRequest, ChatResponse, GenerateRequest, GenerateResponse, Options
from ._chat import chat_stream, join_chat
from ._generate import generate_stream, join_generate
from ._session import Session, validate
from ._stream import with_callback

Format = str | Mapping[str, Any] | type[BaseModel] | None
"""``format``: ``""``, ``"json"``, a JSON schema (a dict or its text) or a pydantic model class."""


class CompletionMethods:
    """``chat`` and ``generate`` over the client's session."""

    _session: Session

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
        audio: Sequence[Any] | None = None,
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
        audio: Sequence[Any] | None = None,
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
        audio: Sequence[Any] | None = None,
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
        audio: Sequence[Any] | None = None,
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
        ``steps``), and llamanative's ``audio`` (WAV, MP3 or FLAC clips for a
        projector with an audio encoder, after the images in the prompt),
        ``truncate``, ``shift`` and ``_debug_render_only``; any other raises
        ``TypeError``.
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
                audio=audio,
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
