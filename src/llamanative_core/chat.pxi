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


# -- llama.cpp `common`: Jinja chat templates, output parsing, JSON schema -> GBNF

import json as _json

include "chat_limits.pxi"


cdef class ChatTemplates:
    """The model's chat template(s), rendered by llama.cpp's own Jinja engine (``common``).

    Args:
        model: the model whose GGUF template (and BOS/EOS) is used; may be None
            when ``template`` is given.
        template: Jinja source that replaces the model's template.

    Raises:
        ValueError: the template does not parse.
    """

    cdef cb.lln_chat_templates * _ptr
    cdef readonly Model model

    def __cinit__(self):
        self._ptr = NULL

    def __init__(self, Model model, str template=""):
        cdef const llama.llama_model * mp = NULL
        if model is not None:
            model._check()
            mp = model._ptr
        elif not template:
            raise ValueError("a model or a template is required")
        self.model = model
        cdef const char * src
        if template:
            _check_template(template)
        else:  # the templates common reads from the GGUF
            src = llama.llama_model_chat_template(mp, NULL)
            if src != NULL:
                _check_template(src[:strlen(src)].decode("utf-8", "replace"))
            src = llama.llama_model_chat_template(mp, b"tool_use")
            if src != NULL:
                _check_template(src[:strlen(src)].decode("utf-8", "replace"))
        cdef string tmpl = template.encode()
        try:
            with nogil:
                self._ptr = cb.lln_chat_templates_init(mp, tmpl)
        except UnicodeDecodeError:
            # common's message quotes the template, cut at a byte: it cannot become a str
            raise ValueError("invalid chat template (llama.cpp's message about it is not valid UTF-8)") from None

    def __dealloc__(self):
        if self._ptr != NULL:
            cb.lln_chat_templates_free(self._ptr)
            self._ptr = NULL

    def source(self, str variant="") -> str:
        """Jinja source of the default template (``""``) or of the ``"tool_use"`` variant."""
        return cb.lln_chat_templates_source(self._ptr, variant.encode()).decode("utf-8", "replace")

    def caps(self) -> dict:
        """What the template supports: ``supports_tools``, ``supports_thinking``, ``has_explicit_template``, ..."""
        cdef string out
        with nogil:
            out = cb.lln_chat_templates_caps(self._ptr)
        return _json.loads(out.decode())

    def apply(self, dict request) -> dict:
        """Render a chat request (OpenAI-shaped: messages, tools, tool_choice, json_schema, ...).

        Returns:
            The prompt and everything generation needs (grammar, lazy
            triggers, preserved tokens, additional stops, the output parser);
            see ``chat_bridge.h``.

        Raises:
            ValueError: the request is malformed.
            RuntimeError: the template failed to render this conversation.
        """
        try:
            text = _json.dumps(request, ensure_ascii=False)
        except RecursionError:
            raise ValueError("the chat request is nested too deeply to be rendered") from None
        _check_schema_keys(request.get("json_schema"))
        for tool in request.get("tools") or ():
            if isinstance(tool, dict) and isinstance(tool.get("function"), dict):
                _check_schema_keys(tool["function"].get("parameters"))
        cdef string req = text.encode()
        cdef string out
        with nogil:
            out = cb.lln_chat_apply(self._ptr, req)
        result = _json.loads(out.decode())
        if isinstance(result.get("grammar"), str):
            _check_gbnf(result["grammar"].encode())
        return result


cdef class ChatParser:
    """Parses model output back into content, reasoning and tool calls (``common_chat_parse``).

    Args:
        params: the dict returned by :meth:`ChatTemplates.apply` (only
            ``format``, ``generation_prompt`` and ``parser`` are read).
    """

    cdef cb.lln_chat_parser * _ptr

    def __cinit__(self):
        self._ptr = NULL

    def __init__(self, dict params):
        cdef string p = _json.dumps({k: params[k] for k in ("format", "generation_prompt", "parser")
                                     if k in params}).encode()
        with nogil:
            self._ptr = cb.lln_chat_parser_init(p)

    def __dealloc__(self):
        if self._ptr != NULL:
            cb.lln_chat_parser_free(self._ptr)
            self._ptr = NULL

    def parse(self, str text, bint partial=False) -> dict:
        """``{"content", "reasoning_content", "tool_calls": [{"id", "function": {"name", "arguments"}}]}``.

        With ``partial``, the text is a prefix of the output (streaming):
        incomplete tool calls are left out and markup never leaks into content.

        Raises:
            RuntimeError: the text does not match the template's output format.
        """
        cdef string t = text.encode()
        cdef string out
        with nogil:
            out = cb.lln_chat_parser_parse(self._ptr, t, partial)
        return _json.loads(out.decode())

    def matched(self, str text) -> int:
        """How many characters at the start of ``text`` match the format: ``len(text)`` when
        :meth:`parse` would take all of it, else where ``common``'s parser stopped matching."""
        cdef bytes b = text.encode()
        cdef string t = b
        cdef size_t end
        with nogil:
            end = cb.lln_chat_parser_match_end(self._ptr, t)
        if end >= <size_t> len(b):
            return len(text)
        return len(b[:end].decode("utf-8", "ignore"))  # an offset inside a character: the characters before it


def json_schema_to_grammar(schema) -> str:
    """GBNF for a JSON schema (dict or JSON text), by llama.cpp's converter.

    Raises:
        ValueError: the schema is invalid or unsupported, or nested deeper
            than 1000 levels.
    """
    if isinstance(schema, str):
        text = schema
        try:
            parsed = _json.loads(text)
        except (ValueError, RecursionError):
            parsed = None  # not JSON, or too deep for Python's parser: the converter and the depth check say so
        _check_schema_keys(parsed)
    else:
        _check_schema_keys(schema)
        try:
            text = _json.dumps(schema)
        except RecursionError:
            raise ValueError("the JSON schema is nested deeper than Python's JSON encoder allows") from None
    depth = _json_depth(text)
    if depth > _JSON_MAX_DEPTH:
        # common's converter walks the schema by recursion: deep enough, it overflows the stack
        raise ValueError(f"the JSON schema is nested {depth} levels deep (at most {_JSON_MAX_DEPTH})")
    cdef string out
    try:
        out = cb.lln_json_schema_to_grammar(text.encode())
    except UnicodeDecodeError:
        raise ValueError("invalid JSON schema (llama.cpp's message about it is not valid UTF-8)") from None
    cdef bytes gbnf = out
    _check_gbnf(gbnf)
    try:
        return gbnf.decode()
    except UnicodeDecodeError:
        # the converter quantifies the last byte of a character: "é?" in a pattern
        raise ValueError("the JSON schema's pattern has a quantifier after a non-ASCII character, which "
                         "llama.cpp's converter splits into bytes; write the character as a class ([é]?)") from None
