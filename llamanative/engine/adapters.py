"""LoRA adapter sets: which adapters, at which scales, a job is decoded with, and steps by adapter set.

A runner loads its model's adapters once (``RunnerConfig.adapters``); each
completion job names the ones it uses with their scales, as an
:data:`AdapterSet`. llama.cpp applies adapters to a whole context
(``Context.set_adapters``), not per sequence, so slots whose jobs use
different sets cannot share a decode: :class:`AdapterGroups` splits the
scheduled slots into groups of one set each, sets the group's adapters on the
context and holds the other slots (``Stepper.hold``) for the step; groups
take turns, ``GROUP_STEPS`` steps each.

The KV cells of a sequence hold what was computed with the adapters of its
job, so a slot's set is part of what it caches: a prefix computed with other
adapters is never reused (:mod:`.admission`, :mod:`.prompt_cache`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from .. import _core

if TYPE_CHECKING:
    from .slots import Sequences, Slot

AdapterSet = tuple[tuple[int, float], ...]
"""``((adapter index, scale), ...)``, sorted by index, without zero scales: equal sets, equal tuples."""

# Steps a group of slots runs before the next group's turn. Changing the
# context's adapters makes llama.cpp reserve its compute graph again at the
# next decode (up to about 15 ms for SmolLM2-135M on two cores, against 16 to
# 30 ms for a one-token step), so groups alternate every few steps, not every
# step (docs/design/engine.md has the measurements).
GROUP_STEPS = 4


def adapter_set(pairs: Iterable[tuple[int, float]]) -> AdapterSet:
    """The normalized set of ``(index, scale)`` pairs: sorted by index, zero scales left out
    (llama.cpp leaves them out too, so a set at scale 0 is the base model's).

    Raises:
        ValueError: an index given twice, a negative index, or a scale that is not a finite number.
    """
    out: dict[int, float] = {}
    for index, scale in pairs:
        index, scale = int(index), float(scale)
        if index < 0:
            raise ValueError(f"adapter index {index} is negative")
        if index in out:
            raise ValueError(f"adapter {index} is given twice")
        if not math.isfinite(scale):
            raise ValueError(f"the scale of adapter {index} is {scale}, not a finite number")
        out[index] = scale
    return tuple(sorted((i, s) for i, s in out.items() if s != 0.0))


def default_set(n_adapters: int) -> AdapterSet:
    """Every adapter at scale 1.0: what a request that names none is decoded with (as Ollama applies ADAPTER)."""
    return tuple((i, 1.0) for i in range(n_adapters))


class AdapterGroups:
    """The adapters set on a generation context, and which slots each step decodes.

    Args:
        seqs: the context's slots (and its stepper).
        adapters: the runner's loaded adapters; an :data:`AdapterSet` indexes them.
    """

    def __init__(self, seqs: Sequences, adapters: Sequence[_core.LoraAdapter]) -> None:
        self._seqs = seqs
        self.adapters = tuple(adapters)
        self._current: AdapterSet = ()  # what the context has set (a new context has none)
        self._turn: AdapterSet | None = None  # the set whose group ran the last step
        self._turn_steps = 0  # steps that group has run in a row
        self._holding = False  # some running slots are held

    def check(self, adapters: AdapterSet) -> None:
        """Refuse a set that names an adapter the runner does not have.

        Raises:
            ValueError: an index out of range.
        """
        for index, _scale in adapters:
            if not 0 <= index < len(self.adapters):
                have = f"adapters 0..{len(self.adapters) - 1}" if self.adapters else "no adapters"
                raise ValueError(f"the model has {have}: there is no adapter {index}")

    def apply(self, adapters: AdapterSet) -> None:
        """Set ``adapters`` on the context (nothing to do when they are set already)."""
        if adapters != self._current:
            self._seqs.ctx.set_adapters([self.adapters[i] for i, _ in adapters], [s for _, s in adapters])
            self._current = adapters

    def choose(self, scheduled: list[Slot], running: list[Slot]) -> list[Slot]:
        """The slots of ``scheduled`` that the next step decodes, with their adapters set on the context.

        With one adapter set among them, all of them. With several, the group
        whose turn it is; every other running slot is held for the step (and
        released again once a single set is left).
        """
        first = scheduled[0].job
        assert first is not None
        key = first.adapters
        if any(s.job is not None and s.job.adapters != key for s in scheduled):
            keys = sorted({s.job.adapters for s in scheduled if s.job is not None})
            if self._turn in keys and self._turn_steps < GROUP_STEPS:
                key = self._turn
            else:  # the next set after the last one, round robin
                later = [k for k in keys if self._turn is None or k > self._turn]
                key = later[0] if later else keys[0]
            group = [s for s in scheduled if s.job is not None and s.job.adapters == key]
            self._hold(running, key)
        else:
            group = scheduled
            if self._holding:
                self._hold(running, None)
        if key == self._turn:
            self._turn_steps += 1
        else:
            self._turn, self._turn_steps = key, 1
        self.apply(key)
        return group

    def _hold(self, running: list[Slot], key: AdapterSet | None) -> None:
        """Hold every running slot whose set is not ``key`` (None: hold none)."""
        stepper = self._seqs.stepper
        for slot in running:
            if slot.job is not None:
                stepper.hold(slot.seq, key is not None and slot.job.adapters != key)
        self._holding = key is not None
