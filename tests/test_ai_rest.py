"""The rest of the documented ``ai`` API, through the public surface, on the real local models."""

from __future__ import annotations

import doctest
import importlib
import json
import pkgutil

import pytest

import llamanative.ai
from llamanative.ai import (
    OUTPUT_FORMAT_ARRAY,
    OUTPUT_FORMAT_ENUM,
    OUTPUT_FORMAT_JSON,
    OUTPUT_FORMAT_JSONL,
    OUTPUT_FORMAT_MEDIA,
    OUTPUT_FORMAT_TEXT,
    Document,
    EmbedderRef,
    EvaluatorRef,
    GenerateActionOptions,
    Genkit,
    Message,
    RetrieverRef,
    Score,
    ScoreStatus,
    embedder_ref,
    evaluator_ref,
    retriever_ref,
)
from llamanative.ai.errors import InvalidArgumentError
from llamanative.ai.model_types import ModelResponse, ModelResponseChunk
from llamanative.ai.parts import new_media_part, new_text_part


@pytest.fixture(scope="module")
def ai(client):
    return Genkit(model="llamanative/smol", client=client)


def test_json_output_without_schema_is_constrained_on_a_local_model(ai):
    # Without a schema the format is not "constrained" in Genkit's sense (there is no schema to send), but a
    # local model still gets the JSON grammar, as Client.chat(format="json") does: the output always parses.
    resp = ai.generate(
        prompt='Reply with a JSON object with one key "color" set to a color name.',
        output_format="json",
        config={"maxOutputTokens": 64, "temperature": 0},
    )
    assert resp.request.output.format == "json" and not resp.request.output.constrained
    value = resp.output()
    assert isinstance(value, dict) and json.loads(resp.text()) == value


def test_output_format_constants_and_the_media_format(ai):
    assert (OUTPUT_FORMAT_TEXT, OUTPUT_FORMAT_JSON, OUTPUT_FORMAT_JSONL) == ("text", "json", "jsonl")
    assert (OUTPUT_FORMAT_MEDIA, OUTPUT_FORMAT_ARRAY, OUTPUT_FORMAT_ENUM) == ("media", "array", "enum")
    image = "data:image/png;base64,iVBORw0KGgo="
    seen = []

    def painter(request, on_chunk):
        seen.append(request.output)
        if on_chunk is not None:
            on_chunk(ModelResponseChunk(role="model", content=[new_media_part("image/png", image)]))
        return ModelResponse(
            message=Message(role="model", content=[new_text_part("here: "), new_media_part("image/png", image)]),
            finish_reason="stop",
        )

    ai.define_model("test/painter", painter, info={"supports": {"multiturn": True, "output": ["media"]}})
    resp = ai.generate(model="test/painter", prompt="Draw a cat.", output_format=OUTPUT_FORMAT_MEDIA)
    media = resp.output()
    assert media.url == image and media.content_type == "image/png"
    assert seen[0].format == "media" and not seen[0].constrained
    stream = ai.generate_stream(model="test/painter", prompt="Draw a cat.", output_format="media")
    values = list(stream)
    chunks = [v.chunk.output() for v in values if not v.done]
    assert chunks and chunks[0].url == image and values[-1].response.output().url == image


def test_message_cache_hints_and_the_step_name(ai):
    msg = Message(role="user", content="Hi", metadata={"purpose": "x"})
    ttl = msg.with_cache_ttl(300)
    named = ttl.with_cache_name("docs")
    assert ttl.metadata == {"purpose": "x", "cache": {"ttlSeconds": 300}} and msg.metadata == {"purpose": "x"}
    assert named.metadata == {"purpose": "x", "cache": {"name": "docs"}} and named.content == msg.content
    # A local model ignores the hint: the message is sent as it is.
    resp = ai.generate(messages=[named], config={"maxOutputTokens": 4, "temperature": 0})
    assert resp.request.messages[0].metadata["cache"] == {"name": "docs"} and resp.text() is not None
    opts = GenerateActionOptions(model="llamanative/smol", messages=[named], step_name="greet")
    wire = opts.to_dict() if hasattr(opts, "to_dict") else opts.model_dump(by_alias=True, exclude_none=True)
    assert wire["stepName"] == "greet" and GenerateActionOptions.model_validate(wire).step_name == "greet"


def test_score_status_is_an_enum_with_its_name_as_str(ai):
    assert [str(s) for s in ScoreStatus] == ["UNKNOWN", "FAIL", "PASS"]
    assert ScoreStatus.PASS == "PASS" and Score(status="FAIL").status is ScoreStatus.FAIL

    def judge(req):
        if req.input.output == "boom":
            raise ValueError("cannot judge")
        return Score(score=1.0, status="PASS")

    ai.define_evaluator("test/status", judge)
    results = ai.evaluate("test/status", [{"input": "q", "output": "a"}, {"input": "q", "output": "boom"}])
    statuses = [r.evaluation[0].status for r in results]
    assert statuses == [ScoreStatus.PASS, ScoreStatus.FAIL] and [str(s) for s in statuses] == ["PASS", "FAIL"]
    assert results[1].to_dict()["evaluation"][0]["status"] == "FAIL"


def test_embedder_retriever_and_evaluator_refs_bundle_their_config(ai):
    mini = embedder_ref("llamanative/mini", {"dimensions": 8})
    assert isinstance(mini, EmbedderRef) and mini.name == "llamanative/mini"
    assert ai.embed(mini, ["a cat"]).as_array().shape == (1, 8)
    assert ai.embed(mini, ["a cat"], {"dimensions": 4}).as_array().shape == (1, 4)  # the call's options win
    assert ai.embed(EmbedderRef.model_validate("llamanative/mini"), ["a cat"]).as_array().shape[1] > 8

    got = []
    docs = [Document.from_text(t) for t in ("cats purr", "dogs bark", "cats nap")]

    def keyword(req):
        got.append(req.options)
        k = (req.options or {}).get("k", 10)
        return [d for d in docs if req.query.text() in d.text()][:k]

    ai.define_retriever("test/kw-ref", keyword)
    two = retriever_ref("test/kw-ref", {"k": 1})
    assert isinstance(two, RetrieverRef)
    assert [d.text() for d in ai.retrieve(two, "cats").documents] == ["cats purr"] and got[-1] == {"k": 1}
    assert len(ai.retrieve(two, "cats", {"k": 5}).documents) == 2

    def judge(req):
        return Score(score=(req.options or {}).get("weight", 1.0), status="PASS")

    ai.define_evaluator("test/weighted", judge)
    heavy = evaluator_ref("test/weighted", {"weight": 3.0})
    assert isinstance(heavy, EvaluatorRef)
    assert ai.evaluate(heavy, [{"input": "q", "output": "a"}])[0].evaluation[0].score == 3.0
    assert ai.evaluate(heavy, [{"input": "q", "output": "a"}], {"weight": 2.0})[0].evaluation[0].score == 2.0
    with pytest.raises(InvalidArgumentError):
        embedder_ref("")


AI_MODULES = sorted(m.name for m in pkgutil.walk_packages(llamanative.ai.__path__, "llamanative.ai."))


@pytest.mark.parametrize("name", AI_MODULES)
def test_ai_module_doctests(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
