# Context, state layer: the whole context's state (KV cache, outputs, RNG) or
# one sequence's KV cells, as bytes or as llama.cpp's session file. The GIL is
# released while llama.cpp copies.


# A whole-context state (llama_state_get_data, and a session file after its
# tokens) begins with the model's architecture name: a uint32 length, then the
# name. llama.cpp reads it into a std::vector of that length before checking
# anything: a corrupt length allocates up to 4 GiB, and a length of 0 passes
# NULL to memcpy (undefined behaviour; UndefinedBehaviorSanitizer reports it in
# llama_io_read_host::read). The name is checked here first, and llama.cpp
# only sees a state that starts with this model's architecture.
cdef object _state_arch_error(const uint8_t * data, size_t n, str arch):
    """Why a state whose first ``n`` bytes are ``data`` is not one of an ``arch`` model, or None."""
    cdef uint32_t length
    if n < sizeof(uint32_t):
        return "it is too short to be a state"
    memcpy(&length, data, sizeof(uint32_t))
    expected = arch.encode()
    if length != <uint32_t> len(expected) or n - sizeof(uint32_t) < length \
            or (<const char *> data)[sizeof(uint32_t):sizeof(uint32_t) + length] != expected:
        return f"it does not begin with this model's architecture ({arch!r}): a state of another model, or corrupt"
    return None


# llama.cpp's session file: magic, version, token count, the tokens, then the state.
_SESSION_MAGIC = 0x6767736e  # LLAMA_FILE_MAGIC_GGSN, "ggsn"
_SESSION_VERSION = 10  # LLAMA_SESSION_VERSION


cdef class _ContextState(_ContextMemory):
    """State save and load for :class:`Context`; not used on its own."""

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
        why = _state_arch_error(&view[0], n, self.model.architecture)
        if why is not None:
            raise StateError(f"the state could not be restored: {why}")
        self._enter()
        try:
            self._keep_outputs(-1, True, "load a state")
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
        why = self._session_file_error(spath)
        if why is not None:
            raise StateError(f"could not restore the state from {spath!r}: {why}")
        cdef bytes bpath = _os.fsencode(spath)
        cdef const char * cpath = bpath
        cdef cnp.npy_intp cap = self._n_ctx_seq * self._n_seq_max
        cdef cnp.ndarray out = cnp.PyArray_EMPTY(1, &cap, cnp.NPY_INT32, 0)
        cdef size_t n_out = 0
        cdef bint ok
        self._enter()
        try:
            self._keep_outputs(-1, True, "load a state")
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

    cdef object _session_file_error(self, str path):
        """Why llama.cpp must not read ``path`` as a session file of this context, or None.

        The header is read here (the file may be any size: only the header
        and the architecture name are read) so that llama.cpp sees neither
        a token count past the context nor a corrupt architecture name.
        """
        cdef uint32_t header[3]
        cdef bytes head, rest
        cdef size_t cap = self._n_ctx_seq * self._n_seq_max
        arch = self.model.architecture
        with open(path, "rb") as f:
            head = f.read(sizeof(header))
            if len(head) < sizeof(header):
                return "it is too short to be a state file"
            memcpy(header, PyBytes_AS_STRING(head), sizeof(header))
            if header[0] != _SESSION_MAGIC or header[1] != _SESSION_VERSION:
                return f"not a llama.cpp session file of version {_SESSION_VERSION}"
            if header[2] > cap:
                return f"it holds {header[2]} tokens, more than this context's {cap}"
            f.seek(sizeof(header) + header[2] * sizeof(llama_token))
            rest = f.read(sizeof(uint32_t) + len(arch.encode()))
        return _state_arch_error(<const uint8_t *> PyBytes_AS_STRING(rest), len(rest), arch)
