# Vocab: tokenizer of a loaded model.

import enum as _enum
import operator as _operator

cdef object INT32_MIN_ = -2147483648


class TokenAttr(_enum.IntFlag):
    """Token attributes (``llama_token_attr``)."""
    UNDEFINED = 0
    UNKNOWN = 1 << 0
    UNUSED = 1 << 1
    NORMAL = 1 << 2
    CONTROL = 1 << 3
    USER_DEFINED = 1 << 4
    BYTE = 1 << 5
    NORMALIZED = 1 << 6
    LSTRIP = 1 << 7
    RSTRIP = 1 << 8
    SINGLE_WORD = 1 << 9


_VOCAB_TYPES = {
    llama.LLAMA_VOCAB_TYPE_NONE: "none", llama.LLAMA_VOCAB_TYPE_SPM: "spm",
    llama.LLAMA_VOCAB_TYPE_BPE: "bpe", llama.LLAMA_VOCAB_TYPE_WPM: "wpm",
    llama.LLAMA_VOCAB_TYPE_UGM: "ugm", llama.LLAMA_VOCAB_TYPE_RWKV: "rwkv",
    llama.LLAMA_VOCAB_TYPE_PLAMO2: "plamo2",
}

cdef extern from "vocab_guard.h" nogil:
    int32_t LLN_TOKENIZER_THREW
    int32_t lln_tokenize(const llama.llama_vocab * vocab, const char * text, int32_t text_len,
                         llama_token * tokens, int32_t n_tokens_max, bint add_special, bint parse_special,
                         string * error)


cdef object _token_arg(object token):
    """``token`` as a Python int in the range of a token id.

    Raises:
        TypeError: not an integer.
        ValueError: outside int32 (so surely outside the vocabulary).
    """
    cdef object t = _operator.index(token)
    if t < INT32_MIN_ or t > INT32_MAX:
        raise ValueError(f"token id {t} is out of range: token ids are 32-bit")
    return t


# Inputs longer than this are tokenized with the GIL released: below it the
# release/re-acquire costs more than it frees.
cdef enum:
    _NOGIL_TEXT_BYTES = 2048


