"""JSON-schema ``pattern``s are enforced or refused, never accepted as any string.

llama.cpp's converter takes only a regex subset; for anything else it logs
"JSON schema conversion was incomplete ... accepting any string" and the
answer is unconstrained. llamanative rewrites the common escapes (``\\d``,
``\\w``, ``\\s`` and their negations) into classes the converter knows, and
refuses, with a 400 naming where the pattern is, what it cannot express.

The rewrite is checked on its own (what it matches is a subset of what the
pattern matches, under Python's ``re``; on plain ASCII text the two agree),
then end to end: answers sampled at temperature 1.0 over several seeds from a
real model must parse and ``re.fullmatch`` their patterns, and the
converter's warning must never show on stderr.
"""

from __future__ import annotations

import itertools
import json
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from llamanative import Client, GenerateResponse, StatusError, _core
from llamanative.ai import Genkit
from llamanative.prompting.schema_check import for_grammar, unenforced
from llamanative.prompting.schema_patterns import PatternError, grammar_pattern

WARNING = "conversion was incomplete"
SEEDS = range(6)


def string_schema(pattern: str) -> dict[str, Any]:
    return {"type": "object", "properties": {"v": {"type": "string", "pattern": pattern}}, "required": ["v"]}


# -- the rewrite ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "pattern, rewritten",
    [
        (r"^\d+$", "^[0-9]+$"),
        (r"^\d{3}-\d{4}$", "^[0-9]{3}-[0-9]{4}$"),
        (r"^\w+$", r"^[0-9A-Z\x5Fa-z]+$"),
        (r"^[\d.]+$", r"^[\x2E0-9]+$"),  # a positive escape inside a class is expanded
        (r"^[\w-]{2}$", r"^[\x2D0-9A-Z\x5Fa-z]{2}$"),
        (r"^a+?b{2,3}?$", "^a+b{2,3}$"),  # lazy quantifiers: the same full matches
        (r"^(?P<year>\d{4})$", "^([0-9]{4})$"),  # named groups become plain ones
        (r"^(?:ab)+$", "^(ab)+$"),
        (r"^\.+\-?$", r"^[\x2E]+-?$"),  # escaped literals before a quantifier: one-character classes
        (r"^é+$", r"^[\xE9]+$"),  # a non-ASCII literal, which the converter would split by bytes
        (r"^a\/b$", "^a/b$"),  # an escaped punctuation character is itself
        (r"^{x}$", r"^[\x7B]x[\x7D]$"),  # "{" that starts no repeat is a literal
        (r"^a{,3}$", "^a{0,3}$"),
        ("^[0-9]{5}$", "^[0-9]{5}$"),
        ("^$", "^$"),
    ],
)
def test_the_rewrite(pattern: str, rewritten: str) -> None:
    assert grammar_pattern(pattern) == rewritten
    assert grammar_pattern(rewritten) == rewritten  # rewriting again changes nothing


# Characters that tell the classes apart: ASCII word and non-word ones, what a JSON
# string must escape (the quote, the backslash, controls), non-ASCII letters, digits
# and spaces that Python's Unicode-wide \d, \w and \s take in.
ALPHABET = 'aZ_09.-/ !"\\\t\n\x7féß٣३\u00a0\u3000\u2028\ufeff'
SAFE_ASCII = "aZ_09.-/ !"
SUPPORTED = [
    r"^\d{1,3}$",
    r"^\D{1,3}$",
    r"^\w{1,3}$",
    r"^\W{1,3}$",
    r"^\s{1,2}$",
    r"^\S{1,3}$",
    r"^[\d.]{1,3}$",
    r"^[^\d]{1,3}$",
    r"^[^\w\s]{1,3}$",
    r"^[\s\w]{1,3}$",
    r"^[^a-z0]{1,3}$",
    r"^.{1,3}$",
    r"^(a|\d)\w?\S$",
    r"^[a-z]+\/\d?$",
]


