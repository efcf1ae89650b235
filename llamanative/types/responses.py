"""Response types of generate, chat and the embedding calls.

The metrics fields (:class:`Metrics`) sit at the top level of
``ChatResponse`` and ``GenerateResponse``, in nanoseconds, as in the spec;
``resp.summary()`` prints them as ``ollama run --verbose`` does.
Timestamps are timezone-aware ``datetime`` values, RFC 3339 in JSON.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, PrivateAttr

from .base import SubscriptableBaseModel, Timestamp
from .messages import Message
from .metrics import Metrics
from .tools import ToolCall

__all__ = [
    "ChatResponse",
    "Choice",
    "DebugInfo",
    "EmbedResponse",
    "EmbeddingResponse",
    "GenerateResponse",
    "Logprob",
    "TokenLogprob",
]


class TokenLogprob(SubscriptableBaseModel):
    """A token and its log probability."""

    token: str
    "The token's text."

    logprob: float
    "Natural log of the token's probability."

    bytes: list[int] | None = None
    "The token's raw bytes (a token may hold part of a UTF-8 character)."

    _omitempty = frozenset({"bytes"})


class Logprob(TokenLogprob):
    """A generated token's log probability, with the most likely alternatives."""

    top_logprobs: list[TokenLogprob] | None = None
    "The most likely tokens at this position (``top_logprobs`` of the request)."

    _omitempty = frozenset({"bytes", "top_logprobs"})


class DebugInfo(SubscriptableBaseModel):
    """What ``_debug_render_only`` returns instead of running the model."""

    rendered_template: str
    "The prompt the template produced."

    image_count: int | None = None
    "Number of images in the prompt."

    audio_count: int | None = None
    "Number of audio clips in the prompt (a llamanative extension)."

    _omitempty = frozenset({"image_count", "audio_count"})


class ChatResponse(Metrics):
    """A chat response, or one part of a streamed one.

    >>> r = ChatResponse(model="m", message={"role": "assistant", "content": "Hi"}, done=False)
    >>> r["message"]["content"], r.message.content, "done_reason" in r
    ('Hi', 'Hi', False)
    """

    model: str | None = None
    "The model that answered."

    remote_model: str | None = None
    "The upstream model that answered, for a model that runs on a remote host (never set for a local model)."

    remote_host: str | None = None
    "The upstream host that answered, for a remote model (never set for a local model)."

    created_at: Timestamp | None = None
    "When the response (part) was made."

    message: Message
    "The answer, or its new fragment when streaming."

    done: bool | None = None
    "True in the last response of a stream (and in a non-streamed one)."

    done_reason: str | None = None
    "Why generation stopped: 'stop', 'length', 'load', 'unload' ... (last response only)."

    debug_info: DebugInfo | None = Field(None, alias="_debug_info")
    "The rendered prompt, for ``_debug_render_only`` requests."

    logprobs: list[Logprob] | None = None
    "Log probabilities of the generated tokens, if requested."

    _omitempty = Metrics._omitempty | {"remote_model", "remote_host", "done_reason", "debug_info", "logprobs"}


class Choice(SubscriptableBaseModel):
    """One completion choice (OpenAI style), as in the spec's ``GenerateResponse.Choices``."""

    text: str | None = None
    "The generated text (fragment)."

    index: int | None = None
    "Index of the choice."

    logprobs: Any = None
    "Log probability data, if any."

    finish_reason: str | None = None
    "Why generation stopped; empty while it goes on."


