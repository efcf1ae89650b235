"""The ``ai`` data model: Genkit's JSON wire forms, part predicates, response helpers, config mapping."""

from __future__ import annotations

import pytest

from llamanative import Options
from llamanative.ai import (
    Document,
    FinishReason,
    GenerationCommonConfig,
    GenerationUsage,
    InvalidArgumentError,
    Message,
    ModelRequest,
    ModelResponse,
    Part,
    ToolRequest,
    ToolResponse,
    new_data_part,
    new_media_part,
    new_reasoning_part,
    new_resource_part,
    new_text_part,
    new_tool_request_part,
    new_tool_response_part,
)
from llamanative.ai.local import config_to_options, to_chat_messages
from llamanative.ai.schema import SchemaValidationError, inline_refs, validate


def test_part_wire_forms_round_trip():
    forms = [
        {"text": "hi"},
        {"media": {"url": "https://x/y.png", "contentType": "image/png"}},
        {"data": {"k": [1, 2]}},
        {"toolRequest": {"name": "add", "ref": "r1", "input": {"a": 1}}},
        {"toolResponse": {"name": "add", "ref": "r1", "output": 3, "content": [{"text": "three"}]}},
        {"reasoning": "because"},
        {"custom": {"x": 1}},
        {"resource": {"uri": "file:///a"}},
        {"text": "t", "metadata": {"purpose": "output"}},
    ]
    for f in forms:
        assert Part.model_validate(f).model_dump(by_alias=True, exclude_none=True) == f


def test_part_predicates():
    assert new_text_part("x").is_text()
    media = new_media_part("image/png", "data:image/png;base64,AA")
    assert media.is_media() and media.is_image() and not media.is_video()
    assert Part(media={"url": "data:audio/wav;base64,AA"}).is_audio()
    assert new_data_part({"a": 1}).is_data()
    req = new_tool_request_part(ToolRequest(name="f"))
    assert req.is_tool_request() and not req.is_interrupt()
    req.metadata = {"interrupt": {"why": "ask"}}
    assert req.is_interrupt()
    resp = new_tool_response_part(ToolResponse(name="f", output=1))
    assert resp.is_tool_response() and not resp.is_partial()
    assert Part(tool_response=ToolResponse(name="f"), metadata={"partial": True}).is_partial()
    assert new_reasoning_part("hm", b"\x01").metadata == {"signature": "AQ=="}
    assert new_resource_part("u://x").is_resource()
    assert Part(custom={"a": 1}).is_custom()


def test_message_and_document():
    m = Message(
        role="model",
        content=[new_reasoning_part("think"), "Hello ", new_text_part("there"), new_tool_request_part({"name": "f"})],
    )
    assert m.text() == "Hello there" and m.reasoning() == "think" and len(m.tool_requests()) == 1
    assert Message.model_validate({"role": "user", "content": [{"text": "x"}]}).role == "user"
    with pytest.raises(ValueError):
        Message(role="assistant", content="x")  # Genkit's roles only
    d = Document.from_text("doc", {"id": "1"})
    assert d.to_dict() == {"content": [{"text": "doc"}], "metadata": {"id": "1"}}


def test_response_helpers_and_wire_keys():
    req = ModelRequest(messages=[Message(role="user", content="q")])
    resp = ModelResponse(
        message=Message(role="model", content=["a", new_media_part("image/png", "u")]),
        finish_reason=FinishReason.STOP,
        usage=GenerationUsage(input_tokens=3, output_tokens=1),
        request=req,
    )
    assert [m.role for m in resp.history()] == ["user", "model"]
    assert resp.media() == "u" and resp.text() == "a"
    wire = resp.to_dict()
    assert wire["finishReason"] == "stop" and wire["usage"] == {"inputTokens": 3, "outputTokens": 1}
    assert ModelResponse(message=Message(role="model", content="x")).history()[-1].text() == "x"
    assert ModelResponse(message=Message(role="model", content='```json\n{"a": 1}\n```')).output() == {"a": 1}
    assert {r.value for r in FinishReason} == {
        "stop",
        "length",
        "blocked",
        "aborted",
        "interrupted",
        "other",
        "unknown",
    }


