# Context: one llama_context (KV memory, compute buffers, outputs).

_POOLING = {
    None: llama.LLAMA_POOLING_TYPE_UNSPECIFIED, "unspecified": llama.LLAMA_POOLING_TYPE_UNSPECIFIED,
    "none": llama.LLAMA_POOLING_TYPE_NONE, "mean": llama.LLAMA_POOLING_TYPE_MEAN,
    "cls": llama.LLAMA_POOLING_TYPE_CLS, "last": llama.LLAMA_POOLING_TYPE_LAST,
    "rank": llama.LLAMA_POOLING_TYPE_RANK,
}
_POOLING_NAMES = {v: k for k, v in _POOLING.items() if k is not None}
_ATTENTION = {
    None: llama.LLAMA_ATTENTION_TYPE_UNSPECIFIED, "causal": llama.LLAMA_ATTENTION_TYPE_CAUSAL,
    "non_causal": llama.LLAMA_ATTENTION_TYPE_NON_CAUSAL,
}
_FLASH_ATTN = {
    None: llama.LLAMA_FLASH_ATTN_TYPE_AUTO, "auto": llama.LLAMA_FLASH_ATTN_TYPE_AUTO,
    True: llama.LLAMA_FLASH_ATTN_TYPE_ENABLED, "on": llama.LLAMA_FLASH_ATTN_TYPE_ENABLED,
    False: llama.LLAMA_FLASH_ATTN_TYPE_DISABLED, "off": llama.LLAMA_FLASH_ATTN_TYPE_DISABLED,
}
_KV_TYPES = {
    "f32": llama.GGML_TYPE_F32, "f16": llama.GGML_TYPE_F16, "bf16": llama.GGML_TYPE_BF16,
    "q8_0": llama.GGML_TYPE_Q8_0, "q4_0": llama.GGML_TYPE_Q4_0, "q4_1": llama.GGML_TYPE_Q4_1,
    "q5_0": llama.GGML_TYPE_Q5_0, "q5_1": llama.GGML_TYPE_Q5_1, "iq4_nl": llama.GGML_TYPE_IQ4_NL,
}
_DECODE_MEANINGS = {
    1: (NoKvSlotError, "no KV slot for the batch (reduce the batch or increase n_ctx)"),
    2: (DecodeAbortedError, "aborted by the abort callback"),
    -1: (InvalidBatchError, "invalid batch"),
}


