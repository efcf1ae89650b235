# Measurement helpers for benchmarks/: the cost of llama.cpp's own calls,
# timed in C with no Python in the loop, to compare the wrappers against.


def _bench_tokenize_c(Vocab vocab not None, text, int repeat=1, bint add_special=True,
                      bint parse_special=False) -> float:
    """Mean nanoseconds of one bare ``llama_tokenize`` call on ``text`` (buffer preallocated)."""
    vocab._check()
    cdef Py_ssize_t n_bytes
    cdef const char * data = _text_ptr(text, &n_bytes)
    cdef int32_t cap = <int32_t> n_bytes + 16
    cdef llama_token * buf = <llama_token *> malloc(cap * sizeof(llama_token))
    if buf == NULL:
        raise MemoryError()
    cdef int64_t t0, t1
    cdef int i
    try:
        with nogil:
            t0 = llama.llama_time_us()
            for i in range(repeat):
                llama.llama_tokenize(vocab._ptr, data, <int32_t> n_bytes, buf, cap, add_special, parse_special)
            t1 = llama.llama_time_us()
    finally:
        free(buf)
    return (t1 - t0) * 1000.0 / repeat
