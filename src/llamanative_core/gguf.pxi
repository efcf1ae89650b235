# Reading GGUF headers: validation before llama.cpp sees a file, and metadata.

from libc.string cimport strcmp
from libcpp.string cimport to_string
from libcpp.unordered_set cimport unordered_set

cdef extern from "gguf.h" nogil:
    int64_t gguf_find_key(const llama.gguf_context * ctx, const char * key)
    llama.ggml_type gguf_get_tensor_type(const llama.gguf_context * ctx, int64_t tensor_id)

cdef extern from "ggml.h" nogil:
    const char * ggml_type_name(llama.ggml_type type)

_GGUF_MAGIC = b"GGUF"
_NUMPY_OF_GGUF = {
    llama.GGUF_TYPE_UINT8: np.uint8, llama.GGUF_TYPE_INT8: np.int8,
    llama.GGUF_TYPE_UINT16: np.uint16, llama.GGUF_TYPE_INT16: np.int16,
    llama.GGUF_TYPE_UINT32: np.uint32, llama.GGUF_TYPE_INT32: np.int32,
    llama.GGUF_TYPE_FLOAT32: np.float32, llama.GGUF_TYPE_BOOL: np.bool_,
    llama.GGUF_TYPE_UINT64: np.uint64, llama.GGUF_TYPE_INT64: np.int64,
    llama.GGUF_TYPE_FLOAT64: np.float64,
}


cdef llama.gguf_context * _gguf_open(str path) except NULL:
    """Open the header of a GGUF file, raising a typed error for a bad file.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        IsADirectoryError: ``path`` is a directory.
        ValueError: not a GGUF file, a corrupt header, or tensor data cut short.
    """
    if not _os.path.exists(path):
        raise FileNotFoundError(2, "model file not found", path)
    if _os.path.isdir(path):
        raise IsADirectoryError(21, "model path is a directory, not a GGUF file", path)
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != _GGUF_MAGIC:
        raise ModelLoadError(f"{path!r} is not a GGUF file (magic bytes {magic!r}, expected b'GGUF')", path)
    cdef bytes bpath = _os.fsencode(path)
    cdef const char * cpath = bpath
    cdef llama.gguf_init_params params
    params.no_alloc = True
    params.ctx = NULL
    cdef llama.gguf_context * g
    with nogil:
        g = llama.gguf_init_from_file(cpath, params)
    if g == NULL:
        raise ModelLoadError(f"{path!r} is not a valid GGUF file (corrupt or truncated header)", path)
    # gguf_init only reads the header: check that every tensor's data is
    # inside the file, so a download cut short is reported as such.
    cdef size_t end = 0, tend
    cdef int64_t t
    cdef size_t data_offset = llama.gguf_get_data_offset(g)
    for t in range(llama.gguf_get_n_tensors(g)):
        tend = data_offset + llama.gguf_get_tensor_offset(g, t) + llama.gguf_get_tensor_size(g, t)
        if tend > end:
            end = tend
    size = _os.path.getsize(path)
    if end > size:
        llama.gguf_free(g)
        raise ModelLoadError(
            f"{path!r} is truncated: its tensors need {end} bytes, the file has {size}", path)
    return g


cdef int _check_vocab(llama.gguf_context * g, str path) except -1:
    """Refuse a vocabulary on which llama.cpp's loader would abort (GGML_ASSERT ends the process).

    The loader keys its token map by each token's text as a C string (cut at
    a NUL byte; an empty one becomes ``[EMPTY_<id>]``) and asserts that no two
    tokens share one. The same reading is done here first.

    Raises:
        ModelLoadError: two tokens of ``tokenizer.ggml.tokens`` have the same text.
    """
    cdef int64_t k = gguf_find_key(g, b"tokenizer.ggml.model")
    cdef const char * s
    if k >= 0 and llama.gguf_get_kv_type(g, k) == llama.GGUF_TYPE_STRING:
        s = llama.gguf_get_val_str(g, k)
        if strcmp(s, b"no_vocab") == 0 or strcmp(s, b"none") == 0:
            return 0  # no token list is read
    k = gguf_find_key(g, b"tokenizer.ggml.tokens")
    if k < 0 or llama.gguf_get_kv_type(g, k) != llama.GGUF_TYPE_ARRAY or \
            llama.gguf_get_arr_type(g, k) != llama.GGUF_TYPE_STRING:
        return 0  # the loader reports these itself
    cdef uint32_t n = <uint32_t> llama.gguf_get_arr_n(g, k)  # the loader's own (32-bit) count
    cdef uint32_t i
    cdef unordered_set[string] seen
    cdef string word
    cdef int64_t dup = -1
    with nogil:
        seen.reserve(n)
        for i in range(n):
            word = string(llama.gguf_get_arr_str(g, k, i))
            if word.empty():
                word = string(b"[EMPTY_") + to_string(i) + string(b"]")
            if not seen.insert(word).second:
                dup = i
                break
    if dup >= 0:
        raise ModelLoadError(
            f"{path!r} has a corrupt vocabulary: token {dup} ({word.decode('utf-8', 'replace')!r}) has the same "
            f"text as an earlier token", path)
    return 0