def default_n_threads() -> int:
    """Threads used when none is given: the CPUs this process may run on."""
    try:
        return max(1, len(_os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, _os.cpu_count() or 1)


cdef object _decode_error(int32_t rc, str op):
    """The exception for a non-zero llama_decode/llama_encode return code."""
    cls, meaning = _DECODE_MEANINGS.get(rc, (DecodeError, "fatal error" if rc < 0 else "unexpected warning"))
    return cls(rc, meaning, op)


def _choice(table, value, str name):
    try:
        return table[value]
    except (KeyError, TypeError):
        choices = ", ".join(repr(k) for k in table if k is not None)
        raise ValueError(f"{name} must be one of {choices}; got {value!r}") from None


cdef cppbool _abort_requested(void * data) noexcept nogil:
    return (<volatile int *> data)[0] != 0


cdef object _pooling_shape_error(Model model, llama.llama_context_params p):
    """Why llama.cpp would abort on this context once it pools embeddings, or None.

    llama.cpp sizes its worst-case graph for ``n_tokens = min(n_ctx, n_ubatch)``
    tokens over n_seq_max sequences (llama-context.cpp ``sched_reserve``) and
    rounds the tokens up to a multiple of the sequences in ``graph_reserve``,
    but not the outputs; mean pooling (also under rank pooling, whose
    classifier input may be a mean) then multiplies matrices of the two sizes
    and fails an assertion that ends the process. The sizes are computed here
    as llama.cpp computes them, for a causal and a non-causal reading of the
    model (the architecture's code may decide it without a GGUF key), and a
    shape either reading would abort on is refused.
    """
    cdef int pooling = p.pooling_type
    if pooling == llama.LLAMA_POOLING_TYPE_UNSPECIFIED:
        arch = model._meta_str(b"general.architecture") or ""
        value = model._meta_str(f"{arch}.pooling_type".encode())
        pooling = int(value) if value and value.lstrip("-").isdigit() else llama.LLAMA_POOLING_TYPE_NONE
    if pooling != llama.LLAMA_POOLING_TYPE_MEAN and pooling != llama.LLAMA_POOLING_TYPE_RANK:
        return None
    cdef int64_t n_ctx = p.n_ctx if p.n_ctx > 0 else model.n_ctx_train
    cdef int64_t n_seq = p.n_seq_max
    cdef int64_t padded = (n_ctx + 255) // 256 * 256
    if not p.kv_unified:  # split per sequence, each part padded (llama-context.cpp, after the padding)
        padded = ((padded // n_seq) + 255) // 256 * 256 * n_seq
    for n_batch in (min(n_ctx, p.n_batch), p.n_batch):  # causal, non-causal
        n_tokens = min(padded, min(n_batch, p.n_ubatch))
        if n_tokens % n_seq:
            return (f"with mean pooling, the worst-case ubatch of {n_tokens} tokens must be a multiple of "
                    f"n_seq_max={n_seq} (llama.cpp cannot size its graph otherwise); choose n_ctx, n_batch "
                    f"and n_ubatch equal, and a divisor of them as n_seq_max")
    return None


# Keep `model`/`vocab` set until __dealloc__: the native object must be
# freed before the model it points into, also when collected in a cycle.
@cython.no_gc_clear
cdef class Context:
    """A llama.cpp inference context over a :class:`Model`.

    Args:
        model: the loaded model (kept alive by the context).
        n_ctx: context size in tokens, shared by all sequences; 0 = the
            model's training context. Default 4096.
        n_batch: most tokens one :meth:`decode` call accepts. Default 512.
        n_ubatch: physical batch size; for encoder / non-causal models every
            sequence must fit in one ubatch. Default 512.
        n_seq_max: number of sequences (parallel slots). Default 1.
        n_threads: threads for generation; default: the CPUs available.
        n_threads_batch: threads for prompt processing; default ``n_threads``.
        embeddings: compute embeddings instead of (or with) logits.
        pooling_type: None (the model's), "none", "mean", "cls", "last", "rank".
        attention_type: None (the model's), "causal", "non_causal".
        flash_attn: "auto" (None), "on"/True, "off"/False.
        type_k, type_v: KV cache types ("f16" default, "q8_0", "q4_0", ...).
        kv_unified: one KV buffer shared by all sequences, so slots do not each
            reserve n_ctx. Default True.
        offload_kqv: keep the KV cache on the GPU when layers are offloaded.
        swa_full: full-size cache for sliding-window-attention layers.
        poll: how long the context's CPU worker threads spin waiting for the
            next decode before they sleep, 0 (never) to 100 (longest); as
            llama.cpp's ``--poll``. Default 1: a few milliseconds, enough to
            span the gap between two decodes of a generation. llama.cpp's
            tools use 50, which here kept a core busy for ~100 ms after every
            request (measured on a 2-core Xeon), slowing whatever ran next.

    Raises:
        ValueError: an argument is out of range.
        ContextCreateError: llama.cpp could not create the context.

    The context owns a pool of CPU worker threads (``max(n_threads,
    n_threads_batch) - 1`` of them, the calling thread being the last), as
    llama.cpp's own tools attach one. Without it ggml would start and join
    its threads at every decode.

    A Context must be used by one thread at a time; overlapping calls from two
    threads raise :class:`ContextBusyError` instead of corrupting memory.
    """

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
    cdef llama.ggml_threadpool_t _pool
    cdef vector[llama.ggml_threadpool_t] _retired  # replaced pools: the CPU backend still points to one
    cdef llama.ggml_threadpool_free_fn _pool_free
    cdef int _pool_threads
    cdef uint32_t _poll
    cdef volatile int _abort_flag
    cdef bint _busy
    cdef bytes _last_outputs
    cdef int32_t _n_last_outputs

    def __cinit__(self):
        self._ptr = NULL
        self._pool = NULL
        self._pool_free = NULL
        self._busy = False
        self._abort_flag = 0
        self._last_outputs = b""
        self._n_last_outputs = 0

    def __init__(self, Model model not None, *, int n_ctx=4096, int n_batch=512, int n_ubatch=512,
                 int n_seq_max=1, n_threads=None, n_threads_batch=None, bint embeddings=False,
                 pooling_type=None, attention_type=None, flash_attn="auto", type_k="f16",
                 type_v="f16", bint kv_unified=True, bint offload_kqv=True, bint swa_full=False,
                 int poll=1):
        model._check()
        if not 0 <= poll <= 100:
            raise ValueError(f"poll must be in 0..100, got {poll}")
        if n_ctx < 0:
            raise ValueError(f"n_ctx must be >= 0 (0 = the model's training context), got {n_ctx}")
        if n_batch < 1:
            raise ValueError(f"n_batch must be >= 1, got {n_batch}")
        if n_ubatch < 1:
            raise ValueError(f"n_ubatch must be >= 1, got {n_ubatch}")
        cdef size_t max_seq = llama.llama_max_parallel_sequences()
        if n_seq_max < 1 or <size_t> n_seq_max > max_seq:
            raise ValueError(f"n_seq_max must be in 1..{max_seq}, got {n_seq_max}")
        nt = default_n_threads() if n_threads is None else int(n_threads)
        ntb = nt if n_threads_batch is None else int(n_threads_batch)
        if nt < 1 or ntb < 1:
            raise ValueError(f"n_threads and n_threads_batch must be >= 1, got {nt} and {ntb}")
        if model.vocab_only:
            raise ValueError("the model was loaded with vocab_only=True: it has no weights to run")
        # llama.cpp reserves one output row per sequence within n_batch (which
        # a causal model also caps at n_ctx) and aborts the process otherwise.
        # Capped at n_ctx whatever the model: causality may be decided in the
        # architecture's code, and refusing an odd shape beats an abort.
        ctx_cap = n_ctx if n_ctx > 0 else model.n_ctx_train
        batch_cap = min(n_batch, ctx_cap) if ctx_cap > 0 else n_batch
        if n_seq_max > batch_cap:
            raise ValueError(f"n_seq_max={n_seq_max} is more than the batch holds (n_batch={n_batch}, "
                             f"n_ctx={ctx_cap}): every sequence needs an output row within n_batch")

        cdef llama.llama_context_params p = llama.llama_context_default_params()
        p.n_ctx = n_ctx
        p.n_batch = n_batch
        p.n_ubatch = min(n_ubatch, n_batch)
        p.n_seq_max = n_seq_max
        p.n_threads = nt
        p.n_threads_batch = ntb
        p.embeddings = embeddings
        p.pooling_type = _choice(_POOLING, pooling_type, "pooling_type")
        p.attention_type = _choice(_ATTENTION, attention_type, "attention_type")
        p.flash_attn_type = _choice(_FLASH_ATTN, flash_attn, "flash_attn")
        p.type_k = _choice(_KV_TYPES, type_k, "type_k")
        p.type_v = _choice(_KV_TYPES, type_v, "type_v")
        p.kv_unified = kv_unified
        p.offload_kqv = offload_kqv
        p.swa_full = swa_full
        # Kept for set_embeddings(True) too: it would abort on the same shapes.
        self._pooling_error = _pooling_shape_error(model, p)
        if embeddings and self._pooling_error is not None:
            raise ValueError(self._pooling_error)
        p.no_perf = False
        p.abort_callback = _abort_requested
        p.abort_callback_data = <void *> &self._abort_flag
        with nogil:
            self._ptr = llama.llama_init_from_model(model._ptr, p)
        if self._ptr == NULL:
            raise ContextCreateError(
                f"llama.cpp could not create a context (n_ctx={n_ctx}, n_batch={n_batch}, "
                f"n_seq_max={n_seq_max}); usually not enough memory")
        self.model = model
        model._n_contexts += 1
        self._n_vocab = llama.llama_vocab_n_tokens(llama.llama_model_get_vocab(model._ptr))
        self._n_ctx_seq = llama.llama_n_ctx_seq(self._ptr)
        self._n_batch = llama.llama_n_batch(self._ptr)
        self._n_ubatch = llama.llama_n_ubatch(self._ptr)
        self._n_seq_max = llama.llama_n_seq_max(self._ptr)
        self._n_embd_out = llama.llama_model_n_embd_out(model._ptr)
        self._embeddings = embeddings
        self._poll = poll
        self._attach_pool(max(nt, ntb))

    def __dealloc__(self):
        if self._ptr != NULL:
            llama.llama_free(self._ptr)
            self._ptr = NULL
            if self.model is not None:
                self.model._n_contexts -= 1
        self._free_pool()

    def close(self) -> None:
        """Free the context. Safe to call twice. Views from :meth:`logits` die with it."""
        if self._ptr != NULL:
            self._enter()
            llama.llama_free(self._ptr)
            self._ptr = NULL
            self._busy = False
            self.model._n_contexts -= 1
        self._free_pool()

    cdef void _attach_pool(self, int n_threads) noexcept:
        """Give the context a thread pool of ``n_threads`` (keeping ggml's per-decode threads if none can be made)."""
        if self._pool != NULL and n_threads <= self._pool_threads:
            return  # a pool runs fewer threads than it was made with as well
        cdef llama.ggml_backend_dev_t dev = llama.ggml_backend_dev_by_type(llama.GGML_BACKEND_DEVICE_TYPE_CPU)
        if dev == NULL:
            return
        cdef llama.ggml_backend_reg_t reg = llama.ggml_backend_dev_backend_reg(dev)
        cdef llama.ggml_threadpool_new_fn new_fn = <llama.ggml_threadpool_new_fn> (
            llama.ggml_backend_reg_get_proc_address(reg, b"ggml_threadpool_new"))
        cdef llama.ggml_threadpool_free_fn free_fn = <llama.ggml_threadpool_free_fn> (
            llama.ggml_backend_reg_get_proc_address(reg, b"ggml_threadpool_free"))
        if new_fn == NULL or free_fn == NULL:
            return
        cdef llama.ggml_threadpool_params params = llama.ggml_threadpool_params_default(n_threads)
        params.poll = self._poll
        cdef llama.ggml_threadpool_t pool
        with nogil:
            pool = new_fn(&params)
        if pool == NULL:
            return
        llama.llama_attach_threadpool(self._ptr, pool, NULL)  # NULL: the same pool for batches
        if self._pool != NULL:
            # Not freed yet: the CPU backend keeps a pointer to the last pool it ran
            # and pauses it when the next decode brings the new one.
            self._retired.push_back(self._pool)
        self._pool, self._pool_free, self._pool_threads = pool, free_fn, n_threads

    cdef void _free_pool(self) noexcept:
        # Only once the context is freed: it and its CPU backend point to these pools.
        cdef size_t i
        if self._pool != NULL:
            with nogil:
                self._pool_free(self._pool)
                for i in range(self._retired.size()):
                    self._pool_free(self._retired[i])
            self._retired.clear()
            self._pool = NULL

    @property
    def closed(self) -> bool:
        return self._ptr == NULL

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    cdef inline int _enter(self) except -1:
        # Runs with the GIL held, so test-and-set cannot race with another
        # Python thread; _leave() runs after the native call returns.
        if self._ptr == NULL:
            raise ValueError("the context is closed")
        if self._busy:
            raise ContextBusyError("this Context is in use by another thread")
        self._busy = True
        return 0

    cdef inline void _leave(self) noexcept:
        self._busy = False

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

    cdef inline int _check(self) except -1:
        if self._ptr == NULL:
            raise ValueError("the context is closed")
        return 0

    def set_n_threads(self, int n_threads, int n_threads_batch=0) -> None:
        """Change the thread counts (``n_threads_batch`` 0 = same as ``n_threads``)."""
        if n_threads < 1 or n_threads_batch < 0:
            raise ValueError(f"thread counts must be >= 1, got {n_threads}, {n_threads_batch}")
        self._enter()
        try:
            llama.llama_set_n_threads(self._ptr, n_threads, n_threads_batch or n_threads)
            # A pool runs at most as many threads as it was made with.
            self._attach_pool(max(n_threads, n_threads_batch or n_threads))
        finally:
            self._leave()

    def set_embeddings(self, bint embeddings) -> None:
        """Switch embedding output on or off for the following decodes.

        Raises ValueError when this context's shape cannot pool embeddings
        (see the constructor); llama.cpp would abort the process.
        """
        if embeddings and self._pooling_error is not None:
            raise ValueError(self._pooling_error)
        self._enter()
        llama.llama_set_embeddings(self._ptr, embeddings)
        self._embeddings = embeddings
        self._leave()

    # -- decode / encode -------------------------------------------------------
    cdef int _validate(self, Batch batch, bint whole_in_ubatch) except -1:
        cdef llama.llama_batch * b = &batch._b
        cdef int32_t n = b.n_tokens, i, j, bad = -1, what = 0
        if n == 0:
            raise ValueError("the batch is empty")
        if <uint32_t> n > self._n_batch:
            raise ValueError(f"the batch has {n} tokens, more than the context's n_batch={self._n_batch}")
        if whole_in_ubatch and <uint32_t> n > self._n_ubatch:
            raise ValueError(
                f"the batch has {n} tokens but this model attends to the whole input at once: "
                f"it must fit in n_ubatch={self._n_ubatch} (create the Context with a larger n_ubatch)")
        with nogil:
            for i in range(n):
                if b.token[i] < 0 or b.token[i] >= self._n_vocab:
                    bad = i; what = 1; break
                if b.pos[i] < 0 or <uint32_t> b.pos[i] >= self._n_ctx_seq:
                    bad = i; what = 2; break
                for j in range(b.n_seq_id[i]):
                    if b.seq_id[i][j] < 0 or <uint32_t> b.seq_id[i][j] >= self._n_seq_max:
                        bad = i; what = 3; break
                if what:
                    break
        if what == 1:
            raise ValueError(f"token id {b.token[bad]} at batch index {bad} is out of range: "
                             f"the vocab has {self._n_vocab} tokens")
        if what == 2:
            raise ValueError(f"position {b.pos[bad]} at batch index {bad} exceeds the context: "
                             f"a sequence holds positions 0..{self._n_ctx_seq - 1} (n_ctx={self._n_ctx_seq})")
        if what == 3:
            raise ValueError(f"sequence id at batch index {bad} is out of range: the context has "
                             f"n_seq_max={self._n_seq_max} sequences (ids 0..{self._n_seq_max - 1})")
        return 0

    def decode(self, Batch batch not None) -> None:
        """Run the model over ``batch`` (``llama_decode``), with the GIL released.

        After it returns, :meth:`logits` / :meth:`embeddings_ith` /
        :meth:`embeddings_seq` read the outputs of the tokens whose output flag
        was set. Models without a KV cache (BERT-style encoders) are encoded.

        Raises:
            ValueError: a token id, position or sequence id is out of range, or
                the batch is larger than n_batch (checked before llama.cpp runs).
            NoKvSlotError: no room in the KV cache (code 1).
            DecodeAbortedError: :meth:`cancel` was called (code 2).
            InvalidBatchError: llama.cpp rejected the batch (code -1).
            DecodeError: any other failure (code < -1).
        """
        self._enter()
        cdef int32_t rc
        try:
            self._validate(batch, llama.llama_get_memory(self._ptr) == NULL
                           or not llama.llama_get_causal_attn(self._ptr))
            with nogil:
                rc = llama.llama_decode(self._ptr, batch._b)
            self._abort_flag = 0
            self._after_run(batch, rc)
            if rc != 0:
                raise _decode_error(rc, "decode")
        finally:
            self._leave()

    def encode(self, Batch batch not None) -> None:
        """Run the encoder over ``batch`` (``llama_encode``), GIL released.

        The whole batch must fit in n_ubatch. Raises like :meth:`decode`.
        """
        self._enter()
        cdef int32_t rc
        try:
            self._validate(batch, True)
            with nogil:
                rc = llama.llama_encode(self._ptr, batch._b)
            self._abort_flag = 0
            self._after_run(batch, rc)
            if rc != 0:
                raise _decode_error(rc, "encode")
        finally:
            self._leave()

    cdef void _after_run(self, Batch batch, int32_t rc):
        if rc != 0:
            self._last_outputs = b""
            self._n_last_outputs = 0
            return
        self._last_outputs = PyBytes_FromStringAndSize(<const char *> batch._b.logits, batch._b.n_tokens)
        self._n_last_outputs = batch.n_outputs

    def cancel(self) -> None:
        """Ask a running (or the next) decode to stop; it then raises DecodeAbortedError.

        Safe to call from any thread.
        """
        self._abort_flag = 1

    cdef int _check_output(self, int32_t i) except -1:
        if self._last_outputs is None:
            # Outputs restored from a saved state: llama.cpp knows them, we do
            # not; callers then rely on its NULL check for a missing output.
            return 0
        cdef Py_ssize_t n = len(self._last_outputs)
        if i < 0:
            if -i > self._n_last_outputs:
                raise IndexError(f"output index {i} out of range: the last batch had {self._n_last_outputs} outputs")
            return 0
        if i >= n or self._last_outputs[i] == 0:
            raise IndexError(f"batch index {i} has no output: set output=True for it in the batch "
                             f"(the last batch had {n} tokens)")
        return 0

    def logits(self, int32_t i=-1, *, out=None):
        """Logits of batch token ``i`` from the last decode (``-1`` = the last output).

        Returns:
            A **read-only float32 view** of ``n_vocab`` values over llama.cpp's
            own buffer: no copy, valid only until the next decode on this
            context. Pass ``out`` (a float32 array of n_vocab) to copy instead.

        Raises:
            IndexError: that token had no output.
        """
        self._check()
        if self._busy:
            raise ContextBusyError("this Context is in use by another thread")
        self._check_output(i)
        cdef float * p = llama.llama_get_logits_ith(self._ptr, i)
        if p == NULL:
            raise IndexError(f"no logits for batch index {i} (the context computes embeddings only?)")
        return _copy_or_view(p, self._n_vocab, self, out)

    def embeddings_ith(self, int32_t i=-1, *, out=None):
        """Embedding of batch token ``i`` (pooling "none"); a read-only view like :meth:`logits`."""
        self._check()
        if not self._embeddings:
            raise ValueError("this context does not compute embeddings (create it with embeddings=True)")
        self._check_output(i)
        cdef float * p = llama.llama_get_embeddings_ith(self._ptr, i)
        if p == NULL:
            raise IndexError(f"no embedding for batch index {i}")
        return _copy_or_view(p, self._n_embd_out, self, out)

    def embeddings_seq(self, llama_seq_id seq_id, *, out=None):
        """Pooled embedding of sequence ``seq_id`` from the last decode.

        Not normalised (llama.cpp pools; normalising is the caller's choice).
        A read-only view like :meth:`logits`, or a copy into ``out``.

        Raises:
            ValueError: embeddings are off or the pooling type is "none".
            IndexError: the sequence was not in the last batch.
        """
        self._check()
        if not self._embeddings:
            raise ValueError("this context does not compute embeddings (create it with embeddings=True)")
        if llama.llama_get_pooling_type(self._ptr) == llama.LLAMA_POOLING_TYPE_NONE:
            raise ValueError("pooling_type is 'none': read per-token embeddings with embeddings_ith()")
        if seq_id < 0 or <uint32_t> seq_id >= self._n_seq_max:
            raise IndexError(f"sequence id {seq_id} out of range (0..{self._n_seq_max - 1})")
        cdef float * p = llama.llama_get_embeddings_seq(self._ptr, seq_id)
        if p == NULL:
            raise IndexError(f"no embedding for sequence {seq_id}: it was not in the last batch")
        cdef Py_ssize_t n = self._n_embd_out
        if llama.llama_get_pooling_type(self._ptr) == llama.LLAMA_POOLING_TYPE_RANK:
            n = max(1, llama.llama_model_n_cls_out(self.model._ptr))
        return _copy_or_view(p, n, self, out)

    def embed_sequences(self, tokens, offsets, out, *, bint normalize=False, Py_ssize_t pack=0) -> int:
        """Pooled embeddings of many inputs, packed into as few decodes as fit.

        Input ``i`` is ``tokens[offsets[i]:offsets[i + 1]]``; each decode
        takes whole inputs, up to n_batch tokens (n_ubatch too for encoders,
        which attend to the whole batch at once) and n_seq_max sequences, and
        starts from an empty memory. Row ``i`` of ``out`` receives input
        ``i``'s pooled embedding. Everything runs with the GIL released, and
        nothing of Python runs per input.

        Args:
            tokens: every input's token ids, one after the other (int32).
            offsets: ``n + 1`` boundaries (int64), from 0 to ``len(tokens)``.
            out: a C-contiguous float32 matrix of ``n`` rows and
                :attr:`n_embd_out` columns (``n_cls_out`` for rank pooling).
            normalize: scale each row to unit L2 length (zero rows stay zero).
            pack: most tokens of several inputs to put in one decode (0: as
                many as the batch holds). An input longer than ``pack`` still
                gets a decode of its own. An encoder attends over the whole
                batch, so smaller packs spend less on attention (MiniLM: 383
                sentences/s in packs of 128 tokens, 359 in packs of 512).

        Returns:
            The number of decodes run.

        Raises:
            ValueError: embeddings are off, pooling is "none", ``out`` has the
                wrong shape, an input is empty or longer than one decode holds,
                or a token id is out of range (all checked before any decode).
            DecodeAbortedError, DecodeError, ...: as :meth:`decode`; rows
                before the failing batch are filled, the rest are not.
        """
        self._check()
        if not self._embeddings:
            raise ValueError("this context does not compute embeddings (create it with embeddings=True)")
        cdef int pooling = llama.llama_get_pooling_type(self._ptr)
        if pooling == llama.LLAMA_POOLING_TYPE_NONE:
            raise ValueError("pooling_type is 'none': there is no pooled embedding per input")
        cdef Py_ssize_t width = self._n_embd_out
        if pooling == llama.LLAMA_POOLING_TYPE_RANK:
            width = max(1, llama.llama_model_n_cls_out(self.model._ptr))
        cdef cnp.ndarray toks = _as_tokens(tokens)
        cdef cnp.ndarray offs = np.ascontiguousarray(offsets, dtype=np.int64)
        if offs.ndim != 1 or cnp.PyArray_DIM(offs, 0) < 1:
            raise ValueError("offsets must be a one-dimensional array of n + 1 boundaries")
        cdef Py_ssize_t n_inputs = cnp.PyArray_DIM(offs, 0) - 1
        cdef float[:, ::1] dst = out
        if dst.shape[0] != n_inputs or dst.shape[1] != width:
            raise ValueError(f"out must be a ({n_inputs}, {width}) float32 matrix, "
                             f"got ({dst.shape[0]}, {dst.shape[1]})")
        if n_inputs == 0:
            return 0
        cdef bint whole = llama.llama_get_memory(self._ptr) == NULL or not llama.llama_get_causal_attn(self._ptr)
        cdef int32_t limit = <int32_t> min(self._n_batch, self._n_ubatch if whole else self._n_batch,
                                           self._n_ctx_seq)
        _check_embed_inputs(toks, offs, n_inputs, limit, self._n_vocab)
        cdef uint32_t n_seq = min(self._n_seq_max, <uint32_t> limit)
        if pack < 0:
            raise ValueError(f"pack must be >= 0 (0: as many tokens as the batch holds), got {pack}")
        cdef int32_t budget = <int32_t> (limit if pack == 0 or pack > limit else pack)
        cdef llama.llama_batch b = llama.llama_batch_init(limit, 0, 1)
        if b.token == NULL:
            raise MemoryError("llama_batch_init failed")
        cdef int32_t n_decodes = 0, rc
        cdef Py_ssize_t first_row = 0
        cdef const llama_token * t = <const llama_token *> cnp.PyArray_DATA(toks)
        cdef const int64_t * o = <const int64_t *> cnp.PyArray_DATA(offs)
        self._enter()
        try:
            with nogil:
                rc = _embed_packed(self._ptr, &b, t, o, n_inputs, budget, n_seq, &dst[0, 0], width,
                                   normalize, &n_decodes, &first_row)
            self._abort_flag = 0
            # The outputs of the last batch are llama.cpp's, not known to the
            # per-token readers: they raise IndexError until the next decode.
            self._last_outputs = b""
            self._n_last_outputs = 0
        finally:
            llama.llama_batch_free(b)
            self._leave()
        if rc == 0:
            return n_decodes
        exc = (DecodeError(-1, "llama.cpp returned no pooled embedding for a sequence") if rc == -100
               else _decode_error(rc, "decode"))
        exc.add_note(f"while embedding the batch that starts at input {first_row}")
        raise exc

    # -- KV memory -------------------------------------------------------------
    cdef int _check_seq(self, llama_seq_id seq, bint allow_all) except -1:
        if allow_all and seq == -1:
            return 0
        if seq < 0 or <uint32_t> seq >= self._n_seq_max:
            raise ValueError(f"sequence id {seq} out of range: 0..{self._n_seq_max - 1}"
                             + (" or -1 for all" if allow_all else ""))
        return 0

    def clear(self, bint data=True) -> None:
        """Forget every sequence (and zero the buffers when ``data``)."""
        self._enter()
        cdef llama.llama_memory_t mem = llama.llama_get_memory(self._ptr)
        if mem != NULL:
            llama.llama_memory_clear(mem, data)
        self._leave()

    def seq_rm(self, llama_seq_id seq_id, llama_pos p0=-1, llama_pos p1=-1) -> bool:
        """Remove positions [p0, p1) of a sequence (-1 = all sequences; p0/p1 -1 = open ends).

        Returns False when the memory cannot remove a partial range (recurrent models).
        """
        self._check_seq(seq_id, True)
        self._enter()
        cdef llama.llama_memory_t mem = llama.llama_get_memory(self._ptr)
        cdef bint ok = True
        if mem != NULL:
            ok = llama.llama_memory_seq_rm(mem, seq_id, p0, p1)
        self._leave()
        return ok

    def seq_cp(self, llama_seq_id src, llama_seq_id dst, llama_pos p0=-1, llama_pos p1=-1) -> None:
        """Make positions [p0, p1) of ``src`` also belong to ``dst`` (shares cells, no copy)."""
        self._check_seq(src, False)
        self._check_seq(dst, False)
        self._enter()
        cdef llama.llama_memory_t mem = llama.llama_get_memory(self._ptr)
        if mem != NULL:
            llama.llama_memory_seq_cp(mem, src, dst, p0, p1)
        self._leave()

    def seq_keep(self, llama_seq_id seq_id) -> None:
        """Remove every sequence but ``seq_id``."""
        self._check_seq(seq_id, False)
        self._enter()
        cdef llama.llama_memory_t mem = llama.llama_get_memory(self._ptr)
        if mem != NULL:
            llama.llama_memory_seq_keep(mem, seq_id)
        self._leave()

    def seq_add(self, llama_seq_id seq_id, llama_pos p0, llama_pos p1, llama_pos delta) -> None:
        """Shift positions [p0, p1) of a sequence by ``delta`` (context shifting).

        Raises:
            ValueError: the model's memory cannot shift positions.
        """
        self._check_seq(seq_id, True)
        self._enter()
        cdef llama.llama_memory_t mem = llama.llama_get_memory(self._ptr)
        try:
            if mem == NULL or not llama.llama_memory_can_shift(mem):
                raise ValueError("this model's memory does not support shifting positions")
            llama.llama_memory_seq_add(mem, seq_id, p0, p1, delta)
        finally:
            self._leave()

    def seq_pos_min(self, llama_seq_id seq_id) -> int:
        """Smallest position held for the sequence, -1 if it is empty."""
        self._check_seq(seq_id, False)
        self._check()
        cdef llama.llama_memory_t mem = llama.llama_get_memory(self._ptr)
        return -1 if mem == NULL else llama.llama_memory_seq_pos_min(mem, seq_id)

    def seq_pos_max(self, llama_seq_id seq_id) -> int:
        """Largest position held for the sequence, -1 if it is empty."""
        self._check_seq(seq_id, False)
        self._check()
        cdef llama.llama_memory_t mem = llama.llama_get_memory(self._ptr)
        return -1 if mem == NULL else llama.llama_memory_seq_pos_max(mem, seq_id)

    # -- state -----------------------------------------------------------------
    def save_state(self) -> bytes:
        """The whole context state (KV cache, outputs, RNG) as bytes. GIL released while copying."""
        self._enter()
        cdef size_t size, written
        cdef bytes out
        cdef uint8_t * dst
        try:
            size = llama.llama_state_get_size(self._ptr)
            out = PyBytes_FromStringAndSize(NULL, size)
            dst = <uint8_t *> PyBytes_AS_STRING(out)
            with nogil:
                written = llama.llama_state_get_data(self._ptr, dst, size)
        finally:
            self._leave()
        return out[:written]

    def load_state(self, data) -> None:
        """Restore a state from :meth:`save_state` (same model and context sizes).

        Raises:
            StateError: the data does not match this context or is corrupt.
        """
        cdef const uint8_t[::1] view = memoryview(data).cast("B")
        cdef size_t n = view.shape[0], read
        if n == 0:
            raise StateError("the state is empty")
        self._enter()
        try:
            with nogil:
                read = llama.llama_state_set_data(self._ptr, &view[0], n)
        finally:
            self._leave()
        self._last_outputs = None
        if read == 0:
            raise StateError("the state could not be restored: it was saved from another model or "
                             "context size, or it is corrupt")

    def seq_state_size(self, int seq_id) -> int:
        """Bytes :meth:`save_seq_state` would return for the sequence (its KV cells)."""
        self._check_seq(seq_id, False)
        self._enter()
        cdef size_t size
        try:
            with nogil:
                size = llama.llama_state_seq_get_size(self._ptr, seq_id)
        finally:
            self._leave()
        return size

    def save_seq_state(self, int seq_id) -> bytes:
        """The KV cache of one sequence as bytes (for :meth:`load_seq_state`). GIL released while copying."""
        self._check_seq(seq_id, False)
        self._enter()
        cdef size_t size, written
        cdef bytes out
        cdef uint8_t * dst
        try:
            size = llama.llama_state_seq_get_size(self._ptr, seq_id)
            out = PyBytes_FromStringAndSize(NULL, size)
            dst = <uint8_t *> PyBytes_AS_STRING(out)
            with nogil:
                written = llama.llama_state_seq_get_data(self._ptr, dst, size, seq_id)
        finally:
            self._leave()
        return out[:written]

    def load_seq_state(self, data, int seq_id) -> None:
        """Put a sequence saved by :meth:`save_seq_state` (same model and KV types) into ``seq_id``.

        The sequence should be empty first (``seq_rm(seq_id, -1, -1)``).

        Raises:
            StateError: no room in the KV cache, or data of another model or context.
        """
        self._check_seq(seq_id, False)
        cdef const uint8_t[::1] view = memoryview(data).cast("B")
        cdef size_t n = view.shape[0], read
        if n == 0:
            raise StateError("the sequence state is empty")
        self._enter()
        try:
            with nogil:
                read = llama.llama_state_seq_set_data(self._ptr, &view[0], n, seq_id)
        finally:
            self._leave()
        if read == 0:
            raise StateError("the sequence could not be restored: no room in the KV cache, or it was saved "
                             "from another model or context")

    def save_state_file(self, path, tokens=None) -> None:
        """Write the state and the tokens it holds to ``path`` (llama.cpp's session format)."""
        cdef cnp.ndarray arr = _as_tokens([] if tokens is None else tokens)
        cdef bytes bpath = _os.fsencode(_os.fspath(path))
        cdef const char * cpath = bpath
        cdef const llama_token * toks = <const llama_token *> cnp.PyArray_DATA(arr)
        cdef size_t n = cnp.PyArray_DIM(arr, 0)
        cdef bint ok
        self._enter()
        try:
            with nogil:
                ok = llama.llama_state_save_file(self._ptr, cpath, toks, n)
        finally:
            self._leave()
        if not ok:
            raise StateError(f"could not write the state to {_os.fspath(path)!r}")

    def load_state_file(self, path):
        """Restore a state written by :meth:`save_state_file`; return its tokens (int32 array).

        Raises:
            FileNotFoundError: no such file.
            StateError: the file is not a state of this model/context.
        """
        spath = _os.fspath(path)
        if not _os.path.isfile(spath):
            raise FileNotFoundError(2, "state file not found", spath)
        cdef bytes bpath = _os.fsencode(spath)
        cdef const char * cpath = bpath
        cdef cnp.npy_intp cap = self._n_ctx_seq * self._n_seq_max
        cdef cnp.ndarray out = cnp.PyArray_EMPTY(1, &cap, cnp.NPY_INT32, 0)
        cdef size_t n_out = 0
        cdef bint ok
        self._enter()
        try:
            with nogil:
                ok = llama.llama_state_load_file(self._ptr, cpath, <llama_token *> cnp.PyArray_DATA(out),
                                                 cap, &n_out)
        finally:
            self._leave()
        self._last_outputs = None
        if not ok:
            raise StateError(f"could not restore the state from {spath!r}: not a state of this model "
                             f"and context size, or corrupt")
        return out[:n_out].copy()

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
