# Context, output layer: the logits and embeddings of the last decode as
# numpy views over llama.cpp's own buffers (or copies into the caller's
# arrays), and pooled embeddings of many inputs in packed decodes (the loop
# itself is in embed.pxi).


cdef class _ContextOutputs(_ContextDecode):
    """Output readers for :class:`Context`; not used on its own."""

    def logits(self, int32_t i=-1, *, out=None):
        """Logits of batch token ``i`` from the last decode (``-1`` = the last output).

        Returns:
            A **read-only float32 view** of ``n_vocab`` values over llama.cpp's
            own buffer: no copy. Its values are those of this decode until the
            next one. While it is alive the context refuses, with BufferError,
            whatever would free or move that memory: :meth:`close`, a decode
            with more outputs than the buffer has held, a state load. Pass
            ``out`` (a float32 array of n_vocab) to copy instead.

        Raises:
            IndexError: that token had no output.
        """
        self._check()
        if self._busy:
            raise ContextBusyError("this Context is in use by another thread")
        self._check_output(i)
        cdef float * p = llama.llama_get_logits_ith(self._ptr, i)
        if p == NULL:
            raise IndexError(f"no logits for batch index {i} (the context computes embeddings only?)")
        return self._view(p, self._n_vocab, False) if out is None else _copy_out(p, self._n_vocab, out)

    def embeddings_ith(self, int32_t i=-1, *, out=None):
        """Embedding of batch token ``i`` (pooling "none"); a read-only view like :meth:`logits`."""
        self._check()
        if not self._embeddings:
            raise ValueError("this context does not compute embeddings (create it with embeddings=True)")
        self._check_output(i)
        cdef float * p = llama.llama_get_embeddings_ith(self._ptr, i)
        if p == NULL:
            raise IndexError(f"no embedding for batch index {i}")
        return self._view(p, self._n_embd_out, False) if out is None else _copy_out(p, self._n_embd_out, out)

    def embeddings_seq(self, llama_seq_id seq_id, *, out=None):
        """Pooled embedding of sequence ``seq_id`` from the last decode.

        Not normalised (llama.cpp pools; normalising is the caller's choice).
        A read-only view like :meth:`logits`, or a copy into ``out``.

        Raises:
            ValueError: embeddings are off or the pooling type is "none".
            IndexError: the sequence was not in the last batch.
        """
        self._check()
        if not self._embeddings:
            raise ValueError("this context does not compute embeddings (create it with embeddings=True)")
        if llama.llama_get_pooling_type(self._ptr) == llama.LLAMA_POOLING_TYPE_NONE:
            raise ValueError("pooling_type is 'none': read per-token embeddings with embeddings_ith()")
        if seq_id < 0 or <uint32_t> seq_id >= self._n_seq_max:
            raise IndexError(f"sequence id {seq_id} out of range (0..{self._n_seq_max - 1})")
        cdef float * p = llama.llama_get_embeddings_seq(self._ptr, seq_id)
        if p == NULL:
            raise IndexError(f"no embedding for sequence {seq_id}: it was not in the last batch")
        cdef Py_ssize_t n = self._n_embd_out
        if llama.llama_get_pooling_type(self._ptr) == llama.LLAMA_POOLING_TYPE_RANK:
            n = max(1, llama.llama_model_n_cls_out(self.model._ptr))
        return self._view(p, n, True) if out is None else _copy_out(p, n, out)

    def embed_sequences(self, tokens, offsets, out, *, bint normalize=False, Py_ssize_t pack=0) -> int:
        """Pooled embeddings of many inputs, packed into as few decodes as fit.

        Input ``i`` is ``tokens[offsets[i]:offsets[i + 1]]``; each decode
        takes whole inputs, up to n_batch tokens (n_ubatch too for encoders,
        which attend to the whole batch at once) and n_seq_max sequences, and
        starts from an empty memory. Row ``i`` of ``out`` receives input
        ``i``'s pooled embedding. Everything runs with the GIL released, and
        nothing of Python runs per input.

        Args:
            tokens: every input's token ids, one after the other (int32).
            offsets: ``n + 1`` boundaries (int64), from 0 to ``len(tokens)``.
            out: a C-contiguous float32 matrix of ``n`` rows and
                :attr:`n_embd_out` columns (``n_cls_out`` for rank pooling).
            normalize: scale each row to unit L2 length (zero rows stay zero).
            pack: most tokens of several inputs to put in one decode (0: as
                many as the batch holds). An input longer than ``pack`` still
                gets a decode of its own. An encoder attends over the whole
                batch, so smaller packs spend less on attention (the figures
                are in docs/design/embeddings.md).

        Returns:
            The number of decodes run.

        Raises:
            ValueError: embeddings are off, pooling is "none", ``out`` has the
                wrong shape, an input is empty or longer than one decode holds,
                or a token id is out of range (all checked before any decode).
            DecodeAbortedError, DecodeError, ...: as :meth:`decode`; rows
                before the failing batch are filled, the rest are not.
        """
        self._check()
        if not self._embeddings:
            raise ValueError("this context does not compute embeddings (create it with embeddings=True)")
        cdef int pooling = llama.llama_get_pooling_type(self._ptr)
        if pooling == llama.LLAMA_POOLING_TYPE_NONE:
            raise ValueError("pooling_type is 'none': there is no pooled embedding per input")
        cdef Py_ssize_t width = self._n_embd_out
        if pooling == llama.LLAMA_POOLING_TYPE_RANK:
            width = max(1, llama.llama_model_n_cls_out(self.model._ptr))
        cdef cnp.ndarray toks = _as_tokens(tokens)
        cdef cnp.ndarray offs = np.ascontiguousarray(offsets, dtype=np.int64)
        if offs.ndim != 1 or cnp.PyArray_DIM(offs, 0) < 1:
            raise ValueError("offsets must be a one-dimensional array of n + 1 boundaries")
        cdef Py_ssize_t n_inputs = cnp.PyArray_DIM(offs, 0) - 1
        cdef float[:, ::1] dst = out
        if dst.shape[0] != n_inputs or dst.shape[1] != width:
            raise ValueError(f"out must be a ({n_inputs}, {width}) float32 matrix, "
                             f"got ({dst.shape[0]}, {dst.shape[1]})")
        if n_inputs == 0:
            return 0
        cdef bint whole = llama.llama_get_memory(self._ptr) == NULL or not llama.llama_get_causal_attn(self._ptr)
        cdef int32_t limit = <int32_t> min(self._n_batch, self._n_ubatch if whole else self._n_batch,
                                           self._n_ctx_seq)
        _check_embed_inputs(toks, offs, n_inputs, limit, self._n_vocab)
        cdef uint32_t n_seq = min(self._n_seq_max, <uint32_t> limit)
        if pack < 0:
            raise ValueError(f"pack must be >= 0 (0: as many tokens as the batch holds), got {pack}")
        cdef int32_t budget = <int32_t> (limit if pack == 0 or pack > limit else pack)
        cdef llama.llama_batch b = llama.llama_batch_init(limit, 0, 1)
        if b.token == NULL:
            raise MemoryError("llama_batch_init failed")
        cdef int32_t n_decodes = 0, rc
        cdef unsigned long mark
        cdef Py_ssize_t first_row = 0
        cdef const llama_token * t = <const llama_token *> cnp.PyArray_DATA(toks)
        cdef const int64_t * o = <const int64_t *> cnp.PyArray_DATA(offs)
        self._enter()
        try:
            self._keep_outputs(limit, True, "embed")
            mark = lln_rpc_failures()
            with nogil:
                rc = _embed_packed(self._ptr, &b, t, o, n_inputs, budget, n_seq, &dst[0, 0], width,
                                   normalize, &n_decodes, &first_row)
            self._abort_flag = 0
            # The outputs of the last batch are llama.cpp's, not known to the
            # per-token readers: they raise IndexError until the next decode.
            self._forget_outputs()
            self._check_rpc(mark, "an embedding batch")
        finally:
            llama.llama_batch_free(b)
            self._leave()
        if rc == 0:
            return n_decodes
        exc = (DecodeError(-1, "llama.cpp returned no pooled embedding for a sequence") if rc == -100
               else _decode_error(rc, "decode"))
        # In the message rather than a note: BaseException.add_note is 3.11+.
        exc.args = (f"{exc.args[0]} (while embedding the batch that starts at input {first_row})",)
        raise exc
