# Small helpers shared by the wrappers: buffers, numpy views, text conversion.

from cpython.unicode cimport PyUnicode_AsUTF8AndSize


cdef inline const char * _text_ptr(object text, Py_ssize_t * size) except NULL:
    """Pointer to the UTF-8 bytes of ``text`` (str or bytes) without copying.

    For a str, CPython caches its UTF-8 form inside the object, so the pointer
    stays valid as long as ``text`` is alive.
    """
    if isinstance(text, str):
        return PyUnicode_AsUTF8AndSize(text, size)
    if isinstance(text, bytes):
        size[0] = PyBytes_GET_SIZE(text)
        return PyBytes_AS_STRING(text)
    raise TypeError(f"text must be str or bytes, not {type(text).__name__}")


cdef object _readonly_f32_view(float * ptr, Py_ssize_t n, object owner):
    """A read-only 1-D float32 numpy array over ``ptr``, keeping ``owner`` alive."""
    cdef cnp.npy_intp dims[1]
    dims[0] = n
    cdef cnp.ndarray arr = cnp.PyArray_SimpleNewFromData(1, dims, cnp.NPY_FLOAT32, <void *> ptr)
    cnp.PyArray_CLEARFLAGS(arr, cnp.NPY_ARRAY_WRITEABLE)
    cnp.set_array_base(arr, owner)
    return arr


cdef object _copy_out(float * ptr, Py_ssize_t n, object out):
    """A copy of ``n`` floats at ``ptr`` into ``out``."""
    cdef float[::1] dst = out
    if dst.shape[0] != n:
        raise ValueError(f"out must have {n} float32 elements, got {dst.shape[0]}")
    memcpy(&dst[0], ptr, n * sizeof(float))
    return out


cdef cnp.ndarray _as_tokens(object tokens):
    """``tokens`` as a C-contiguous int32 array (no copy when it already is one)."""
    cdef cnp.ndarray arr = np.ascontiguousarray(tokens, dtype=np.int32)
    if arr.ndim != 1:
        raise ValueError(f"tokens must be one-dimensional, got shape {np.shape(arr)}")
    return arr


cdef inline int _first_bad_token(const llama_token * toks, Py_ssize_t n, int32_t n_vocab) noexcept nogil:
    """Index of the first token outside [0, n_vocab), or -1."""
    cdef Py_ssize_t i
    for i in range(n):
        if toks[i] < 0 or toks[i] >= n_vocab:
            return <int> i
    return -1


cdef object _bytes_to_str(bytes data):
    return data.decode("utf-8", "replace")
