# Context, decode layer: checking a batch against the context, llama_decode /
# llama_encode, the abort flag, and the record of which batch tokens have
# outputs (for the readers of context_outputs.pxi and Sampler.sample).

_DECODE_MEANINGS = {
    1: (NoKvSlotError, "no KV slot for the batch (reduce the batch or increase n_ctx)"),
    2: (DecodeAbortedError, "aborted by the abort callback"),
    -1: (InvalidBatchError, "invalid batch"),
}


cdef object _decode_error(int32_t rc, str op):
    """The exception for a non-zero llama_decode/llama_encode return code."""
    cls, meaning = _DECODE_MEANINGS.get(rc, (DecodeError, "fatal error" if rc < 0 else "unexpected warning"))
    return cls(rc, meaning, op)


cdef class _ContextDecode(_ContextHandle):
    """Decoding for :class:`Context`; not used on its own."""

    cdef int _validate(self, Batch batch, bint whole_in_ubatch) except -1:
        cdef llama.llama_batch * b = &batch._b
        cdef int32_t n = b.n_tokens, i, j, bad = -1, what = 0
        if n == 0:
            raise ValueError("the batch is empty")
        if <uint32_t> n > self._n_batch:
            raise ValueError(f"the batch has {n} tokens, more than the context's n_batch={self._n_batch}")
        if whole_in_ubatch and <uint32_t> n > self._n_ubatch:
            raise ValueError(
                f"the batch has {n} tokens but this model attends to the whole input at once: "
                f"it must fit in n_ubatch={self._n_ubatch} (create the Context with a larger n_ubatch)")
        with nogil:
            for i in range(n):
                if b.token[i] < 0 or b.token[i] >= self._n_vocab:
                    bad = i; what = 1; break
                if b.pos[i] < 0 or <uint32_t> b.pos[i] >= self._n_ctx_seq:
                    bad = i; what = 2; break
                for j in range(b.n_seq_id[i]):
                    if b.seq_id[i][j] < 0 or <uint32_t> b.seq_id[i][j] >= self._n_seq_max:
                        bad = i; what = 3; break
                if what:
                    break
        if what == 1:
            raise ValueError(f"token id {b.token[bad]} at batch index {bad} is out of range: "
                             f"the vocab has {self._n_vocab} tokens")
        if what == 2:
            raise ValueError(f"position {b.pos[bad]} at batch index {bad} exceeds the context: "
                             f"a sequence holds positions 0..{self._n_ctx_seq - 1} (n_ctx={self._n_ctx_seq})")
        if what == 3:
            raise ValueError(f"sequence id at batch index {bad} is out of range: the context has "
                             f"n_seq_max={self._n_seq_max} sequences (ids 0..{self._n_seq_max - 1})")
        return 0

    def decode(self, Batch batch not None) -> None:
        """Run the model over ``batch`` (``llama_decode``), with the GIL released.

        After it returns, :meth:`logits` / :meth:`embeddings_ith` /
        :meth:`embeddings_seq` read the outputs of the tokens whose output flag
        was set. Models without a KV cache (BERT-style encoders) are encoded.

        Raises:
            BufferError: views from :meth:`embeddings_seq` are alive (every
                decode frees the pooled embeddings), or views from
                :meth:`logits` / :meth:`embeddings_ith` are alive and the batch
                has more outputs than the output buffer has held so far (it
                would be reallocated).
            ValueError: a token id, position or sequence id is out of range, or
                the batch is larger than n_batch (checked before llama.cpp runs).
            RpcLostError: an RPC server the model is placed on was lost
                during the call (its outputs are not readable).
            NoKvSlotError: no room in the KV cache (code 1).
            DecodeAbortedError: :meth:`cancel` was called (code 2).
            InvalidBatchError: llama.cpp rejected the batch (code -1).
            DecodeError: any other failure (code < -1).
        """
        self._enter()
        cdef int32_t rc
        cdef unsigned long mark
        try:
            self._validate(batch, llama.llama_get_memory(self._ptr) == NULL
                           or not llama.llama_get_causal_attn(self._ptr))
            # With embeddings on, llama.cpp outputs every token.
            n_out = batch._b.n_tokens if self._embeddings else batch.n_outputs
            self._keep_outputs(n_out, True, "decode")
            mark = lln_rpc_failures()
            with nogil:
                rc = llama.llama_decode(self._ptr, batch._b)
            self._abort_flag = 0
            self._check_rpc(mark, "a decode")
            if rc == 0:
                self._held_outputs(n_out)
            self._after_run(batch, rc)
            if rc != 0:
                raise _decode_error(rc, "decode")
        finally:
            self._leave()

    def encode(self, Batch batch not None) -> None:
        """Run the encoder over ``batch`` (``llama_encode``), GIL released.

        The whole batch must fit in n_ubatch. Raises like :meth:`decode`.
        """
        self._enter()
        cdef int32_t rc
        cdef unsigned long mark
        try:
            self._validate(batch, True)
            self._keep_outputs(batch._b.n_tokens, True, "encode")
            mark = lln_rpc_failures()
            with nogil:
                rc = llama.llama_encode(self._ptr, batch._b)
            self._abort_flag = 0
            self._check_rpc(mark, "an encode")
            if rc == 0:
                self._held_outputs(batch._b.n_tokens)
            self._after_run(batch, rc)
            if rc != 0:
                raise _decode_error(rc, "encode")
        finally:
            self._leave()

    cdef int _check_rpc(self, unsigned long mark, str op) except -1:
        """RpcLostError when a call to an RPC server broke since ``mark``: what the call computed is
        garbage, so no output of it may be read."""
        if lln_rpc_failures() != mark:
            self._forget_outputs()
            _rpc_check(mark, self.model.rpc, op)
        return 0

    cdef void _after_run(self, Batch batch, int32_t rc):
        if rc != 0:
            self._forget_outputs()
            return
        self._last_outputs = PyBytes_FromStringAndSize(<const char *> batch._b.logits, batch._b.n_tokens)
        self._n_last_outputs = batch.n_outputs

    cdef void _forget_outputs(self) noexcept:
        """No output is readable until the next decode (the per-token readers raise IndexError)."""
        self._last_outputs = b""
        self._n_last_outputs = 0

    def cancel(self) -> None:
        """Ask a running (or the next) decode to stop; it then raises DecodeAbortedError.

        Safe to call from any thread.
        """
        self._abort_flag = 1

    cdef int _check_output(self, int32_t i) except -1:
        if self._last_outputs is None:
            # Outputs restored from a saved state: llama.cpp knows them, we do
            # not; callers then rely on its NULL check for a missing output.
            return 0
        cdef Py_ssize_t n = len(self._last_outputs)
        if i < 0:
            if -i > self._n_last_outputs:
                raise IndexError(f"output index {i} out of range: the last batch had {self._n_last_outputs} outputs")
            return 0
        if i >= n or self._last_outputs[i] == 0:
            raise IndexError(f"batch index {i} has no output: set output=True for it in the batch "
                             f"(the last batch had {n} tokens)")
        return 0
