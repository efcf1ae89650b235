"""``format=`` is enforced: every sampled output of a real model validates against the schema.

The outputs are drawn at temperature 1.0 over several seeds, so the grammar,
not a lucky greedy path, is what keeps them valid; each is checked with the
``jsonschema`` package, an implementation independent of llama.cpp's
schema-to-grammar converter. ``num_predict`` leaves ample room and every
answer must end with ``done_reason == "stop"``: an output cut short could not
be checked, so it fails instead of passing unseen.

The seeds of one schema run concurrently, in the loaded model's parallel
slots (batched decoding), to keep the file fast. Grammar-constrained sampling
costs much more per token on Gemma 3 (a token the grammar rejects costs a pass
over the vocabulary, and Gemma's is five times SmolLM2's), so Gemma runs the
richest schema only, with one batch of seeds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal, TypeVar

import jsonschema
import pytest
from pydantic import BaseModel, Field

from llamanative import ChatResponse, Client, GenerateResponse, StatusError

SEEDS = range(6)
GEMMA_SEEDS = range(4)
NUM_PREDICT = 256  # the answers here take 20-110 tokens
SLOTS = 4  # the Client's default parallel sequences per loaded model

T = TypeVar("T")


def options(seed: int) -> dict[str, Any]:
    return {"temperature": 1.0, "seed": seed, "num_predict": NUM_PREDICT}


# -- the schemas -------------------------------------------------------------------------------------
class Colour(str, Enum):
    red = "red"
    green = "green"
    blue = "blue"


class Pet(BaseModel):
    name: str = Field(max_length=12)
    species: Literal["cat", "dog", "fish"]
    age: int = Field(ge=0, le=30)


class Owner(BaseModel):
    """Pydantic puts nested models and enums in ``$defs`` and points at them with ``$ref``."""

    name: str = Field(min_length=1, max_length=16)
    favourite: Colour
    pets: list[Pet] = Field(min_length=1, max_length=2)
    nickname: str | None = Field(default=None, max_length=10)


@dataclass(frozen=True)
class Case:
    schema: dict[str, Any]
    prompt: str
    format: type[BaseModel] | None = None  # a pydantic model class passed as format= instead of the schema

    @property
    def request_format(self) -> dict[str, Any] | type[BaseModel]:
        return self.schema if self.format is None else self.format


# Every string has a maxLength and every array a maxItems: the grammar then
# bounds the length of an answer, so a sampled one cannot run on past num_predict.
CASES: dict[str, Case] = {
    # nested object, required and optional fields, integer bounds, minLength/maxLength, enum
    "person": Case(
        {
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 16},
                "age": {"type": "integer", "minimum": 18, "maximum": 99},
                "role": {"enum": ["admin", "editor", "viewer"]},
                "address": {
                    "type": "object",
                    "properties": {
                        "city": {"type": "string", "maxLength": 16},
                        "zip": {"type": "string", "pattern": "^[0-9]{5}$"},
                    },
                    "required": ["city", "zip"],
                    "additionalProperties": False,
                },
                "nickname": {"type": "string", "maxLength": 10},
            },
            "required": ["name", "age", "role", "address"],
            "additionalProperties": False,
        },
        "Invent a user of a web site. Reply in JSON.",
    ),
    # arrays with item types, minItems/maxItems, enum items, number, boolean
    "arrays": Case(
        {
            "type": "object",
            "properties": {
                "scores": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 0, "maximum": 100},
                    "minItems": 2,
                    "maxItems": 4,
                },
                "colours": {"type": "array", "items": {"enum": ["red", "green", "blue"]}, "minItems": 1, "maxItems": 3},
                "ratio": {"type": "number"},
                "passed": {"type": "boolean"},
            },
            "required": ["scores", "colours", "ratio", "passed"],
            "additionalProperties": False,
        },
        "Report the test scores of a student, the colours of the team and the pass ratio. Reply in JSON.",
    ),
    # $defs / $ref (one definition used twice), exclusive integer bounds, const, anyOf with null
    "refs": Case(
        {
            "$defs": {
                "point": {
                    "type": "object",
                    "properties": {
                        "x": {"type": "integer", "minimum": -10, "maximum": 10},
                        "y": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 50},
                    },
                    "required": ["x", "y"],
                    "additionalProperties": False,
                },
            },
            "type": "object",
            "properties": {
                "kind": {"const": "segment"},
                "start": {"$ref": "#/$defs/point"},
                "end": {"$ref": "#/$defs/point"},
                "label": {"anyOf": [{"type": "string", "maxLength": 12}, {"type": "null"}]},
            },
            "required": ["kind", "start", "end", "label"],
            "additionalProperties": False,
        },
        "Describe a line segment on a grid. Reply in JSON.",
    ),
    # what ollama-python users pass: a pydantic model ($defs, $ref, anyOf, titles, defaults), the class itself
    "pydantic": Case(Owner.model_json_schema(), "Invent a pet owner and their pets. Reply in JSON.", format=Owner),
    # a top-level array of objects
    "top_level_array": Case(
        {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "maxLength": 14},
                    "rank": {"type": "integer", "minimum": 1, "maximum": 3},
                },
                "required": ["city", "rank"],
                "additionalProperties": False,
            },
            "minItems": 1,
            "maxItems": 3,
        },
        "List the three largest cities of Italy, ranked. Reply in JSON.",
    ),
}

# (model, case) pairs; Gemma gets the richest schema (see the module docstring).
MATRIX = [("smol", name) for name in CASES] + [("gemma", "pydantic")]


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def validate(text: str, schema: dict[str, Any], where: str) -> Any:
    """The parsed JSON of ``text``; fails naming ``where`` and the text if it does not validate."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        pytest.fail(f"{where}: not JSON ({exc}): {text!r}")
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(data), key=str)
    if errors:
        pytest.fail(f"{where}: {text!r} breaks the schema: " + "; ".join(e.message for e in errors))
    return data


