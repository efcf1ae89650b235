# Streaming detokenizer: token pieces in, only complete UTF-8 text out.


cdef inline int _utf8_len(unsigned char lead) noexcept nogil:
    """Length of the UTF-8 sequence started by ``lead``; 0 for a continuation byte."""
    if lead < 0x80:
        return 1
    if lead & 0xE0 == 0xC0:
        return 2
    if lead & 0xF0 == 0xE0:
        return 3
    if lead & 0xF8 == 0xF0:
        return 4
    return 0


cdef inline Py_ssize_t _complete_prefix(const unsigned char * s, Py_ssize_t n) noexcept nogil:
    """Length of the longest prefix of ``s`` that does not end inside a UTF-8 character.

    Only a well-formed but unfinished character at the very end is held back;
    invalid bytes count as complete (they are replaced, not waited for).
    """
    cdef Py_ssize_t j = n - 1
    cdef Py_ssize_t stop = n - 4 if n >= 4 else 0
    cdef int need
    while j >= stop:
        need = _utf8_len(s[j])
        if need == 0:  # continuation byte: look further back for its lead
            j -= 1
            continue
        return j if n - j < need else n
    return n


# Keep `model`/`vocab` set until __dealloc__: the native object must be
# freed before the model it points into, also when collected in a cycle.
@cython.no_gc_clear
cdef class Detokenizer:
    """Turns a stream of tokens into text without ever splitting a character.

    ``add(token)`` returns the text that became complete with this token
    (possibly ``""`` while a multi-byte character is still arriving);
    ``flush()`` returns what is left at the end. The concatenation of all
    returned strings equals ``vocab.detokenize_bytes`` of the tokens decoded as
    UTF-8, piece by piece, with no replacement characters from split
    characters.

    Args:
        vocab: the model's :class:`Vocab`.
        special: render special tokens as their text. Default False.
    """

    cdef readonly Vocab vocab
    cdef bint _special
    cdef bytes _pending

    def __init__(self, Vocab vocab not None, *, bint special=False):
        self.vocab = vocab
        self._special = special
        self._pending = b""

    def add(self, token) -> str:
        """Feed one token; return the newly completed text (ValueError for an id outside the vocabulary)."""
        cdef bytes data = self._pending + _token_piece(self.vocab._ptr, self.vocab._token(token), self._special)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
        cdef Py_ssize_t k = _complete_prefix(<const unsigned char *> PyBytes_AS_STRING(data), n)
        if k == n:
            self._pending = b""
            return data.decode("utf-8", "replace")
        self._pending = data[k:]
        return data[:k].decode("utf-8", "replace")

    def flush(self) -> str:
        """Return whatever is held back (an unfinished character becomes U+FFFD) and reset."""
        cdef bytes rest = self._pending
        self._pending = b""
        return rest.decode("utf-8", "replace")

    @property
    def pending(self) -> bytes:
        """Bytes of an unfinished character waiting for the next token."""
        return self._pending
