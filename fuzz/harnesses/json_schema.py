"""JSON schema → grammar: random schemas through the ``format`` path and ``_core.json_schema_to_grammar``.

A schema is built from the input (types, properties, required, items,
prefixItems, enum, const, anyOf/oneOf/allOf, local and broken ``$ref``s,
patterns made of regex pieces, formats, length and item bounds, integer
bounds, additionalProperties, deep nesting), or is raw JSON text. It goes
through what a request's ``format`` meets: ``json_schema_of`` (the check for
keywords the grammar would not enforce), ``schema_grammar`` (the converter,
as a 400 on failure), then ``_core.json_schema_to_grammar`` on the dict and
on its JSON text, and the grammar it gives is compiled by a grammar sampler
of a vocab-only SmolLM2.

Contract: ``json_schema_of`` and ``schema_grammar`` give a result or a
``StatusError``; ``json_schema_to_grammar`` a GBNF or a ``ValueError``; the
same schema as a dict and as text gives the same answer; every GBNF the
converter gives compiles (a ``GrammarError`` there is a finding).
"""

from __future__ import annotations

import json

import atheris
from contract import call, check
from models import vocab_model

from llamanative import _core
from llamanative.errors import StatusError
from llamanative.prompting.messages import json_schema_of
from llamanative.prompting.render import schema_grammar

TARGETS = [
    "llamanative/prompting/messages.py",
    "llamanative/prompting/schema_check.py",
    "llamanative/prompting/render.py",
]
TYPES = ["string", "integer", "number", "boolean", "object", "array", "null", "any", "", 5]
REGEX = [
    "^",
    "$",
    "a",
    "b",
    ".",
    "\\d",
    "\\w",
    "\\s",
    "\\D",
    "\\.",
    "\\\\",
    "[a-z]",
    "[^0-9]",
    "[",
    "]",
    "(",
    ")",
    "(?:",
    "|",
    "*",
    "+",
    "?",
    "{2}",
    "{1,3}",
    "{3,1}",
    "{,5}",
    "{99999}",
    "\\u0041",
    "\\x41",
    "é",
    '"',
    "\\b",
    "(?=x)",
    "\\1",
    "[\\d-z]",
    "-",
    "\\p{L}",
    "\n",
]
FORMATS = ["date", "time", "date-time", "uuid", "email", "uri", "", "ipv4"]
KEYWORDS = [
    "multipleOf",
    "uniqueItems",
    "contains",
    "not",
    "minProperties",
    "patternProperties",
    "if",
    "propertyNames",
    "unevaluatedProperties",
    "title",
    "description",
    "default",
    "examples",
    "$schema",
    "$id",
    "nullable",
    "discriminator",
]
NUMBERS = [
    0,
    1,
    -1,
    2,
    5,
    10,
    100,
    1000,
    10**6,
    2**31,
    2**53 + 1,
    10**30,
    -(10**30),
    0.5,
    -0.5,
    1e300,
    float("inf"),
    float("nan"),
]

_model: _core.Model | None = None


def setup() -> None:
    global _model
    _core.set_log_level("CRITICAL")
    _model = vocab_model("smollm2")


def _value(fdp: atheris.FuzzedDataProvider, depth: int = 0):
    kind = fdp.ConsumeIntInRange(0, 5 if depth < 2 else 3)
    if kind == 0:
        return fdp.ConsumeUnicodeNoSurrogates(12)
    if kind == 1:
        return fdp.PickValueInList(NUMBERS)
    if kind == 2:
        return fdp.PickValueInList([None, True, False])
    if kind == 3:
        return fdp.ConsumeIntInRange(-1000, 1000)
    if kind == 4:
        return [_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    return {fdp.ConsumeUnicodeNoSurrogates(6): _value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))}


def _pattern(fdp: atheris.FuzzedDataProvider) -> str:
    return "".join(fdp.PickValueInList(REGEX) for _ in range(fdp.ConsumeIntInRange(0, 8)))