def strings(alphabet: str, max_len: int = 3) -> list[str]:
    return ["".join(p) for n in range(max_len + 1) for p in itertools.product(alphabet, repeat=n)]


@pytest.mark.parametrize("pattern", SUPPORTED)
def test_the_rewrite_matches_a_subset_and_agrees_on_ascii(pattern: str) -> None:
    rewritten = re.compile(grammar_pattern(pattern))  # the rewrite is a Python regex too
    original = re.compile(pattern)
    for s in strings(ALPHABET):
        if rewritten.fullmatch(s):
            assert original.fullmatch(s), (pattern, s)  # never more than the pattern allows
            assert not set(s) & set('"\\\t\n'), (pattern, s)  # nothing a JSON string must escape
    for s in strings(SAFE_ASCII):
        assert bool(rewritten.fullmatch(s)) == bool(original.fullmatch(s)), (pattern, s)


def test_unicode_digits_and_letters_are_kept_out_of_the_negations() -> None:
    # Python's \d takes in U+0663 (Arabic-Indic three) and its \w every letter: \D and \W must not
    # let the model write them, or the answer would fail a Python validator.
    assert not re.fullmatch(grammar_pattern(r"^\D$"), "٣")
    assert re.fullmatch(grammar_pattern(r"^\D$"), "é")
    assert not re.fullmatch(grammar_pattern(r"^\W$"), "é")
    assert re.fullmatch(grammar_pattern(r"^\s$"), "\u3000")
    assert not re.fullmatch(grammar_pattern(r"^\S$"), "\ufeff")  # whitespace to ECMA-262, not to Python


REJECTED = {
    "lookahead": (r"^(?=a).*$", "unsupported: lookahead"),
    "negative_lookahead": (r"^(?!a).*$", "unsupported: negative lookahead"),
    "lookbehind": (r"^.(?<=a)$", "unsupported: lookbehind"),
    "backreference": (r"^(a)\1$", r"unsupported: backreference \\1"),
    "word_boundary": (r"^\bx$", r"unsupported: word boundary \\b"),
    "negated_escape_in_class": (r"^[\D.]$", r"unsupported: negated escape \\D inside a character class"),
    "unicode_property": (r"^\p{L}+$", r"unsupported: Unicode property escape \\p"),
    "inline_flags": (r"^(?i)abc$", "unsupported: inline flags"),
    "possessive": (r"^a++$", "unsupported: possessive quantifier"),
    "anchor_inside": (r"^a$|^b$", "unsupported: anchor inside the pattern"),
    "raw_newline": (r"^a\nb$", "which a JSON string holds only escaped"),
    "quote": ('^"a"$', "which a JSON string holds only escaped"),
    "only_controls": (r"^[\t\n]$", "a class that matches only characters a JSON string must escape"),
    "bracket_first": (r"^[]a]$", r"unsupported: '\]' first in a character class"),
    "unknown_escape": (r"^\q$", r"unsupported: escape \\q"),
    "unbalanced": (r"^(a$", "invalid: unbalanced parentheses"),
    "reversed_range": (r"^[z-a]$", "invalid: the range 'z'-'a' is reversed"),
    "double_quantifier": (r"^a**$", "invalid: a quantifier after a quantifier"),
    "nothing_to_repeat": (r"^*a$", "invalid: nothing to repeat"),
    "unanchored": (r"\d+", "must be anchored"),
    "escaped_dollar": (r"^a\$", "must be anchored"),
}


@pytest.mark.parametrize("name", REJECTED)
def test_what_the_grammar_cannot_express_is_refused(name: str) -> None:
    pattern, reason = REJECTED[name]
    with pytest.raises(PatternError, match=reason):
        grammar_pattern(pattern)
    assert unenforced(string_schema(pattern)) == [f"#/properties/v: pattern {pattern!r} ({grammar_reason(pattern)})"]


def grammar_reason(pattern: str) -> str:
    try:
        grammar_pattern(pattern)
    except PatternError as exc:
        return exc.reason
    raise AssertionError(pattern)


