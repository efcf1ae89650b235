"""Admission and parking: which slot a new request takes, and what the idle slots keep.

A new request takes the free slot whose cached tokens share the longest
prefix with its prompt and only evaluates the rest (prompt-prefix cache).
Two more sources of a prefix are weighed against that slot's own:

- a *running* slot that holds the same beginning (a shared system prompt):
  its cells are shared, not copied (``seq_cp`` in the unified KV cache);
- a *parked* sequence: the other idle slots are moved out of the KV cache
  into RAM when a request starts (see :mod:`.prompt_cache` for why), and a
  request that continues one of them gets it back from RAM.

Every source counts only when its cells were computed with the request's own
LoRA adapter set (:mod:`.adapters`): the same tokens under other adapters hold
other keys and values.

:class:`Admission` holds the policy and the parked sequences; the generation
loop (:mod:`.generation`) asks it where to start a job and tells it when the
running set grew.
"""

from __future__ import annotations

from .. import _core
from ..errors import StateError
from .attention import FlashAttn
from .jobs import CompletionJob
from .prompt_cache import MIN_PARK_TOKENS, PromptCache, common_prefix
from .slots import Sequences, Slot

# A running slot's prefix is shared with a new request when it saves this many
# tokens or more: below that, evaluating them costs about what the bookkeeping
# (and parking what the slot held) does.
MIN_SHARE_TOKENS = 16


