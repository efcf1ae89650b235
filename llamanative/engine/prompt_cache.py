"""Sequences parked in RAM: the KV cache of idle slots, kept for prefix reuse.

All slots share one KV buffer (llama.cpp's unified cache), and a decode
attends over every cell up to the highest one in use, whichever sequence
holds it. An idle slot that keeps an old conversation therefore slows every
running one (docs/design/engine.md has the measurement). So when a request
starts, the admission policy (:mod:`.admission`) parks the other idle slots
here (their KV bytes and tokens) and clears them from the context; a later
request that continues one of them restores it instead of evaluating it
again, as llama-server does with ``--cache-ram`` and a unified cache.

Entries are evicted least recently used first beyond ``capacity_bytes``.
Each entry carries the LoRA adapter set its KV was computed with
(:mod:`.adapters`): a lookup finds only entries of the request's own set.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from .adapters import NO_ADAPTERS, AdapterSet

# Parked sequences shorter than this are cleared, not kept: evaluating them
# again costs about what saving and restoring them does.
MIN_PARK_TOKENS = 64


def cache_ram_bytes() -> int:
    """The RAM budget of parked sequences: ``LLAMANATIVE_CACHE_RAM`` MiB (default 512; 0 disables)."""
    value = os.environ.get("LLAMANATIVE_CACHE_RAM", "512")
    try:
        mib = int(value)
    except ValueError:
        raise ValueError(f"LLAMANATIVE_CACHE_RAM must be a number of MiB, got {value!r}") from None
    if mib < 0:
        raise ValueError(f"LLAMANATIVE_CACHE_RAM must be >= 0, got {mib}")
    return mib << 20


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    """Length of the longest common prefix of two token arrays."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = np.nonzero(a[:n] != b[:n])[0]
    return int(diff[0]) if diff.size else n


@dataclass(frozen=True)
class Parked:
    """One sequence's tokens (one KV cell each; the Stepper knows their positions), its KV state
    (``Context.save_seq_state``) and the adapter set that state was computed with."""

    tokens: np.ndarray
    state: bytes
    adapters: AdapterSet = NO_ADAPTERS


class PromptCache:
    """Parked sequences of one context, looked up by longest common prefix."""

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity_bytes = capacity_bytes
        self._entries: OrderedDict[int, Parked] = OrderedDict()  # oldest first
        self._next_key = 0
        self.size_bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, tokens: np.ndarray, state: bytes, adapters: AdapterSet = NO_ADAPTERS) -> None:
        """Keep a sequence computed with ``adapters``; entries of that set it extends (or repeats) are dropped,
        then the oldest beyond capacity."""
        if len(state) > self.capacity_bytes:
            return
        for key, e in list(self._entries.items()):
            if e.adapters == adapters and common_prefix(e.tokens, tokens) == len(e.tokens):
                self._drop(key)
        self._entries[self._next_key] = Parked(np.array(tokens, dtype=np.int32), state, adapters)
        self._next_key += 1
        self.size_bytes += len(state)
        while self.size_bytes > self.capacity_bytes:
            self._drop(next(iter(self._entries)))

    def holds(self, tokens: np.ndarray, adapters: AdapterSet = NO_ADAPTERS) -> bool:
        """Whether an entry of ``adapters`` starts with ``tokens``: parking them again would add nothing
        (:meth:`best` always prefers the longer entry)."""
        return any(
            e.adapters == adapters and len(e.tokens) >= len(tokens) and common_prefix(e.tokens, tokens) == len(tokens)
            for e in self._entries.values()
        )

    def best(self, prompt: np.ndarray, at_least: int, adapters: AdapterSet = NO_ADAPTERS) -> tuple[Parked, int] | None:
        """The entry of ``adapters`` sharing the longest prefix with ``prompt`` and how much it shares.

        Only a prefix longer than ``at_least`` and of at least ``MIN_PARK_TOKENS``
        counts: a few shared tokens are not worth a restore. The entry stays
        (restoring copies it) and becomes the most recently used.
        """
        best_key, best_n = None, max(at_least, MIN_PARK_TOKENS - 1)
        for key, e in self._entries.items():
            if e.adapters != adapters:
                continue
            n = common_prefix(e.tokens, prompt)
            if n > best_n:
                best_key, best_n = key, n
        if best_key is None:
            return None
        self._entries.move_to_end(best_key)
        return self._entries[best_key], best_n

    def clear(self) -> None:
        self._entries.clear()
        self.size_bytes = 0

    def _drop(self, key: int) -> None:
        self.size_bytes -= len(self._entries.pop(key).state)