@pytest.mark.parametrize("pattern", SUPPORTED + [p for p, _ in REJECTED.values()])
def test_the_converter_never_warns_on_what_it_is_handed(pattern: str, capfd: pytest.CaptureFixture[str]) -> None:
    """Every pattern is either refused here or rewritten into one the converter translates without a warning."""
    try:
        schema = for_grammar(string_schema(pattern))
    except ValueError:
        return
    _core.json_schema_to_grammar(schema)
    assert WARNING not in capfd.readouterr().err


def test_for_grammar_rewrites_a_copy_everywhere_a_schema_can_hold_a_pattern() -> None:
    schema = {
        "$defs": {"code": {"type": "string", "pattern": r"^\d{2}$"}},
        "type": "object",
        "properties": {
            "pattern": {"type": "string", "pattern": r"^\w$"},  # a property named "pattern"
            "list": {"type": "array", "items": {"type": "string", "pattern": r"^\s$"}},
            "either": {"anyOf": [{"type": "string", "pattern": r"^\D$"}, {"type": "null"}]},
            "ref": {"$ref": "#/$defs/code"},
        },
        "examples": [{"pattern": r"^\d$"}],  # data, not a schema
    }
    before = json.dumps(schema)
    out = for_grammar(schema)
    assert json.dumps(schema) == before
    assert out["$defs"]["code"]["pattern"] == "^[0-9]{2}$"
    assert out["properties"]["pattern"]["pattern"] == r"^[0-9A-Z\x5Fa-z]$"
    assert out["properties"]["list"]["items"]["pattern"].startswith("^[\\x20\\xA0")
    assert out["properties"]["either"]["anyOf"][0]["pattern"] == grammar_pattern(r"^\D$")
    assert out["examples"] == [{"pattern": r"^\d$"}]


# -- keywords the converter reads past ---------------------------------------------------------------------
DROPPED = {
    "length_beside_pattern": (
        {"type": "string", "pattern": "^a+$", "maxLength": 3},
        "#: maxLength (not enforced together with pattern)",
    ),
    "length_beside_format": (
        {"type": "string", "format": "date", "minLength": 3},
        "#: minLength (not enforced together with format)",
    ),
    "beside_ref": (
        {
            "$defs": {"s": {"type": "string"}},
            "type": "object",
            "properties": {"a": {"$ref": "#/$defs/s", "maxLength": 2}},
        },
        "#/properties/a: maxLength (ignored beside $ref)",
    ),
    "beside_any_of": (
        {"type": "object", "properties": {"a": {"type": "string"}}, "anyOf": [{"required": ["a"]}]},
        "#: properties (ignored beside anyOf)",
    ),
    "required_not_a_property": (
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a", "b"]},
        "#: required 'b' (not among properties)",
    ),
    "all_of_beside_properties": (
        {"type": "object", "properties": {"a": {"type": "string"}}, "allOf": [{"properties": {"b": {}}}]},
        "#: allOf (ignored beside properties)",
    ),
    "all_of_of_strings": (
        {"type": "string", "allOf": [{"pattern": "^a+$"}]},
        "#/allOf/0: only object properties and enums are merged by allOf",
    ),
    "both_lower_bounds": (
        {"type": "integer", "minimum": 0, "exclusiveMinimum": 5},
        "#: exclusiveMinimum (not enforced together with minimum)",
    ),
    "tuple_length": (
        {"type": "array", "prefixItems": [{"type": "integer"}], "maxItems": 1},
        "#: maxItems (not enforced for a tuple)",
    ),
    "items_and_prefix_items": (
        {"type": "array", "prefixItems": [{"type": "integer"}], "items": {"type": "string"}},
        "#: prefixItems (ignored beside items)",
    ),
    "typeless_min_items": ({"minItems": 2}, "#: minItems (ignored without a type)"),
}


@pytest.mark.parametrize("name", DROPPED)
def test_keywords_the_converter_reads_past_are_named(name: str) -> None:
    schema, problem = DROPPED[name]
    assert problem in unenforced(schema)