cdef object _gguf_value(llama.gguf_context * g, int64_t k, bint with_arrays):
    cdef llama.gguf_type t = llama.gguf_get_kv_type(g, k)
    cdef llama.gguf_type at
    cdef size_t n, i
    cdef const char * s
    if t == llama.GGUF_TYPE_STRING:
        s = llama.gguf_get_val_str(g, k)
        return s[:strlen(s)].decode("utf-8", "replace")
    if t == llama.GGUF_TYPE_ARRAY:
        at = llama.gguf_get_arr_type(g, k)
        n = llama.gguf_get_arr_n(g, k)
        if not with_arrays:
            return None
        if at == llama.GGUF_TYPE_STRING:
            out = []
            for i in range(n):
                s = llama.gguf_get_arr_str(g, k, i)
                out.append(s[:strlen(s)].decode("utf-8", "replace"))
            return out
        if at in _NUMPY_OF_GGUF:
            dtype = np.dtype(_NUMPY_OF_GGUF[at])
            data = PyBytes_FromStringAndSize(<const char *> llama.gguf_get_arr_data(g, k), n * dtype.itemsize)
            return np.frombuffer(data, dtype=dtype).tolist()
        return []  # nested arrays: not produced by any known converter
    if t == llama.GGUF_TYPE_UINT8: return llama.gguf_get_val_u8(g, k)
    if t == llama.GGUF_TYPE_INT8: return llama.gguf_get_val_i8(g, k)
    if t == llama.GGUF_TYPE_UINT16: return llama.gguf_get_val_u16(g, k)
    if t == llama.GGUF_TYPE_INT16: return llama.gguf_get_val_i16(g, k)
    if t == llama.GGUF_TYPE_UINT32: return llama.gguf_get_val_u32(g, k)
    if t == llama.GGUF_TYPE_INT32: return llama.gguf_get_val_i32(g, k)
    if t == llama.GGUF_TYPE_FLOAT32: return llama.gguf_get_val_f32(g, k)
    if t == llama.GGUF_TYPE_UINT64: return llama.gguf_get_val_u64(g, k)
    if t == llama.GGUF_TYPE_INT64: return llama.gguf_get_val_i64(g, k)
    if t == llama.GGUF_TYPE_FLOAT64: return llama.gguf_get_val_f64(g, k)
    if t == llama.GGUF_TYPE_BOOL: return bool(llama.gguf_get_val_bool(g, k))
    return None


def read_gguf_metadata(path, *, bint arrays=True) -> dict:
    """Every key/value of a GGUF file's header, without loading any weights.

    Args:
        path: the GGUF file.
        arrays: include array values (token lists can be large). Default True.

    Returns:
        A dict in file order; strings as ``str``, numbers as ``int``/``float``,
        arrays as lists.

    Raises:
        FileNotFoundError, ValueError: see :class:`Model`.
    """
    cdef llama.gguf_context * g = _gguf_open(_os.fspath(path))
    cdef int64_t k
    cdef const char * key
    out = {}
    try:
        for k in range(llama.gguf_get_n_kv(g)):
            key = llama.gguf_get_key(g, k)
            out[key[:strlen(key)].decode("utf-8", "replace")] = _gguf_value(g, k, arrays)
    finally:
        llama.gguf_free(g)
    return out


def read_gguf_tensors(path) -> list:
    """The tensors of a GGUF file as ``(name, offset, size_in_bytes, shape)`` tuples.

    ``shape`` lists the element counts of the used dimensions (ggml order).
    """
    cdef llama.gguf_context * g = _gguf_open(_os.fspath(path))
    cdef int64_t t
    cdef const char * name
    cdef const int64_t * ne
    out = []
    try:
        for t in range(llama.gguf_get_n_tensors(g)):
            name = llama.gguf_get_tensor_name(g, t)
            ne = llama.gguf_get_tensor_ne(g, t)
            shape = [ne[0], ne[1], ne[2], ne[3]]  # GGML_MAX_DIMS = 4; unused dimensions are 1
            while len(shape) > 1 and shape[len(shape) - 1] == 1:
                shape.pop()
            # Any bytes can name a tensor: decoded as the keys are (invalid UTF-8 replaced).
            out.append((name[:strlen(name)].decode("utf-8", "replace"), llama.gguf_get_tensor_offset(g, t),
                        llama.gguf_get_tensor_size(g, t), tuple(shape)))
    finally:
        llama.gguf_free(g)
    return out


def read_gguf_tensor_types(path) -> list:
    """The ggml type of each tensor of a GGUF file, in header order (that of ``read_gguf_tensors``).

    Names are ggml's in upper case, as Ollama writes them: ``"F32"``,
    ``"Q4_K"``, ``"BF16"``, ``"IQ2_XXS"``. The header's reader has already
    refused a type id that ggml does not know.
    """
    cdef llama.gguf_context * g = _gguf_open(_os.fspath(path))
    cdef int64_t t
    cdef const char * name
    out = []
    try:
        for t in range(llama.gguf_get_n_tensors(g)):
            name = ggml_type_name(gguf_get_tensor_type(g, t))
            out.append(name[:strlen(name)].decode("ascii", "replace").upper())
    finally:
        llama.gguf_free(g)
    return out
