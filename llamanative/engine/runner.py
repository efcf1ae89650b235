"""Runner: one loaded model, one llama_context, one worker thread.

Every request on the model goes through the worker: callers submit jobs and
read events; only the worker calls ``decode``. Each step builds **one** batch
from all active slots (the next token of each generating slot, then chunks of
pending prompts up to ``n_batch``), decodes once and samples every slot with
its own sampler chain (continuous batching). A new request takes the free slot
whose cached tokens share the longest prefix with its prompt and only
evaluates the rest (prompt-prefix cache). The other idle slots are then
parked in RAM and cleared from the KV cache, which all slots share, so that
their old tokens do not slow the running ones; a request that continues a
parked sequence gets it back from RAM (``prompt_cache``).

The per-token work of a step (batch building, decode, sampling, end of
generation and stop strings, UTF-8-safe detokenisation, context shift) runs
in the compiled :class:`_core.Stepper` without the GIL; this module decides
admission, hands each token's text to its caller and handles a full KV cache.

The worker thread ends when the runner has been idle for ``IDLE_EXIT_S`` and
a new one starts with the next job. This matters for builds with OpenMP
(``-DLLAMANATIVE_OPENMP=ON``; the default build uses ggml's own thread
pool): every thread that has run a decode keeps an OpenMP team, and once the
teams of a process hold more threads than there are CPUs, libgomp stops
spin-waiting in all of them and a generating model runs at half speed or
less (measured: 103-114 tokens/s alone, 47-49 once an idle embedding model
had kept its team). A team is freed when its thread ends, so an idle model
must not keep one.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from .. import _core
from ..errors import NoKvSlotError, StateError
from .attention import generation_flash_attn
from .jobs import CompletionJob, EmbedJob, Failed, Finished, Piece, TokenLogprobs
from .prompt_cache import MIN_PARK_TOKENS, PromptCache, cache_ram_bytes, common_prefix
from .sampling import make_sampler

log = logging.getLogger("llamanative.engine")

# A running slot's prefix is shared with a new request when it saves this many
# tokens or more: below that, evaluating them costs about what the bookkeeping
# (and parking what the slot held) does.
MIN_SHARE_TOKENS = 16

# Tokens of short inputs packed into one embedding decode. An encoder attends
# over the whole batch: MiniLM embedded 1,000 sentences at 380 a second in
# packs of 128-256 tokens and 364 in packs of 512 (2 threads; packs of 64 were
# slower, 290). Inputs longer than this still get a decode of their own.
EMBED_PACK_TOKENS = 256

# Seconds a runner's worker waits for work before it ends (and frees an
# OpenMP team in builds with OpenMP: see the module docstring). Back-to-back
# requests keep it; a new thread costs well under a millisecond.
IDLE_EXIT_S = 0.1


def embedding_sequences(n_batch: int) -> int:
    """Sequences per decode of an embedding context whose batch (= ubatch = context) is ``n_batch`` tokens.

    Up to 64 inputs share a decode; llama.cpp's mean pooling also needs the
    batch to be a multiple of the count (see ``Context``), so the largest
    divisor of ``n_batch`` up to that bound.
    """
    bound = min(64, _core.max_parallel_sequences(), n_batch)
    return next(d for d in range(bound, 0, -1) if n_batch % d == 0)


@dataclass(frozen=True)
class RunnerConfig:
    """Load-time settings: a change of any of them means a new Runner (a reload)."""

    n_ctx: int = 4096
    n_batch: int = 512
    n_parallel: int = 4
    n_gpu_layers: int = -1
    main_gpu: int = 0
    use_mmap: bool = True
    n_threads: int = 0  # 0 = all available CPUs
    flash_attn: str = "auto"  # "on", "off" or "auto" (see attention.py: off on the CPU)


@dataclass
class _Slot:
    """The Python side of a sequence slot; its token state lives in the compiled Stepper."""

    seq: int
    job: CompletionJob | None = None
    sampler: _core.Sampler | None = None
    logprobs: list[TokenLogprobs] = field(default_factory=list)  # not yet handed out with a piece
    held: list[str] = field(default_factory=list)  # text kept for a job that is not per_token
    # Some of its cached tokens were generated in steps shared with other slots,
    # so its KV cells alternate with theirs (see Runner._park).
    interleaved: bool = False
    t_start: int = 0
    t_first: int = 0


class Runner:
    """Loads ``path`` and serves completion and embedding jobs on a worker thread.

    Raises (from the constructor): FileNotFoundError, ModelLoadError,
    ContextCreateError — the model could not be loaded.
    """

    def __init__(self, path: str, config: RunnerConfig) -> None:
        t0 = time.perf_counter_ns()
        parked_capacity = cache_ram_bytes()  # before loading: a bad setting must not leak a model
        self.path = path
        self.config = config
        self.model = _core.Model(
            path, n_gpu_layers=config.n_gpu_layers, main_gpu=config.main_gpu, use_mmap=config.use_mmap
        )
        self.vocab = self.model.vocab
        # As Ollama decides: a model whose GGUF declares a pooling type is an embedding model.
        header = _core.read_gguf_metadata(path, arrays=False)
        self.is_embedding_model = f"{header.get('general.architecture')}.pooling_type" in header
        threads = config.n_threads or None
        # The flash-attention setting the context was created with ("auto": llama.cpp decides).
        self.flash_attn = config.flash_attn
        n_ctx = min(config.n_ctx, self.model.n_ctx_train) if self.model.n_ctx_train > 0 else config.n_ctx
        try:
            if self.is_embedding_model:
                # Encoders attend to the whole input at once: one ubatch holds a sequence.
                self.ctx = _core.Context(
                    self.model,
                    n_ctx=n_ctx,
                    n_batch=n_ctx,
                    n_ubatch=n_ctx,
                    n_seq_max=embedding_sequences(n_ctx),
                    n_threads=threads,
                    embeddings=True,
                    flash_attn=config.flash_attn,
                )
            else:
                self.flash_attn = generation_flash_attn(
                    self.model,
                    n_ctx=n_ctx,
                    n_ubatch=config.n_batch,
                    n_gpu_layers=config.n_gpu_layers,
                    setting=config.flash_attn,
                )
                self.ctx = _core.Context(
                    self.model,
                    n_ctx=n_ctx,
                    n_batch=config.n_batch,
                    n_ubatch=config.n_batch,
                    n_seq_max=min(config.n_parallel, config.n_batch, n_ctx),
                    n_threads=threads,
                    flash_attn=self.flash_attn,
                )
        except BaseException:
            self.model.close()
            raise
        self._embed_ctx: _core.Context | None = None
        self.loaded_at_ns = time.perf_counter_ns()
        self.load_duration = self.loaded_at_ns - t0
        n_slots = 0 if self.is_embedding_model else self.ctx.n_seq_max
        self._slots = [_Slot(seq=i) for i in range(n_slots)]
        self._stepper = _core.Stepper(self.ctx, n_slots) if n_slots else None
        self._parked = PromptCache(parked_capacity)  # idle slots' sequences, out of the KV cache
        self._n_swa = self.model.n_swa
        self._pending: queue.SimpleQueue = queue.SimpleQueue()
        self._deferred: list[CompletionJob] = []  # waiting for KV room: retried when a job finishes
        self._wake = threading.Event()
        self._closed = False
        self._active = 0  # submitted jobs not yet finished (for the scheduler's idle check)
        self._lock = threading.Lock()  # guards _active, _thread and the hand-over of _pending
        self._thread: threading.Thread | None = None  # the worker, while there is work

    # -- public, any thread --------------------------------------------------------
    @property
    def n_ctx(self) -> int:
        return self.ctx.n_ctx_seq

    @property
    def busy(self) -> bool:
        return self._active > 0

    def submit(self, job: CompletionJob | EmbedJob) -> None:
        """Queue a job; its events (or its future) report the outcome."""
        with self._lock:  # with close(): a job is either refused or served, never left queued
            if self._closed:
                raise RuntimeError("the runner is closed")
            self._active += 1
            self._pending.put(job)
            if self._thread is None:  # under the lock: the worker checks _pending under it before ending
                self._thread = threading.Thread(target=self._loop, name=f"llamanative-runner:{self.path}", daemon=True)
                self._thread.start()
        self._wake.set()

    def close(self) -> None:
        """Stop the worker after the jobs in flight, then free the context and the model."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join()
        if self._stepper is not None:
            self._stepper.close()
        self._parked.clear()
        for slot in self._slots:
            if slot.sampler is not None:
                slot.sampler.close()
        for ctx in (self._embed_ctx, self.ctx):
            if ctx is not None:
                ctx.close()
        self.model.close()

    # -- worker thread ---------------------------------------------------------------
    def _loop(self) -> None:
        waiting: list[CompletionJob] = []
        try:
            self._serve(waiting)
        except BaseException as exc:  # a bug here must not leave callers waiting forever
            log.exception("runner worker failed")
            self._fail_all(waiting, exc)

    def _fail_all(self, waiting: list[CompletionJob], exc: BaseException) -> None:
        self._closed = True
        jobs = [s.job for s in self._slots if s.job is not None] + waiting + self._deferred
        while True:
            try:
                jobs.append(self._pending.get_nowait())
            except queue.Empty:
                break
        for job in jobs:
            if isinstance(job, EmbedJob):
                job.result.set_exception(exc)
            else:
                job.events.put(Failed(exc))
        with self._lock:
            self._active = 0

    def _serve(self, waiting: list[CompletionJob]) -> None:
        while True:
            # This loop runs once per generated token: it checks before it works.
            if not self._pending.empty():
                embeds = []
                while True:
                    try:
                        job = self._pending.get_nowait()
                    except queue.Empty:
                        break
                    (embeds if isinstance(job, EmbedJob) else waiting).append(job)
                if embeds:
                    self._run_embeds(embeds)  # concurrent embed calls share batches
            if waiting:
                waiting[:] = self._admit(waiting)
            active = [s for s in self._slots if s.job is not None]
            if not active:
                if not waiting:
                    if self._idle_exit():
                        return
                    continue  # a job arrived while idle: serve it at once
                self._wake.wait(0.05)
                self._wake.clear()
                continue
            self._step(active)

    def _idle_exit(self) -> bool:
        """With nothing running or waiting: True when this worker should end now.

        It ends at once when the runner is closed, otherwise after ``IDLE_EXIT_S``
        without a new job; a job submitted meanwhile keeps it (checked under the
        lock that ``submit`` holds while it decides whether to start a worker).
        """
        deadline = time.monotonic() + (0 if self._closed else IDLE_EXIT_S)
        while True:
            with self._lock:
                if not self._pending.empty():
                    return False
                if self._closed or time.monotonic() >= deadline:
                    self._thread = None
                    return True
            self._wake.wait(max(0.0, deadline - time.monotonic()))
            self._wake.clear()

    def _job_done(self) -> None:
        with self._lock:
            self._active -= 1

    def _admit(self, waiting: list[CompletionJob]) -> list[CompletionJob]:
        still = []
        started = False
        for job in waiting:
            if job.cancelled:
                self._job_done()
                continue
            free = [s for s in self._slots if s.job is None]
            if not free:
                still.append(job)
                continue
            cached = [self._stepper.cached(s.seq) for s in free]
            prefixes = [common_prefix(c, job.prompt) for c in cached]
            # The longest shared prefix; among equals, the slot with the least to lose.
            best = max(range(len(free)), key=lambda i: (prefixes[i], -len(cached[i])))
            slot, prefix = free[best], prefixes[best]
            if len(cached[best]) - prefix >= MIN_PARK_TOKENS and prefix < len(cached[best]) // 2:
                # Mostly another conversation: keep it for later instead of overwriting it; the
                # shared prefix stays in place for this job.
                self._park(slot, keep=prefix)
            # A running slot's cells cost nothing to share; a parked copy costs a
            # load. So a parked sequence is restored only when it offers more.
            shareable, donor = self._donor(slot, job.prompt)
            restored = self._restore(slot, job.prompt, max(prefix, shareable))
            if restored is not None:  # the slot was cleared for it: what it held is gone
                prefix = restored
            if donor is not None and shareable - prefix >= MIN_SHARE_TOKENS:
                prefix = self._share(slot, donor, shareable)
            try:
                self._start(slot, job, prefix)
                started = True
            except BaseException as exc:  # a bad grammar, a prompt too long ...
                slot.job = None
                job.events.put(Failed(exc))
                self._job_done()
        if started:
            self._park_idle_slots()
            # Slots that run together generate into alternating cells. Marked
            # here, where the running set grows, not at every token.
            running = [s for s in self._slots if s.job is not None]
            if len(running) > 1:
                for slot in running:
                    slot.interleaved = True
        return still

    def _restore(self, slot: _Slot, prompt: np.ndarray, prefix: int) -> int | None:
        """Put the parked sequence that shares more than ``prefix`` tokens with ``prompt`` into ``slot``.

        Returns None when no parked sequence does (the slot is untouched),
        otherwise the prefix the slot now shares with the prompt: 0 when the
        restore failed (the slot is then empty).
        """
        found = self._parked.best(prompt, prefix)
        if found is None:
            return None
        entry, shared = found
        self._park(slot)  # what the slot holds now may be wanted later too
        try:
            self.ctx.load_seq_state(entry.state, slot.seq)
        except StateError:  # no room beside the running sequences: evaluate the prompt instead
            self.ctx.seq_rm(slot.seq, -1, -1)
            self._stepper.forget(slot.seq, 0)
            return 0
        self._stepper.restored(slot.seq, entry.tokens)
        slot.interleaved = False  # a restored sequence fills contiguous cells
        return shared

    def _donor(self, slot: _Slot, prompt: np.ndarray) -> tuple[int, _Slot | None]:
        """The running slot whose cells hold the longest prefix of ``prompt`` that ``slot`` may share.

        Requests that start while another with the same system prompt runs
        find no idle slot holding it (the other one has it), but its slot
        does. Only what the running slot has already evaluated can be shared.
        Returns that prefix's length and the slot, or ``(0, None)``.
        """
        if self.model.is_recurrent or self.model.is_hybrid:  # a recurrent state cannot be shared in part
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
        limit = (self.ctx.n_ctx_seq - 1) // 2
        best, donor = 0, None
        for other in self._slots:
            if other.job is not None and other is not slot:
                n = min(common_prefix(self._stepper.cached(other.seq), prompt), limit)
                if n > best:
                    best, donor = n, other
        return best, donor

    def _share(self, slot: _Slot, donor: _Slot, n: int) -> int:
        """Give ``slot`` the first ``n`` cells of the running ``donor`` slot; returns ``n``.

        The cells are shared, not copied (``seq_cp`` in the unified KV cache
        copies no data), so the new request evaluates only what differs.
        """
        self._park(slot)  # what it held may be wanted later; the prefix comes from the donor
        self.ctx.seq_cp(donor.seq, slot.seq, 0, n)
        self._stepper.restored(slot.seq, self._stepper.cached(donor.seq)[:n])
        slot.interleaved = donor.interleaved
        return n

    def _park_idle_slots(self) -> None:
        """Move the sequences of idle slots out of the KV cache (see ``prompt_cache``)."""
        for slot in self._slots:
            if slot.job is None:
                self._park(slot)

    def _park(self, slot: _Slot, keep: int = 0) -> None:
        """Keep the slot's sequence in RAM (unless it is short or costly to copy) and clear it
        from the KV cache, all but its first ``keep`` tokens."""
        cached = self._stepper.cached(slot.seq)
        if len(cached) <= keep:
            return
        # Without flash attention llama.cpp stores V transposed and copies a
        # sequence out one element per cell range and row: for a sequence
        # whose cells alternate with other slots' (it was generated beside
        # them), that took 36 ms for 181 tokens of SmolLM2, against 2 ms for
        # contiguous cells, and it holds up every running request. Such a
        # sequence is dropped instead, as llama-server overwrites a slot; its
        # follow-up is evaluated again. With "auto" (a GPU) llama.cpp decides and
        # does not say, so the layout is unknown: dropping costs a re-evaluation
        # on a fast device, a slow copy would hold up every running request.
        costly = slot.interleaved and self.flash_attn != "on"
        # The size first: a sequence larger than the whole budget is not copied at all;
        # nor is one already kept (the prefix left by an earlier park, about to be replaced).
        if (
            len(cached) >= MIN_PARK_TOKENS
            and not costly
            and not self._parked.holds(cached)
            and 0 < self.ctx.seq_state_size(slot.seq) <= self._parked.capacity_bytes
        ):
            self._parked.put(cached, self.ctx.save_seq_state(slot.seq))
        self.ctx.seq_rm(slot.seq, keep, -1)
        self._stepper.forget(slot.seq, keep)

    def _start(self, slot: _Slot, job: CompletionJob, prefix: int) -> None:
        n = len(job.prompt)
        if job.max_tokens == 0:  # nothing to generate: done without touching the model
            job.events.put(Finished("length", (), 0, 0, 0, 0))
            self._job_done()
            return
        if n == 0:
            raise ValueError("the prompt is empty")
        if n >= self.ctx.n_ctx_seq:
            raise ValueError(f"the prompt has {n} tokens; the context holds {self.ctx.n_ctx_seq}")
        # Reuse the cached prefix, but always evaluate at least the last prompt
        # token: its logits give the first sampled token.
        keep = min(prefix, n - 1)
        self.ctx.seq_rm(slot.seq, keep, -1)
        self._stepper.forget(slot.seq, keep)
        if keep and self._n_swa and not 0 <= self.ctx.seq_pos_min(slot.seq) <= max(0, keep - self._n_swa):
            # Sliding-window layers keep only their last window: the window
            # before `keep` is gone, so the prefix cannot be continued (as
            # llama-server decides). Evaluate the whole prompt.
            self.ctx.seq_rm(slot.seq, -1, -1)
            self._stepper.forget(slot.seq, 0)
            keep = 0
        if keep == 0:
            slot.interleaved = False
        if slot.sampler is not None:
            slot.sampler.close()
        slot.sampler = make_sampler(self.model, job.params, n_ctx=self.ctx.n_ctx_seq)
        self._stepper.start(
            slot.seq,
            job.prompt,
            keep,
            slot.sampler,
            job.stops,
            max_tokens=job.max_tokens,
            shift=job.shift,
            n_keep=job.n_keep,
        )
        slot.job, slot.logprobs, slot.held = job, [], []
        slot.t_start, slot.t_first = time.perf_counter_ns(), 0

    def _step(self, active: list[_Slot]) -> None:
        for slot in active:
            if slot.job.cancelled:
                self._stepper.release(slot.seq)
                self._release(slot)
        active = [s for s in active if s.job is not None]
        if not active:
            return
        try:
            events = self._stepper.step()
        except NoKvSlotError as exc:
            self._kv_full(active, exc)
            return
        except BaseException as exc:
            for slot in active:
                self._finish_failed(slot, exc)
            return
        for seq, text, token, out_index, finish in events:
            self._deliver(self._slots[seq], text, token, out_index, finish)

    def _deliver(self, slot: _Slot, text: str, token: int, out_index: int, finish: str | None) -> None:
        """Hand one step's result for ``slot`` to its caller (the one Python touch per token)."""
        job = slot.job
        if not slot.t_first:
            slot.t_first = time.perf_counter_ns()
        if token >= 0 and job.logprobs >= 0:
            slot.logprobs.append(_token_logprobs(self.ctx.logits(out_index), token, job.logprobs))
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
            generated = self._stepper.generated(slot.seq)
            job.events.put(
                Finished(
                    finish,
                    tuple(int(t) for t in generated),
                    self._stepper.n_evaluated(slot.seq),
                    slot.t_first - slot.t_start,
                    len(generated),
                    now - slot.t_first,
                )
            )
            self._release(slot)

    def _finish_failed(self, slot: _Slot, exc: BaseException) -> None:
        slot.job.events.put(Failed(exc))
        self._stepper.release(slot.seq)
        self.ctx.seq_rm(slot.seq, -1, -1)
        self._stepper.forget(slot.seq, 0)
        self._release(slot)

    def _release(self, slot: _Slot) -> None:
        slot.job = None
        self._job_done()
        for job in self._deferred:
            self._pending.put(job)
        self._deferred.clear()

    def _kv_full(self, active: list[_Slot], exc: NoKvSlotError) -> None:
        # Free the cache of the idle slots first; if only one request is
        # running it cannot fit at all, otherwise the newest waits its turn.
        idle = [s for s in self._slots if s.job is None and len(self._stepper.cached(s.seq))]
        if idle:
            for s in idle:
                self._park(s)
            return
        victim = max(active, key=lambda s: s.t_start)
        if len(active) == 1 or (victim.job.per_token and len(self._stepper.generated(victim.seq))):
            # Alone it cannot fit; and a request that already streamed text
            # cannot be restarted without repeating itself (one that is not
            # streamed has handed out nothing: it starts again later).
            self._finish_failed(victim, exc)
            return
        job = victim.job
        self._stepper.release(victim.seq)
        self.ctx.seq_rm(victim.seq, -1, -1)
        self._stepper.forget(victim.seq, 0)
        victim.job = None
        self._deferred.append(job)

    # -- embeddings ------------------------------------------------------------------
    def _embedding_context(self) -> _core.Context:
        if self.is_embedding_model:
            return self.ctx
        if self._embed_ctx is None:
            n = self.ctx.n_ctx_seq
            self._embed_ctx = _core.Context(
                self.model,
                n_ctx=n,
                n_batch=n,
                n_ubatch=n,
                n_seq_max=embedding_sequences(n),
                n_threads=self.config.n_threads or None,
                embeddings=True,
                # a generative model declares no pooling
                pooling_type="mean",
                flash_attn=self.config.flash_attn,
            )
        return self._embed_ctx

    def _run_embeds(self, jobs: list[EmbedJob]) -> None:
        # Concurrent calls are merged into one packed input list, so they share decodes.
        native_norm = all(job.normalize for job in jobs)
        try:
            if len(jobs) == 1:
                tokens, offsets = jobs[0].tokens, jobs[0].offsets
            else:
                tokens = np.concatenate([job.tokens for job in jobs])
                shifts = np.cumsum([0] + [job.n_tokens for job in jobs[:-1]])
                offsets = np.concatenate([jobs[0].offsets[:1]] + [job.offsets[1:] + s for job, s in zip(jobs, shifts)])
            matrix = self._embed(tokens, offsets, normalize=native_norm)
        except BaseException as exc:
            if len(jobs) > 1:  # one bad input must fail only its own call
                for job in jobs:
                    self._run_embeds([job])
                return
            jobs[0].result.set_exception(exc)
            self._job_done()
            return
        row = 0
        for job in jobs:
            rows = matrix[row : row + job.n_inputs]  # a view: each call gets its own rows, no copy
            row += job.n_inputs
            if job.normalize and not native_norm:
                _l2_normalize(rows)
            job.result.set_result(rows)
            self._job_done()

    def _embed(self, tokens: np.ndarray, offsets: np.ndarray, normalize: bool) -> np.ndarray:
        """Pooled rows of the packed inputs, from as few decodes as the embedding context allows."""
        ctx = self._embedding_context()
        out = np.empty((len(offsets) - 1, ctx.n_embd_out), dtype=np.float32)
        ctx.embed_sequences(tokens, offsets, out, normalize=normalize, pack=EMBED_PACK_TOKENS)
        return out


def _token_logprobs(logits: np.ndarray, token: int, top: int) -> TokenLogprobs:
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


def _l2_normalize(rows: np.ndarray) -> None:
    """Scale each row to unit length, in place (zero rows stay zero)."""
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    np.divide(rows, norms, out=rows, where=norms > 0)
