# Re-typing a GGUF model with llama.cpp's own quantizer, llama_model_quantize.
#
# The pinned llama.h gives the call no progress or abort callback: once
# started it runs to the end. It reports each tensor in a log line
# ("[  12/ 101] blk.0.attn_q.weight - [...]"), and fails by logging the reason
# at ERROR level and returning non-zero. The store runs it in a worker process
# (llamanative/store/quantize.py), which it reads progress from and can stop.

# Ollama's names of the target types a create may ask for (llama_ftype of llama.h).
QUANTIZE_FILE_TYPES = {
    "F32": llama.LLAMA_FTYPE_ALL_F32,
    "F16": llama.LLAMA_FTYPE_MOSTLY_F16,
    "BF16": llama.LLAMA_FTYPE_MOSTLY_BF16,
    "Q8_0": llama.LLAMA_FTYPE_MOSTLY_Q8_0,
    "Q6_K": llama.LLAMA_FTYPE_MOSTLY_Q6_K,
    "Q5_K_M": llama.LLAMA_FTYPE_MOSTLY_Q5_K_M,
    "Q4_K_M": llama.LLAMA_FTYPE_MOSTLY_Q4_K_M,
    "Q4_K_S": llama.LLAMA_FTYPE_MOSTLY_Q4_K_S,
    "Q4_0": llama.LLAMA_FTYPE_MOSTLY_Q4_0,
}


def quantize_model(src, dst, int file_type, *, n_threads=None, bint allow_requantize=False) -> None:
    """Write ``dst``: the GGUF model ``src`` with its weights converted to ``file_type``.

    llama.cpp's defaults (``llama_model_quantize_default_params``) apart from
    the type, the threads and ``allow_requantize``: 1-D tensors (norms, biases)
    stay F32, and for the k-quant mixes some tensors get more bits (Q4_K_M
    gives half the ``attn_v``/``ffn_down`` tensors Q6_K), or the fallback type
    when their rows are not a multiple of 256. The GIL is released for the
    whole call, which cannot be interrupted.

    Args:
        src: the model GGUF (its header is checked here before llama.cpp reads it).
        dst: the file to write (replaced if it exists; its directory must
            exist). When the call fails, a ``dst`` that did not exist before
            is removed (llama.cpp leaves the part it wrote).
        file_type: a value of :data:`QUANTIZE_FILE_TYPES`.
        n_threads: threads converting the rows (default: the CPUs this process
            may use, as for a context).
        allow_requantize: also convert tensors that are already quantized
            (dequantized first, so the result carries both roundings).
            False: such a tensor makes the call fail.

    Raises:
        ValueError: ``file_type`` is not one of :data:`QUANTIZE_FILE_TYPES`, or ``n_threads`` < 1.
        FileNotFoundError: no file ``src``.
        ModelLoadError: ``src`` is not a GGUF file or is truncated.
        QuantizeError: llama.cpp failed (an unknown architecture, a quantized
            tensor without ``allow_requantize``, ``dst`` not writable ...);
            the reason is in llama.cpp's ERROR log line.
    """
    if file_type not in QUANTIZE_FILE_TYPES.values():
        raise ValueError(f"file_type {file_type} is not one of {sorted(QUANTIZE_FILE_TYPES.values())}")
    cdef int threads = _cpu_limit().cpus if n_threads is None else int(n_threads)
    if threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {threads}")
    src_path = _os.fspath(src)
    llama.gguf_free(_gguf_open(src_path))  # a bad header is a typed error, not llama.cpp's
    cdef bytes bsrc = _os.fsencode(src_path)
    dst_path = _os.fspath(dst)
    existed = _os.path.lexists(dst_path)
    cdef bytes bdst = _os.fsencode(dst_path)
    cdef const char * csrc = bsrc
    cdef const char * cdst = bdst
    cdef llama.llama_model_quantize_params params = llama.llama_model_quantize_default_params()
    params.nthread = threads
    params.ftype = <llama.llama_ftype> file_type
    params.allow_requantize = allow_requantize
    cdef uint32_t rc
    with nogil:
        rc = llama.llama_model_quantize(csrc, cdst, &params)
    if rc != 0:
        if not existed:
            try:
                _os.unlink(dst_path)
            except OSError:
                pass  # never written (dst's directory missing ...)
        raise QuantizeError(f"llama_model_quantize failed on {src_path!r} (see llama.cpp's ERROR log for why)")