def _schema(fdp: atheris.FuzzedDataProvider, depth: int = 0, defs: list[str] | None = None):
    if depth > 4 or fdp.ConsumeIntInRange(0, 15) == 0:
        return fdp.PickValueInList([True, False, {}, None, "string", []])
    s: dict = {}
    t = fdp.PickValueInList(TYPES)
    if fdp.ConsumeIntInRange(0, 5):
        s["type"] = t if fdp.ConsumeIntInRange(0, 5) else [t, "null"]
    for _ in range(fdp.ConsumeIntInRange(0, 4)):
        key = fdp.ConsumeIntInRange(0, 17)
        if key == 0:
            s["properties"] = {
                fdp.ConsumeUnicodeNoSurrogates(8): _schema(fdp, depth + 1, defs)
                for _ in range(fdp.ConsumeIntInRange(0, 4))
            }
        elif key == 1:
            names = list(s.get("properties", {})) + [fdp.ConsumeUnicodeNoSurrogates(4)]
            s["required"] = names[: fdp.ConsumeIntInRange(0, len(names))] if fdp.ConsumeIntInRange(0, 7) else "x"
        elif key == 2:
            s["items"] = _schema(fdp, depth + 1, defs)
        elif key == 3:
            s["prefixItems"] = [_schema(fdp, depth + 1, defs) for _ in range(fdp.ConsumeIntInRange(0, 3))]
        elif key == 4:
            s["enum"] = [_value(fdp) for _ in range(fdp.ConsumeIntInRange(0, 4))]
        elif key == 5:
            s["const"] = _value(fdp)
        elif key == 6:
            s[fdp.PickValueInList(["anyOf", "oneOf", "allOf"])] = [
                _schema(fdp, depth + 1, defs) for _ in range(fdp.ConsumeIntInRange(0, 3))
            ]
        elif key == 7:
            s["$ref"] = fdp.PickValueInList(
                [
                    *(f"#/$defs/{d}" for d in defs or ["x"]),
                    "#/definitions/x",
                    "#",
                    "#/",
                    "#/$defs/missing",
                    "other.json#/x",
                    "https://example.invalid/s.json",
                    "#/properties/a",
                    "",
                    "#/$defs/~1",
                ]
            )
        elif key == 8:
            s["pattern"] = _pattern(fdp)
        elif key == 9:
            s["format"] = fdp.PickValueInList(FORMATS)
        elif key == 10:
            s[fdp.PickValueInList(["minLength", "maxLength", "minItems", "maxItems"])] = fdp.PickValueInList(NUMBERS)
        elif key == 11:
            s[fdp.PickValueInList(["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"])] = (
                fdp.PickValueInList(NUMBERS)
            )
        elif key == 12:
            s["additionalProperties"] = _schema(fdp, depth + 1, defs) if fdp.ConsumeBool() else fdp.ConsumeBool()
        elif key == 13:
            s[fdp.PickValueInList(KEYWORDS)] = _value(fdp)
        elif key == 14 and depth == 0:
            names = [fdp.ConsumeUnicodeNoSurrogates(4) or "d" for _ in range(fdp.ConsumeIntInRange(1, 3))]
            s[fdp.PickValueInList(["$defs", "definitions"])] = {n: _schema(fdp, depth + 1, names) for n in names}
        elif key == 15:
            s[fdp.ConsumeUnicodeNoSurrogates(6)] = _value(fdp)
        elif key == 16:
            s["items"] = False
        else:
            s["additionalItems"] = _schema(fdp, depth + 1, defs)
    return s


def _deep(fdp: atheris.FuzzedDataProvider) -> str:
    """A schema nested deeper than any recursion limit, as JSON text."""
    n = fdp.PickValueInList([100, 1000, 10000, 100000])
    wrap = fdp.PickValueInList(['{"type": "array", "items": ', '{"anyOf": [', '{"properties": {"a": '])
    close = {'{"type": "array", "items": ': "}", '{"anyOf": [': "]}", '{"properties": {"a": ': "}}"}[wrap]
    return wrap * n + '{"type": "string"}' + close * n


def _grammar(schema) -> tuple[str | None, BaseException | None]:
    return call(_core.json_schema_to_grammar, schema)


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    kind = fdp.ConsumeIntInRange(0, 9)
    if kind == 0:  # raw text: the converter must cope with anything
        text = _deep(fdp) if fdp.ConsumeBool() else fdp.ConsumeUnicodeNoSurrogates(200)
        call(_core.json_schema_to_grammar, text)
        return
    schema = _schema(fdp)
    # What a request's format meets: the unenforced-keyword check, then the converter (400 on failure).
    fmt, err = call(json_schema_of, schema)
    check(err is None or isinstance(err, StatusError), f"json_schema_of raised {err!r}")
    if isinstance(schema, dict) and fmt is not None:
        fields, err = call(schema_grammar, fmt)
        check(err is None or isinstance(err, StatusError), f"schema_grammar raised {err!r}")
    gbnf, err = _grammar(schema)
    try:
        text = json.dumps(schema)
    except ValueError:
        text = None
    if text is not None:
        gbnf2, err2 = _grammar(text)
        check((gbnf is None) == (gbnf2 is None), f"the dict gave {err!r}, its JSON text {err2!r}")
        check(gbnf == gbnf2, "the dict and its JSON text gave different grammars")
    if gbnf is not None:
        sampler = _core.Sampler(_model)
        _, err = call(sampler.grammar, gbnf)
        check(err is None, f"the converter's grammar does not compile: {err!r}\n{gbnf[:2000]}")