# Keep `model`/`vocab` set until __dealloc__: the native object must be
# freed before the model it points into, also when collected in a cycle.
@cython.no_gc_clear
cdef class Vocab:
    """The tokenizer of a :class:`Model` (``model.vocab``); not created directly.

    Token ids are validated against ``n_vocab`` before any call into
    llama.cpp: an out-of-range id raises ``ValueError``.
    """

    cdef const llama.llama_vocab * _ptr
    cdef readonly Model model
    cdef readonly int32_t n_vocab
    cdef str _no_specials  # why add_special=True cannot be honoured, or None

    def __init__(self):
        raise TypeError("Vocab is not created directly: use Model(path).vocab")

    @staticmethod
    cdef Vocab _wrap(Model model, const llama.llama_vocab * ptr):
        cdef Vocab v = Vocab.__new__(Vocab)
        v._ptr = ptr
        v.model = model
        v.n_vocab = llama.llama_vocab_n_tokens(ptr)
        v._no_specials = _missing_specials(ptr)
        return v

    cdef inline int _check(self) except -1:
        if self.model._ptr == NULL:
            raise ValueError("the model of this vocab is closed")
        return 0

    cdef inline int _check_add_special(self, bint add_special) except -1:
        if add_special and self._no_specials is not None:
            raise ValueError(f"cannot tokenize with add_special=True: {self._no_specials}; "
                             f"use add_special=False")
        return 0

    cdef int _check_output(self, const llama_token * toks, Py_ssize_t n) except -1:
        # A vocabulary without a (valid) unknown token makes some tokenizers
        # emit -1 for text they have no token for.
        cdef int bad = _first_bad_token(toks, n, self.n_vocab)
        if bad >= 0:
            raise ValueError(f"the tokenizer gave the id {toks[bad]} for part of the text: the vocabulary has "
                             f"no token for it and no valid unknown token")
        return 0

    cdef inline int _check_token(self, llama_token token) except -1:
        self._check()
        if token < 0 or token >= self.n_vocab:
            raise ValueError(f"token id {token} is out of range: the vocab has {self.n_vocab} tokens (0..{self.n_vocab - 1})")
        return 0

    cdef llama_token _token(self, object token) except? -1:
        """A token id argument (any Python integer), checked against the vocabulary."""
        cdef llama_token t = _token_arg(token)
        self._check_token(t)
        return t

    def __len__(self):
        return self.n_vocab

    @property
    def type(self) -> str:
        """Tokenizer family: "spm", "bpe", "wpm", "ugm", "rwkv", "plamo2" or "none"."""
        self._check()
        return _VOCAB_TYPES.get(llama.llama_get_vocab_type(self._ptr), "unknown")

    def tokenize(self, text, bint add_special=True, bint parse_special=False):
        """Tokenize ``text`` into a new int32 numpy array filled by ``llama_tokenize``.

        Args:
            text: str or UTF-8 bytes.
            add_special: add BOS/EOS (or CLS/SEP) as the model's metadata asks.
            parse_special: treat special-token text such as ``<|im_start|>`` as
                the special token instead of plain text.

        Returns:
            ``np.ndarray[int32]`` of token ids (owned by the caller).

        Raises:
            TypeError: ``text`` is neither str nor bytes.
            ValueError: ``add_special`` on a vocabulary without the BOS/EOS/SEP
                token it adds; text llama.cpp's tokenizer fails on (bytes that
                decode to no character, a byte token the vocabulary lacks); text
                with no token and no unknown token in the vocabulary.
        """
        self._check()
        self._check_add_special(add_special)
        cdef Py_ssize_t n_bytes
        cdef const char * data = _text_ptr(text, &n_bytes)
        if n_bytes > INT32_MAX - 64:
            raise ValueError(f"text is too long to tokenize: {n_bytes} bytes (limit {INT32_MAX - 64})")
        # Every tokenizer emits at most one token per byte, plus the specials
        # (and a space prefix); a negative result still retries with the exact size.
        cdef cnp.npy_intp cap = n_bytes + 16
        cdef cnp.ndarray out = cnp.PyArray_EMPTY(1, &cap, cnp.NPY_INT32, 0)
        cdef string error
        cdef int32_t n = self._tokenize_into(data, <int32_t> n_bytes, out, add_special, parse_special, &error)
        if n < 0 and n != LLN_TOKENIZER_THREW:
            cap = -n
            out = cnp.PyArray_EMPTY(1, &cap, cnp.NPY_INT32, 0)
            n = self._tokenize_into(data, <int32_t> n_bytes, out, add_special, parse_special, &error)
        if n == LLN_TOKENIZER_THREW:
            raise ValueError(_tokenizer_threw(error))
        if n < 0:
            raise RuntimeError(f"llama_tokenize failed ({n})")
        self._check_output(<const llama_token *> cnp.PyArray_DATA(out), n)
        cdef cnp.PyArray_Dims shape
        cdef cnp.npy_intp newlen = n
        if n != cap:
            # Shrink in place (realloc): the array keeps no unused tail.
            shape.ptr = &newlen
            shape.len = 1
            cnp.PyArray_Resize(out, &shape, 0, cnp.NPY_CORDER)
        return out

    def tokenize_many(self, texts, bint add_special=True, bint parse_special=False):
        """Tokenize every text of ``texts`` in one call, with the GIL released.

        Args:
            texts: a sequence of str or UTF-8 bytes.
            add_special, parse_special: as :meth:`tokenize`, for every text.

        Returns:
            ``(tokens, offsets)``: all the token ids one after the other
            (int32), and ``len(texts) + 1`` boundaries (int64): text ``i`` is
            ``tokens[offsets[i]:offsets[i + 1]]``. The form
            :meth:`Context.embed_sequences` takes.

        Raises:
            TypeError: ``texts`` is one text, or an item is neither str nor bytes.
            ValueError: a text is longer than llama_tokenize accepts, or as
                :meth:`tokenize`.
        """
        self._check()
        self._check_add_special(add_special)
        if isinstance(texts, (str, bytes)):
            raise TypeError("texts must be a sequence of texts, not one text (use tokenize())")
        cdef list items = list(texts)  # holds every text (and its UTF-8 form) until the end
        cdef Py_ssize_t n = len(items), i
        cdef vector[const char *] ptrs
        cdef vector[int32_t] sizes
        cdef Py_ssize_t n_bytes, total_bytes = 0
        ptrs.resize(n)
        sizes.resize(n)
        for i in range(n):
            ptrs[i] = _text_ptr(items[i], &n_bytes)
            if n_bytes > INT32_MAX - 64:
                raise ValueError(f"text {i} is too long to tokenize: {n_bytes} bytes (limit {INT32_MAX - 64})")
            sizes[i] = <int32_t> n_bytes
            total_bytes += n_bytes
        cdef cnp.npy_intp n_offs = n + 1
        cdef cnp.ndarray offsets = cnp.PyArray_ZEROS(1, &n_offs, cnp.NPY_INT64, 0)
        cdef int64_t * offs = <int64_t *> cnp.PyArray_DATA(offsets)
        cdef vector[llama_token] buf
        cdef Py_ssize_t total = 0
        cdef int32_t k, cap
        cdef bint failed = False
        cdef string error
        with nogil:
            # At most one token per byte plus the specials; retried with the exact size otherwise.
            buf.reserve(total_bytes + 16 * n)
            for i in range(n):
                cap = sizes[i] + 16
                buf.resize(total + cap)
                k = lln_tokenize(self._ptr, ptrs[i], sizes[i], buf.data() + total, cap,
                                 add_special, parse_special, &error)
                if k < 0 and k != LLN_TOKENIZER_THREW:
                    cap = -k
                    buf.resize(total + cap)
                    k = lln_tokenize(self._ptr, ptrs[i], sizes[i], buf.data() + total, cap,
                                     add_special, parse_special, &error)
                if k < 0:
                    failed = True
                    break
                total += k
                offs[i + 1] = total
        if failed:
            if k == LLN_TOKENIZER_THREW:
                raise ValueError(f"text {i}: {_tokenizer_threw(error)}")
            raise RuntimeError(f"llama_tokenize failed on text {i}")
        self._check_output(buf.data(), total)
        cdef cnp.npy_intp n_tok = total
        cdef cnp.ndarray tokens = cnp.PyArray_EMPTY(1, &n_tok, cnp.NPY_INT32, 0)
        if total:
            memcpy(cnp.PyArray_DATA(tokens), buf.data(), total * sizeof(llama_token))
        return tokens, offsets

    cdef int32_t _tokenize_into(self, const char * data, int32_t n_bytes, cnp.ndarray out,
                                bint add_special, bint parse_special, string * error):
        cdef llama_token * dst = <llama_token *> cnp.PyArray_DATA(out)
        cdef int32_t cap = <int32_t> cnp.PyArray_DIM(out, 0)
        cdef int32_t n
        if n_bytes > _NOGIL_TEXT_BYTES:
            with nogil:
                n = lln_tokenize(self._ptr, data, n_bytes, dst, cap, add_special, parse_special, error)
        else:
            n = lln_tokenize(self._ptr, data, n_bytes, dst, cap, add_special, parse_special, error)
        return n

    def detokenize(self, tokens, bint remove_special=False, bint unparse_special=False) -> str:
        """Text of a token sequence (``llama_detokenize``).

        Args:
            tokens: int sequence or int32 array.
            remove_special: drop a leading BOS / trailing EOS the model adds.
            unparse_special: render special tokens as their text.
        """
        return _bytes_to_str(self.detokenize_bytes(tokens, remove_special, unparse_special))

    def detokenize_bytes(self, tokens, bint remove_special=False, bint unparse_special=False) -> bytes:
        """Like :meth:`detokenize`, as raw bytes (may end inside a UTF-8 character)."""
        self._check()
        cdef cnp.ndarray arr = _as_tokens(tokens)
        cdef const llama_token * toks = <const llama_token *> cnp.PyArray_DATA(arr)
        cdef Py_ssize_t n_tok = cnp.PyArray_DIM(arr, 0)
        if n_tok > INT32_MAX:
            raise ValueError("too many tokens")
        cdef int bad = _first_bad_token(toks, n_tok, self.n_vocab)
        if bad >= 0:
            self._check_token(toks[bad])
        cdef int32_t cap = <int32_t> min(n_tok * 8 + 16, INT32_MAX)
        cdef int32_t n
        cdef bytes out
        cdef char * dst
        while True:
            out = PyBytes_FromStringAndSize(NULL, cap)
            dst = PyBytes_AS_STRING(out)
            with nogil:
                n = llama.llama_detokenize(self._ptr, toks, <int32_t> n_tok, dst, cap,
                                           remove_special, unparse_special)
            if n >= 0:
                return out[:n]
            cap = -n

    def token_to_piece(self, token, bint special=False) -> bytes:
        """The bytes of one token (may be part of a multi-byte character).

        Args:
            special: render special/control tokens as their text (else empty).
        """
        return _token_piece(self._ptr, self._token(token), special)

    def token_text(self, token) -> str:
        """The token's text as stored in the vocabulary (e.g. ``"Ġhello"``)."""
        cdef const char * t = llama.llama_vocab_get_text(self._ptr, self._token(token))
        return t[:strlen(t)].decode("utf-8", "replace")

    def token_score(self, token) -> float:
        return llama.llama_vocab_get_score(self._ptr, self._token(token))

    def token_attr(self, token) -> TokenAttr:
        return TokenAttr(<int> llama.llama_vocab_get_attr(self._ptr, self._token(token)))

    def is_eog(self, token) -> bool:
        """True for end-of-generation tokens (EOS, EOT, ...)."""
        return llama.llama_vocab_is_eog(self._ptr, self._token(token))

    def is_control(self, token) -> bool:
        return llama.llama_vocab_is_control(self._ptr, self._token(token))

    # Special tokens: -1 when the model has none.
    @property
    def bos(self) -> int:
        self._check(); return llama.llama_vocab_bos(self._ptr)
    @property
    def eos(self) -> int:
        self._check(); return llama.llama_vocab_eos(self._ptr)
    @property
    def eot(self) -> int:
        self._check(); return llama.llama_vocab_eot(self._ptr)
    @property
    def sep(self) -> int:
        self._check(); return llama.llama_vocab_sep(self._ptr)
    @property
    def nl(self) -> int:
        self._check(); return llama.llama_vocab_nl(self._ptr)
    @property
    def pad(self) -> int:
        self._check(); return llama.llama_vocab_pad(self._ptr)
    @property
    def mask(self) -> int:
        self._check(); return llama.llama_vocab_mask(self._ptr)
    @property
    def fim_pre(self) -> int:
        self._check(); return llama.llama_vocab_fim_pre(self._ptr)
    @property
    def fim_suf(self) -> int:
        self._check(); return llama.llama_vocab_fim_suf(self._ptr)
    @property
    def fim_mid(self) -> int:
        self._check(); return llama.llama_vocab_fim_mid(self._ptr)
    @property
    def fim_pad(self) -> int:
        self._check(); return llama.llama_vocab_fim_pad(self._ptr)
    @property
    def fim_rep(self) -> int:
        self._check(); return llama.llama_vocab_fim_rep(self._ptr)
    @property
    def fim_sep(self) -> int:
        self._check(); return llama.llama_vocab_fim_sep(self._ptr)
    @property
    def add_bos(self) -> bool:
        self._check(); return llama.llama_vocab_get_add_bos(self._ptr)
    @property
    def add_eos(self) -> bool:
        self._check(); return llama.llama_vocab_get_add_eos(self._ptr)
    @property
    def add_sep(self) -> bool:
        """Whether tokenizing with special tokens appends SEP (BERT-style vocabularies)."""
        self._check(); return llama.llama_vocab_get_add_sep(self._ptr)