def check_finished(r: ChatResponse | GenerateResponse, where: str, text: str) -> None:
    assert r.done and r.done_reason == "stop", (
        f"{where}: ended by {r.done_reason!r} after {r.eval_count} tokens, so it was not checked: {text!r}"
    )


def per_seed(fn: Callable[[int], T], seeds: Sequence[int] | range = SEEDS) -> list[T]:
    """``fn(seed)`` for every seed, run concurrently in the model's slots; results in seed order."""
    with ThreadPoolExecutor(SLOTS) as pool:
        return list(pool.map(fn, seeds))


def distinct(outputs: Sequence[Any]) -> int:
    return len({json.dumps(o, sort_keys=True) for o in outputs})


def test_the_schemas_themselves_are_valid() -> None:
    for case in CASES.values():
        jsonschema.Draft202012Validator.check_schema(case.schema)


@pytest.mark.parametrize("model, name", MATRIX)
def test_chat_outputs_follow_the_schema(client: Client, model: str, name: str) -> None:
    case = CASES[name]
    seeds = GEMMA_SEEDS if model == "gemma" else SEEDS
    answers = per_seed(
        lambda seed: client.chat(model, ask(case.prompt), format=case.request_format, options=options(seed)), seeds
    )
    outputs = []
    for seed, r in zip(seeds, answers):
        where = f"{model}/{name}/seed {seed}"
        check_finished(r, where, r.message.content)
        outputs.append(validate(r.message.content, case.schema, where))
        if case.format is not None:
            case.format.model_validate_json(r.message.content)  # and the model class agrees
    # Temperature 1.0 really samples: the seeds do not all give the same answer.
    assert distinct(outputs) > 1, outputs


# "json" is any JSON object: nothing bounds its length, so how long a sampled
# answer runs is up to the model (Gemma 3 sometimes pads with whitespace for
# 200 tokens). Questions with short answers, room for the long ones, and seeds
# run one at a time.
# Gemma 3 270M is not here: asked for free-form JSON, it writes objects that go on
# past any token budget (greedy and sampled alike), so no answer would end to be
# checked. Gemma's constrained output is covered by the schema tests above.
JSON_CASES = [
    ("smol", 'What is the capital of France? Answer with a JSON object like {"capital": "..."}.', (2, 3, 4)),
]


@pytest.mark.parametrize("model, question, seeds", JSON_CASES, ids=[m for m, _, _ in JSON_CASES])
def test_format_json_gives_a_json_object(client: Client, model: str, question: str, seeds: tuple[int, ...]) -> None:
    for seed in seeds:
        r = client.chat(model, ask(question), format="json", options={**options(seed), "num_predict": 512})
        check_finished(r, f"{model}/json/seed {seed}", r.message.content)
        assert isinstance(json.loads(r.message.content), dict), r.message.content


