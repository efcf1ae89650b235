# llama.cpp's built-in chat formats (llama_chat_apply_template).


def chat_apply_template(str template, messages, bint add_assistant=True) -> str:
    """Render ``messages`` with llama.cpp's built-in (non-Jinja) chat formats.

    llama.cpp recognises the common templates (ChatML, Llama 2/3, Gemma,
    Mistral, Phi, ...) by name (``"chatml"``) or by their Jinja source, and
    renders them without a Jinja engine. Templates it does not recognise
    raise ValueError; the Jinja engine of llama.cpp's ``common`` covers those.

    Args:
        template: a template name or the Jinja source from the GGUF.
        messages: ``[{"role": ..., "content": ...}, ...]``.
        add_assistant: end with the opening of an assistant turn.
    """
    cdef Py_ssize_t n = len(messages), i
    encoded = []
    for i in range(n):
        m = messages[i]
        try:
            role, content = m["role"], m["content"]
        except (KeyError, TypeError):
            raise ValueError(f"message {i} must have 'role' and 'content'") from None
        if not isinstance(role, str) or not isinstance(content, str):
            raise TypeError(f"message {i}: role and content must be str")
        encoded.append((role.encode(), content.encode()))
    cdef llama.llama_chat_message * msgs = <llama.llama_chat_message *> malloc(max(n, 1) * sizeof(llama.llama_chat_message))
    if msgs == NULL:
        raise MemoryError()
    cdef bytes tmpl = template.encode()
    cdef int32_t cap = 256 + 2 * sum(len(r) + len(c) for r, c in encoded)
    cdef int32_t res
    cdef bytes out
    try:
        for i in range(n):
            msgs[i].role = encoded[i][0]
            msgs[i].content = encoded[i][1]
        while True:
            out = PyBytes_FromStringAndSize(NULL, cap)
            res = llama.llama_chat_apply_template(tmpl, msgs, n, add_assistant, PyBytes_AS_STRING(out), cap)
            if res < 0:
                raise ValueError("llama.cpp does not recognise this chat template")
            if res <= cap:
                return out[:res].decode("utf-8", "replace")
            cap = res
    finally:
        free(msgs)
