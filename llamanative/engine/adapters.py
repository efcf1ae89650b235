"""Adapter sets: which LoRA adapters and control vectors, at which scales, a job is decoded with, and steps by
adapter set.

A runner loads its model's LoRA adapters once (``RunnerConfig.adapters``) and
checks its control vectors (``RunnerConfig.control_vectors``); each
completion job names the ones it uses with their scales, and the layers its
control vectors apply to, as an :class:`AdapterSet`. llama.cpp applies both
to a whole context (``Context.set_adapters``, ``Context.set_control_vector``),
not per sequence, so slots whose jobs use different sets cannot share a
decode: :class:`AdapterGroups` splits the scheduled slots into groups of one
set each, sets the group's adapters and control vector on the context and
holds the other slots (``Stepper.hold``) for the step; groups take turns,
``GROUP_STEPS`` steps each. A set's control vectors are summed, each at its
scale, by llama.cpp's loader (``_core.ControlVector``) when a job of that set
starts; the sums of recent sets are kept.

The KV cells of a sequence hold what was computed with the adapters and
control vector of its job, so a slot's set is part of what it caches: a
prefix computed with another set is never reused (:mod:`.admission`, :mod:`.prompt_cache`).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from .. import _core

if TYPE_CHECKING:
    from .slots import Sequences, Slot

Scales = tuple[tuple[int, float], ...]
"""``((index, scale), ...)``, sorted by index, without zero scales: equal choices, equal tuples."""


class AdapterSet(NamedTuple):
    """The LoRA adapters and control vectors a job is decoded with (made by :func:`adapter_set`): equal sets,
    equal tuples, so a set is a key of the prefix cache."""

    lora: Scales = ()
    "The runner's LoRA adapters and their scales."
    cvec: Scales = ()
    "The runner's control vectors and their scales (summed into one)."
    cvec_layers: tuple[int, int] = (0, 0)
    """The layers the control vectors are added to, ``(first, last)``, both included; ``last`` 0 = the model's last
    layer. ``(0, 0)`` without control vectors."""


NO_ADAPTERS = AdapterSet()
"""The base model: no adapter, no control vector."""

# Sums of control vectors kept for the sets of recent jobs (a sum is n_layer * n_embd floats).
CVEC_CACHE = 16

# Steps a group of slots runs before the next group's turn. Changing the
# context's adapters makes llama.cpp reserve its compute graph again at the
# next decode (up to about 15 ms for SmolLM2-135M on two cores, against 16 to
# 30 ms for a one-token step), so groups alternate every few steps, not every
# step (docs/design/engine.md has the measurements).
GROUP_STEPS = 4


def _scales(pairs: Iterable[tuple[int, float]], what: str) -> Scales:
    out: dict[int, float] = {}
    for index, scale in pairs:
        index, scale = int(index), float(scale)
        if index < 0:
            raise ValueError(f"{what} index {index} is negative")
        if index in out:
            raise ValueError(f"{what} {index} is given twice")
        if not math.isfinite(scale):
            raise ValueError(f"the scale of {what} {index} is {scale}, not a finite number")
        out[index] = scale
    return tuple(sorted((i, s) for i, s in out.items() if s != 0.0))


def adapter_set(
    pairs: Iterable[tuple[int, float]] = (),
    cvec: Iterable[tuple[int, float]] = (),
    cvec_layers: tuple[int, int] | None = None,
) -> AdapterSet:
    """The normalized set of LoRA adapter ``(index, scale)`` pairs, control vector ``(index, scale)`` pairs and the
    control vectors' layer range: sorted by index, zero scales left out (llama.cpp leaves them out too, so a
    set at scale 0 is the base model's); the range ``(first, last)`` (default ``(1, 0)``: every layer, 0 for
    the model's last) is dropped when no control vector is left.

    Raises:
        ValueError: an index given twice, a negative index, a scale that is not a finite number, or a layer
            range that is not ``1 <= first`` and ``last == 0`` or ``first <= last``.
    """
    lora = _scales(pairs, "adapter")
    vectors = _scales(cvec, "control vector")
    layers = (1, 0) if cvec_layers is None else (int(cvec_layers[0]), int(cvec_layers[1]))
    if layers[0] < 1 or (layers[1] != 0 and layers[1] < layers[0]):
        raise ValueError(f"the control vector layer range {layers[0]}..{layers[1]} is empty or starts before layer 1")
    return AdapterSet(lora, vectors, layers if vectors else (0, 0))


def default_set(n_adapters: int, n_cvecs: int = 0) -> AdapterSet:
    """Every adapter and every control vector at scale 1.0, the vectors on every layer: what a request that names
    none is decoded with (as Ollama applies ADAPTER, as llama-server applies ``--control-vector``)."""
    return adapter_set(((i, 1.0) for i in range(n_adapters)), ((i, 1.0) for i in range(n_cvecs)))


class AdapterGroups:
    """The adapters set on a generation context, and which slots each step decodes.

    Args:
        seqs: the context's slots (and its stepper).
        adapters: the runner's loaded adapters; an :class:`AdapterSet`'s ``lora`` indexes them.
        cvecs: the paths of the runner's control vector GGUFs; an :class:`AdapterSet`'s ``cvec`` indexes them.
    """

    def __init__(self, seqs: Sequences, adapters: Sequence[_core.LoraAdapter], cvecs: Sequence[str] = ()) -> None:
        self._seqs = seqs
        self.adapters = tuple(adapters)
        self.cvecs = tuple(cvecs)
        self._current: AdapterSet = NO_ADAPTERS  # what the context has set (a new context has none)
        self._turn: AdapterSet | None = None  # the set whose group ran the last step
        self._turn_steps = 0  # steps that group has run in a row
        self._holding = False  # some running slots are held
        self._sums: OrderedDict[Scales, _core.ControlVector] = OrderedDict()  # loaded sums, least recent first

    def check(self, adapters: AdapterSet) -> None:
        """Refuse a set that names an adapter or control vector the runner does not have, or layers the model
        does not have; load the sum of its control vectors.

        Raises:
            ValueError: an index out of range, a layer range beyond the model's layers.
            ControlVectorLoadError, FileNotFoundError: a control vector file no longer loads.
        """
        for index, _scale in adapters.lora:
            if not 0 <= index < len(self.adapters):
                have = f"adapters 0..{len(self.adapters) - 1}" if self.adapters else "no adapters"
                raise ValueError(f"the model has {have}: there is no adapter {index}")
        for index, _scale in adapters.cvec:
            if not 0 <= index < len(self.cvecs):
                have = f"control vectors 0..{len(self.cvecs) - 1}" if self.cvecs else "no control vectors"
                raise ValueError(f"the model has {have}: there is no control vector {index}")
        if adapters.cvec:
            n_layer = self._seqs.ctx.model.n_layer
            if adapters.cvec_layers[1] > n_layer:
                first, last = adapters.cvec_layers
                raise ValueError(
                    f"the control vector layer range {first}..{last} ends after the model's {n_layer} layers"
                )
            self._sum(adapters.cvec)

    def _sum(self, cvec: Scales) -> _core.ControlVector:
        """The control vectors of ``cvec`` loaded and summed at their scales (kept for the next jobs)."""
        found = self._sums.get(cvec)
        if found is not None:
            self._sums.move_to_end(cvec)
            return found
        vector = _core.ControlVector([(self.cvecs[i], s) for i, s in cvec], self._seqs.ctx.model)
        self._sums[cvec] = vector
        if len(self._sums) > CVEC_CACHE:  # the least recent sum no running slot uses
            used = {s.job.adapters.cvec for s in self._seqs.slots if s.job is not None}
            for key in list(self._sums):
                if key not in used and key != cvec:
                    del self._sums[key]
                    break
        return vector

    def apply(self, adapters: AdapterSet) -> None:
        """Set ``adapters`` on the context (nothing to do when they are set already)."""
        current = self._current
        if adapters.lora != current.lora:
            self._seqs.ctx.set_adapters([self.adapters[i] for i, _ in adapters.lora], [s for _, s in adapters.lora])
            self._current = current = current._replace(lora=adapters.lora)
        if (adapters.cvec, adapters.cvec_layers) != (current.cvec, current.cvec_layers):
            if adapters.cvec:
                first, last = adapters.cvec_layers
                self._seqs.ctx.set_control_vector(self._sum(adapters.cvec), first, last or None)
            else:
                self._seqs.ctx.set_control_vector(None)
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