class Admission:
    """The slot-and-prefix policy of one generation context, and its parked sequences.

    Args:
        seqs: the context's slots.
        model: the model (its memory kind and sliding window decide what can be shared).
        flash_attn: the setting the context was created with (it decides the KV layout).
        parked: where idle slots' sequences are kept (its budget decides what fits).
    """

    def __init__(self, seqs: Sequences, model: _core.Model, flash_attn: FlashAttn, parked: PromptCache) -> None:
        self._seqs = seqs
        self._flash_attn = flash_attn
        # A recurrent state cannot be shared in part.
        self._recurrent = model.is_recurrent or model.is_hybrid
        self._n_swa = model.n_swa
        self.parked = parked  # idle slots' sequences, out of the KV cache

    def place(self, job: CompletionJob, free: list[Slot]) -> tuple[Slot, int]:
        """The slot among ``free`` that ``job`` starts on, made ready, and the prefix of its prompt it holds."""
        seqs = self._seqs
        cached = [seqs.cached(s) for s in free]
        # A slot's cells computed with other adapters share nothing with this job.
        prefixes = [common_prefix(c, job.prompt) if s.adapters == job.adapters else 0 for s, c in zip(free, cached)]
        # The longest shared prefix; among equals, the slot with the least to lose.
        best = max(range(len(free)), key=lambda i: (prefixes[i], -len(cached[i])))
        slot, prefix = free[best], prefixes[best]
        if len(cached[best]) - prefix >= MIN_PARK_TOKENS and prefix < len(cached[best]) // 2:
            # Mostly another conversation: keep it for later instead of overwriting it; the
            # shared prefix stays in place for this job.
            self.park(slot, keep=prefix)
        # A running slot's cells cost nothing to share; a parked copy costs a
        # load. So a parked sequence is restored only when it offers more.
        shareable, donor = self._donor(slot, job)
        restored = self._restore(slot, job, max(prefix, shareable))
        if restored is not None:  # the slot was cleared for it: what it held is gone
            prefix = restored
        if donor is not None and shareable - prefix >= MIN_SHARE_TOKENS:
            prefix = self._share(slot, donor, shareable)
        return slot, prefix

    def started(self) -> None:
        """After jobs started: park the idle slots and mark the running ones as interleaved when several run."""
        for slot in self._seqs.free():
            self.park(slot)
        # Slots that run together generate into alternating cells. Marked
        # here, where the running set grows, not at every token.
        running = self._seqs.running()
        if len(running) > 1:
            for slot in running:
                slot.interleaved = True

    def make_room(self) -> bool:
        """With the KV cache full: park every idle slot that holds cells. False when none did."""
        idle = [s for s in self._seqs.free() if len(self._seqs.cached(s))]
        for slot in idle:
            self.park(slot)
        return bool(idle)

    def park(self, slot: Slot, keep: int = 0) -> None:
        """Keep the slot's sequence in RAM (unless it is short or costly to copy) and clear it
        from the KV cache, all but its first ``keep`` tokens."""
        seqs = self._seqs
        cached = seqs.cached(slot)
        if len(cached) <= keep:
            return
        # Without flash attention llama.cpp stores V transposed and copies a
        # sequence out one element per cell range and row: for a sequence
        # whose cells alternate with other slots' (it was generated beside
        # them) that is an order of magnitude slower than for contiguous
        # cells, and it holds up every running request (figures:
        # docs/design/engine.md). Such a sequence is dropped instead, as
        # llama-server overwrites a slot; its follow-up is evaluated again.
        # With "auto" (a GPU) llama.cpp decides and does not say, so the
        # layout is unknown: dropping costs a re-evaluation on a fast device,
        # a slow copy would hold up every running request.
        costly = slot.interleaved and self._flash_attn != "on"
        # The size first: a sequence larger than the whole budget is not copied at all;
        # nor is one already kept (the prefix left by an earlier park, about to be replaced).
        if (
            len(cached) >= MIN_PARK_TOKENS
            and not costly
            and not self.parked.holds(cached, slot.adapters)
            and 0 < seqs.ctx.seq_state_size(slot.seq) <= self.parked.capacity_bytes
        ):
            self.parked.put(cached, seqs.ctx.save_seq_state(slot.seq), slot.adapters)
        seqs.trim(slot, keep)

    def _restore(self, slot: Slot, job: CompletionJob, prefix: int) -> int | None:
        """Put the parked sequence of ``job``'s adapter set that shares more than ``prefix`` tokens with its
        prompt into ``slot``.

        Returns None when no parked sequence does (the slot is untouched),
        otherwise the prefix the slot now shares with the prompt: 0 when the
        restore failed (the slot is then empty).
        """
        found = self.parked.best(job.prompt, prefix, job.adapters)
        if found is None:
            return None
        entry, shared = found
        self.park(slot)  # what the slot holds now may be wanted later too
        try:
            self._seqs.ctx.load_seq_state(entry.state, slot.seq)
        except StateError:  # no room beside the running sequences: evaluate the prompt instead
            self._seqs.clear(slot)
            return 0
        try:
            self._seqs.stepper.restored(slot.seq, entry.tokens)
        except ValueError:  # its M-RoPE image positions are no longer known: evaluate it again
            self._seqs.clear(slot)
            return 0
        slot.interleaved = False  # a restored sequence fills contiguous cells
        slot.adapters = entry.adapters
        return shared

    def _donor(self, slot: Slot, job: CompletionJob) -> tuple[int, Slot | None]:
        """The running slot of ``job``'s adapter set whose cells hold the longest prefix of its prompt that
        ``slot`` may share.

        Requests that start while another with the same system prompt runs
        find no idle slot holding it (the other one has it), but its slot
        does. Only what the running slot has already evaluated can be shared.
        Returns that prefix's length and the slot, or ``(0, None)``.
        """
        if self._recurrent:
            return 0, None
        if self._n_swa:
            # A sliding-window cache reuses a cell only once it has left the
            # window of the one sequence that holds it; shared cells would stay
            # and its cache (sized for n_seq_max windows) would run out of room.
            return 0, None
        # A context shift moves the positions of the cells it slides, for every
        # sequence that holds them (llama_memory_seq_add). It only slides cells
        # from the middle of a full context on (the stepper drops the older half
        # after n_keep), so cells below that are safe to share.
        limit = (self._seqs.ctx.n_ctx_seq - 1) // 2
        best, donor = 0, None
        for other in self._seqs.running():
            if other is not slot and other.adapters == job.adapters:
                n = min(common_prefix(self._seqs.cached(other), job.prompt), limit)
                if n > best:
                    best, donor = n, other
        return best, donor

    def _share(self, slot: Slot, donor: Slot, n: int) -> int:
        """Give ``slot`` the first ``n`` cells of the running ``donor`` slot; returns ``n``.

        The cells are shared, not copied (``seq_cp`` in the unified KV cache
        copies no data), so the new request evaluates only what differs.
        """
        self.park(slot)  # what it held may be wanted later; the prefix comes from the donor
        # Cells up to the position of entry n (an M-RoPE image takes fewer positions than cells);
        # a cut inside an image moves back to its start, on both sides.
        self._seqs.ctx.seq_cp(donor.seq, slot.seq, 0, self._seqs.pos(donor, n))
        n = self._seqs.stepper.restored(slot.seq, self._seqs.cached(donor)[:n])
        slot.interleaved = donor.interleaved
        slot.adapters = donor.adapters
        return n
