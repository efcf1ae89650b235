# Batch: a llama_batch of tokens for one decode, any number of sequences.


cdef class Batch:
    """Tokens for one :meth:`Context.decode`, built with ``llama_batch_init``.

    Args:
        capacity: the most tokens the batch can hold (at most the context's n_batch
            to be decodable).
        n_seq_max: the most sequences one token may belong to. Default 1.

    Each token has a position, the sequence ids it belongs to, and an output
    flag (whether its logits/embeddings are computed). Nothing is checked
    against a model here; :meth:`Context.decode` validates every token id,
    sequence id and position before llama.cpp sees the batch.
    """

    cdef llama.llama_batch _b
    cdef readonly int32_t capacity
    cdef readonly int32_t n_seq_max

    def __cinit__(self, int32_t capacity, int32_t n_seq_max=1):
        self._b.token = NULL
        if capacity <= 0:
            raise ValueError(f"capacity must be > 0, got {capacity}")
        if n_seq_max <= 0:
            raise ValueError(f"n_seq_max must be > 0, got {n_seq_max}")
        self._b = llama.llama_batch_init(capacity, 0, n_seq_max)
        if self._b.token == NULL:
            raise MemoryError("llama_batch_init failed")
        self._b.n_tokens = 0
        self.capacity = capacity
        self.n_seq_max = n_seq_max

    def __dealloc__(self):
        if self._b.token != NULL:
            llama.llama_batch_free(self._b)
            self._b.token = NULL

    def __len__(self):
        return self._b.n_tokens

    @property
    def n_tokens(self) -> int:
        return self._b.n_tokens

    @property
    def n_outputs(self) -> int:
        """Number of tokens whose output flag is set."""
        cdef int32_t i, k = 0
        for i in range(self._b.n_tokens):
            k += self._b.logits[i] != 0
        return k

    def clear(self) -> None:
        """Empty the batch (keeps its memory)."""
        self._b.n_tokens = 0

    def add(self, llama_token token, llama_pos pos, seq_ids=0, bint output=False) -> int:
        """Append one token; return its index in the batch.

        Args:
            token: the token id.
            pos: its position in the sequence(s), from 0.
            seq_ids: a sequence id or an iterable of them.
            output: compute logits (or embeddings) for this token.

        Raises:
            ValueError: the batch is full, or too many sequence ids.
        """
        cdef int32_t i = self._b.n_tokens
        if i >= self.capacity:
            raise ValueError(f"the batch is full ({self.capacity} tokens)")
        if isinstance(seq_ids, int):
            seq_ids = (seq_ids,)
        else:
            seq_ids = tuple(seq_ids)
        cdef int32_t n_ids = len(seq_ids)
        if n_ids == 0 or n_ids > self.n_seq_max:
            raise ValueError(f"a token needs 1..{self.n_seq_max} sequence ids, got {n_ids}")
        cdef int32_t j
        for j in range(n_ids):
            self._b.seq_id[i][j] = seq_ids[j]
        self._b.token[i] = token
        self._b.pos[i] = pos
        self._b.n_seq_id[i] = n_ids
        self._b.logits[i] = output
        self._b.n_tokens = i + 1
        return i

    def add_sequence(self, tokens, llama_pos pos0=0, llama_seq_id seq_id=0, *, output="last") -> int:
        """Append a run of tokens of one sequence at positions ``pos0, pos0+1, ...``.

        Args:
            tokens: int32 array (or int sequence).
            pos0: position of the first token.
            seq_id: the sequence they belong to.
            output: ``"last"`` (only the last token), ``"all"`` or ``"none"``.

        Returns:
            The batch index of the last token added.
        """
        cdef cnp.ndarray arr = _as_tokens(tokens)
        cdef const llama_token * toks = <const llama_token *> cnp.PyArray_DATA(arr)
        cdef int32_t n = <int32_t> cnp.PyArray_DIM(arr, 0)
        if n == 0:
            raise ValueError("tokens is empty")
        if self._b.n_tokens + n > self.capacity:
            raise ValueError(
                f"{n} tokens do not fit: the batch holds {self._b.n_tokens} of {self.capacity}")
        if output not in ("last", "all", "none"):
            raise ValueError(f"output must be 'last', 'all' or 'none', got {output!r}")
        cdef int8_t out_all = output == "all"
        cdef int8_t out_last = output != "none"
        cdef int32_t base = self._b.n_tokens, j
        with nogil:
            for j in range(n):
                self._b.token[base + j] = toks[j]
                self._b.pos[base + j] = pos0 + j
                self._b.n_seq_id[base + j] = 1
                self._b.seq_id[base + j][0] = seq_id
                self._b.logits[base + j] = out_all
            self._b.logits[base + n - 1] = out_last
            self._b.n_tokens = base + n
        return base + n - 1

    def set_output(self, int32_t i, bint output=True) -> None:
        """Set the output flag of token ``i``."""
        if i < 0 or i >= self._b.n_tokens:
            raise IndexError(f"batch index {i} out of range (0..{self._b.n_tokens - 1})")
        self._b.logits[i] = output

    def tokens(self):
        """A copy of the token ids in the batch."""
        cdef cnp.npy_intp n = self._b.n_tokens
        cdef cnp.ndarray out = cnp.PyArray_EMPTY(1, &n, cnp.NPY_INT32, 0)
        if n:
            memcpy(cnp.PyArray_DATA(out), self._b.token, n * sizeof(llama_token))
        return out
