# Context: one llama_context (KV memory, compute buffers, outputs).
#
# A Cython class body cannot span files, so Context is built as a chain of
# layers, one file and one job each; every layer adds methods only:
#
#   _ContextHandle   context_handle.pxi   every field, lifetime, guard, sizes, settings
#   _ContextDecode   context_decode.pxi   batch checks, decode/encode, abort flag
#   _ContextOutputs  context_outputs.pxi  logits/embedding views, packed embedding
#   _ContextMemory   context_memory.pxi   KV memory by sequence
#   _ContextState    context_state.pxi    state save/load (bytes, sequences, files)
#   _ContextAdapters lora.pxi             LoRA adapters set on the context, with scales
#   _ContextControlVector control_vector.pxi  the control vector set on the context, over a layer range
#   Context          this file            the checked constructor
#
# The constructor's arguments are checked in context_params.pxi, and the CPU
# worker threads are a _ThreadPool (threadpool.pxi).


cdef class Context(_ContextControlVector):
    """A llama.cpp inference context over a :class:`Model`.

    Args:
        model: the loaded model (kept alive by the context).
        n_ctx: context size in tokens, shared by all sequences; 0 = the
            model's training context. Default 4096.
        n_batch: most tokens one :meth:`decode` call accepts. Default 512.
        n_ubatch: physical batch size; for encoder / non-causal models every
            sequence must fit in one ubatch. Default 512.
        n_seq_max: number of sequences (parallel slots). Default 1.
        n_threads: threads for generation; default: the CPUs this process may
            run on (:func:`default_n_threads`: its affinity and cgroup CPU
            quota), which is also the most it is given: a request for more
            is capped there, and logged once to the ``llamanative`` logger.
        n_threads_batch: threads for prompt processing; default ``n_threads``;
            capped the same way.
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
            llama.cpp's ``--poll``. Default 1: long enough to span the gap
            between two decodes of a generation. llama.cpp's tools use 50,
            which keeps a core spinning long after each request and slows
            whatever runs next (docs/design/cpu-threads.md). 0 is used
            instead when the thread counts were capped, or when this
            context's threads take the process's contexts past its CPUs
            (see :attr:`poll`).

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

    def __init__(self, Model model not None, *, int n_ctx=4096, int n_batch=512, int n_ubatch=512,
                 int n_seq_max=1, n_threads=None, n_threads_batch=None, bint embeddings=False,
                 pooling_type=None, attention_type=None, flash_attn="auto", type_k="f16",
                 type_v="f16", bint kv_unified=True, bint offload_kqv=True, bint swa_full=False,
                 int poll=1):
        if self._ptr != NULL:
            # Freeing the open context could pull it from under its steppers and views.
            raise RuntimeError("Context.__init__ was called on an open context; create a new Context")
        model._check()
        cdef llama.llama_context_params p = llama.llama_context_default_params()
        capped = _context_params(&p, model, n_ctx, n_batch, n_ubatch, n_seq_max, n_threads, n_threads_batch,
                                 embeddings, pooling_type, attention_type, flash_attn, type_k, type_v,
                                 kv_unified, offload_kqv, swa_full, poll)
        # Kept for set_embeddings(True) too: it would abort on the same shapes.
        pooling_error = _pooling_shape_error(model, p)
        if embeddings and pooling_error is not None:
            raise ValueError(pooling_error)
        # A request for more threads than CPUs signals a crowded machine: no busy polling.
        self._open(model, p, pooling_error, 0 if capped else poll)
