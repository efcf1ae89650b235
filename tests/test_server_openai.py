"""The server's OpenAI routes with the official ``openai`` Python package as the client, and raw HTTP.

A server on 127.0.0.1 (Uvicorn in a thread, ``tests/http_server.py``) over an
AsyncClient on a store of its own; ``openai.OpenAI(base_url=.../v1)`` calls it
as it calls OpenAI. Answers are compared with what an in-process
:class:`llamanative.Client` on the same store gives for the same greedy
request, so the tests check the translation, not the model.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import httpx
import jsonschema
import numpy as np
import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("starlette")

from http_server import running  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from llamanative import AsyncClient, Client  # noqa: E402
from llamanative.server import create_app  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
IMAGE = REPO / "vendor" / "llama.cpp" / "tools" / "mtmd" / "test-1.jpeg"
HI = [{"role": "user", "content": "Name a colour."}]
N = 12
GREEDY = {"temperature": 0, "num_predict": N, "top_p": 1.0}
"What the OpenAI requests below (temperature 0, max_tokens N) translate to."

ADD_TOOL = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}
ASK_ADD = [{"role": "user", "content": "What is 2 plus 3? Use the add tool."}]

COLOUR_SCHEMA = {
    "type": "object",
    "properties": {
        "colour": {"type": "string", "enum": ["red", "green", "blue"]},
        "count": {"type": "integer", "minimum": 0, "maximum": 9},
    },
    "required": ["colour", "count"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def store(tmp_path_factory, smollm2_path, minilm_path, vision_pair, qwen3_style_path) -> Path:
    root = tmp_path_factory.mktemp("openai-store")
    model, projector = vision_pair
    with Client(models_dir=root) as c:
        c.create("smol", from_=str(smollm2_path))
        c.create("mini", from_=str(minilm_path))
        c.create("vis", from_=str(model), projector=str(projector))
        c.create("qwen-style", from_=str(qwen3_style_path))  # a thinking template
    return root


@pytest.fixture(scope="module")
def aclient(store) -> Iterator[AsyncClient]:
    c = AsyncClient(models_dir=store)
    yield c
    asyncio.run(c.close())


@pytest.fixture(scope="module")
def url(aclient) -> Iterator[str]:
    with running(create_app(aclient)) as base:
        yield base


@pytest.fixture(scope="module")
def local(store) -> Iterator[Client]:
    """The in-process answers to compare with."""
    with Client(models_dir=store) as c:
        yield c


@pytest.fixture
def oa(url) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as c:
        yield c


@pytest.fixture
def http(url) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=120) as c:
        yield c


def _sse(text: str) -> list[str]:
    """The ``data:`` payloads of an event stream, checking its framing: every event is one
    ``data: ...`` line followed by a blank line."""
    assert text.endswith("\n\n")
    events = text[:-2].split("\n\n")
    for e in events:
        assert e.startswith("data: ") and "\n" not in e, e
    return [e.removeprefix("data: ") for e in events]


# -- chat ------------------------------------------------------------------------------------------------
def test_chat_equals_the_in_process_answer(oa, local):
    r = oa.chat.completions.create(model="smol", messages=HI, temperature=0, max_tokens=N, n=1)
    want = local.chat("smol", HI, options=GREEDY)
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-") and r.system_fingerprint
    assert r.model == "smol" and len(r.choices) == 1
    choice = r.choices[0]
    assert choice.message.role == "assistant" and choice.message.content == want.message.content
    assert choice.finish_reason == "length" and choice.logprobs is None
    assert r.usage.completion_tokens == N and r.usage.prompt_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + N


def test_max_completion_tokens_stop_and_seed(oa, local):
    r = oa.chat.completions.create(model="smol", messages=HI, temperature=0, max_completion_tokens=3)
    assert r.usage.completion_tokens == 3 and r.choices[0].finish_reason == "length"
    full = local.chat("smol", HI, options=GREEDY).message.content
    word = full.split()[1]
    r = oa.chat.completions.create(model="smol", messages=HI, temperature=0, max_tokens=N, stop=[word])
    assert r.choices[0].finish_reason == "stop" and word not in r.choices[0].message.content
    assert full.startswith(r.choices[0].message.content)
    hot = {"model": "smol", "messages": HI, "temperature": 1.5, "max_tokens": N, "seed": 42}
    assert oa.chat.completions.create(**hot).choices[0].message.content == (
        oa.chat.completions.create(**hot).choices[0].message.content
    )


def test_streamed_chat_joins_to_the_same_answer_with_usage(oa, local):
    stream = oa.chat.completions.create(
        model="smol", messages=HI, temperature=0, max_tokens=N, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    want = local.chat("smol", HI, options=GREEDY).message.content
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == want
    finished = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finished == ["length"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == N
    assert all(c.usage is None for c in chunks[:-1])


def test_logprobs_and_top_logprobs(oa, local):
    r = oa.chat.completions.create(
        model="smol", messages=HI, temperature=0, max_tokens=N, logprobs=True, top_logprobs=3
    )
    want = local.chat("smol", HI, options=GREEDY, logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert [t.token for t in content] == [t.token for t in want.logprobs]
    assert [t.logprob for t in content] == pytest.approx([t.logprob for t in want.logprobs])
    assert all(len(t.top_logprobs) == 3 for t in content)
    assert "".join(t.token for t in content) == r.choices[0].message.content
    # greedy: the chosen token is the most likely one
    assert all(t.top_logprobs[0].token == t.token for t in content)
    streamed = oa.chat.completions.create(
        model="smol", messages=HI, temperature=0, max_tokens=N, logprobs=True, top_logprobs=2, stream=True
    )
    tokens = [t.token for c in streamed if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    assert tokens == [t.token for t in want.logprobs]


def test_tool_calls_streamed_and_not(oa):
    r = oa.chat.completions.create(
        model="smol", messages=ASK_ADD, tools=[ADD_TOOL], tool_choice="required", temperature=0, max_tokens=64
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "add" and call.id.startswith("call_")
    args = json.loads(call.function.arguments)
    assert set(args) == {"a", "b"} and all(isinstance(v, int) for v in args.values())

    stream = oa.chat.completions.create(
        model="smol",
        messages=ASK_ADD,
        tools=[ADD_TOOL],
        tool_choice="required",
        temperature=0,
        max_tokens=64,
        stream=True,
    )
    deltas = []
    finish = []
    for chunk in stream:
        delta = chunk.choices[0].delta
        deltas += delta.tool_calls or []
        finish += [chunk.choices[0].finish_reason] if chunk.choices[0].finish_reason else []
    assert finish == ["tool_calls"]
    assert deltas and deltas[0].index == 0 and deltas[0].function.name == "add" and deltas[0].id
    assert json.loads("".join(d.function.arguments or "" for d in deltas if d.index == 0)) == args

    # the tool's answer goes back with the call's id; the tool's name is found from it
    followup = [
        *ASK_ADD,
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": str(sum(args.values()))},
    ]
    again = oa.chat.completions.create(model="smol", messages=followup, tools=[ADD_TOOL], temperature=0, max_tokens=8)
    assert again.choices[0].finish_reason in ("stop", "length", "tool_calls")


def test_stream_helper_accumulates_tool_calls(oa):
    with oa.chat.completions.stream(
        model="smol", messages=ASK_ADD, tools=[ADD_TOOL], tool_choice="required", temperature=0, max_tokens=64
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]
    assert call.function.name == "add" and set(json.loads(call.function.arguments)) == {"a", "b"}


def test_json_schema_answers_always_validate(oa):
    for content in ("A colour and a count, as JSON.", "Describe the sea.", "Write a poem about cats."):
        r = oa.chat.completions.create(
            model="smol",
            messages=[{"role": "user", "content": content}],
            temperature=0,
            max_tokens=64,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "colour", "schema": COLOUR_SCHEMA, "strict": True},
            },
        )
        assert r.choices[0].finish_reason == "stop"
        jsonschema.validate(json.loads(r.choices[0].message.content), COLOUR_SCHEMA)


class Colour(BaseModel):
    colour: Literal["red", "green", "blue"]
    bright: bool


def test_parse_with_a_pydantic_model(oa):
    r = oa.chat.completions.parse(
        model="smol", messages=[{"role": "user", "content": "A colour."}], response_format=Colour, max_tokens=64
    )
    parsed = r.choices[0].message.parsed
    assert isinstance(parsed, Colour)


def test_json_object_is_json(oa):
    r = oa.chat.completions.create(
        model="smol",
        messages=[{"role": "user", "content": "A person as JSON."}],
        temperature=0,
        max_tokens=48,
        response_format={"type": "json_object"},
    )
    if r.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(r.choices[0].message.content), dict)
    else:  # cut by max_tokens: still the start of a JSON object
        assert r.choices[0].message.content.lstrip().startswith("{")


def test_an_image_content_part_reaches_the_vision_model(oa, local):
    data = base64.b64encode(IMAGE.read_bytes()).decode()
    parts = [
        {"type": "text", "text": "What is in the image?"},
        {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{data}"}},
    ]
    r = oa.chat.completions.create(
        model="vis", messages=[{"role": "user", "content": parts}], temperature=0, max_tokens=8
    )
    want = local.chat(
        "vis",
        [{"role": "user", "content": "What is in the image?", "images": [IMAGE.read_bytes()]}],
        options={**GREEDY, "num_predict": 8},
    )
    assert r.choices[0].message.content == want.message.content
    assert r.usage.prompt_tokens == want.prompt_eval_count
    items = [
        {"type": "input_text", "text": parts[0]["text"]},
        {"type": "input_image", "image_url": parts[1]["image_url"]["url"]},
    ]
    resp = oa.responses.create(
        model="vis", input=[{"role": "user", "content": items}], temperature=0, max_output_tokens=8
    )
    assert resp.output_text == want.message.content
    with pytest.raises(openai.BadRequestError) as e:
        oa.chat.completions.create(
            model="vis",
            messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}],
        )
    assert "data: URL" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError):  # a model without a projector
        oa.chat.completions.create(model="smol", messages=[{"role": "user", "content": parts}], max_tokens=2)


def test_reasoning_effort_gives_the_thinking_as_reasoning(oa, local):
    ask = [{"role": "user", "content": "Is 7 a prime number?"}]
    want = local.chat("qwen-style", ask, think="low", options={**GREEDY, "num_predict": 48})
    assert want.message.thinking
    r = oa.chat.completions.create(
        model="qwen-style", messages=ask, temperature=0, max_tokens=48, reasoning_effort="low"
    )
    message = r.choices[0].message
    assert message.reasoning == want.message.thinking and message.content == want.message.content
    chunks = list(
        oa.chat.completions.create(
            model="qwen-style", messages=ask, temperature=0, max_tokens=48, reasoning_effort="low", stream=True
        )
    )
    deltas = [c.choices[0].delta for c in chunks]
    assert "".join(getattr(d, "reasoning", None) or "" for d in deltas) == want.message.thinking
    assert "".join(d.content or "" for d in deltas) == want.message.content
    resp = oa.responses.create(
        model="qwen-style", input=ask[0]["content"], temperature=0, max_output_tokens=48, reasoning={"effort": "low"}
    )
    assert resp.output[0].type == "reasoning" and resp.output[0].summary[0].text == want.message.thinking
    assert resp.output_text == want.message.content
    none = oa.chat.completions.create(
        model="qwen-style", messages=ask, temperature=0, max_tokens=8, reasoning_effort="none"
    )
    assert getattr(none.choices[0].message, "reasoning", None) is None


# -- completions, embeddings, models ---------------------------------------------------------------------
def test_completions_streamed_and_not(oa, local):
    want = local.generate("smol", "The sky is", options=GREEDY)
    r = oa.completions.create(model="smol", prompt="The sky is", temperature=0, max_tokens=N)
    assert r.object == "text_completion" and r.id.startswith("cmpl-")
    assert r.choices[0].text == want.response and r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == N
    chunks = list(
        oa.completions.create(
            model="smol",
            prompt="The sky is",
            temperature=0,
            max_tokens=N,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == want.response
    assert chunks[-1].usage.completion_tokens == N
    r = oa.completions.create(model="smol", prompt="The sky is", temperature=0, max_tokens=4, logprobs=2)
    lp = r.choices[0].logprobs
    assert "".join(lp.tokens) == r.choices[0].text and len(lp.token_logprobs) == 4
    assert all(len(t) == 2 for t in lp.top_logprobs) and lp.text_offset[0] == 0


def test_embeddings_float_base64_and_dimensions(oa, local):
    texts = ["a cat", "a dog"]
    want = local.embed("mini", texts).as_array()
    r = oa.embeddings.create(model="mini", input=texts, encoding_format="float")
    assert r.object == "list" and r.model == "mini" and [d.index for d in r.data] == [0, 1]
    got = np.array([d.embedding for d in r.data])
    assert got.shape == (2, 384) and np.allclose(got, want, atol=1e-6)
    # each value is written as the shortest decimal of its float32, which reads back as exactly that float32
    assert np.array_equal(got.astype(np.float32), want)
    assert r.usage.prompt_tokens > 0 and r.usage.total_tokens == r.usage.prompt_tokens
    # base64: the package's default, decoded by the package itself
    r64 = oa.embeddings.create(model="mini", input=texts)
    assert np.allclose(np.array([d.embedding for d in r64.data]), want, atol=1e-6)
    r64 = oa.embeddings.create(model="mini", input="a cat", encoding_format="base64")
    raw = np.frombuffer(base64.b64decode(r64.data[0].embedding), dtype="<f4")
    assert np.allclose(raw, want[0], atol=1e-6)
    short = oa.embeddings.create(model="mini", input=texts, dimensions=64, encoding_format="float")
    cut = np.array([d.embedding for d in short.data])
    assert cut.shape == (2, 64) and np.allclose(np.linalg.norm(cut, axis=1), 1, atol=1e-5)
    expect = want[:, :64] / np.linalg.norm(want[:, :64], axis=1, keepdims=True)
    assert np.allclose(cut, expect, atol=1e-5)


def test_models_list_and_retrieve(oa):
    ids = {m.id for m in oa.models.list()}
    assert {"smol:latest", "mini:latest", "vis:latest"} <= ids
    m = oa.models.retrieve("smol")
    assert m.id == "smol" and m.object == "model" and m.owned_by == "library" and m.created > 0
    with pytest.raises(openai.NotFoundError) as e:
        oa.models.retrieve("no-such-model")
    assert e.value.body["code"] == "model_not_found"


# -- the Responses API ----------------------------------------------------------------------------------
def test_responses_text_equals_the_chat_answer(oa, local):
    r = oa.responses.create(model="smol", input="Name a colour.", temperature=0, max_output_tokens=N)
    want = local.chat("smol", HI, options=GREEDY)
    assert r.object == "response" and r.id.startswith("resp_") and r.model == "smol"
    assert r.output_text == want.message.content
    assert r.status == "incomplete" and r.incomplete_details.reason == "max_output_tokens"
    assert r.usage.output_tokens == N and r.usage.input_tokens == want.prompt_eval_count
    r = oa.responses.create(
        model="smol",
        instructions="You are terse.",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "Name a colour."}]}],
        temperature=0,
        max_output_tokens=N,
    )
    sys = [{"role": "system", "content": "You are terse."}, *HI]
    assert r.output_text == local.chat("smol", sys, options=GREEDY).message.content


def test_responses_stream_with_the_sdks_helper(oa):
    fmt = {"type": "json_schema", "name": "colour", "schema": COLOUR_SCHEMA, "strict": True}
    with oa.responses.stream(
        model="smol", input="A colour and a count.", temperature=0, max_output_tokens=64, text={"format": fmt}
    ) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds and final.status == "completed"
    jsonschema.validate(json.loads(final.output_text), COLOUR_SCHEMA)
    seqs = []  # sequence numbers count up from 0
    with oa.responses.create(model="smol", input="Hi", max_output_tokens=4, stream=True) as events:
        seqs = [e.sequence_number for e in events]
    assert seqs == list(range(len(seqs)))


def test_responses_function_calls_and_their_outputs(oa):
    tool = {"type": "function", **ADD_TOOL["function"]}
    r = oa.responses.create(
        model="smol", input=ASK_ADD[0]["content"], tools=[tool], tool_choice="required", max_output_tokens=64
    )
    calls = [o for o in r.output if o.type == "function_call"]
    assert calls and calls[0].name == "add" and set(json.loads(calls[0].arguments)) == {"a", "b"}
    followup = [
        {"role": "user", "content": ASK_ADD[0]["content"]},
        {"type": "function_call", "call_id": calls[0].call_id, "name": "add", "arguments": calls[0].arguments},
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "5"},
    ]
    again = oa.responses.create(model="smol", input=followup, tools=[tool], temperature=0, max_output_tokens=8)
    assert again.status in ("completed", "incomplete")
    streamed = list(
        oa.responses.create(
            model="smol",
            input=ASK_ADD[0]["content"],
            tools=[tool],
            tool_choice="required",
            max_output_tokens=64,
            stream=True,
        )
    )
    done = [e.item for e in streamed if e.type == "response.output_item.done" and e.item.type == "function_call"]
    assert done and done[0].name == "add" and streamed[-1].response.output[-1].type == "function_call"


def test_responses_raw_events_and_refusals(http):
    body = {"model": "smol", "input": "Hi", "max_output_tokens": 3, "stream": True}
    with http.stream("POST", "/v1/responses", json=body) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        text = r.read().decode()
    assert "[DONE]" not in text
    for e in text[:-2].split("\n\n"):
        kind, data = e.split("\n")
        assert kind.startswith("event: ") and data.startswith("data: ")
        assert json.loads(data.removeprefix("data: "))["type"] == kind.removeprefix("event: ")
    for bad in (
        {"model": "smol", "input": "Hi", "previous_response_id": "resp_x"},
        {"model": "smol", "input": []},
        {"model": "smol", "input": "Hi", "tools": [{"type": "web_search"}]},
    ):
        r = http.post("/v1/responses", json=bad)
        assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = http.post("/v1/responses", json={"model": "no-such-model", "input": "Hi"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


# -- errors ----------------------------------------------------------------------------------------------
def test_an_unknown_model_is_a_404_in_openais_shape(oa, http):
    with pytest.raises(openai.NotFoundError) as e:
        oa.chat.completions.create(model="no-such-model", messages=HI)
    assert e.value.status_code == 404 and "not found" in e.value.message
    assert e.value.body["type"] == "invalid_request_error" and e.value.body["code"] == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        list(oa.chat.completions.create(model="no-such-model", messages=HI, stream=True))
    with pytest.raises(openai.NotFoundError):
        oa.embeddings.create(model="no-such-model", input="x")
    r = http.post("/v1/completions", json={"model": "no-such-model", "prompt": "x"})
    assert r.status_code == 404 and set(r.json()["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"model": "smol", "messages": HI, "n": 2}, "n:"),
        ({"model": "smol", "messages": []}, "messages"),
        ({"model": "smol"}, "messages"),
        ({"messages": HI}, "model"),
        ({"model": "smol", "messages": [{"role": "wizard", "content": "x"}]}, "role"),
        ({"model": "smol", "messages": HI, "response_format": {"type": "yaml"}}, "response_format"),
        ({"model": "smol", "messages": HI, "response_format": {"type": "json_schema"}}, "schema"),
        ({"model": "smol", "messages": HI, "top_logprobs": 3}, "logprobs"),
        ({"model": "smol", "messages": HI, "logprobs": True, "top_logprobs": 99}, "top_logprobs"),
        ({"model": "smol", "messages": HI, "stop": 5}, "stop"),
        ({"model": "smol", "messages": HI, "max_tokens": "ten"}, "max_tokens"),
        ({"model": "smol", "messages": HI, "tool_choice": "sometimes"}, "tool_choice"),
        ({"model": "smol", "messages": HI, "reasoning_effort": "extreme"}, "reasoning"),
        ({"model": "x.gguf", "messages": HI}, "not a model name"),
    ],
)
def test_bad_chat_requests_are_400s_in_openais_shape(oa, body, words):
    with pytest.raises(openai.BadRequestError) as e:
        oa.post("/chat/completions", body=body, cast_to=httpx.Response)
    assert e.value.status_code == 400 and e.value.body["type"] == "invalid_request_error"
    assert words in e.value.body["message"]


def test_raw_http_status_codes_and_bodies(http):
    r = http.post("/v1/chat/completions", content=b"{not json")
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/json")
    assert r.json()["error"]["type"] == "invalid_request_error"
    r = http.post("/v1/embeddings", json={"model": "mini", "input": "x", "encoding_format": "int8"})
    assert r.status_code == 400 and "encoding_format" in r.json()["error"]["message"]
    r = http.post("/v1/embeddings", json={"model": "mini", "input": []})
    assert r.status_code == 400
    r = http.post("/v1/embeddings", json={"model": "mini", "input": ""})
    assert r.status_code == 400 and "empty" in r.json()["error"]["message"]
    r = http.get("/v1/chat/completions")
    assert r.status_code == 405 and "error" in r.json() and "message" in r.json()["error"]
    r = http.get("/v1/no-such-route")
    assert r.status_code == 404 and "message" in r.json()["error"]
    r = http.get("/v1/models")
    assert r.status_code == 200 and r.json()["object"] == "list"


def test_raw_sse_framing(http, local):
    body = {"model": "smol", "messages": HI, "temperature": 0, "max_tokens": N, "stream": True}
    with http.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        text = r.read().decode()
    events = _sse(text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "usage" not in chunks[0]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == (
        local.chat("smol", HI, options=GREEDY).message.content
    )
    assert chunks[-1]["choices"][0]["finish_reason"] == "length" and chunks[-1]["choices"][0]["delta"] == {}
    body = {"model": "smol", "prompt": "The sky is", "temperature": 0, "max_tokens": 4, "stream": True}
    with http.stream("POST", "/v1/completions", json=body) as r:
        events = _sse(r.read().decode())
    assert events[-1] == "[DONE]" and json.loads(events[-2])["choices"][0]["finish_reason"] == "length"


GIVE_UP_S = 300


def _wait_for(what: str, found) -> None:
    """Polls ``found`` (a bound on how long a failing test takes, not a timing assertion)."""
    deadline = time.monotonic() + GIVE_UP_S
    while not found():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting until {what}")
        time.sleep(0.01)


def _busy(aclient: AsyncClient) -> bool:
    """Whether a slot of the server's ``smol`` runs a job (read from its AsyncClient, as test_server_http.py)."""
    sync = aclient._client
    entry = sync._scheduler.get(sync.store.resolve("smol").path)
    return entry is not None and any(s.busy for s in entry.runner.slot_states())


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_a_client_that_disconnects_cancels_its_generation(url, aclient, path, local):
    body = {"model": "smol", "temperature": 0, "max_tokens": 4000, "stream": True}
    body |= {"messages": [{"role": "user", "content": "Count from 1 to 1000."}]} if "chat" in path else {}
    body |= {"prompt": "Count from 1 to 1000: 1, 2,"} if "chat" not in path else {}
    host, port = url.removeprefix("http://").split(":")
    data = json.dumps(body).encode()
    with socket.create_connection((host, int(port))) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        sock.sendall(head.encode() + f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        got = b""
        while got.count(b"data: ") < 3:  # the stream has begun: the slot is generating
            got += sock.recv(4096)
        assert _busy(aclient)
    _wait_for("the slot is free", lambda: not _busy(aclient))


def test_a_stream_cut_by_the_request_timeout_raises_in_the_openai_package(aclient):
    """The app's timeout ends a begun stream with an error event, which the package raises as APIError."""
    with running(create_app(aclient, request_timeout_s=1.5)) as base:
        with openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0) as c:
            # Greedy, this prompt runs to max_tokens (over 1,500 tokens): no CPU ends it inside 1.5 s. A
            # sampled answer may end early ("1, 2, 3 ..."), before the timeout.
            ask = [{"role": "user", "content": "Write the numbers from 1 to 1000, separated by commas."}]
            stream = c.chat.completions.create(model="smol", messages=ask, max_tokens=4000, temperature=0, stream=True)
            with pytest.raises(openai.APIError) as e:
                for _ in stream:
                    pass
    assert "timed out" in e.value.message
    _wait_for("the slot is free", lambda: not _busy(aclient))
