"""Runner: one loaded model, one llama_context, one worker thread.

Every request on the model goes through the worker: callers submit jobs and
read events; only the worker calls ``decode``. The runner loads the model,
creates its context and drives the worker; the work itself is done by

- :class:`.generation.Generation` — continuous batching of completion jobs
  over the context's sequence slots (:mod:`.slots`), placed by the
  admission and parking policy of :class:`.admission.Admission`;
- :class:`.embedding.Embedding` — packed, pooled decodes of embed jobs.

The worker thread ends when the runner has been idle for ``IDLE_EXIT_S`` and
a new one starts with the next job. This matters for builds with OpenMP
(``-DLLAMANATIVE_OPENMP=ON``; the default build uses ggml's own thread
pool): every thread that has run a decode keeps an OpenMP team, and once the
teams of a process hold more threads than there are CPUs, libgomp stops
spin-waiting in all of them and a generating model slows down severalfold
(docs/design/engine.md has the measurement). A team is freed when its
thread ends, so an idle model must not keep one.

The worker never waits on a caller: a streamed job whose reader falls behind
is paused (:mod:`.jobs`), and a worker whose every running slot is paused
sleeps until a reader catches up, a job arrives or is cancelled, or the runner
closes. ``close()`` cancels what is still running and returns within its
timeout even when readers hold streams they never read.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .. import _core
from ..errors import DecodeAbortedError, RpcLostError, StatusError
from .admission import Admission
from .attention import FlashAttn, generation_flash_attn
from .draft import DraftModel
from .embedding import Embedding, embedding_context
from .generation import Generation
from .heap import trim_heap
from .jobs import Backlog, CompletionJob, EmbedJob, Failed
from .placement import device_bytes
from .prompt_cache import PromptCache, cache_ram_bytes
from .slots import Sequences

log = logging.getLogger("llamanative.engine")

# Seconds a runner's worker waits for work before it ends (and frees an
# OpenMP team in builds with OpenMP: see the module docstring). Back-to-back
# requests keep it; starting a new thread costs far less than a decode.
IDLE_EXIT_S = 0.1


@dataclass(frozen=True)
class SlotState:
    """What one sequence slot of a runner is doing: a snapshot, for inspection (``Runner.slot_states``)."""

    busy: bool  # a completion job runs on it (paused or not)
    paused: bool  # its job streams and its reader is behind: the slot is not scheduled (back-pressure)
    sent: int  # text pieces its job has handed out (0 when idle)
    unread: int  # of those, the pieces its reader has not taken yet


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
    flash_attn: FlashAttn = "auto"  # "on", "off" or "auto" (see attention.py: off on the CPU)
    projector: str | None = None  # a multimodal projector GGUF, loaded beside the model (images, audio)
    adapters: tuple[str, ...] = ()  # LoRA adapter GGUFs, loaded beside the model; jobs choose them by index
    control_vectors: tuple[str, ...] = ()  # control vector GGUFs, checked at load; jobs choose them by index
    draft: str | None = None  # a draft model GGUF for speculative decoding (draft-simple), loaded beside the model
    rpc: tuple[str, ...] = ()  # llama.cpp RPC servers ("host:port") that hold some of the layers


class Runner:
    """Loads ``path`` and serves completion and embedding jobs on a worker thread.

    Raises (from the constructor): FileNotFoundError, ModelLoadError,
    ContextCreateError — the model could not be loaded; RpcConnectError, RpcLostError — an RPC
    server of ``config.rpc`` cannot be used or was lost while loading; ProjectorLoadError,
    AdapterLoadError, ControlVectorLoadError — its projector, one of its LoRA
    adapters or one of its control vectors does not fit it.

    The model's LoRA adapters (``config.adapters``) are loaded beside it: a
    completion job names those it is decoded with (``CompletionJob.adapters``),
    and embeddings are computed with all of them at scale 1. So are its control
    vectors (``config.control_vectors``), each loaded once here to check it.
    """

    def __init__(self, path: str, config: RunnerConfig) -> None:
        t0 = time.perf_counter_ns()
        parked_capacity = cache_ram_bytes()  # before loading: a bad setting must not leak a model
        self.path = path
        self.config = config
        self.model = _core.Model(
            path,
            n_gpu_layers=config.n_gpu_layers,
            main_gpu=config.main_gpu,
            use_mmap=config.use_mmap,
            rpc=config.rpc or None,
        )
        self.vocab = self.model.vocab
        # Where the layers are, and the bytes of the weights on each device (ps's devices).
        self.placement = self.model.placement()
        self.device_bytes = device_bytes(
            ((name, size) for name, _offset, size, _shape in _core.read_gguf_tensors(path)), self.placement
        )
        # Bytes of the weights in this machine's GPU memory (0 on the CPU and on RPC servers): ps's size_vram.
        self.size_vram = sum(
            self.device_bytes[p["device"]] for p in self.placement if p["backend"] not in ("CPU", "RPC")
        )
        # As Ollama decides: a model whose GGUF declares a pooling type is an embedding model.
        header = _core.read_gguf_metadata(path, arrays=False)
        self.is_embedding_model = f"{header.get('general.architecture')}.pooling_type" in header
        threads = config.n_threads or None
        # The flash-attention setting the context was created with ("auto": llama.cpp decides).
        self.flash_attn: FlashAttn = config.flash_attn
        n_ctx = min(config.n_ctx, self.model.n_ctx_train) if self.model.n_ctx_train > 0 else config.n_ctx
        self._pending: queue.SimpleQueue[CompletionJob | EmbedJob] = queue.SimpleQueue()
        self._seqs: Sequences | None = None
        self._generation: Generation | None = None
        self._parked = PromptCache(parked_capacity)
        ctx: _core.Context | None = None
        self.projector: _core.Projector | None = None
        self.draft: DraftModel | None = None
        self.adapters: list[_core.LoraAdapter] = []
        self.control_vectors: tuple[str, ...] = tuple(config.control_vectors)
        try:
            # Before any context: llama.cpp registers an adapter with the model, and sizes graphs by them.
            for adapter in config.adapters:
                self.adapters.append(_core.LoraAdapter(adapter, self.model))
            # Every vector at scale 1 (each file checked and loaded by llama.cpp): the embeddings' control vector.
            cvec = _core.ControlVector(self.control_vectors, self.model) if self.control_vectors else None
            if self.is_embedding_model:
                ctx = embedding_context(self.model, n_ctx, n_threads=threads, flash_attn=config.flash_attn)
                ctx.set_adapters(self.adapters)
                if cvec is not None:
                    ctx.set_control_vector(cvec)
                self._embedding = Embedding(
                    self.model,
                    ctx,
                    n_ctx=n_ctx,
                    n_threads=threads,
                    flash_attn=config.flash_attn,
                    job_done=self._job_done,
                    adapters=self.adapters,
                    control_vector=cvec,
                )
            else:
                self.flash_attn = generation_flash_attn(
                    self.model,
                    n_ctx=n_ctx,
                    n_ubatch=config.n_batch,
                    setting=config.flash_attn,
                )
                ctx = _core.Context(
                    self.model,
                    n_ctx=n_ctx,
                    n_batch=config.n_batch,
                    n_ubatch=config.n_batch,
                    n_seq_max=min(config.n_parallel, config.n_batch, n_ctx),
                    n_threads=threads,
                    flash_attn=self.flash_attn,
                )
                if config.projector:
                    # The encoder follows the flash-attention setting, as llama.cpp's -fa sets both:
                    # "auto" lets libmtmd decide (on for the CPU), "on"/"off" are the user's choice.
                    self.projector = _core.Projector(
                        config.projector, self.model, n_threads=threads, flash_attn=config.flash_attn
                    )
                self._seqs = Sequences(ctx)
                if config.draft:
                    self.draft = DraftModel(
                        config.draft,
                        ctx,
                        self._seqs.stepper,
                        n_gpu_layers=config.n_gpu_layers,
                        n_threads=threads,
                        flash_attn=self.flash_attn,
                    )
                policy = Admission(self._seqs, self.model, self.flash_attn, self._parked)
                self._generation = Generation(
                    self.model,
                    self._seqs,
                    policy,
                    self._job_done,
                    self._pending.put,
                    self.projector,
                    self.adapters,
                    self.control_vectors,
                )
                # The generative model's own embeddings: a second context, made on first use.
                self._embedding = Embedding(
                    self.model,
                    None,
                    n_ctx=ctx.n_ctx_seq,
                    n_threads=threads,
                    flash_attn=config.flash_attn,
                    job_done=self._job_done,
                    adapters=self.adapters,
                    control_vector=cvec,
                )
        except BaseException:
            if self._seqs is not None:
                self._seqs.close()
            if self.draft is not None:
                self.draft.close()
            if self.projector is not None:
                self.projector.close()
            if ctx is not None:
                ctx.close()
            for lora in self.adapters:
                lora.close()  # after the contexts they were set on, before the model
            self.model.close()
            raise
        self._ctx = ctx
        self.loaded_at_ns = time.perf_counter_ns()
        self.load_duration = self.loaded_at_ns - t0
        self._wake = threading.Event()
        self._closed = False  # no new jobs: closing, closed or failed
        self._freed = False  # close() has run (or is running)
        self._stopping = False  # stop() or close() ran: the worker answers every job and ends
        self._failure: BaseException | None = None  # what ended the worker, when it failed
        self._free_on_exit: threading.Thread | None = None  # close() timed out: this worker frees the runner
        self._active = 0  # submitted jobs not yet finished (for the scheduler's idle check)
        self._lock = threading.Lock()  # guards _active, _thread and the hand-over of _pending
        self._thread: threading.Thread | None = None  # the worker, while there is work

    # -- public, any thread --------------------------------------------------------
    @property
    def ctx(self) -> _core.Context:
        """The model's context: the generation context, or an embedding model's only one."""
        return self._seqs.ctx if self._seqs is not None else self._ctx

    @ctx.setter
    def ctx(self, ctx: _core.Context) -> None:
        # Replaces the object the Python side calls (the Stepper keeps the native context).
        if self._seqs is not None:
            self._seqs.ctx = ctx
        else:
            self._ctx = ctx

    @property
    def n_ctx(self) -> int:
        return self.ctx.n_ctx_seq

    @property
    def model_size(self) -> int:
        """Bytes of the model's weights."""
        return self.model.size

    @property
    def n_params(self) -> int:
        return self.model.n_params

    @property
    def busy(self) -> bool:
        return self._active > 0

    def slot_states(self) -> list[SlotState]:
        """What each generation slot is doing, in slot order (empty for an embedding model).

        Safe from any thread: it reads only what the worker records in Python,
        so a state may be one step old.
        """
        if self._seqs is None:
            return []
        states = []
        for slot in self._seqs.slots:
            job = slot.job  # read once: the worker may release it meanwhile
            events = job.events if job is not None else None
            if isinstance(events, Backlog):
                states.append(SlotState(True, events.paused, events.sent, events.unread))
            else:
                states.append(SlotState(job is not None, False, 0, 0))
        return states

    @property
    def failure(self) -> BaseException | None:
        """What made the worker fail, or None. A failed runner serves nothing more: close it and load afresh."""
        return self._failure

    def submit(self, job: CompletionJob | EmbedJob) -> None:
        """Queue a job; its events (or its future) report the outcome."""
        with self._lock:  # with close(): a job is either refused or served, never left queued
            if self._failure is not None:
                raise self._failed_error()
            if self._closed:
                raise RuntimeError("the runner is closed")
            self._active += 1
            if isinstance(job, CompletionJob):
                # Cancelling the job, or reading a paused job's events, wakes a sleeping worker.
                job._wake = self._wake.set
                if isinstance(job.events, Backlog):
                    job.events.wake = self._wake.set
            self._pending.put(job)
            if self._thread is None:  # under the lock: the worker checks _pending under it before ending
                self._thread = threading.Thread(target=self._loop, name=f"llamanative-runner:{self.path}", daemon=True)
                self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        """Start closing without waiting: new jobs are refused, and after its current step the
        worker answers every job as :meth:`close` says and ends. ``close()`` then frees."""
        with self._lock:
            self._stopping = self._closed = True
        self._wake.set()

    def close(self, timeout: float | None = None) -> None:
        """Stop the worker, then free the context and the model. Idempotent.

        Jobs still running, paused or waiting are cancelled: each is answered
        with a ``StatusError`` 503 (a job read through an :class:`~.jobs.EventQueue`
        gets it at its next read; pieces it had not read are dropped) once the
        worker's current step ends. The worker is joined for at most
        ``timeout`` seconds (None: until it ends); a step still running after
        half of it is aborted (``Context.cancel``, on the generation context),
        and a worker still busy at the end (a decode that cannot be aborted)
        frees the runner itself when it ends. Also frees a runner whose worker
        failed.
        """
        with self._lock:
            if self._freed:
                return
            self._freed = self._stopping = self._closed = True
            thread = self._thread
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            # The worker ends after its current step. A step that takes longer than
            # half the time allowed is aborted (llama.cpp logs that as an error, so
            # a step of a few tokens is left to finish).
            start = time.monotonic()
            thread.join(None if timeout is None else timeout / 2)
            if thread.is_alive() and timeout is not None and self._seqs is not None:
                self._ctx.cancel()
                thread.join(max(0.0, timeout - (time.monotonic() - start)))
            with self._lock:
                if thread.is_alive():
                    log.warning(
                        "the worker of %s did not stop within %s s; it frees the model when it ends", self.path, timeout
                    )
                    self._free_on_exit = thread
                    return
        self._free()

    def _free(self) -> None:
        if self._seqs is not None:
            self._seqs.close()
        if self.draft is not None:
            self.draft.close()  # after the stepper that drafts with it
        self._parked.clear()
        self._embedding.close()
        self._ctx.close()
        if self.projector is not None:
            self.projector.close()  # libmtmd before the model it points into
        for adapter in self.adapters:
            adapter.close()  # after the contexts they are set on, before the model
        self.model.close()
        trim_heap()  # what the model's load left in this and other threads' arenas

    # -- worker thread ---------------------------------------------------------------
    def _loop(self) -> None:
        waiting: list[CompletionJob] = []
        embeds: list[EmbedJob] = []  # taken from the queue, not yet answered
        try:
            self._serve(waiting, embeds)
        except BaseException as exc:  # a bug here must not leave callers waiting forever
            if self._stopping and isinstance(exc, DecodeAbortedError):  # close() aborted the running step
                self._stop([*waiting, *embeds])
            else:
                log.exception("runner worker failed")
                self._fail_all([*waiting, *embeds], exc)
        finally:
            with self._lock:
                free = self._free_on_exit is threading.current_thread()
            if free:
                self._free()

    def _stop(self, waiting: list[CompletionJob | EmbedJob]) -> None:
        """Answer every job with a 503 (close() runs): what a reader had not read is dropped."""

        def unloaded() -> StatusError:
            return StatusError(503, error_message="the model was unloaded before the request finished")

        self._answer_all(waiting, unloaded, end=True)

    def _failed_error(self) -> StatusError:
        """A 500 for a job of this failed runner (a 502 when an RPC server it is placed on was lost); its
        ``__cause__`` is the worker's failure."""
        cause = self._failure
        assert cause is not None
        if isinstance(cause, RpcLostError):  # an RPC server the model is placed on, not this process
            err = StatusError(502, error_message=f"the model's runner failed: {cause}")
            err.__cause__ = cause
            return err
        err = StatusError.internal(f"the model's runner failed: {type(cause).__name__}: {cause}")
        err.__cause__ = cause
        return err

    def _fail_all(self, waiting: list[CompletionJob | EmbedJob], exc: BaseException) -> None:
        """Answer every job with a 500 and refuse new ones; the scheduler then drops and closes this runner.

        The worker thread stays recorded in ``_thread`` so that ``close()`` joins it before freeing.
        """
        with self._lock:
            self._failure = exc
            self._closed = True
        self._answer_all(waiting, self._failed_error)

    def _answer_all(
        self, waiting: list[CompletionJob | EmbedJob], error: Callable[[], BaseException], end: bool = False
    ) -> None:
        """Answer every job this runner still owes an outcome with ``error()`` (one exception each).

        ``end``: a job read through a :class:`~.jobs.Backlog` sink gets the error
        at its next read, dropping what it had not read.
        """
        jobs: list[CompletionJob | EmbedJob] = []
        if self._generation is not None:
            jobs += self._generation.jobs()
        jobs += waiting
        while True:
            try:
                jobs.append(self._pending.get_nowait())
            except queue.Empty:
                break
        for job in jobs:
            if isinstance(job, EmbedJob):
                if not job.result.done():
                    job.result.set_exception(error())
            else:
                err = error()
                if end and isinstance(job.events, Backlog):
                    job.events.end(err)
                job.events.put(Failed(err))
        with self._lock:
            self._active = 0

    def _serve(self, waiting: list[CompletionJob], embeds: list[EmbedJob]) -> None:
        generation = self._generation
        while True:
            if self._stopping:  # stop() or close() ran: answer everything, then end
                self._stop([*waiting, *embeds])
                return
            # This loop runs once per generated token: it checks before it works.
            if not self._pending.empty():
                embeds.clear()
                while True:
                    try:
                        job = self._pending.get_nowait()
                    except queue.Empty:
                        break
                    if isinstance(job, EmbedJob):
                        embeds.append(job)
                    elif generation is None:
                        job.events.put(Failed(ValueError("an embedding model does not generate text")))
                        self._job_done()
                    else:
                        waiting.append(job)
                if embeds:
                    self._embedding.run(embeds)  # concurrent embed calls share batches
                    embeds.clear()
            if waiting and generation is not None:
                waiting[:] = generation.admit(waiting)
            active = generation.running() if generation is not None else []
            if not active:
                if not waiting:
                    if self._idle_exit():
                        return
                    continue  # a job arrived while idle: serve it at once
                self._wake.wait(0.05)
                self._wake.clear()
                continue
            assert generation is not None
            if not generation.step(active):
                # Every running slot waits for its reader: sleep until a reader catches up,
                # a job arrives or is cancelled, or close() runs (each sets _wake).
                self._wake.wait()
                self._wake.clear()

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
