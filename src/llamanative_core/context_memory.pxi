# Context, memory layer: the KV cache (llama_memory) by sequence: clearing,
# removing, sharing and shifting positions, and the positions a sequence holds.


cdef class _ContextMemory(_ContextOutputs):
    """KV-memory operations for :class:`Context`; not used on its own."""

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
