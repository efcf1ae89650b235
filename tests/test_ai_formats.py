"""Output formats and streaming (Go Genkit v1.12 rules), with small models defined in the tests."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from ai_models import NO_CONSTRAINED, call, define

from llamanative.ai import (
    BaseFormatHandler,
    Genkit,
    InvalidArgumentError,
    InvalidOutput,
    InvalidSchema,
    Message,
    ModelOutputConfig,
    inject_instructions,
)
from llamanative.ai._json import complete_json, extract_items, extract_json, extract_json_from_markdown

ITEMS = {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


@pytest.fixture
def ai():
    return Genkit(model="test/scripted")


def stream_outputs(ai, **kw):
    outs, final = [], None
    for v in ai.generate_stream(**kw):
        if v.done:
            final = v.response
        else:
            outs.append(v.chunk.output())
    return outs, final


# -- resolution, constrained or instructions ------------------------------------------------------
def test_format_defaults_to_json_with_a_schema_and_text_without(ai):
    m = define(ai, ['{"name": "a", "age": 1}', "plain"])
    ai.generate(prompt="p", output_schema=PERSON)
    assert m.requests[0].output.format == "json"
    ai.generate(prompt="p")
    assert m.requests[1].output.format is None and m.requests[1].output.content_type == "text/plain"


def test_constrained_output_sends_the_schema_and_no_instructions(ai):
    m = define(ai, ['{"name": "a", "age": 1}'])
    ai.generate(prompt="p", output_schema=PERSON)
    out = m.requests[0].output
    assert out.constrained and out.schema_ == PERSON
    assert m.requests[0].messages[0].content == Message(role="user", content="p").content


def test_unconstrained_output_injects_instructions_and_drops_the_schema(ai):
    m = define(ai, ['{"name": "a", "age": 1}'] * 3, info=NO_CONSTRAINED)
    ai.generate(prompt="p", output_schema=PERSON)
    out = m.requests[0].output
    assert not out.constrained and out.schema_ is None
    part = m.requests[0].messages[-1].content[-1]
    assert part.metadata == {"purpose": "output"}
    assert part.text.startswith("Output should be in JSON format and conform to the following schema:\n\n```{")
    # to the first system message when there is one
    ai.generate(system="sys", prompt="p", output_schema=PERSON)
    assert m.requests[1].messages[0].content[-1].metadata == {"purpose": "output"}
    # custom instructions, and "" for none
    ai.generate(prompt="p", output_schema=PERSON, output_instructions="")
    assert len(m.requests[2].messages[-1].content) == 1


def test_output_instructions_imply_custom_constrained(ai):
    m = define(ai, ['{"name": "a", "age": 1}', '{"name": "a", "age": 1}'])
    ai.generate(prompt="p", output_schema=PERSON, output_instructions="JSON please")
    assert not m.requests[0].output.constrained and m.requests[0].messages[-1].content[-1].text == "JSON please"
    ai.generate(prompt="p", output_schema=PERSON, custom_constrained=True)
    assert (
        not m.requests[1].output.constrained
        and "conform to the following schema" in m.requests[1].messages[-1].content[-1].text
    )


def test_inject_instructions_skips_when_present_and_does_not_mutate():
    msgs = [Message(role="user", content="a")]
    out = inject_instructions(msgs, "do X")
    assert len(msgs[0].content) == 1 and out[0].content[-1].text == "do X"
    assert inject_instructions(out, "do Y") is out


def test_unknown_format_and_bad_schemas(ai):
    define(ai, ["x"])
    with pytest.raises(InvalidArgumentError, match="output format 'yaml' is invalid"):
        ai.generate(prompt="p", output_format="yaml")
    with pytest.raises(InvalidSchema):
        ai.generate(prompt="p", output_format="jsonl", output_schema=PERSON)
    with pytest.raises(InvalidSchema):
        ai.generate(prompt="p", output_format="array")
    with pytest.raises(InvalidSchema):
        ai.generate(prompt="p", output_format="enum", output_schema={"type": "string"})


# -- final parsing -----------------------------------------------------------------------------------
def test_json_is_extracted_from_fences_validated_and_normalised(ai):
    define(ai, [['Sure:\n```json\n{"name": "Ada", "age": 36}\n```'], '{"name": "Ada"}', "{not json"])
    resp = ai.generate(prompt="p", output_schema=PERSON)
    assert resp.text() == '{"name": "Ada", "age": 36}' and len(resp.message.content) == 1
    assert resp.output() == {"name": "Ada", "age": 36}
    with pytest.raises(InvalidOutput, match="model failed to generate output matching expected schema"):
        ai.generate(prompt="p", output_schema=PERSON)
    with pytest.raises(InvalidOutput):
        ai.generate(prompt="p", output_format="json")


def test_json_message_with_only_tool_requests_passes(ai):
    define(ai, [[call("t", {})]])
    ai.define_tool("t", lambda x: 1, input_schema={})
    resp = ai.generate(prompt="p", output_schema=PERSON, tools=["t"], return_tool_requests=True)
    assert resp.tool_requests()


def test_parsing_is_skipped_on_abnormal_finish(ai):
    define(ai, ["{half"], finish_reason="blocked")
    resp = ai.generate(prompt="p", output_schema=PERSON)
    assert resp.finish_reason == "blocked" and resp.text() == "{half"


def test_enum_strips_quotes_and_needs_a_member(ai):
    define(ai, ['"RED"', "red", ""])
    resp = ai.generate(prompt="p", output_enums=["RED", "GREEN"])
    assert resp.text() == "RED" and resp.output() == "RED"
    with pytest.raises(InvalidOutput, match="not in list of valid enums"):
        ai.generate(prompt="p", output_enums=["RED", "GREEN"])
    with pytest.raises(InvalidOutput):
        ai.generate(prompt="p", output_enums=["RED", "GREEN"])


def test_jsonl_and_array_outputs(ai):
    define(ai, ['{"n": 1}\n{"n": 2}\n', '[{"n": 1}, 7, {"n": 2}]', '{"n": 1}\n{"n": "x"}'])
    assert ai.generate(prompt="p", output_format="jsonl", output_schema=ITEMS).output() == [{"n": 1}, {"n": 2}]
    # array: only the objects are items (scalars are skipped), not validated
    assert ai.generate(prompt="p", output_format="array", output_schema=ITEMS).output() == [{"n": 1}, {"n": 2}]
    resp = ai.generate(prompt="p", output_format="jsonl", output_schema=ITEMS)  # not validated in the loop
    with pytest.raises(InvalidOutput):
        resp.output()


@dataclass
class Person:
    name: str
    age: int


def test_generate_data_into_a_dataclass_and_a_schema(ai):
    define(ai, ['{"name": "Ada", "age": 36}', '{"name": "Bo", "age": 2}'])
    out, resp = ai.generate_data(Person, prompt="p")
    assert out == Person("Ada", 36) and resp.request.output.schema_["required"] == ["name", "age"]
    out, _ = ai.generate_data(PERSON, prompt="p")
    assert out == {"name": "Bo", "age": 2}


# -- streaming ------------------------------------------------------------------------------------------
def test_chunk_text_is_the_delta_and_text_output_accumulates(ai):
    define(ai, ["hello world"], piece=4)
    deltas, outs = [], []
    for v in ai.generate_stream(prompt="p"):
        if not v.done:
            deltas.append(v.chunk.text())
            outs.append(v.chunk.output())
    assert deltas == ["hell", "o wo", "rld"] and outs == ["hell", "hello wo", "hello world"]


def test_json_chunks_give_the_partial_object_so_far(ai):
    define(ai, ['{"name": "Ada Lovelace", "age": 36}'], piece=5)
    outs, final = stream_outputs(ai, prompt="p", output_schema=PERSON)
    assert outs[:4] == [{}, {"name": ""}, {"name": "Ada L"}, {"name": "Ada Lovela"}]
    assert outs[-1] == {"name": "Ada Lovelace", "age": 36}
    assert all(o is None or set(o) <= {"name", "age"} for o in outs)
    assert final.output() == {"name": "Ada Lovelace", "age": 36}


def test_jsonl_chunks_give_each_complete_item_once(ai):
    text = '{"n": 1}\n{"n": 22}\n{"n": 333}'
    define(ai, [text], piece=3)
    outs, final = stream_outputs(ai, prompt="p", output_format="jsonl", output_schema=ITEMS)
    items = [i for o in outs for i in o]
    assert items == [{"n": 1}, {"n": 22}, {"n": 333}]  # never partial, never twice
    assert final.output() == items


def test_array_chunks_give_each_complete_item_once(ai):
    define(ai, ['[{"n": 1}, {"n": 22}, {"n": 333}]'], piece=4)
    outs, _ = stream_outputs(ai, prompt="p", output_format="array", output_schema=ITEMS)
    assert [i for o in outs for i in o] == [{"n": 1}, {"n": 22}, {"n": 333}]


def test_enum_chunks_are_empty_until_valid(ai):
    define(ai, ["GREEN"], piece=2)
    outs, _ = stream_outputs(ai, prompt="p", output_enums=["GREEN", "RED"])
    assert outs == ["", "", "GREEN"]


def test_chunk_index_and_role_follow_the_turns(ai):
    define(ai, [["calling", call("t", {})], "done"])
    ai.define_tool("t", lambda x: "r", input_schema={})
    seen = [(v.chunk.role, v.chunk.index) for v in ai.generate_stream(prompt="p", tools=["t"]) if not v.done]
    assert seen[0] == ("model", 0) and ("tool", 1) in seen and seen[-1] == ("model", 2)


def test_data_stream_skips_empty_chunks_and_types_the_final_output(ai):
    define(ai, ['{"name": "Ada", "age": 36}'], piece=6)
    values = list(ai.generate_data_stream(Person, prompt="p"))
    assert all(v.output is not None for v in values)
    assert values[-1].done and values[-1].output == Person("Ada", 36)
    assert values[-2].output == Person("Ada", 36)  # the complete object validates


def test_errors_reach_the_stream_consumer(ai):
    define(ai, ["x"])
    with pytest.raises(InvalidArgumentError):
        list(ai.generate_stream(prompt="p", max_turns=-1))


def test_on_chunk_raising_stops_generation(ai):
    define(ai, ["abcdefghij"], piece=1)
    got = []

    def cb(chunk):
        got.append(chunk.text())
        if len(got) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ai.generate(prompt="p", on_chunk=cb)
    assert got == ["a", "b", "c"]


# -- user-defined formats -----------------------------------------------------------------------------
class CsvFormat:
    name = "csv"

    def handler(self, schema):
        fmt = self

        class Handler(BaseFormatHandler):
            def parse_output(self, message):
                return [line.split(",") for line in message.text().splitlines() if line]

            def parse_chunk(self, chunk):
                return self.accumulate(chunk).count("\n")

        _ = fmt
        return Handler("Answer as CSV.", ModelOutputConfig(format="csv", content_type="text/csv"))


def test_define_format(ai):
    m = define(ai, ["a,b\nc,d\n"])
    ai.define_format(CsvFormat())
    resp = ai.generate(prompt="p", output_format="csv")
    assert resp.output() == [["a", "b"], ["c", "d"]]
    assert m.requests[0].messages[-1].content[-1].text == "Answer as CSV."


# -- JSON helpers (Go's internal/base) ------------------------------------------------------------------
@pytest.mark.parametrize(
    "partial,expected",
    [
        ('{"a": "hel', {"a": "hel"}),
        ('{"a": 1, "b"', {"a": 1}),
        ('{"a": [1, 2, {"b": tr', {"a": [1, 2, {"b": True}]}),
        ("[1, 2", [1, 2]),
        ('{"a": -', {}),
        ('{"x": "\\u00', {"x": ""}),
    ],
)
def test_complete_json(partial, expected):
    assert json.loads(complete_json(partial)) == expected


def test_extract_helpers():
    assert extract_json_from_markdown("x ```\n[1]\n``` y") == "[1]"
    assert extract_json_from_markdown('```js\n{"a": 1}```') == '```js\n{"a": 1}```'  # not a JSON fence
    assert extract_json_from_markdown('```{"a": 1}```') == '{"a": 1}'
    assert extract_json('noise {"a": {"b": 1}} trailing') == {"a": {"b": 1}}
    assert extract_json("no json here") is None
    items, cur = extract_items('[{"a": 1}, {"b": "}"}, {"c', 0)
    assert items == [{"a": 1}, {"b": "}"}]
    more, _ = extract_items('[{"a": 1}, {"b": "}"}, {"c": 3}]', cur)
    assert more == [{"c": 3}]


def test_dropping_an_unnamed_stream_stops_the_generation(ai):
    import threading

    define(ai, ["abcdefghijklmnopqrstuvwxyz"], piece=1)
    produced = []
    for _v in ai.generate_stream(prompt="p", on_chunk=lambda c: produced.append(c)):
        break
    for _ in range(100):
        if not any(t.name == "genkit-stream" and t.is_alive() for t in threading.enumerate()):
            break
        threading.Event().wait(0.02)
    assert len(produced) <= 3
