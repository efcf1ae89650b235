"""The server with the official ``ollama`` Python package as its client: a client that nobody here wrote.

A server on 127.0.0.1 (Uvicorn in a thread, ``tests/http_server.py``) over an
AsyncClient on a store of its own; ``ollama.Client(host=...)`` and
``ollama.AsyncClient`` call it as they call Ollama. Answers are compared with
what an in-process :class:`llamanative.Client` on the same store gives for the
same greedy request, so the test checks the wire, not the model.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

ollama = pytest.importorskip("ollama")
pytest.importorskip("starlette")

from http_server import running  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from llamanative import AsyncClient, Client  # noqa: E402
from llamanative.server import create_app  # noqa: E402

GREEDY = {"temperature": 0, "num_predict": 12}
HI = [{"role": "user", "content": "Name a colour."}]


@pytest.fixture(scope="module")
def store(tmp_path_factory, smollm2_path, minilm_path, qwen3_style_path) -> Path:
    root = tmp_path_factory.mktemp("served-store")
    with Client(models_dir=root) as c:
        c.create("smol", from_=str(smollm2_path))
        c.create("mini", from_=str(minilm_path))
        c.create("qwen-style", from_=str(qwen3_style_path))
    return root


@pytest.fixture(scope="module")
def url(store) -> Iterator[str]:
    client = AsyncClient(models_dir=store)
    with running(create_app(client)) as base:
        yield base
    asyncio.run(client.close())


@pytest.fixture(scope="module")
def local(store) -> Iterator[Client]:
    """The in-process answers to compare with."""
    with Client(models_dir=store) as c:
        yield c


@pytest.fixture
def oc(url) -> Iterator[ollama.Client]:
    with ollama.Client(host=url) as c:
        yield c


def test_chat_equals_the_in_process_answer(oc, local):
    r = oc.chat("smol", messages=HI, options=GREEDY)
    assert isinstance(r, ollama.ChatResponse)
    assert r.done and r.done_reason == "length" and r.eval_count == GREEDY["num_predict"]
    assert r.message.role == "assistant"
    assert r.message.content == local.chat("smol", HI, options=GREEDY).message.content
    assert r.prompt_eval_count and r.total_duration and r.created_at


def test_streamed_chat_joins_to_the_same_answer(oc, local):
    parts = list(oc.chat("smol", messages=HI, options=GREEDY, stream=True))
    assert all(not p.done for p in parts[:-1]) and parts[-1].done
    assert parts[-1].eval_count == GREEDY["num_predict"]
    assert "".join(p.message.content for p in parts) == local.chat("smol", HI, options=GREEDY).message.content


def test_generate_streamed_and_not(oc, local):
    want = local.generate("smol", "The sky is", options=GREEDY)
    r = oc.generate("smol", "The sky is", options=GREEDY)
    assert r.response == want.response and r.done and r.context == want.context
    parts = list(oc.generate("smol", "The sky is", options=GREEDY, stream=True))
    assert "".join(p.response for p in parts) == want.response and parts[-1].done


def test_embed_and_legacy_embeddings(oc, local):
    r = oc.embed("mini", input=["a cat", "a dog"])
    want = local.embed("mini", ["a cat", "a dog"])
    assert len(r.embeddings) == 2 and len(r.embeddings[0]) == 384
    for got, exp in zip(r.embeddings, want.embeddings):
        assert got == pytest.approx(list(exp), abs=1e-6)
    # float32's shortest decimals, as Ollama writes its []float32: they read back as exactly the engine's values
    assert np.array_equal(np.asarray(r.embeddings, dtype=np.float32), want.as_array())
    legacy = oc.embeddings("mini", prompt="a cat")
    assert legacy.embedding == pytest.approx(list(local.embeddings("mini", prompt="a cat").embedding), abs=1e-6)


def test_list_show_ps(oc):
    names = {m.model for m in oc.list().models}
    assert {"smol:latest", "mini:latest", "qwen-style:latest"} <= names
    shown = oc.show("smol")
    assert shown.details.family == "llama" and shown.modelinfo["general.architecture"] == "llama"
    assert "completion" in shown.capabilities
    oc.generate("smol", "Hi", options={"num_predict": 1})
    running_models = {m.model for m in oc.ps().models}
    assert "smol:latest" in running_models


def test_unknown_model_is_a_404_response_error(oc):
    with pytest.raises(ollama.ResponseError) as e:
        oc.chat("no-such-model", messages=HI)
    assert e.value.status_code == 404 and "not found" in e.value.error
    with pytest.raises(ollama.ResponseError) as e:
        list(oc.chat("no-such-model", messages=HI, stream=True))
    assert e.value.status_code == 404


def test_create_from_an_uploaded_blob_copy_and_delete(oc, minilm_path):
    digest = oc.create_blob(minilm_path)
    assert digest.startswith("sha256:")
    assert oc.create("uploaded", files={"mini.gguf": digest}).status == "success"
    assert oc.create("smol-terse", from_="smol", system="Answer in one word.", stream=False).status == "success"
    assert [p.status for p in oc.create("smol-terse2", from_="smol", stream=True)][-1] == "success"
    assert "Answer in one word." in oc.show("smol-terse").modelfile
    assert oc.copy("uploaded", "uploaded-copy").status == "success"
    assert len(oc.embed("uploaded-copy", input="a cat").embeddings[0]) == 384
    for name in ("uploaded", "uploaded-copy", "smol-terse", "smol-terse2"):
        assert oc.delete(name).status == "success"
    assert not {"uploaded:latest", "uploaded-copy:latest"} & {m.model for m in oc.list().models}
    with pytest.raises(ollama.ResponseError) as e:
        oc.delete("uploaded")
    assert e.value.status_code == 404


def test_pull_from_a_loopback_registry_streams_progress(oc, monkeypatch, minilm_path):
    from test_pull import MODEL, Server, publish

    registry = Server()
    try:
        pub = publish(registry, "library/tiny", "v1", [(MODEL, minilm_path)])
        monkeypatch.setenv("LLAMANATIVE_REGISTRY", registry.url)
        steps = list(oc.pull("tiny:v1", stream=True))
        statuses = [s.status for s in steps]
        assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
        layer = [s for s in steps if s.digest == pub.layers[0][1]]
        assert layer and layer[-1].completed == layer[-1].total == pub.layers[0][2]
        assert "tiny:v1" in {m.model for m in oc.list().models}
        assert oc.pull("tiny:v1").status == "success"  # not streamed: the last progress object
        oc.delete("tiny:v1")
    finally:
        registry.close()


def add_two_numbers(a: int, b: int) -> int:
    """Add two numbers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


