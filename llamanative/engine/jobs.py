"""What callers hand to a Runner, and the events they get back.

A caller builds a job, submits it, and reads its ``events`` queue on its own
thread; the Runner's worker thread only ever puts into it. Setting
``cancel()`` (e.g. because a streaming callback raised, or the iterator was
dropped) frees the slot at the next step.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .sampling import SamplingParams


@dataclass(frozen=True)
class TokenLogprobs:
    """One generated token's log probability and the most likely alternatives (natural log, raw model logits)."""

    token: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()  # (token id, logprob), most likely first


@dataclass(frozen=True)
class Piece:
    """Text produced by one generated token (may be ``""`` while a character or stop string is pending)."""

    text: str
    token: int
    logprobs: tuple[TokenLogprobs, ...] = ()  # with ``CompletionJob.logprobs``: one per token since the last piece


@dataclass(frozen=True)
class Finished:
    """The end of a completion, with its measurements (durations in nanoseconds)."""

    reason: str  # "stop" (end of generation or a stop string) or "length"
    tokens: tuple[int, ...]  # every generated token, the end-of-generation token excluded
    prompt_eval_count: int  # prompt tokens actually evaluated (a reused cached prefix is not counted)
    prompt_eval_duration: int
    eval_count: int
    eval_duration: int


@dataclass(frozen=True)
class Failed:
    """The completion failed in the worker; ``error`` is re-raised on the caller's thread."""

    error: BaseException


Event = Piece | Finished | Failed  # what a completion job's events are


class EventSink(Protocol):
    """Where the worker puts a job's events: a ``queue.SimpleQueue`` unless the caller sets its own."""

    def put(self, event: Event, /) -> None: ...


@dataclass
class CompletionJob:
    """A prompt to complete on one sequence slot.

    Args:
        prompt: int32 token ids (at least one).
        params: sampling parameters.
        max_tokens: most tokens to generate; -1 = no limit of its own (bounded
            at ten times the context, as Ollama bounds it).
        stops: stop strings (never part of the output).
        shift: when the context fills up, drop the older half of the tokens
            after the first ``n_keep`` and go on (context shift); False ends
            the completion with reason "length" instead.
        n_keep: prompt tokens a shift never drops (-1 = the whole prompt).
        logprobs: -1 = none; n >= 0 = report each token's log probability
            with the n most likely alternatives (``Piece.logprobs``).
        per_token: hand each token's text over as it comes (streaming). With
            False the runner keeps the text and sends it as one ``Piece`` just
            before ``Finished``, so that the caller's thread does not wake for
            every token: when every core computes the decode, each wake-up
            takes a core from it.
    """

    prompt: np.ndarray
    params: SamplingParams
    max_tokens: int = -1
    stops: tuple[str, ...] = ()
    shift: bool = True
    n_keep: int = 4
    logprobs: int = -1
    per_token: bool = True
    events: EventSink = field(default_factory=lambda: queue.SimpleQueue[Event]())
    _cancelled: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        """Stop generating (safe from any thread); the job then finishes with no further events."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()


@dataclass
class EmbedJob:
    """Token sequences to embed; the result is a float32 matrix, one row per input.

    The inputs are packed: input ``i`` is ``tokens[offsets[i]:offsets[i + 1]]``
    (int32 tokens, int64 offsets, as ``Vocab.tokenize_many`` returns them), so
    that the worker hands them to the native loop without touching each one.
    """

    tokens: np.ndarray
    offsets: np.ndarray
    normalize: bool = True
    result: Future = field(default_factory=Future)

    @classmethod
    def from_sequences(cls, seqs: list[np.ndarray], normalize: bool = True) -> EmbedJob:
        """A job from one token array per input."""
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        tokens = np.concatenate(seqs).astype(np.int32, copy=False) if seqs else np.empty(0, np.int32)
        return cls(tokens, offsets, normalize)

    @property
    def n_inputs(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_tokens(self) -> int:
        return int(self.offsets[-1])
