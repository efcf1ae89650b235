# Batched embedding: many token sequences packed into as few decodes as the
# context allows, pooled rows written straight into the caller's matrix.
#
# The whole loop (packing, decode, copying the pooled rows, normalising) runs
# without the GIL and without a Python call per input: the inputs arrive as one
# flat token array plus offsets, and every check is made before the first
# decode, because llama.cpp aborts on a bad token id or an over-long encoder
# batch.

from libc.math cimport sqrt


cdef int _embed_packed(llama.llama_context * ctx, llama.llama_batch * b,
                       const llama_token * toks, const int64_t * offs, Py_ssize_t n_inputs,
                       int32_t pack, uint32_t n_seq_max, float * out, Py_ssize_t width,
                       bint normalize, int32_t * n_decodes, Py_ssize_t * first_row) noexcept nogil:
    """Fill ``out`` (n_inputs x width); return llama_decode's code (0 on success), -100 for a missing row.

    A decode takes inputs while they total at most ``pack`` tokens, and at
    least one (every input fits the batch: checked before).

    ``first_row`` is set to the first input of the batch being decoded, so a
    failure can name it.
    """
    cdef Py_ssize_t i = 0, first, r, k
    cdef int64_t start, length, j
    cdef int32_t seq, rc, base
    cdef float * src
    cdef float * dst
    cdef double norm
    cdef float scale
    cdef llama.llama_memory_t mem
    while i < n_inputs:
        first = i
        first_row[0] = first
        seq = 0
        b.n_tokens = 0
        while i < n_inputs and <uint32_t> seq < n_seq_max:
            start = offs[i]
            length = offs[i + 1] - start
            if b.n_tokens > 0 and b.n_tokens + length > pack:
                break
            base = b.n_tokens
            for j in range(length):
                b.token[base + j] = toks[start + j]
                b.pos[base + j] = <llama_pos> j
                b.n_seq_id[base + j] = 1
                b.seq_id[base + j][0] = seq
                b.logits[base + j] = 1
            b.n_tokens = base + <int32_t> length
            seq += 1
            i += 1
        # Each batch starts from an empty memory: sequence ids are reused.
        mem = llama.llama_get_memory(ctx)
        if mem != NULL:
            llama.llama_memory_clear(mem, False)
        rc = llama.llama_decode(ctx, b[0])
        if rc != 0:
            return rc
        n_decodes[0] += 1
        for r in range(seq):
            src = llama.llama_get_embeddings_seq(ctx, r)
            if src == NULL:
                return -100
            dst = out + (first + r) * width
            memcpy(dst, src, width * sizeof(float))
            if normalize:
                norm = 0.0
                for k in range(width):
                    norm += <double> dst[k] * dst[k]
                if norm > 0.0:
                    scale = <float> (1.0 / sqrt(norm))
                    for k in range(width):
                        dst[k] *= scale
    return 0


cdef int _check_embed_inputs(cnp.ndarray toks, cnp.ndarray offs, Py_ssize_t n_inputs, int64_t limit,
                             int32_t n_vocab) except -1:
    """Raise ValueError for malformed offsets, an empty or over-long input, or a bad token id."""
    cdef const int64_t * o = <const int64_t *> cnp.PyArray_DATA(offs)
    cdef const llama_token * t = <const llama_token *> cnp.PyArray_DATA(toks)
    cdef Py_ssize_t n_tok = cnp.PyArray_DIM(toks, 0), i, bad = -1
    cdef int64_t length
    if o[0] != 0 or o[n_inputs] != n_tok:
        raise ValueError(f"offsets must start at 0 and end at len(tokens)={n_tok}, "
                         f"got {o[0]} and {o[n_inputs]}")
    for i in range(n_inputs):
        length = o[i + 1] - o[i]
        if length <= 0:
            raise ValueError(f"input {i} is empty (offsets must be strictly increasing)")
        if length > limit:
            raise ValueError(f"input {i} has {length} tokens; one decode of this context holds {limit} "
                             "(truncate it, or use a larger context)")
    with nogil:
        bad = _first_bad_token(t, n_tok, n_vocab)
    if bad >= 0:
        for i in range(n_inputs):
            if o[i + 1] > bad:
                break
        raise ValueError(f"input {i}: token id {t[bad]} is out of range: the vocab has {n_vocab} tokens")
    return 0