def test_streaming_with_a_schema(client: Client) -> None:
    case = CASES["person"]

    def stream(seed: int) -> list[ChatResponse]:
        return list(client.chat("smol", ask(case.prompt), format=case.schema, options=options(seed), stream=True))

    for seed, chunks in zip(range(SLOTS), per_seed(stream, range(SLOTS))):
        where = f"stream/seed {seed}"
        final = "".join(c.message.content for c in chunks)
        check_finished(chunks[-1], where, final)
        assert not any(c.done for c in chunks[:-1])
        text = ""
        for c in chunks:
            text += c.message.content
            assert final.startswith(text)  # nothing streamed is taken back later
        validate(final, case.schema, where)


@pytest.mark.parametrize("raw", [False, True], ids=["templated", "raw"])
def test_generate_with_a_schema(client: Client, raw: bool) -> None:
    case = CASES["person"]
    prompt = case.prompt if not raw else f"{case.prompt}\nJSON:"
    seeds = range(SLOTS)  # one batch of answers is enough: chat runs the full matrix
    answers = per_seed(
        lambda seed: client.generate("smol", prompt, format=case.schema, raw=raw, options=options(seed)), seeds
    )
    outputs = []
    for seed, r in zip(seeds, answers):
        where = f"generate raw={raw}/seed {seed}"
        check_finished(r, where, r.response)
        # The response is the JSON itself, as Ollama's: no code fence, no other wrapping.
        outputs.append(validate(r.response, case.schema, where))
    assert distinct(outputs) > 1, outputs


def test_generate_streaming_with_format_json(client: Client) -> None:
    chunks = list(
        client.generate(
            "smol", JSON_CASES[0][1], format="json", options={**options(2), "num_predict": 512}, stream=True
        )
    )
    text = "".join(c.response for c in chunks)
    check_finished(chunks[-1], "generate stream json", text)
    assert isinstance(json.loads(text), dict), text


# Schemas that cannot be enforced, and what the 400 must name: the ones llama.cpp's
# converter refuses, and keywords it would skip silently (refused by llamanative
# before the converter sees them, so output never only looks constrained).
BAD_SCHEMAS = {
    "number_bounds": (
        {"type": "object", "properties": {"x": {"type": "number", "minimum": 0}}},
        r"#/properties/x: minimum \(bounds are enforced for integers only\)",
    ),
    "unique_items": ({"type": "array", "items": {"type": "integer"}, "uniqueItems": True}, "#: uniqueItems"),
    "unanchored_pattern": ({"type": "string", "pattern": "a+"}, "must be anchored"),
    "email_format": ({"type": "string", "format": "email"}, "format 'email'"),
    "missing_def": (
        {"type": "object", "properties": {"a": {"$ref": "#/$defs/nope"}}, "required": ["a"]},
        r"cannot resolve \$ref #/\$defs/nope",
    ),
    "remote_ref": (
        {"type": "object", "properties": {"a": {"$ref": "https://example.com/a.json"}}},
        r"unsupported \$ref https://example.com/a.json",
    ),
    "unknown_type": ({"type": "object", "properties": {"a": {"type": "decimal"}}}, "unrecognized type decimal"),
    "negative_min_items": (
        {"type": "array", "items": {"type": "integer"}, "minItems": -1},
        "minItems must be a non-negative integer",
    ),
}

CALLS: dict[str, Callable[[Client, dict[str, Any]], Iterable[Any]]] = {
    "chat": lambda c, s: [c.chat("smol", ask("Hi"), format=s, options=options(0))],
    "chat_stream": lambda c, s: c.chat("smol", ask("Hi"), format=s, options=options(0), stream=True),
    "generate": lambda c, s: [c.generate("smol", "Hi", format=s, options=options(0))],
    "generate_raw": lambda c, s: [c.generate("smol", "Hi", format=s, raw=True, options=options(0))],
    "generate_stream": lambda c, s: c.generate("smol", "Hi", format=s, options=options(0), stream=True),
}


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("bad", BAD_SCHEMAS)
def test_a_schema_the_converter_rejects_is_a_400(client: Client, bad: str, call: str) -> None:
    schema, message = BAD_SCHEMAS[bad]
    # A 400 naming the problem, raised before anything is generated: never an
    # answer sampled without the constraint, not even a first streamed chunk.
    got = []
    with pytest.raises(StatusError, match=message) as e:
        for chunk in CALLS[call](client, schema):
            got.append(chunk)
    assert e.value.status_code == 400
    assert got == []