def _calls(message) -> list[tuple[str, dict]]:
    return [(c.function.name, dict(c.function.arguments)) for c in message.tool_calls or ()]


def test_tools_given_as_python_functions(oc, local):
    ask = [{"role": "user", "content": "What is 3 plus 4? Use the tool."}]
    options = {"temperature": 0, "num_predict": 64}
    r = oc.chat("qwen-style", messages=ask, tools=[add_two_numbers], options=options)
    want = local.chat("qwen-style", ask, tools=[add_two_numbers], options=options)
    assert _calls(r.message) == _calls(want.message)
    assert r.message.content == want.message.content
    if r.message.tool_calls:  # the loop ollama-python's README shows: call, answer with the result
        call = r.message.tool_calls[0]
        result = add_two_numbers(**call.function.arguments)
        followup = [*ask, r.message, {"role": "tool", "content": str(result), "tool_name": call.function.name}]
        again = oc.chat("qwen-style", messages=followup, tools=[add_two_numbers], options=options)
        assert again.done


class Colour(BaseModel):
    name: str
    hex: str


def test_structured_output_with_a_pydantic_schema(oc):
    r = oc.chat("smol", messages=HI, format=Colour.model_json_schema(), options={"temperature": 0, "num_predict": 80})
    colour = Colour.model_validate_json(r.message.content)
    assert colour.name


def test_thinking(oc, local):
    ask = [{"role": "user", "content": "Is 7 a prime number?"}]
    options = {"temperature": 0, "num_predict": 48}
    r = oc.chat("qwen-style", messages=ask, think=True, options=options)
    want = local.chat("qwen-style", ask, think=True, options=options)
    assert r.message.thinking == want.message.thinking and r.message.content == want.message.content
    assert r.message.thinking


def test_async_client(url, local):
    # A context size of its own loads a fresh runner on both sides: the server's and the local one then
    # evaluate the same prompts from the same empty cache. With a prefix cached by earlier tests on one side
    # only, a reused prefix rounds differently and a greedy near-tie may go the other way (docs/design/engine.md,
    # "Prefix reuse and rounding"), which says nothing about the async client.
    fresh = {**GREEDY, "num_ctx": 3072}

    async def main():
        c = ollama.AsyncClient(host=url)
        r = await c.chat("smol", messages=HI, options=fresh)
        parts = [p async for p in await c.generate("smol", "The sky is", options=fresh, stream=True)]
        both = await asyncio.gather(*(c.chat("smol", messages=HI, options=GREEDY) for _ in range(3)))
        return r, parts, both

    r, parts, both = asyncio.run(main())
    assert r.message.content == local.chat("smol", HI, options=fresh).message.content
    assert "".join(p.response for p in parts) == local.generate("smol", "The sky is", options=fresh).response
    # three at once, batched by the engine (their numerics may differ from a lone run's in the last bits)
    assert all(b.done and b.eval_count == GREEDY["num_predict"] and b.message.content for b in both)


def test_logprobs_images_refused_without_a_projector_and_keep_alive(oc):
    r = oc.generate("smol", "Hi", options={"num_predict": 3, "temperature": 0}, logprobs=True, top_logprobs=2)
    assert r.logprobs and len(r.logprobs[0].top_logprobs) == 2
    with pytest.raises(ollama.ResponseError) as e:
        oc.generate("smol", "What is this?", images=[b"\x89PNG not really"])
    assert e.value.status_code == 400 and "vision" in e.value.error
    oc.generate("smol", keep_alive=0)  # an empty prompt with keep_alive 0 unloads, as Ollama
    assert "smol:latest" not in {m.model for m in oc.ps().models}
    assert json.loads(json.dumps(oc.ps().model_dump(mode="json")))  # the wire parsed into ollama's types