class GenerateResponse(Metrics):
    """A generate response, or one part of a streamed one.

    It carries both the Ollama fields (``response``, ``done``, ``created_at``
    ...) and the spec's OpenAI-style ones (``choices``, ``created``, ``id``,
    ``object``, ``system_fingerprint``); the engine fills what it has.

    The spec's ``Done()`` *method* cannot share the name of the ``done``
    *field* that Ollama's JSON (and ollama-python code) use, so the field is
    ``done`` and the method is :meth:`is_done`. :meth:`content` is the spec's
    ``Content()``.

    >>> r = GenerateResponse(model="m", response="Hello", done=True, done_reason="stop")
    >>> r.content(), r.is_done(), r["response"]
    ('Hello', True, 'Hello')
    >>> r = GenerateResponse(choices=[{"text": "Hel"}, {"text": "lo", "finish_reason": "stop"}])
    >>> r.content(), r.is_done()
    ('Hello', True)
    """

    model: str | None = None
    "The model that answered."

    remote_model: str | None = None
    "The upstream model that answered, for a model that runs on a remote host (never set for a local model)."

    remote_host: str | None = None
    "The upstream host that answered, for a remote model (never set for a local model)."

    created_at: Timestamp | None = None
    "When the response (part) was made."

    created: int | None = None
    "Unix time (seconds) of the response, as in the spec's OpenAI-style form."

    response: str | None = None
    "The generated text, or its new fragment when streaming."

    thinking: str | None = None
    "The model's reasoning, when thinking is enabled."

    done: bool | None = None
    "True in the last response of a stream (and in a non-streamed one)."

    done_reason: str | None = None
    "Why generation stopped: 'stop', 'length', 'load', 'unload' ... (last response only)."

    context: list[int] | None = None
    "Token ids of prompt and answer, for a follow-up request (last response only; deprecated)."

    tool_calls: list[ToolCall] | None = None
    "Tool calls parsed from the output. Never set by llamanative: ``generate`` takes no tools (``chat`` does)."

    debug_info: DebugInfo | None = Field(None, alias="_debug_info")
    "The rendered prompt, for ``_debug_render_only`` requests."

    logprobs: list[Logprob] | None = None
    "Log probabilities of the generated tokens, if requested."

    choices: list[Choice] | None = None
    "The spec's OpenAI-style completion choices."

    system_fingerprint: str | None = None
    "Identifies the backend configuration (OpenAI style). Never set by llamanative; kept for the spec."

    id: str | None = None
    "Response id."

    object: str | None = None
    "Object type (e.g. ``'text_completion'``)."

    _omitempty = Metrics._omitempty | {
        "remote_model",
        "remote_host",
        "thinking",
        "done_reason",
        "context",
        "tool_calls",
        "debug_info",
        "logprobs",
        "system_fingerprint",
        "id",
        "object",
    }

    def content(self) -> str:
        """The generated text: the choices' texts joined, or else ``response`` (the spec's ``Content()``)."""
        if self.choices:
            return "".join(c.text or "" for c in self.choices)
        return self.response or ""

    def is_done(self) -> bool:
        """True if generation has finished (the spec's ``Done()``).

        That is: ``done`` is set, or a choice has a ``finish_reason``.
        """
        return bool(self.done) or any(c.finish_reason for c in self.choices or ())


class EmbedResponse(SubscriptableBaseModel):
    """Embeddings of one or more inputs (``embed``).

    ``embeddings`` is a list of lists of floats (L2-normalised by the
    engine). :meth:`as_array` gives them as a float32 matrix; when the
    response was made with :meth:`from_array`, that is the engine's own array,
    not a copy.
    """

    model: str | None = None
    "The model that made the embeddings."

    embeddings: list[list[float]] = Field(default_factory=list)
    "One vector per input."

    total_duration: int | None = None
    "Time spent on the whole request, in nanoseconds."

    load_duration: int | None = None
    "Time spent loading the model, in nanoseconds."

    prompt_eval_count: int | None = None
    "Number of input tokens."

    _omitempty = frozenset({"total_duration", "load_duration", "prompt_eval_count"})

    _array: Any = PrivateAttr(default=None)
    _array_source: Any = PrivateAttr(default=None)

    @classmethod
    def from_array(cls, array: Any, **fields: Any) -> EmbedResponse:
        """A response whose ``embeddings`` come from a 2-D array (n inputs × dimensions).

        The array is kept (converted to float32 only if it is not already),
        so :meth:`as_array` returns it without a copy.

        Raises:
            ValueError: ``array`` is not 2-D.
        """
        import numpy as np

        matrix = np.asarray(array)
        if matrix.ndim != 2:
            raise ValueError(f"embeddings must be a 2-D array (inputs x dimensions), got shape {matrix.shape}")
        if matrix.dtype != np.float32:
            matrix = matrix.astype(np.float32)
        response = cls(**fields)
        response.embeddings = matrix.tolist()
        response._array = matrix
        response._array_source = response.embeddings
        return response

    def __eq__(self, other: object) -> bool:
        # Compare the fields only: the cached array mirrors `embeddings`, and
        # numpy arrays have no single truth value.
        if not isinstance(other, BaseModel):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  # mutable, like every pydantic model

    def as_array(self) -> Any:
        """The embeddings as a float32 ``numpy.ndarray`` of shape (inputs, dimensions).

        The array given to :meth:`from_array` if ``embeddings`` was not
        replaced since; otherwise a new array built from ``embeddings``.
        """
        import numpy as np

        if self._array is not None and self._array_source is self.embeddings:
            return self._array
        if not self.embeddings:
            return np.empty((0, 0), dtype=np.float32)
        return np.asarray(self.embeddings, dtype=np.float32)


class EmbeddingResponse(SubscriptableBaseModel):
    """The embedding of one prompt (legacy ``embeddings``; not normalised)."""

    embedding: list[float] = Field(default_factory=list)
    "The vector."