def test_what_the_converter_enforces_is_not_flagged() -> None:
    assert unenforced({"type": "integer", "format": "int64", "minimum": 0}) == []  # format is for strings
    assert unenforced({"allOf": [{"$ref": "#/$defs/a"}], "$defs": {"a": {"properties": {"x": {}}}}}) == []
    assert unenforced({"type": "string", "pattern": r"^\d+$"}) == []
    assert unenforced({"type": "string", "format": "uuid"}) == []


# -- end to end, with a real model ------------------------------------------------------------------------
# Bounded patterns, so that a sampled answer cannot run past num_predict.
PATTERNS = {
    "code": r"^\d{3}-\d{4}$",
    "user": r"^\w{3,10}$",
    "pair": r"^\w{1,8}\s\w{1,8}$",
    "letters": r"^\D{2,8}$",
    "symbols": r"^\W{1,4}$",
    "token": r"^\S{1,8}$",
    "version": r"^[\d.]{1,6}$",
    "marks": r"^[^\w\s]{1,3}$",
    "anything": r"^.{1,10}$",
    "consonants": r"^[^aeiou\d]{2,6}$",
    "tag": r"^(?:v\d|x\w)\.\d{1,2}$",
    "lazy": r"^(?P<n>\d{1,3}?)[a-z]{1,6}?$",
}
PATTERN_SCHEMA = {
    "type": "object",
    "properties": {k: {"type": "string", "pattern": p} for k, p in PATTERNS.items()},
    "required": list(PATTERNS),
    "additionalProperties": False,
}
PROMPT = "Fill in a record of codes, names and symbols. Reply in JSON."


def options(seed: int) -> dict[str, Any]:
    return {"temperature": 1.0, "seed": seed, "num_predict": 320}


def check(text: str, where: str) -> dict[str, str]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        pytest.fail(f"{where}: not JSON ({exc}): {text!r}")
    assert set(data) == set(PATTERNS), (where, data)
    for key, pattern in PATTERNS.items():
        assert isinstance(data[key], str) and re.fullmatch(pattern, data[key]), (where, key, pattern, data[key])
    return data


def test_sampled_chat_answers_match_every_pattern(client: Client, capfd: pytest.CaptureFixture[str]) -> None:
    ask = [{"role": "user", "content": PROMPT}]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda s: client.chat("smol", ask, format=PATTERN_SCHEMA, options=options(s)), SEEDS))
    outputs = []
    for seed, r in zip(SEEDS, answers):
        assert r.done_reason == "stop", (seed, r.message.content)
        outputs.append(json.dumps(check(r.message.content, f"chat/seed {seed}"), sort_keys=True))
    assert len(set(outputs)) > 1  # temperature 1.0 really samples
    assert WARNING not in capfd.readouterr().err


@pytest.mark.parametrize("raw", [False, True], ids=["templated", "raw"])
def test_sampled_generate_answers_match_every_pattern(
    client: Client, raw: bool, capfd: pytest.CaptureFixture[str]
) -> None:
    prompt = PROMPT if not raw else f"{PROMPT}\nJSON:"

    def answer(seed: int) -> GenerateResponse:
        return client.generate("smol", prompt, format=PATTERN_SCHEMA, raw=raw, options=options(seed))

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(answer, (0, 1)))
    for seed, r in enumerate(answers):
        assert r.done_reason == "stop", (seed, r.response)
        check(r.response, f"generate raw={raw}/seed {seed}")
    assert WARNING not in capfd.readouterr().err


def test_the_issue_example_is_enforced(client: Client, capfd: pytest.CaptureFixture[str]) -> None:
    schema = string_schema(r"^\d{1,12}$")
    for seed in SEEDS:
        r = client.chat("smol", [{"role": "user", "content": "Give me a word."}], format=schema, options=options(seed))
        assert re.fullmatch(r"\d{1,12}", json.loads(r.message.content)["v"]), r.message.content
    assert WARNING not in capfd.readouterr().err


