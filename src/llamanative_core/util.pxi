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
    """``tokens`` as a C-contiguous int32 array (no copy when it already is one).

    Raises:
        TypeError: the values are not integers (numpy would truncate floats).
        ValueError: not one-dimensional, or an id outside int32 (numpy would
            wrap it around into some other, valid-looking id).
    """
    cdef cnp.ndarray arr
    if isinstance(tokens, np.ndarray) and tokens.dtype == np.int32:
        arr = np.ascontiguousarray(tokens)
    else:
        arr = np.asarray(tokens)
        if arr.dtype.kind == "O" or (arr.dtype.kind == "f" and not isinstance(tokens, np.ndarray)):
            # numpy holds Python ints beyond int64 as objects, or as floats when
            # mixed with negative ones: look at the values themselves.
            obj = np.asarray(tokens, dtype=object)
            values = obj.ravel().tolist()
            for v in values:
                if not isinstance(v, (int, np.integer)):
                    raise TypeError(f"token ids must be integers, not {type(v).__name__}")
            if values and (min(values) < -2147483648 or max(values) > 2147483647):
                bad = min(values) if min(values) < -2147483648 else max(values)
                raise ValueError(f"token id {bad} is out of range: token ids are 32-bit")
            arr = np.asarray(values, dtype=np.int64).reshape(obj.shape)
        elif arr.dtype.kind not in "iub":
            if arr.size:
                raise TypeError(f"token ids must be integers, not {arr.dtype} values")
            arr = arr.astype(np.int32)  # [] is a float64 array to numpy
        if arr.size and arr.dtype.kind in "iu":
            lo, hi = arr.min(), arr.max()
            if lo < -2147483648 or hi > 2147483647:
                raise ValueError(f"token id {lo if lo < -2147483648 else hi} is out of range: token ids are 32-bit")
        arr = np.ascontiguousarray(arr, dtype=np.int32)
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
