# What common's Jinja engine, JSON-schema converter and grammar parser cannot take, checked before they see it.

import re as _re

# common's Jinja engine parses and runs templates by recursion, without a
# depth limit: a deep enough template overflows the stack (a segfault; with
# an 8 MB stack at about 4000 nested brackets, 10000 nested blocks, a
# 100000-term expression), and a macro that calls itself never ends. These
# limits are far beyond any real template and far below those depths.
_TEMPLATE_MAX_NESTING = 64  # brackets within a tag, and blocks (if/for/macro/...) within each other
_TEMPLATE_MAX_TAG = 16384  # characters of one tag's code, its string literals left out
_JINJA_BLOCKS = frozenset({"if", "for", "macro", "call", "filter", "generation", "raw"})
_JINJA_WORD = _re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
_JINJA_CHUNK = _re.compile(r"""[^'"()\[\]{}%]+""")  # code without strings, brackets or a tag's end
_JINJA_STRING = _re.compile(r"""'(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?""", _re.S)


def _jinja_tags(str source):
    """The code of each ``{{ }}`` and ``{% %}`` tag of ``source``, string literals emptied (a small lexer)."""
    cdef Py_ssize_t i = 0, j, n = len(source)
    cdef int depth
    while True:
        i = source.find("{", i)
        if i < 0 or i + 1 >= n:
            return
        opener = source[i + 1]
        if opener == "#":
            j = source.find("#}", i + 2)
            i = n if j < 0 else j + 2
            continue
        if opener not in "{%":
            i += 1
            continue
        closer = "}}" if opener == "{" else "%}"
        code = []
        j = i + 2
        depth = 0
        while j < n:
            m = _JINJA_CHUNK.match(source, j)
            if m is not None:
                code.append(m.group())
                j = m.end()
                continue
            m = _JINJA_STRING.match(source, j)
            if m is not None:
                code.append("''")
                j = m.end()
                continue
            if depth == 0 and source.startswith(closer, j):
                break
            ch = source[j]
            if ch in "([{":
                depth += 1
            elif ch in ")]}" and depth > 0:
                depth -= 1
            code.append(ch)
            j += 1
        yield opener, "".join(code)
        i = j + 2


def _template_problem(str source):
    """Why common's Jinja engine cannot run ``source`` safely (see the limits above), or None."""
    cdef int depth, deepest, blocks = 0
    macros = {}  # macro name -> the words of its body
    aliases = {}  # a name set to an expression -> the words of that expression
    current = []  # the macros whose body the lexer is in
    for opener, code in _jinja_tags(source):
        if len(code) > _TEMPLATE_MAX_TAG:
            return f"a tag of {len(code)} characters (at most {_TEMPLATE_MAX_TAG})"
        depth = deepest = 0
        for ch in code:
            if ch in "([{":
                depth += 1
                deepest = max(deepest, depth)
            elif ch in ")]}":
                depth -= 1
        if deepest > _TEMPLATE_MAX_NESTING:
            return f"brackets nested {deepest} deep (at most {_TEMPLATE_MAX_NESTING})"
        words = _JINJA_WORD.findall(code)
        for name in current:
            macros[name].update(words)
        if opener != "%" or not words:
            continue
        head = words[0]
        if head in _JINJA_BLOCKS or (head == "set" and "=" not in code):
            blocks += 1
            if blocks > _TEMPLATE_MAX_NESTING:
                return f"blocks nested more than {_TEMPLATE_MAX_NESTING} deep"
            if head == "macro" and len(words) > 1:
                macros.setdefault(words[1], set())
                current.append(words[1])
        elif head.startswith("end") and head[3:] in _JINJA_BLOCKS | {"set"}:
            blocks = max(blocks - 1, 0)
            if head == "endmacro" and current:
                current.pop()
        elif head == "set" and len(words) > 1:
            aliases.setdefault(words[1], set()).update(words[2:])
    # A macro that can reach itself through the macros (and names set to them) its body mentions.
    def reach(name, seen):
        for word in macros.get(name, set()) | aliases.get(name, set()):
            if word == start:
                return True
            if word not in seen and (word in macros or word in aliases):
                seen.add(word)
                if reach(word, seen):
                    return True
        return False
    for start in macros:
        if reach(start, set()):
            return f"the macro {start!r} calls itself (directly or through other macros)"
    return None