cdef bytes _token_piece(const llama.llama_vocab * vocab, llama_token token, bint special):
    """``llama_token_to_piece`` into a bytes object; retries when the piece is long."""
    cdef char buf[128]
    cdef int32_t n = llama.llama_token_to_piece(vocab, token, buf, sizeof(buf), 0, special)
    if n >= 0:
        return buf[:n]
    cdef bytes big = PyBytes_FromStringAndSize(NULL, -n)
    n = llama.llama_token_to_piece(vocab, token, PyBytes_AS_STRING(big), -n, 0, special)
    return big[:n]


cdef str _tokenizer_threw(string error):
    # invalid_argument: bytes that are no Unicode code point; out_of_range: a token the vocabulary lacks
    cdef bytes what = error
    return (f"llama.cpp's tokenizer failed on this text ({what.decode('utf-8', 'replace') or 'unknown error'}): "
            f"bytes that decode to no Unicode character, or a vocabulary without a token it needs "
            f"(such as the byte token <0xNN> it falls back to)")


cdef str _missing_specials(const llama.llama_vocab * vocab):
    """Why ``llama_tokenize(add_special=True)`` would abort on ``vocab``, or None.

    llama.cpp asserts (GGML_ASSERT: the process ends) that the special tokens
    a vocabulary adds exist: WPM always adds BOS ([CLS]) and SEP, the others
    BOS and EOS when the GGUF asks for them (``tokenizer.ggml.add_bos_token``
    ...). A GGUF whose token id for one is missing or outside the vocabulary
    loads with that token unset.
    """
    cdef int kind = llama.llama_get_vocab_type(vocab)
    cdef list missing = []
    if kind == llama.LLAMA_VOCAB_TYPE_WPM:
        if llama.llama_vocab_bos(vocab) < 0:
            missing.append("BOS ([CLS])")
        if llama.llama_vocab_sep(vocab) < 0:
            missing.append("SEP")
    elif kind in (llama.LLAMA_VOCAB_TYPE_SPM, llama.LLAMA_VOCAB_TYPE_BPE, llama.LLAMA_VOCAB_TYPE_UGM):
        if llama.llama_vocab_get_add_bos(vocab) and llama.llama_vocab_bos(vocab) < 0:
            missing.append("BOS")
        if llama.llama_vocab_get_add_eos(vocab) and llama.llama_vocab_eos(vocab) < 0:
            missing.append("EOS")
    if not missing:
        return None
    return (f"the vocabulary adds {' and '.join(missing)} but has no such token (its token id in the GGUF "
            f"is missing or outside the vocabulary)")
