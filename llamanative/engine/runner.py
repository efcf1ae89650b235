"""Runner: one loaded model, one llama_context, one worker thread.

Every request on the model goes through the worker: callers submit jobs and
read events; only the worker calls ``decode``. Each step builds **one** batch
from all active slots (the next token of each generating slot, then chunks of
pending prompts up to ``n_batch``), decodes once and samples every slot with
its own sampler chain (continuous batching). A new request takes the free slot
whose cached tokens share the longest prefix with its prompt and only
evaluates the rest (prompt-prefix cache).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from .. import _core
from ..errors import NoKvSlotError
from .jobs import CompletionJob, EmbedJob, Failed, Finished, Piece, TokenLogprobs
from .sampling import make_sampler
from .stops import StopMatcher

log = logging.getLogger("llamanative.engine")


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
    flash_attn: str = "auto"


@dataclass
class _Slot:
    seq: int
    cached: list[int] = field(default_factory=list)  # tokens whose KV this sequence holds
    job: CompletionJob | None = None
    sampler: _core.Sampler | None = None
    detok: _core.Detokenizer | None = None
    stops: StopMatcher | None = None
    n_done: int = 0  # prompt tokens already in the KV cache
    out_index: int = -1  # batch index of this slot's output in the current step
    generated: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprobs] = field(default_factory=list)  # not yet handed out with a piece
    n_evaluated: int = 0
    t_start: int = 0
    t_first: int = 0


def _common_prefix(a: list[int], b: np.ndarray) -> int:
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = np.nonzero(np.asarray(a[:n], dtype=np.int32) != b[:n])[0]
    return int(diff[0]) if diff.size else n


class Runner:
    """Loads ``path`` and serves completion and embedding jobs on a worker thread.

    Raises (from the constructor): FileNotFoundError, ModelLoadError,
    ContextCreateError — the model could not be loaded.
    """

    def __init__(self, path: str, config: RunnerConfig) -> None:
        t0 = time.perf_counter_ns()
        self.path = path
        self.config = config
        self.model = _core.Model(path, n_gpu_layers=config.n_gpu_layers, main_gpu=config.main_gpu,
                                 use_mmap=config.use_mmap)
        self.vocab = self.model.vocab
        # As Ollama decides: a model whose GGUF declares a pooling type is an embedding model.
        header = _core.read_gguf_metadata(path, arrays=False)
        self.is_embedding_model = f"{header.get('general.architecture')}.pooling_type" in header
        threads = config.n_threads or None
        n_ctx = min(config.n_ctx, self.model.n_ctx_train) if self.model.n_ctx_train > 0 else config.n_ctx
        try:
            if self.is_embedding_model:
                # Encoders attend to the whole input at once: one ubatch holds a sequence.
                self.ctx = _core.Context(self.model, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx,
                                         n_seq_max=min(64, _core.max_parallel_sequences()), n_threads=threads,
                                         embeddings=True, flash_attn=config.flash_attn)
            else:
                self.ctx = _core.Context(self.model, n_ctx=n_ctx, n_batch=config.n_batch, n_ubatch=config.n_batch,
                                         n_seq_max=min(config.n_parallel, config.n_batch), n_threads=threads,
                                         flash_attn=config.flash_attn)
        except BaseException:
            self.model.close()
            raise
        self._embed_ctx: _core.Context | None = None
        self._batch = _core.Batch(self.ctx.n_batch)  # reused by every step of the worker
        self.loaded_at_ns = time.perf_counter_ns()
        self.load_duration = self.loaded_at_ns - t0
        self._slots = [_Slot(seq=i) for i in range(self.ctx.n_seq_max if not self.is_embedding_model else 0)]
        self._pending: queue.SimpleQueue = queue.SimpleQueue()
        self._deferred: list[CompletionJob] = []  # waiting for KV room: retried when a job finishes
        self._wake = threading.Event()
        self._closed = False
        self._active = 0  # submitted jobs not yet finished (for the scheduler's idle check)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name=f"llamanative-runner:{path}", daemon=True)
        self._thread.start()

    # -- public, any thread --------------------------------------------------------
    @property
    def n_ctx(self) -> int:
        return self.ctx.n_ctx_seq

    @property
    def busy(self) -> bool:
        return self._active > 0

    def submit(self, job: CompletionJob | EmbedJob) -> None:
        """Queue a job; its events (or its future) report the outcome."""
        if self._closed:
            raise RuntimeError("the runner is closed")
        with self._lock:
            self._active += 1
        self._pending.put(job)
        self._wake.set()

    def close(self) -> None:
        """Stop the worker after the jobs in flight, then free the context and the model."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._thread.join()
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
            embeds = []
            while True:
                try:
                    job = self._pending.get_nowait()
                except queue.Empty:
                    break
                (embeds if isinstance(job, EmbedJob) else waiting).append(job)
            if embeds:
                self._run_embeds(embeds)  # concurrent embed calls share batches
            waiting[:] = self._admit(waiting)
            active = [s for s in self._slots if s.job is not None]
            if not active:
                if self._closed and not waiting:
                    return
                self._wake.wait(0.05)
                self._wake.clear()
                continue
            self._step(active)

    def _job_done(self) -> None:
        with self._lock:
            self._active -= 1

    def _admit(self, waiting: list[CompletionJob]) -> list[CompletionJob]:
        still = []
        for job in waiting:
            if job.cancelled:
                self._job_done()
                continue
            free = [s for s in self._slots if s.job is None]
            if not free:
                still.append(job)
                continue
            prefixes = [_common_prefix(s.cached, job.prompt) for s in free]
            best = max(range(len(free)), key=prefixes.__getitem__)
            slot = free[best]
            try:
                self._start(slot, job, prefixes[best])
            except BaseException as exc:  # a bad grammar, a prompt too long ...
                slot.job = None
                job.events.put(Failed(exc))
                self._job_done()
        return still

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
        del slot.cached[keep:]
        if slot.sampler is not None:
            slot.sampler.close()
        slot.sampler = make_sampler(self.model, job.params, n_ctx=self.ctx.n_ctx_seq)
        slot.detok = _core.Detokenizer(self.vocab)
        slot.stops = StopMatcher(job.stops)
        slot.job, slot.n_done, slot.generated, slot.logprobs = job, keep, [], []
        slot.n_evaluated, slot.t_start, slot.t_first = 0, time.perf_counter_ns(), 0

    def _step(self, active: list[_Slot]) -> None:
        batch = self._batch
        batch.clear()
        budget = self.ctx.n_batch
        for slot in active:  # generating slots first: one token each, as far as the batch allows
            if slot.n_done >= len(slot.job.prompt) and slot.generated and budget > 0:
                slot.out_index = batch.add(slot.generated[-1], len(slot.cached), slot.seq, True)
                budget -= 1
            else:
                slot.out_index = -1
        chunks = []
        for slot in active:  # then prompt chunks, as far as the batch allows
            remaining = len(slot.job.prompt) - slot.n_done
            if remaining <= 0 or budget <= 0:
                continue
            take = min(remaining, budget)
            chunk = slot.job.prompt[slot.n_done:slot.n_done + take]
            last = batch.add_sequence(chunk, slot.n_done, slot.seq, output="last" if take == remaining else "none")
            slot.out_index = last if take == remaining else -1
            chunks.append((slot, chunk))
            budget -= take
        try:
            self.ctx.decode(batch)
        except NoKvSlotError as exc:
            self._kv_full(active, exc)
            return
        except BaseException as exc:
            for slot in active:
                self._finish_failed(slot, exc)
            return
        for slot, chunk in chunks:
            slot.cached.extend(int(t) for t in chunk)
            slot.n_done += len(chunk)
            slot.n_evaluated += len(chunk)
        for slot in active:
            if slot.job.cancelled:
                self._release(slot)
            elif slot.out_index >= 0:
                if slot.generated:  # the fed-back token is in the KV cache now
                    slot.cached.append(slot.generated[-1])
                self._sample(slot)

    def _sample(self, slot: _Slot) -> None:
        try:
            token = slot.sampler.sample(self.ctx, slot.out_index)
        except BaseException as exc:
            self._finish_failed(slot, exc)
            return
        if not slot.t_first:
            slot.t_first = time.perf_counter_ns()
        job = slot.job
        if self.vocab.is_eog(token):
            self._finish(slot, "stop")
            return
        slot.generated.append(token)
        if job.logprobs >= 0:
            slot.logprobs.append(_token_logprobs(self.ctx.logits(slot.out_index), token, job.logprobs))
        text = slot.stops.push(slot.detok.add(token))
        if text:
            job.events.put(Piece(text, token, tuple(slot.logprobs)))
            slot.logprobs.clear()
        limit = job.max_tokens if job.max_tokens > 0 else 10 * self.ctx.n_ctx_seq
        if slot.stops.stopped:
            self._finish(slot, "stop")
        elif len(slot.generated) >= limit:
            self._finish(slot, "length")
        elif len(slot.cached) + 1 >= self.ctx.n_ctx_seq and not self._shift(slot):
            self._finish(slot, "length")

    def _shift(self, slot: _Slot) -> bool:
        """Make room in a full sequence: drop the older half after ``n_keep`` tokens (llama.cpp's context shift).

        Returns False when the request asked for no shift or the model's
        memory cannot shift positions (recurrent models, M-RoPE).
        """
        job = slot.job
        if not job.shift:
            return False
        n = len(slot.cached)
        n_keep = len(job.prompt) if job.n_keep < 0 else job.n_keep
        n_keep = max(0, min(n_keep, n - 2))
        discard = (n - n_keep) // 2
        if discard <= 0:
            return False
        try:
            self.ctx.seq_rm(slot.seq, n_keep, n_keep + discard)
            self.ctx.seq_add(slot.seq, n_keep + discard, -1, -discard)
        except ValueError:
            return False
        del slot.cached[n_keep:n_keep + discard]  # positions stay equal to indices into ``cached``
        return True

    def _finish(self, slot: _Slot, reason: str) -> None:
        job = slot.job
        if not slot.stops.stopped:
            tail = slot.stops.push(slot.detok.flush()) + slot.stops.flush()
            if tail or slot.logprobs:
                job.events.put(Piece(tail, -1, tuple(slot.logprobs)))
        elif slot.logprobs:
            job.events.put(Piece("", -1, tuple(slot.logprobs)))
        slot.logprobs = []
        now = time.perf_counter_ns()
        t_first = slot.t_first or now
        job.events.put(Finished(reason, tuple(slot.generated), slot.n_evaluated, t_first - slot.t_start,
                                len(slot.generated), now - t_first))
        self._release(slot)

    def _finish_failed(self, slot: _Slot, exc: BaseException) -> None:
        slot.job.events.put(Failed(exc))
        self.ctx.seq_rm(slot.seq, -1, -1)
        slot.cached.clear()
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
        idle = [s for s in self._slots if s.job is None and s.cached]
        if idle:
            for s in idle:
                self.ctx.seq_rm(s.seq, -1, -1)
                s.cached.clear()
            return
        victim = max(active, key=lambda s: s.t_start)
        if len(active) == 1 or victim.generated:
            # Alone it cannot fit; and a request that already streamed text
            # cannot be restarted without repeating itself.
            self._finish_failed(victim, exc)
            return
        job = victim.job
        self.ctx.seq_rm(victim.seq, -1, -1)
        victim.cached.clear()
        victim.job = None
        self._deferred.append(job)

    # -- embeddings ------------------------------------------------------------------
    def _embedding_context(self) -> _core.Context:
        if self.is_embedding_model:
            return self.ctx
        if self._embed_ctx is None:
            n = self.ctx.n_ctx_seq
            self._embed_ctx = _core.Context(self.model, n_ctx=n, n_batch=n, n_ubatch=n,
                                            n_seq_max=min(64, _core.max_parallel_sequences()),
                                            n_threads=self.config.n_threads or None, embeddings=True,
                                            pooling_type="mean")  # a generative model declares no pooling
        return self._embed_ctx

    def _run_embeds(self, jobs: list[EmbedJob]) -> None:
        try:
            matrix = self._embed([t for job in jobs for t in job.inputs], normalize=False)
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
            rows = matrix[row:row + len(job.inputs)]  # a view: each call gets its own rows, no copy
            row += len(job.inputs)
            if job.normalize:
                _l2_normalize(rows)
            job.result.set_result(rows)
            self._job_done()

    def _embed(self, inputs: list[np.ndarray], normalize: bool) -> np.ndarray:
        ctx = self._embedding_context()
        out = np.empty((len(inputs), ctx.n_embd_out), dtype=np.float32)
        batch = _core.Batch(ctx.n_batch)
        i = 0
        while i < len(inputs):
            ctx.clear(False)
            batch.clear()
            rows = []
            while i < len(inputs) and len(rows) < ctx.n_seq_max:
                toks = inputs[i]
                if len(toks) > ctx.n_batch:
                    raise ValueError(f"input {i} has {len(toks)} tokens; the context holds {ctx.n_batch}")
                if batch.n_tokens + len(toks) > ctx.n_batch:
                    break
                batch.add_sequence(toks, 0, len(rows), output="all")
                rows.append(i)
                i += 1
            ctx.decode(batch)
            for seq, row in enumerate(rows):
                ctx.embeddings_seq(seq, out=out[row])
        if normalize:
            _l2_normalize(out)
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
