"""The sequence slots of a generation context and the KV cells each one holds.

A generation context has ``n_seq_max`` sequences; each is a slot that serves
one request at a time and keeps the tokens of its last request cached for a
later one that starts the same way. The compiled :class:`_core.Stepper`
tracks the tokens each sequence holds; :class:`Sequences` keeps that record
and the context's KV cache in step (every removal from one is a removal from
the other). The admission policy (:mod:`.admission`) and the generation loop
(:mod:`.generation`) work on slots through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from .. import _core
from .adapters import NO_ADAPTERS, AdapterSet
from .jobs import CompletionJob, TokenLogprobs


@dataclass
class Slot:
    """The Python side of a sequence slot; its token state lives in the compiled Stepper."""

    seq: int
    job: CompletionJob | None = None
    sampler: _core.Sampler | None = None
    logprobs: list[TokenLogprobs] = field(default_factory=list)  # not yet handed out with a piece
    held: list[str] = field(default_factory=list)  # text kept for a job that is not per_token
    # Some of its cached tokens were generated in steps shared with other slots,
    # so its KV cells alternate with theirs (see Admission.park).
    interleaved: bool = False
    # The adapter set (LoRA adapters, control vector) its cached cells were
    # computed with: only a job with the same set may reuse them.
    adapters: AdapterSet = NO_ADAPTERS
    t_start: int = 0
    t_first: int = 0


class Sequences:
    """The slots of ``ctx`` (one per sequence) and the Stepper that drives them.

    ``ctx`` is the context every call on the Python side goes to; the Stepper
    holds the same context natively.
    """

    def __init__(self, ctx: _core.Context) -> None:
        self.ctx = ctx
        self.slots = [Slot(seq=i) for i in range(ctx.n_seq_max)]
        self.stepper = _core.Stepper(ctx, len(self.slots))

    def cached(self, slot: Slot) -> npt.NDArray[np.int32]:
        """The tokens ``slot``'s sequence holds in the KV cache, one cell each (positions: :meth:`pos`)."""
        return self.stepper.cached(slot.seq)

    def pos(self, slot: Slot, index: int | None = None) -> int:
        """The position of cached entry ``index`` of ``slot`` (default: the position after them all).

        It is the index itself except after media runs of an M-RoPE projector,
        which take fewer positions than cells (see ``Stepper.pos``).
        """
        return self.stepper.pos(slot.seq, index)

    def free(self) -> list[Slot]:
        return [s for s in self.slots if s.job is None]

    def running(self) -> list[Slot]:
        return [s for s in self.slots if s.job is not None]

    def clear(self, slot: Slot) -> None:
        """Remove the whole sequence from the KV cache."""
        self.ctx.seq_rm(slot.seq, -1, -1)
        self.stepper.forget(slot.seq, 0)

    def trim(self, slot: Slot, keep: int) -> int:
        """Remove all but the first ``keep`` tokens of the sequence from the KV cache.

        A ``keep`` inside an M-RoPE media run removes the whole run (its cells
        share one position). Returns the tokens kept.
        """
        self.ctx.seq_rm(slot.seq, self.stepper.pos(slot.seq, keep), -1)
        return self.stepper.forget(slot.seq, keep)

    def stop(self, slot: Slot) -> None:
        """Stop generating on ``slot`` (its cells stay cached)."""
        self.stepper.release(slot.seq)

    def close(self) -> None:
        """Free the Stepper and the slots' samplers (the context belongs to the caller)."""
        self.stepper.close()
        for slot in self.slots:
            if slot.sampler is not None:
                slot.sampler.close()
