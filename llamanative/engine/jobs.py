"""What callers hand to a Runner, and the events they get back.

A caller builds a job, submits it, and reads its ``events`` queue on its own
thread; the Runner's worker thread only ever puts into it. Setting
``cancel()`` (e.g. because a streaming callback raised, or the iterator was
dropped) frees the slot at the next step.

Back-pressure: the worker never blocks on a job's queue (that would stall
every other slot of the model). Instead a streamed job (``per_token``) whose
queue (an :class:`EventQueue`, or another :class:`Backlog`) holds more than
``HIGH_WATER`` unread pieces stops being scheduled: its slot keeps its KV
cells, sampler state and position while the other slots go on, and it is
scheduled again once its reader has taken it down to ``LOW_WATER``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .adapters import NO_ADAPTERS, AdapterSet
from .sampling import SamplingParams
from .speculation import SpecParams


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
    draft_count: int = 0  # tokens drafted by speculative decoding and verified
    draft_accepted: int = 0  # of those, the ones the model accepted (they are among eval_count)


@dataclass(frozen=True)
class Failed:
    """The completion failed in the worker; ``error`` is re-raised on the caller's thread."""

    error: BaseException


Event = Piece | Finished | Failed  # what a completion job's events are


# Unread pieces of a streamed job beyond which its slot is no longer scheduled,
# and the count its reader must take it down to for the slot to run again. The
# gap keeps a reader that keeps up from pausing and resuming the slot at every
# token; the high mark is well above what a reader that keeps up leaves unread.
HIGH_WATER = 64
LOW_WATER = 32


class EventSink(Protocol):
    """Where the worker puts a job's events: an :class:`EventQueue` unless the caller sets its own.

    A sink that is not a :class:`Backlog` is never throttled: the worker puts
    every event into it as it comes.
    """

    def put(self, event: Event, /) -> None: ...


class Backlog:
    """The back-pressure side of a job's event sink: how many pieces were put and taken.

    Each counter has one writer: ``sent`` and ``paused`` the runner's worker,
    ``taken`` the reader, so that neither side takes a lock per token. A
    subclass calls :meth:`_sent` for every event it puts and :meth:`_took`
    for every event it hands to the reader.
    """

    def __init__(self) -> None:
        self.sent = 0  # pieces put by the worker
        self.taken = 0  # pieces handed to the reader
        self.paused = False  # the job's slot is not scheduled (set by the worker only)
        self.wake: Callable[[], None] | None = None  # wakes the runner's worker (set by Runner.submit)
        self._ended: BaseException | None = None

    @property
    def unread(self) -> int:
        """Pieces put and not yet taken by the reader."""
        return self.sent - self.taken

    def end(self, error: BaseException) -> None:
        """The runner stopped serving this job (it was closed): the next read gets ``Failed(error)``
        and the pieces still unread are dropped. The runner also puts ``Failed(error)``."""
        self._ended = error

    def _sent(self, event: Event) -> None:
        if isinstance(event, Piece):
            self.sent += 1

    def _took(self, event: Event) -> Event:
        """Count ``event`` as read; wake the worker when a paused slot may run again."""
        if self._ended is not None:
            return Failed(self._ended)
        if isinstance(event, Piece):
            self.taken += 1
            # The worker sets `paused` and then looks at `unread` again, so one of
            # the two sides always sees the other's write: no wake-up is lost.
            if self.paused and self.sent - self.taken <= LOW_WATER and (wake := self.wake) is not None:
                wake()
        return event


class EventQueue(Backlog):
    """A completion job's events, from the runner's worker to one reading thread.

    ``put`` never blocks (the worker serves other slots); back-pressure comes
    from pausing the job's slot instead (see :class:`Backlog`).
    """

    def __init__(self) -> None:
        super().__init__()
        self._queue: queue.SimpleQueue[Event] = queue.SimpleQueue()

    def put(self, event: Event, /) -> None:
        self._sent(event)
        self._queue.put(event)

    def get(self, block: bool = True, timeout: float | None = None) -> Event:
        """The next event (as ``queue.SimpleQueue.get``; raises ``queue.Empty`` after ``timeout`` seconds)."""
        return self._took(self._queue.get(block, timeout))

    def qsize(self) -> int:
        """Events put and not yet taken, pieces and the end alike."""
        return self._queue.qsize()


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
            takes a core from it. Only a per-token job is throttled when its
            reader falls behind (``HIGH_WATER``).
        events: where the worker puts the events (default: a new
            :class:`EventQueue`).
        media: the prompt's media runs (negative ids, see
            ``prompting.media``): the prompt index where each starts -> its
            chunk, which the runner's projector writes into the slot's
            sequence. The context is never shifted for such a prompt.
        spec: speculative decoding for this job (:mod:`.speculation`); None: none.
        adapters: the runner's LoRA adapters and control vectors the job is
            decoded with, their scales and the vectors' layers (an
            :class:`~.adapters.AdapterSet`, made by
            :func:`~.adapters.adapter_set`); default none, the base model.
    """

    prompt: np.ndarray
    params: SamplingParams
    max_tokens: int = -1
    stops: tuple[str, ...] = ()
    shift: bool = True
    n_keep: int = 4
    logprobs: int = -1
    per_token: bool = True
    events: EventSink = field(default_factory=EventQueue)
    media: dict[int, Any] = field(default_factory=dict)  # prompt index -> _core.MediaChunk
    spec: SpecParams | None = None
    adapters: AdapterSet = NO_ADAPTERS
    _cancelled: threading.Event = field(default_factory=threading.Event)
    _wake: Callable[[], None] | None = field(default=None, repr=False)  # set by Runner.submit

    def cancel(self) -> None:
        """Stop generating (safe from any thread); the job then finishes with no further events.

        Wakes the runner's worker, which may be asleep with every slot paused.
        """
        self._cancelled.set()
        if (wake := self._wake) is not None:
            wake()

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