def test_common_config_maps_onto_options():
    opts, extra = config_to_options(
        {
            "maxOutputTokens": 12,
            "stopSequences": ["\n"],
            "temperature": 0,
            "topK": 5,
            "topP": 0.5,
            "seed": 3,
            "num_ctx": 512,
            "think": False,
        }
    )
    assert opts == Options(num_predict=12, stop=["\n"], temperature=0, top_k=5, top_p=0.5, seed=3, num_ctx=512)
    assert extra == {"think": False}
    opts, _ = config_to_options(GenerationCommonConfig(max_output_tokens=7, version="v1"))
    assert opts.num_predict == 7
    assert config_to_options(Options(seed=1))[0].seed == 1
    with pytest.raises(InvalidArgumentError, match="unknown config key 'bogus'"):
        config_to_options({"bogus": 1})
    assert GenerationCommonConfig(max_output_tokens=3).to_dict() == {"maxOutputTokens": 3}


def test_messages_map_onto_chat_messages():
    msgs = [
        Message(role="system", content="sys"),
        Message(role="user", content=["q", new_data_part({"k": 1})]),
        Message(
            role="model",
            content=[
                new_reasoning_part("hm"),
                new_tool_request_part({"name": "f", "ref": "c1", "input": {"a": 1}}),
                new_tool_request_part({"name": "g", "ref": "c2", "input": 5}),
            ],
        ),
        Message(
            role="tool",
            content=[
                new_tool_response_part({"name": "f", "ref": "c1", "output": {"r": 2}}),
                new_tool_response_part({"name": "g", "ref": "c2", "output": "five"}),
            ],
        ),
    ]
    out = to_chat_messages(msgs, wrapped={"g"})
    assert out[0] == {"role": "system", "content": "sys"}
    assert out[1]["content"] == 'q{"k": 1}'
    assert out[2]["role"] == "assistant" and out[2]["thinking"] == "hm"
    assert out[2]["tool_calls"] == [
        {"id": "c1", "function": {"name": "f", "arguments": {"a": 1}}},
        {"id": "c2", "function": {"name": "g", "arguments": {"input": 5}}},
    ]
    assert out[3] == {"role": "tool", "content": '{"r": 2}', "tool_name": "f", "tool_call_id": "c1"}
    assert out[4]["content"] == "five"


def test_schema_validation_and_refs():
    schema = {
        "$defs": {"P": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}},
        "type": "array",
        "items": {"$ref": "#/$defs/P"},
    }
    flat = inline_refs(schema)
    assert "$defs" not in flat and flat["items"]["required"] == ["x"]
    validate([{"x": 1}], schema)
    with pytest.raises(SchemaValidationError, match=r"\[0\]"):
        validate([{"x": "1"}], schema)
    recursive = {"$defs": {"N": {"type": "object", "properties": {"next": {"$ref": "#/$defs/N"}}}}, "$ref": "#/$defs/N"}
    assert inline_refs(recursive) is recursive


def test_builtin_validator_subset(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_jsonschema(name, *a, **kw):
        if name == "jsonschema":
            raise ImportError(name)
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_jsonschema)
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 0}, "e": {"enum": ["a", "b"]}},
        "required": ["n"],
        "additionalProperties": False,
    }
    validate({"n": 1, "e": "a"}, schema)
    for bad, msg in [
        ({"e": "a"}, "required"),
        ({"n": -1}, "minimum"),
        ({"n": 1, "e": "c"}, "one of"),
        ({"n": 1, "z": 0}, "additional"),
        ({"n": True}, "type"),
    ]:
        with pytest.raises(SchemaValidationError, match=msg):
            validate(bad, schema)