def test_ai_output_schemas_with_patterns_are_enforced(client: Client, capfd: pytest.CaptureFixture[str]) -> None:
    ai = Genkit(model="llamanative/smol", client=client)
    schema = {
        "type": "object",
        "properties": {
            "id": {"type": "string", "pattern": r"^[A-Z]{2}\d{4}$"},
            "word": {"type": "string", "pattern": r"^\w{2,9}$"},
        },
        "required": ["id", "word"],
    }
    for seed in (1, 2, 3):
        value = ai.generate(
            prompt="Invent a product id and a word.",
            output_schema=schema,
            config={"maxOutputTokens": 120, "temperature": 1.0, "seed": seed},
        ).output()
        assert re.fullmatch(r"[A-Z]{2}\d{4}", value["id"]) and re.fullmatch(r"\w{2,9}", value["word"]), value
    assert WARNING not in capfd.readouterr().err


TOOL = {
    "type": "function",
    "function": {
        "name": "book_rooms",
        "description": "Book hotel rooms by their numbers.",
        "parameters": {
            "type": "object",
            "properties": {
                "rooms": {
                    "type": "array",
                    "items": {"type": "string", "pattern": r"^\d{3}$"},
                    "description": "room numbers",
                    "minItems": 1,
                    "maxItems": 3,
                }
            },
            "required": ["rooms"],
        },
    },
}


def test_tool_argument_patterns_are_enforced(client: Client, capfd: pytest.CaptureFixture[str]) -> None:
    ask = [{"role": "user", "content": "Book rooms for the team, please."}]
    for seed in range(3):
        r = client.chat("smol", ask, tools=[TOOL], tool_choice="required", options=options(seed))
        (call,) = r.message.tool_calls
        rooms = call.function.arguments["rooms"]
        assert rooms and all(re.fullmatch(r"\d{3}", room) for room in rooms), rooms
    assert WARNING not in capfd.readouterr().err


def ask_hi(c: Client, schema: dict[str, Any], call: str) -> list[Any]:
    msgs = [{"role": "user", "content": "Hi"}]
    if call == "chat":
        return [c.chat("smol", msgs, format=schema, options=options(0))]
    if call == "chat_stream":
        return list(c.chat("smol", msgs, format=schema, options=options(0), stream=True))
    return [c.generate("smol", "Hi", format=schema, raw=call == "generate_raw", options=options(0))]


@pytest.mark.parametrize("call", ["chat", "chat_stream", "generate", "generate_raw"])
@pytest.mark.parametrize(
    "name", ["lookahead", "backreference", "word_boundary", "negated_escape_in_class", "raw_newline"]
)
def test_an_unsupported_pattern_is_a_400_naming_where_it_is(
    client: Client, name: str, call: str, capfd: pytest.CaptureFixture[str]
) -> None:
    pattern, reason = REJECTED[name]
    schema = {"type": "object", "properties": {"outer": string_schema(pattern)}, "required": ["outer"]}
    with pytest.raises(StatusError) as e:
        ask_hi(client, schema, call)
    assert e.value.status_code == 400
    assert f"#/properties/outer/properties/v: pattern {pattern!r} (" in str(e.value)
    assert re.search(reason, str(e.value))
    assert WARNING not in capfd.readouterr().err


def test_an_unsupported_tool_pattern_is_a_400_naming_the_tool(
    client: Client, capfd: pytest.CaptureFixture[str]
) -> None:
    tool = json.loads(json.dumps(TOOL))
    tool["function"]["parameters"]["properties"]["rooms"]["items"]["pattern"] = r"^(\d)\1\d$"
    with pytest.raises(StatusError, match=r"tool 'book_rooms': #/properties/rooms/items: pattern .*backreference") as e:
        client.chat("smol", [{"role": "user", "content": "Book rooms."}], tools=[tool], options=options(0))
    assert e.value.status_code == 400
    assert WARNING not in capfd.readouterr().err
