"""Generation: continuous batching of completion jobs over the slots of one context.

Each step builds **one** batch from all active slots (the next token of each
generating slot, then chunks of pending prompts up to ``n_batch``), decodes
once and samples every slot with its own sampler chain. The per-token work
of a step (batch building, decode, sampling, end of generation and stop
strings, UTF-8-safe detokenisation, context shift) runs in the compiled
:class:`_core.Stepper` without the GIL; this module starts jobs where the
admission policy (:mod:`.admission`) places them, hands each token's text to
its caller, pauses the slots whose reader is behind (back-pressure, see
:mod:`.jobs`) and handles a full KV cache. Slots whose jobs use different
LoRA adapter sets or control vectors are decoded in steps of their own
(:mod:`.adapters`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from .. import _core
from ..errors import InvalidBatchError, MediaError, NoKvSlotError
from .adapters import AdapterGroups
from .admission import Admission
from .jobs import HIGH_WATER, LOW_WATER, Backlog, CompletionJob, Failed, Finished, Piece, TokenLogprobs
from .sampling import make_sampler
from .slots import Sequences, Slot
from .speculation import speculate


class Generation:
    """Runs completion jobs on the slots of ``seqs``; called only from the runner's worker thread.

    Args:
        model: the model (its samplers are built from it).
        seqs: the generation context's slots.
        policy: where jobs start and what idle slots keep.
        job_done: called once for every job that ends, whichever way.
        requeue: hands a deferred job back to the runner's queue.
        projector: the model's multimodal projector, if it has one.
        adapters: the model's loaded LoRA adapters (a job's ``adapters.lora`` index them).
        control_vectors: the paths of the model's control vector GGUFs (a job's ``adapters.cvec`` index them).
    """

    def __init__(
        self,
        model: _core.Model,
        seqs: Sequences,
        policy: Admission,
        job_done: Callable[[], None],
        requeue: Callable[[CompletionJob], None],
        projector: _core.Projector | None = None,
        adapters: Sequence[_core.LoraAdapter] = (),
        control_vectors: Sequence[str] = (),
    ) -> None:
        self._model = model
        self._seqs = seqs
        self._policy = policy
        self._job_done = job_done
        self._requeue = requeue
        self._n_swa = model.n_swa
        self._projector = projector
        self._groups = AdapterGroups(seqs, adapters, control_vectors)
        self.deferred: list[CompletionJob] = []  # waiting for KV room: handed back when a job finishes

    def running(self) -> list[Slot]:
        return self._seqs.running()

    def jobs(self) -> list[CompletionJob]:
        """Every job this object still owes an outcome: running and deferred."""
        return [s.job for s in self._seqs.slots if s.job is not None] + self.deferred

    def admit(self, waiting: list[CompletionJob]) -> list[CompletionJob]:
        """Start what fits of ``waiting`` (dropping cancelled jobs); return the jobs still waiting."""
        still = []
        started = False
        for job in waiting:
            if job.cancelled:
                self._job_done()
                continue
            free = self._seqs.free()
            if not free:
                still.append(job)
                continue
            slot, prefix = self._policy.place(job, free)
            try:
                self._start(slot, job, prefix)
                started = True
            except BaseException as exc:  # a bad grammar, a prompt too long ...
                slot.job = None
                job.events.put(Failed(exc))
                self._job_done()
        if started:
            self._policy.started()
        return still

    def _start(self, slot: Slot, job: CompletionJob, prefix: int) -> None:
        seqs = self._seqs
        n = len(job.prompt)
        if job.max_tokens == 0:  # nothing to generate: done without touching the model
            job.events.put(Finished("length", (), 0, 0, 0, 0))
            self._job_done()
            return
        if n == 0:
            raise ValueError("the prompt is empty")
        n_ctx = seqs.ctx.n_ctx_seq
        if n >= n_ctx:
            raise ValueError(f"the prompt has {n} tokens; the context holds {n_ctx}")
        if job.media and self._projector is None:
            raise ValueError("the prompt has media but the model has no projector")
        self._groups.check(job.adapters)
        # Reuse the cached prefix, but always evaluate at least the last prompt
        # token: its logits give the first sampled token. A media run is reused
        # whole or not at all.
        keep = media_safe_keep(job.prompt, min(prefix, n - 1)) if job.media else min(prefix, n - 1)
        keep = seqs.trim(slot, keep)
        if keep and self._n_swa and not 0 <= seqs.ctx.seq_pos_min(slot.seq) <= max(0, seqs.pos(slot) - self._n_swa):
            # Sliding-window layers keep only their last window: the window
            # before `keep` is gone, so the prefix cannot be continued (as
            # llama-server decides). Evaluate the whole prompt.
            seqs.clear(slot)
            keep = 0
        if keep == 0:
            slot.interleaved = False
        slot.adapters = job.adapters  # what its cells hold from here on is computed with them
        if slot.sampler is not None:
            slot.sampler.close()
        slot.sampler = make_sampler(self._model, job.params, n_ctx=n_ctx)
        seqs.stepper.start(
            slot.seq,
            job.prompt,
            keep,
            slot.sampler,
            job.stops,
            max_tokens=job.max_tokens,
            shift=job.shift,
            n_keep=job.n_keep,
            media=job.media or False,  # the chunks tell M-RoPE images' positions
        )
        try:
            speculate(seqs.stepper, slot.seq, job.spec)
        except BaseException:
            seqs.stop(slot)
            raise
        slot.job, slot.logprobs, slot.held = job, [], []
        slot.t_start, slot.t_first = time.perf_counter_ns(), 0

    def step(self, active: list[Slot]) -> bool:
        """One decode for every active slot that is not paused (cancelled jobs are dropped first).

        Returns False when nothing could run: every running slot is paused,
        waiting for its reader (the caller then sleeps until woken).
        """
        for slot in active:
            if slot.job is not None and slot.job.cancelled:
                self._seqs.stop(slot)
                self._release(slot)
        active = [s for s in active if s.job is not None]
        if not active:
            return True
        scheduled = [s for s in active if not self._throttled(s)]
        if not scheduled:
            return False
        # One adapter set (LoRA adapters, control vector) a step: the group whose turn it is, its set on the context.
        scheduled = self._groups.choose(scheduled, active)
        # At most one media chunk between two steps: the other slots wait no
        # longer than one encode.
        if self._projector is not None:
            for slot in scheduled:
                # Only a job with media asks the stepper (a text job's step costs nothing more).
                if slot.job is not None and slot.job.media and self._seqs.stepper.media_next(slot.seq):
                    self._eval_media(slot)
                    break
        try:
            events = self._seqs.stepper.step()
        except NoKvSlotError as exc:
            # Paused slots hold cells too: the newest of all running requests gives way.
            self._kv_full(active, exc)
            return True
        except InvalidBatchError as exc:  # rejected before anything was decoded: the context is unchanged
            for slot in scheduled:  # the batch held only these
                self._finish_failed(slot, exc)
            return True
        # Any other failure propagates: after a failed decode the context's memory is undefined
        # (llama.h), so the runner fails, answers its jobs and is replaced by a fresh load.
        for seq, text, token, out_index, finish in events:
            self._deliver(self._seqs.slots[seq], text, token, out_index, finish)
        return True

    def _eval_media(self, slot: Slot) -> None:
        """Write the media chunk at ``slot``'s next prompt position into its sequence (encode, then decode)."""
        job = slot.job
        assert job is not None and self._projector is not None
        index = len(self._seqs.stepper.cached(slot.seq))  # the prompt entry, not the position
        chunk = job.media.get(index)
        try:
            if chunk is None:
                raise ValueError(f"the prompt has a media run at index {index} without its chunk")
            self._seqs.stepper.eval_media(slot.seq, self._projector, chunk)
        except (ValueError, MediaError, InvalidBatchError, NoKvSlotError) as exc:
            # This request's media only: the context is as it was before the chunk.
            self._finish_failed(slot, exc)
        # Any other failure (a failed decode) propagates, as a failed step does.

    def _throttled(self, slot: Slot) -> bool:
        """Whether ``slot`` sits out this step: its job streams and its reader is behind.

        Paused above ``HIGH_WATER`` unread pieces, scheduled again at
        ``LOW_WATER`` or fewer. The stepper leaves a paused slot out of its
        batches; everything the slot holds stays.
        """
        job = slot.job
        assert job is not None
        events = job.events
        if not job.per_token or not isinstance(events, Backlog):
            return False
        if events.paused:
            if events.unread <= LOW_WATER:
                self._pause(slot, events, False)
        elif events.unread > HIGH_WATER:
            self._pause(slot, events, True)
            # The reader wakes the worker only once it sees `paused`; it may have
            # caught up before that: look again after setting it.
            if events.unread <= LOW_WATER:
                self._pause(slot, events, False)
        return events.paused

    def _pause(self, slot: Slot, events: Backlog, paused: bool) -> None:
        self._seqs.stepper.pause(slot.seq, paused)
        events.paused = paused

    def _deliver(self, slot: Slot, text: str, token: int, out_index: int, finish: str | None) -> None:
        """Hand one step's result for ``slot`` to its caller (the one Python touch per token)."""
        job = slot.job
        assert job is not None
        if not slot.t_first:
            slot.t_first = time.perf_counter_ns()
        if token >= 0 and job.logprobs >= 0:
            slot.logprobs.append(token_logprobs(self._seqs.ctx.logits(out_index), token, job.logprobs))
        if not job.per_token:
            if text:
                slot.held.append(text)
            if finish is None:
                return
            text, slot.held = "".join(slot.held), []
        if text or (finish is not None and slot.logprobs):
            job.events.put(Piece(text, token, tuple(slot.logprobs)))
            slot.logprobs = []
        if finish is not None:
            now = time.perf_counter_ns()
            generated = self._seqs.stepper.generated(slot.seq)
            drafted, accepted = self._seqs.stepper.spec_counts(slot.seq)
            job.events.put(
                Finished(
                    finish,
                    tuple(int(t) for t in generated),
                    self._seqs.stepper.n_evaluated(slot.seq),
                    slot.t_first - slot.t_start,
                    len(generated),
                    now - slot.t_first,
                    drafted,
                    accepted,
                )
            )
            self._release(slot)

    def _finish_failed(self, slot: Slot, exc: BaseException) -> None:
        assert slot.job is not None
        slot.job.events.put(Failed(exc))
        self._seqs.stop(slot)
        self._seqs.clear(slot)
        self._release(slot)

    def _release(self, slot: Slot) -> None:
        assert slot.job is not None
        if isinstance(slot.job.events, Backlog):
            slot.job.events.paused = False  # the stepper ended the pause when the slot stopped
        slot.job = None
        self._job_done()
        for job in self.deferred:
            self._requeue(job)
        self.deferred.clear()

    def _kv_full(self, active: list[Slot], exc: NoKvSlotError) -> None:
        # Free the cache of the idle slots first; if only one request is
        # running it cannot fit at all, otherwise the newest waits its turn.
        if self._policy.make_room():
            return
        victim = max(active, key=lambda s: s.t_start)
        job = victim.job
        assert job is not None
        if len(active) == 1 or (job.per_token and len(self._seqs.stepper.generated(victim.seq))):
            # Alone it cannot fit; and a request that already streamed text
            # cannot be restarted without repeating itself (one that is not
            # streamed has handed out nothing: it starts again later).
            self._finish_failed(victim, exc)
            return
        self._seqs.stop(victim)
        self._seqs.clear(victim)
        victim.job = None
        self.deferred.append(job)


def media_safe_keep(prompt: np.ndarray, keep: int) -> int:
    """``keep`` moved back to the start of the media run it would end inside (runs of one negative id)."""
    while 0 < keep < len(prompt) and prompt[keep] < 0 and prompt[keep - 1] == prompt[keep]:
        keep -= 1
    return keep


def token_logprobs(logits: np.ndarray, token: int, top: int) -> TokenLogprobs:
    """Log-softmax of the raw logits at ``token``, with the ``top`` most likely tokens (as Ollama reports them)."""
    x = logits.astype(np.float64)
    m = x.max()
    logz = m + np.log(np.exp(x - m).sum())
    alts: tuple[tuple[int, float], ...] = ()
    if top > 0:
        idx = np.argpartition(x, -top)[-top:]
        idx = idx[np.argsort(-x[idx], kind="stable")]
        alts = tuple((int(i), float(x[i] - logz)) for i in idx)
    return TokenLogprobs(token, float(x[token] - logz), alts)
