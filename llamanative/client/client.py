"""Client: the documented API (chat, generate, embed, list, show, ...) in-process.

Each method validates its request once (the request types), resolves the
model in the store, and hands the work to the engine's scheduler; it knows
nothing of llama.cpp itself. Keyword arguments follow ollama-python, so code
written for it runs unchanged; the spec's request objects with a callback
(``client.chat(ChatRequest(...), fn)``) work too.

The work of each method is done by a module per responsibility: ``_chat``
and ``_generate`` (completions), ``_embed``, ``_rerank``, ``_models`` (the store),
``_tokens`` (llama-server's props/tokenize/detokenize) and ``_status``
(ps/version/heartbeat), over the store and scheduler of ``_session``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..types import (
    EmbeddingRequest,
    EmbeddingResponse,
    EmbedRequest,
    EmbedResponse,
    Options,
    PropsResponse,
    RerankRequest,
    RerankResponse,
    TokenResponse,
    VersionResponse,
)
from . import _embed, _rerank, _status, _tokens
from ._client_completions import CompletionMethods
from ._client_models import ModelMethods
from ._session import Session, validate

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


def check_http_keywords(owner: str, kwargs: Mapping[str, Any]) -> None:
    """Raise ``TypeError`` for a keyword that neither ollama-python's client nor httpx's takes (a misspelling)."""
    for name in kwargs:
        if name not in HTTPX_CLIENT_KEYWORDS:
            raise TypeError(f"{owner}.__init__() got an unexpected keyword argument {name!r}")


class Client(CompletionMethods, ModelMethods):
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
        """Unload every model, without waiting for running requests: each is cancelled and raises a
        ``StatusError`` 503 (a stream at its next read). Returns within about 10 s (``Scheduler.close``)."""
        self._session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- embeddings ---------------------------------------------------------------------------
    def embed(
        self,
        model: str | EmbedRequest = "",
        input: str | Sequence[str] = "",
        truncate: bool | None = None,
        options: Options | Mapping[str, Any] | None = None,
        keep_alive: float | str | None = None,
        dimensions: int | None = None,
    ) -> EmbedResponse:
        """L2-normalised float32 embeddings, one per input (``as_array()`` gives the matrix).

        ``truncate`` (default True) cuts inputs to the context; False makes an
        over-long input a 400. ``dimensions`` keeps the first N values and
        re-normalises. The spec's request object works too:
        ``embed(EmbedRequest(model=..., input=[...]))`` (then the other
        arguments are not used).
        """
        if isinstance(model, EmbedRequest):
            req = model
        else:
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
        model: str | EmbeddingRequest = "",
        prompt: str | None = None,
        options: Options | Mapping[str, Any] | None = None,
        keep_alive: float | str | None = None,
    ) -> EmbeddingResponse:
        """The legacy single-prompt embedding: not normalised. ``embeddings(EmbeddingRequest(...))`` works too."""
        if isinstance(model, EmbeddingRequest):
            req = model
        else:
            req = validate(EmbeddingRequest, model=model, prompt=prompt, options=options, keep_alive=keep_alive)
        return _embed.embeddings(self._session, req)

    def rerank(
        self,
        model: str,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        return_documents: bool = False,
        truncate: bool | None = None,
        options: Options | Mapping[str, Any] | None = None,
        keep_alive: float | str | None = None,
    ) -> RerankResponse:
        """Relevance scores of ``documents`` for ``query`` by a reranker model (llama-server's ``/rerank``).

        Each query-document pair is one sequence of one batched job (packed
        into as few decodes as fit, as ``embed`` packs its inputs). The
        results are sorted best first, each with its ``index`` in
        ``documents`` and its ``relevance_score`` (the model's own scale);
        ``top_n`` keeps the best N, ``return_documents`` adds each text.
        ``truncate`` (default True) cuts a pair to the context; False makes an
        over-long pair a 400. An empty ``documents`` loads the model and
        returns no results.

        Raises:
            StatusError: 400 when the model is not a reranker (its GGUF does not
                declare rank pooling) or for invalid arguments; 404 for an unknown model.
        """
        req = validate(
            RerankRequest,
            model=model,
            query=query,
            documents=documents,
            top_n=top_n,
            return_documents=return_documents,
            truncate=truncate,
            options=options,
            keep_alive=keep_alive,
        )
        return _rerank.rerank(self._session, req)

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
