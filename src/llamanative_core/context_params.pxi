# Context parameters: the constructor's arguments checked and turned into a
# llama_context_params, before llama.cpp sees any of them (it aborts the
# process on some shapes instead of failing).

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


def default_n_threads() -> int:
    """Threads used when none is given, and the most a context is given: the CPUs this process may run on.

    The least of the CPU affinity and the cgroup CPU quota (``cpu.max``,
    rounded up), else ``os.cpu_count()`` (llamanative/_cpus.py).
    """
    return _cpu_limit().cpus


# (requested, ceiling) pairs already logged: a request is reported once, not at every load.
_threads_logged = set()
_threads_logger = _logging.getLogger("llamanative")


cdef int _thread_ceiling(int requested, object limit) except -1:
    """``requested`` threads capped at the CPUs of ``limit``, logged once per distinct request.

    A compute thread beyond the CPUs the process may run on does no work:
    ggml's threads wait for each other at every barrier of a decode by
    spinning, so one descheduled thread stalls the rest for a time slice and
    generation slows a hundredfold (docs/design/cpu-threads.md).
    """
    if requested <= limit.cpus:
        return requested
    key = (requested, limit.cpus)
    if key not in _threads_logged:
        _threads_logged.add(key)
        _threads_logger.warning(
            "%d threads were asked for, more than the %d CPU(s) this process may run on (%s); using %d "
            "(more threads than CPUs spin at ggml's barriers and slow generation severalfold)",
            requested, limit.cpus, limit.reason(), limit.cpus)
    return limit.cpus


def _choice(table, value, str name):
    try:
        return table[value]
    except (KeyError, TypeError):
        choices = ", ".join(repr(k) for k in table if k is not None)
        raise ValueError(f"{name} must be one of {choices}; got {value!r}") from None


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


cdef int _context_params(llama.llama_context_params * p, Model model, int n_ctx, int n_batch, int n_ubatch,
                         int n_seq_max, n_threads, n_threads_batch, bint embeddings, pooling_type,
                         attention_type, flash_attn, type_k, type_v, bint kv_unified, bint offload_kqv,
                         bint swa_full, int poll) except -1:
    """Check the arguments of :class:`Context` (same names) and fill ``p`` from them.

    The thread counts are capped at the CPUs this process may run on.
    Returns 1 when they were, else 0. The abort callback and the output of
    the pooling-shape check are the caller's to set.
    """
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
    limit = _cpu_limit()
    nt = limit.cpus if n_threads is None else int(n_threads)
    ntb = nt if n_threads_batch is None else int(n_threads_batch)
    if nt < 1 or ntb < 1:
        raise ValueError(f"n_threads and n_threads_batch must be >= 1, got {nt} and {ntb}")
    cdef int capped = max(nt, ntb) > limit.cpus
    if capped:
        _thread_ceiling(max(nt, ntb), limit)
        nt, ntb = min(nt, limit.cpus), min(ntb, limit.cpus)
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
    p.no_perf = False
    return capped
