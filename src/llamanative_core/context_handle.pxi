# The root of Context (context.pxi): the llama_context pointer and every field
# of the class, its lifetime, the one-thread-at-a-time guard, the sizes and
# the settings that can change after creation.
#
# Every field is declared here, so that freeing happens in one place and in
# one order: the llama_context, then its thread pools (the context points to
# them), and the Model last (the context points into it).


cdef cppbool _abort_requested(void * data) noexcept nogil:
    return (<volatile int *> data)[0] != 0


# Keep `model` set until __dealloc__: the native object must be freed before
# the model it points into, also when collected in a cycle.
cdef class _OutputView  # below: the owner of a zero-copy output view
cdef class LoraAdapter  # lora.pxi: the adapters set on a context stay alive until it is freed


@cython.no_gc_clear
cdef class _ContextHandle:
    """The llama_context of a :class:`Context`; not used on its own."""

    cdef llama.llama_context * _ptr
    cdef readonly Model model
    cdef int32_t _n_vocab
    cdef uint32_t _n_ctx_seq
    cdef uint32_t _n_batch
    cdef uint32_t _n_ubatch
    cdef uint32_t _n_seq_max
    cdef int32_t _n_embd_out
    cdef bint _embeddings
    cdef object _pooling_error  # why pooled embeddings would abort in this context's shape, or None
    cdef _ThreadPool _threads
    cdef volatile int _abort_flag  # read by llama.cpp between graph nodes (_abort_requested)
    cdef bint _busy
    # The output flags of the last batch (one byte a token) and how many were
    # set, for the readers' index checks; b"" after a failed decode, None
    # after a state load (llama.cpp knows the outputs then, this class not).
    cdef bytes _last_outputs
    cdef int32_t _n_last_outputs
    # Zero-copy views over llama.cpp's output memory that are alive (an
    # _OutputView each), and how many of them are pooled embeddings, and the
    # most outputs the output buffer is known to hold without reallocating
    # (see _keep_outputs).
    cdef Py_ssize_t _n_views
    cdef Py_ssize_t _n_seq_views
    cdef int64_t _n_outputs_held
    # The LoRA adapters set on the context and their scales ((adapter, scale)
    # pairs; see lora.pxi): llama.cpp keeps pointers to them, so they are held
    # here until the context is freed.
    cdef tuple _adapters
    # The control vector set on the context and its layer range ((cv, start, end), or None; see
    # control_vector.pxi): llama.cpp copied its data, this is for the control_vector property.
    cdef tuple _control_vector

    def __cinit__(self):
        self._ptr = NULL
        self._threads = _ThreadPool.__new__(_ThreadPool)
        self._busy = False
        self._abort_flag = 0
        self._last_outputs = b""
        self._n_last_outputs = 0
        self._n_views = 0
        self._n_seq_views = 0
        self._n_outputs_held = 0
        self._adapters = ()

    cdef int _open(self, Model model, llama.llama_context_params p, object pooling_error, int poll) except -1:
        """Create the llama_context from checked parameters (context_params.pxi)."""
        self._threads.poll = poll
        p.abort_callback = _abort_requested
        p.abort_callback_data = <void *> &self._abort_flag
        cdef unsigned long mark = lln_rpc_failures()
        with nogil:
            self._ptr = llama.llama_init_from_model(model._ptr, p)
        if self._ptr != NULL and lln_rpc_failures() != mark:
            # Its buffers on an RPC server were never allocated there.
            llama.llama_free(self._ptr)
            self._ptr = NULL
            _rpc_check(mark, model.rpc, "the creation of a context")
        if self._ptr == NULL:
            raise ContextCreateError(
                f"llama.cpp could not create a context (n_ctx={p.n_ctx}, n_batch={p.n_batch}, "
                f"n_seq_max={p.n_seq_max}); usually not enough memory")
        self.model = model
        model._n_contexts += 1
        self._n_vocab = llama.llama_vocab_n_tokens(llama.llama_model_get_vocab(model._ptr))
        self._n_ctx_seq = llama.llama_n_ctx_seq(self._ptr)
        self._n_batch = llama.llama_n_batch(self._ptr)
        self._n_ubatch = llama.llama_n_ubatch(self._ptr)
        self._n_seq_max = llama.llama_n_seq_max(self._ptr)
        self._n_embd_out = llama.llama_model_n_embd_out(model._ptr)
        self._embeddings = p.embeddings
        self._pooling_error = pooling_error
        self._threads.attach(self._ptr, max(p.n_threads, p.n_threads_batch))
        # llama_init_from_model reserves outputs for n_seq_max tokens.
        self._n_outputs_held = self._n_seq_max
        return 0

    def __dealloc__(self):
        if self._ptr != NULL:
            llama.llama_free(self._ptr)
            self._ptr = NULL
            if self.model is not None:
                self.model._n_contexts -= 1
            _release_adapters(self._adapters)
            self._adapters = ()
        if self._threads is not None:
            self._threads.release()

    def close(self) -> None:
        """Free the context. Safe to call twice.

        Raises:
            BufferError: a view from :meth:`logits`, :meth:`embeddings_ith` or
                :meth:`embeddings_seq` is still alive (it points into the
                memory this frees); drop it first, or read with ``out=``.
        """
        if self._ptr != NULL:
            if self._n_views:
                raise BufferError(f"cannot close the context: {self._n_views} view(s) of its outputs are alive "
                                  f"(delete them, or read logits/embeddings with out= to copy)")
            self._enter()
            llama.llama_free(self._ptr)
            self._ptr = NULL
            self._busy = False
            self.model._n_contexts -= 1
            _release_adapters(self._adapters)  # after llama_free: the context pointed to them
            self._adapters = ()
        self._threads.release()

    @property
    def closed(self) -> bool:
        return self._ptr == NULL

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- the guard ---------------------------------------------------------------
    @cython.final
    cdef inline int _enter(self) except -1:
        # Runs with the GIL held, so test-and-set cannot race with another
        # Python thread; _leave() runs after the native call returns.
        if self._ptr == NULL:
            raise ValueError("the context is closed")
        if self._busy:
            raise ContextBusyError("this Context is in use by another thread")
        self._busy = True
        return 0

    @cython.final
    cdef inline void _leave(self) noexcept:
        self._busy = False

    @cython.final
    cdef int _keep_outputs(self, int64_t n_outputs, bint clears, str op) except -1:
        """Refuse ``op`` while views exist if it may move or free the memory they read.

        ``op`` needs up to ``n_outputs`` outputs (-1: unknown); llama.cpp grows
        its output buffer (a new allocation) beyond the most it has held.
        ``clears``: ``op`` frees the pooled embeddings (every decode does).
        """
        if self._n_views == 0:
            return 0
        if clears and self._n_seq_views:
            raise BufferError(f"cannot {op}: {self._n_seq_views} view(s) of pooled embeddings "
                              f"(embeddings_seq) are alive and the {op} frees them; delete them, or read with out=")
        # llama.cpp reserves for at least n_seq_max outputs.
        if n_outputs < 0 or max(n_outputs, <int64_t> self._n_seq_max) > self._n_outputs_held:
            raise BufferError(f"cannot {op}: it may reallocate the output buffer that {self._n_views} view(s) "
                              f"from logits()/embeddings_ith() point into; delete them, or read with out=")
        return 0

    @cython.final
    cdef inline void _held_outputs(self, int64_t n_outputs) noexcept:
        """After a run that reserved ``n_outputs`` outputs (llama.cpp never shrinks the buffer)."""
        # llama.cpp reserves for at least n_seq_max outputs.
        if n_outputs < self._n_seq_max:
            n_outputs = self._n_seq_max
        if n_outputs > self._n_outputs_held:
            self._n_outputs_held = n_outputs

    @cython.final
    cdef object _view(self, float * ptr, Py_ssize_t n, bint pooled):
        """A read-only view of ``n`` floats at ``ptr`` that this context counts while it lives."""
        cdef _OutputView owner = _OutputView.__new__(_OutputView)
        owner._ctx = self
        owner._pooled = pooled
        self._n_views += 1
        if pooled:
            self._n_seq_views += 1
        return _readonly_f32_view(ptr, n, owner)

    @cython.final
    cdef inline int _check(self) except -1:
        if self._ptr == NULL:
            raise ValueError("the context is closed")
        return 0

    # -- sizes ---------------------------------------------------------------
    @property
    def n_ctx(self) -> int:
        self._check(); return llama.llama_n_ctx(self._ptr)
    @property
    def n_ctx_seq(self) -> int:
        """Positions available to one sequence."""
        return self._n_ctx_seq
    @property
    def n_batch(self) -> int:
        return self._n_batch
    @property
    def n_ubatch(self) -> int:
        return self._n_ubatch
    @property
    def n_seq_max(self) -> int:
        return self._n_seq_max
    @property
    def n_vocab(self) -> int:
        return self._n_vocab
    @property
    def n_embd_out(self) -> int:
        return self._n_embd_out
    @property
    def embeddings(self) -> bool:
        return self._embeddings
    @property
    def pooling_type(self) -> str:
        self._check()
        return _POOLING_NAMES.get(llama.llama_get_pooling_type(self._ptr), "unspecified")
    @property
    def causal_attn(self) -> bool:
        self._check(); return llama.llama_get_causal_attn(self._ptr)
    @property
    def n_threads(self) -> int:
        self._check(); return llama.llama_n_threads(self._ptr)
    @property
    def n_threads_batch(self) -> int:
        self._check(); return llama.llama_n_threads_batch(self._ptr)

    @property
    def poll(self) -> int:
        """The polling level the context's thread pool was made with (0..100; see the constructor's ``poll``).

        0 when the thread counts were capped at the CPUs, or when the pool's
        threads took the threads of the process's contexts past the CPUs it
        may run on; 0 also when the context has no pool.
        """
        return self._threads.poll_used

    # -- settings ----------------------------------------------------------------
    def set_n_threads(self, int n_threads, int n_threads_batch=0) -> None:
        """Change the thread counts (``n_threads_batch`` 0 = same as ``n_threads``).

        Capped at the CPUs this process may run on, as the constructor's are.
        """
        if n_threads < 1 or n_threads_batch < 0:
            raise ValueError(f"thread counts must be >= 1, got {n_threads}, {n_threads_batch}")
        limit = _cpu_limit()
        if max(n_threads, n_threads_batch) > limit.cpus:
            _thread_ceiling(max(n_threads, n_threads_batch), limit)  # logs it, once
            n_threads, n_threads_batch = min(n_threads, limit.cpus), min(n_threads_batch, limit.cpus)
            self._threads.poll = 0  # a pool made from here on: see Context(poll=...)
        self._enter()
        try:
            llama.llama_set_n_threads(self._ptr, n_threads, n_threads_batch or n_threads)
            # A pool runs at most as many threads as it was made with.
            self._threads.attach(self._ptr, max(n_threads, n_threads_batch or n_threads))
        finally:
            self._leave()

    def set_embeddings(self, bint embeddings) -> None:
        """Switch embedding output on or off for the following decodes.

        Raises ValueError when this context's shape cannot pool embeddings
        (see the constructor); llama.cpp would abort the process.
        """
        if embeddings and self._pooling_error is not None:
            raise ValueError(self._pooling_error)
        self._check()
        if embeddings != self._embeddings:
            self._n_outputs_held = 0  # the next decode sizes the output buffer anew
        self._enter()
        llama.llama_set_embeddings(self._ptr, embeddings)
        self._embeddings = embeddings
        self._leave()

    # -- performance -------------------------------------------------------------
    def perf(self) -> dict:
        """llama.cpp's counters: load/prompt/eval time in ms and token counts."""
        self._enter()
        # Timings of the last decode are booked when llama.cpp synchronises.
        with nogil:
            llama.llama_synchronize(self._ptr)
        cdef llama.llama_perf_context_data d = llama.llama_perf_context(self._ptr)
        self._leave()
        return {"t_start_ms": d.t_start_ms, "t_load_ms": d.t_load_ms, "t_p_eval_ms": d.t_p_eval_ms,
                "t_eval_ms": d.t_eval_ms, "n_p_eval": d.n_p_eval, "n_eval": d.n_eval,
                "n_reused": d.n_reused}

    def perf_reset(self) -> None:
        self._check()
        llama.llama_perf_context_reset(self._ptr)


# Keep `_ctx` set until __dealloc__: the count must drop exactly once.
@cython.no_gc_clear
@cython.final
cdef class _OutputView:
    """The owner (numpy ``base``) of a zero-copy view from :class:`Context`.

    While one is alive the context refuses to free or move the memory the
    view reads (``close()``, a decode that may grow the output buffer, ...)
    with BufferError, as ``mmap.close()`` refuses while buffers are exported.
    """

    cdef _ContextHandle _ctx
    cdef bint _pooled

    @property
    def context(self):
        """The context whose output memory the view reads."""
        return self._ctx

    def __dealloc__(self):
        if self._ctx is not None:
            self._ctx._n_views -= 1
            if self._pooled:
                self._ctx._n_seq_views -= 1