cdef int _check_template(str source) except -1:
    problem = _template_problem(source)
    if problem is not None:
        raise ValueError(f"invalid chat template: {problem}; common's Jinja engine would overflow its stack "
                         f"or never end")
    return 0


_GBNF_MAX_REPETITION = 2000  # llama-grammar.cpp's MAX_REPETITION_THRESHOLD
_GBNF_QUOTED = _re.compile(rb'"(?:[^"\\]|\\.)*"|\[(?:[^\]\\]|\\.)*\]', _re.S)
_GBNF_REPEAT = _re.compile(rb"\{\s*(\d+)\s*(?:,\s*(\d*)\s*)?\}")


cdef str _gbnf_inverted_repetition(bytes gbnf):
    """An ``x{m,n}`` of ``gbnf`` with n < m, or None: llama.cpp's grammar parser never ends on one
    (and fills memory), so the grammar samplers refuse it first."""
    for m in _GBNF_REPEAT.finditer(_GBNF_QUOTED.sub(b'""', gbnf)):
        if m.group(2) and int(m.group(2)) < int(m.group(1)):
            return m.group(0).decode()
    return None


cdef int _check_gbnf(bytes gbnf) except -1:
    """Refuse a converted grammar that llama.cpp's grammar parser would reject when sampling starts."""
    # The converter writes a NUL of a property name raw into a character class
    # (the not-a-known-key rule of additionalProperties); GBNF is read as a C
    # string, so that grammar ends there.
    if b"\0" in gbnf:
        raise ValueError("the JSON schema has a NUL character (U+0000) in a property name, which its grammar "
                         "cannot express")
    # The converter writes integers of at most 16 digits: an integer minimum near that many digits gives
    # [0-9]{16,15}.
    inverted = _gbnf_inverted_repetition(gbnf)
    if inverted is not None:
        raise ValueError(f"the JSON schema gave the grammar a repetition {inverted} whose maximum is below its "
                         f"minimum (an integer minimum of 16 digits does this: llama.cpp's grammar writes "
                         f"integers of at most 16 digits)")
    # minLength/maxLength/minItems/maxItems become x{m,n}, and the grammar parser refuses counts over its limit.
    for m in _GBNF_REPEAT.finditer(_GBNF_QUOTED.sub(b'""', gbnf)):
        count = max(int(m.group(1)), int(m.group(2) or 0))
        if count > _GBNF_MAX_REPETITION:
            raise ValueError(f"the JSON schema asks for {count} repetitions (a minLength, maxLength, minItems, "
                             f"maxItems or {{m,n}} of a pattern), more than llama.cpp's grammars allow "
                             f"({_GBNF_MAX_REPETITION})")
    return 0


_JSON_MAX_DEPTH = 1000  # as deep as Python's own json module nests (its recursion limit)
_JSON_STRING = _re.compile(r'"(?:[^"\\]|\\.)*"?', _re.S)


def _json_depth(str text) -> int:
    """How deep the arrays and objects of JSON ``text`` nest (brackets inside strings left out)."""
    code = np.frombuffer(_JSON_STRING.sub("", text).encode(), dtype=np.uint8)
    if code.size == 0:
        return 0
    steps = np.isin(code, (0x5B, 0x7B)).astype(np.int32) - np.isin(code, (0x5D, 0x7D)).astype(np.int32)
    return int(np.cumsum(steps).max(initial=0))


# The converter writes the property names of an object that also takes other
# properties into character classes of its "any other key" rule without
# escaping them: a "]" or "\\" there breaks the grammar (a NUL cuts it), which
# then fails to parse when sampling starts.
_CLASS_BREAKERS = ("\0", "]", "\\")


cdef int _check_schema_keys(object schema) except -1:
    """Refuse property names the converter cannot write (see above), anywhere in ``schema``."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        props, extra = node.get("properties"), node.get("additionalProperties")
        if isinstance(props, dict) and (extra is True or isinstance(extra, dict)):
            for key in props:
                if isinstance(key, str) and any(c in key for c in _CLASS_BREAKERS):
                    raise ValueError(
                        f"the JSON schema has the property name {key!r} beside additionalProperties: "
                        f"llama.cpp's converter cannot write a grammar for a name with ']', '\\\\' or NUL in it")
        stack.extend(node.values())
    return 0
