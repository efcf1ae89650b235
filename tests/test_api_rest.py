"""The rest of the documented ``api`` surface, through the Client, on the real test models.

Request objects for embed/embeddings/show, ``default_client()``, the
``remote_model``/``remote_host`` fields, the JSON ``str()`` of the tool types,
``show(verbose=True)`` tensors, ``ShowRequest.system``/``template``/``options``,
``ps().size_vram`` and the generate fields llamanative never sets.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import subprocess
import sys
import textwrap

import numpy as np

import llamanative
from llamanative import Client
from llamanative.engine.placement import device_bytes
from llamanative.types import (
    ChatResponse,
    EmbeddingRequest,
    EmbedRequest,
    GenerateResponse,
    ListModelResponse,
    Options,
    PropertyType,
    ShowRequest,
    ShowResponse,
    ToolCallFunctionArguments,
    ToolFunction,
    ToolFunctionParameters,
    Tools,
)

GREEDY = {"temperature": 0, "num_predict": 4}


def test_embed_and_embeddings_take_their_request_objects(client):
    by_kw = client.embed(model="mini", input=["a cat", "a dog"])
    by_req = client.embed(EmbedRequest(model="mini", input=["a cat", "a dog"]))
    assert np.allclose(by_req.as_array(), by_kw.as_array(), atol=1e-5) and len(by_req.embeddings) == 2
    cut = client.embed(EmbedRequest(model="mini", input="a cat", dimensions=8))
    assert len(cut.embeddings[0]) == 8
    legacy = client.embeddings(EmbeddingRequest(model="mini", prompt="a cat"))
    assert np.allclose(legacy.embedding, client.embeddings(model="mini", prompt="a cat").embedding, atol=1e-5)


def test_the_async_client_takes_the_request_objects_too(model_store):
    async def run():
        async with llamanative.AsyncClient(models_dir=model_store) as c:
            assert len((await c.embed(EmbedRequest(model="mini", input=["x"]))).embeddings) == 1
            assert (await c.show(ShowRequest(model="smol", system="Be brief."))).system == "Be brief."

    asyncio.run(run())


def test_show_takes_its_request_object_and_honours_system_template_and_options(client):
    plain = client.show("smol")
    same = client.show(ShowRequest(model="smol"))
    assert same.modelfile == plain.modelfile and same.system == plain.system and same.tensors is None
    shown = client.show(
        ShowRequest(model="smol", system="You are a pirate.", template="{{ .Prompt }}", options={"temperature": 0.3})
    )
    # As Ollama: system and template replace the stored ones in the response and its Modelfile ...
    assert shown.system == "You are a pirate." and shown.template == "{{ .Prompt }}"
    assert 'SYSTEM "You are a pirate."' in shown.modelfile or "SYSTEM You are a pirate." in shown.modelfile
    assert "{{ .Prompt }}" in shown.modelfile
    # ... and the options are merged into the Modelfile's parameters only; `parameters` is what is stored.
    assert "PARAMETER temperature 0.3" in shown.modelfile and "temperature" not in (shown.parameters or "")
    assert client.show("smol").system == plain.system  # nothing was stored
    typed = client.show(ShowRequest(model="smol", options=Options(num_ctx=1024)))
    assert "PARAMETER num_ctx 1024" in typed.modelfile


def test_show_verbose_lists_the_tensors_with_their_types_and_shapes(client):
    resp = client.show("smol", verbose=True)
    by_name = {t.name: t for t in resp.tensors}
    assert len(by_name) == len(resp.tensors) > 100
    n_layer = resp.model_info["llama.block_count"]
    n_embd = resp.model_info["llama.embedding_length"]
    vocab = len(resp.model_info["tokenizer.ggml.tokens"])
    emb = by_name["token_embd.weight"]
    assert emb.shape == [n_embd, vocab] and emb.type  # ggml order: the row length first
    assert by_name[f"blk.{n_layer - 1}.attn_norm.weight"].type == "F32"
    kinds = {t.type for t in resp.tensors}
    assert all(re.fullmatch(r"(F|BF|Q|IQ|TQ|MXFP)\d+(_[0-9A-Z]+)*", k) for k in kinds), kinds  # ggml's, upper case
    assert kinds - {"F32"}  # a quantized model: its matrices are not F32
    # The same shapes as the parameter count of `details`.
    total = sum(math.prod(t.shape) for t in resp.tensors)
    assert resp.details.parameter_size in (llamanative.client._details.human_params(total),)
    wire = json.loads(resp.model_dump_json())
    assert wire["tensors"][0].keys() == {"name", "type", "shape"}
    assert ShowResponse.model_validate(wire).tensors == resp.tensors  # round-trips


def test_remote_fields_are_empty_for_local_models_and_round_trip(client):
    chat = client.chat("smol", [{"role": "user", "content": "Hi"}], options=GREEDY)
    gen = client.generate("smol", "Hi", options=GREEDY)
    listed = client.list().models
    shown = client.show("smol")
    for resp in (chat, gen, shown, *listed):
        assert resp.remote_model is None and resp.remote_host is None
        assert "remote_model" not in resp and "remote_host" not in json.loads(resp.model_dump_json())
    remote = {"remote_model": "gpt-oss:120b", "remote_host": "https://ollama.com:443"}
    for cls, base in (
        (ChatResponse, {"model": "m", "message": {"role": "assistant", "content": "x"}, "done": True}),
        (GenerateResponse, {"model": "m", "response": "x", "done": True}),
        (ListModelResponse, {"name": "m", "model": "m"}),
        (ShowResponse, {"template": "t"}),
    ):
        r = cls.model_validate({**base, **remote})
        assert r.remote_model == "gpt-oss:120b" and r["remote_host"] == "https://ollama.com:443"
        assert {k: json.loads(r.model_dump_json())[k] for k in remote} == remote
        assert cls.model_validate_json(r.model_dump_json()) == r


def test_generate_never_sets_tool_calls_or_a_system_fingerprint(client):
    resp = client.generate("smol", "Call a tool.", options=GREEDY)
    assert resp.tool_calls is None and resp.system_fingerprint is None
    assert "tool_calls" not in resp.to_dict() and "system_fingerprint" not in resp.to_dict()


def test_tool_types_print_as_json(client):
    def get_weather(city: str, unit: str | None = None) -> str:
        """Get the weather.

        Args:
            city: The city.
            unit: celsius or fahrenheit.
        """
        return "sunny"

    # The request's tools are a Tools list; the model's tool calls carry ToolCallFunctionArguments.
    resp = client.chat(
        "smol",
        [{"role": "user", "content": "Weather in Paris?"}],
        tools=[get_weather],
        tool_choice="required",
        options={"temperature": 0, "num_predict": 48},
    )
    call = resp.message.tool_calls[0]
    args = call.function.arguments
    assert isinstance(args, ToolCallFunctionArguments) and isinstance(args, dict)
    assert str(args) == json.dumps(dict(args), separators=(",", ":"), ensure_ascii=False)  # Go's json.Marshal
    request = llamanative.ChatRequest(model="smol", tools=[get_weather])
    tools = request.tools
    assert isinstance(tools, Tools) and json.loads(str(tools)) == json.loads(request.model_dump_json())["tools"]
    fn = tools[0].function
    assert isinstance(fn, ToolFunction) and json.loads(str(fn))["name"] == "get_weather"
    params = fn.parameters
    assert isinstance(params, ToolFunctionParameters) and json.loads(str(params))["type"] == "object"
    assert str(params) == params.model_dump_json() and str(fn) == fn.model_dump_json()
    assert str(params.properties["city"].type) == "string"
    typed = llamanative.ChatRequest(
        model="smol",
        tools=[{"function": {"name": "f", "parameters": {"properties": {"u": {"type": ["string", "null"]}}}}}],
    )
    unit = typed.tools[0].function.parameters.properties["u"].type
    assert isinstance(unit, PropertyType) and str(unit) == "[string null]" and unit == ["string", "null"]
    assert json.loads(typed.model_dump_json())["tools"][0]["function"]["parameters"]["properties"]["u"] == {
        "type": ["string", "null"]
    }
    assert str(ToolCallFunctionArguments()) == "{}" and str(Tools()) == "[]"


def test_default_client_is_the_shared_client_of_the_module_functions(model_store, tmp_path):
    code = textwrap.dedent(
        """
        import llamanative
        c = llamanative.default_client()
        assert isinstance(c, llamanative.Client) and llamanative.default_client() is c
        assert [m.name for m in llamanative.list().models] == [m.name for m in c.list().models]
        assert "smol:latest" in [m.name for m in c.list().models]
        print("ok")
        """
    )
    env = {"LLAMANATIVE_MODELS": str(model_store), "PATH": "/usr/bin:/bin"}
    # Outside the checkout: there `import llamanative` would find its source tree, which has no _core.
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert out.stdout.strip() == "ok", out.stderr


def test_ps_size_vram_is_zero_on_the_cpu_and_counts_offloaded_weights(client, smollm2_path):
    client.generate("smol", "Hi", options=GREEDY)
    (m,) = [p for p in client.ps().models if p.name.startswith("smol")]
    gpu = llamanative.engine.placement.gpu_available()
    assert m.size_vram == (m.size if gpu else 0) or (gpu and 0 < m.size_vram <= m.size)
    # llama.cpp's placement rule on SmolLM2's own tensors (what a GPU machine would report).
    tensors = [(name, size) for name, _offset, size, _shape in llamanative._core.read_gguf_tensors(smollm2_path)]
    n_layer = client.show("smol").model_info["llama.block_count"]
    weights = sum(size for _name, size in tensors)
    embd = dict(tensors)["token_embd.weight"]

    def on(*layers: tuple[str, int]) -> list[dict]:
        return [{"device": d, "backend": d.rstrip("0"), "description": d, "layers": n} for d, n in layers]

    assert device_bytes(tensors, on(("CPU", n_layer + 1))) == {"CPU": weights}
    # All layers on a GPU: everything but the input layer, plus the tied output's copy of the embeddings.
    assert device_bytes(tensors, on(("GPU0", n_layer + 1)))["GPU0"] == weights  # SmolLM2 has no output.weight
    # n layers: the output layer and the last n - 1 blocks.
    n = n_layer // 2 + 1
    blocks = sum(
        size for name, size in tensors if name.startswith("blk.") and int(name.split(".")[1]) >= n_layer + 1 - n
    )
    output = sum(size for name, size in tensors if name.startswith("output"))
    split = device_bytes(tensors, on(("CPU", n_layer + 1 - n), ("GPU0", n)))
    assert split["GPU0"] == blocks + output + embd
    assert split["CPU"] + split["GPU0"] == weights + embd
    # Two devices: consecutive ranges, the output layer on the last one.
    two = device_bytes(tensors, on(("CPU", 1), ("GPU0", n_layer // 2), ("GPU1", n_layer - n_layer // 2)))
    first = sum(
        size for name, size in tensors if name.startswith("blk.") and 1 <= int(name.split(".")[1]) <= n_layer // 2
    )
    assert two["GPU0"] == first
    assert two["CPU"] + two["GPU0"] + two["GPU1"] == weights + embd


def test_a_client_on_an_empty_store_still_constructs(tmp_path):
    with Client(models_dir=tmp_path) as c:
        assert c.list().models == []
