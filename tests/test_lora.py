"""LoRA adapters: the native adapter, its checks, the engine's steps by adapter set, the store and the Client.

The adapters are random ones for SmolLM2 written by ``scripts/make_test_lora.py``
(conftest's ``lora_paths``): their output means nothing, but it differs from the
base model's, and llama.cpp's own ``llama-completion --lora`` / ``--lora-scaled``
on the same files is the reference of the greedy outputs.
"""

from __future__ import annotations

import gc
import re
import threading
from pathlib import Path

import gguf
import pytest

from llamanative import Client, _core
from llamanative.engine import CompletionJob, Failed, Piece, Runner, RunnerConfig, SamplingParams
from llamanative.engine.adapters import GROUP_STEPS, NO_ADAPTERS, adapter_set
from llamanative.errors import AdapterLoadError, StatusError
from llamanative.store.modelfile import parse_modelfile
from llamanative.store.store import MEDIA_ADAPTER

GREEDY = SamplingParams(temperature=0)
PROMPT = "The capital of France is"
N = 24
# Long enough (over MIN_PARK_TOKENS) for a finished request's sequence to be parked and restored.
LONG = " ".join(f"Item {i} of the list is the number {i * 7}." for i in range(12))


def collect(job: CompletionJob) -> tuple[str, object]:
    pieces = []
    while True:
        ev = job.events.get(timeout=300)
        if isinstance(ev, Piece):
            pieces.append(ev.text)
        elif isinstance(ev, Failed):
            raise ev.error
        else:
            return "".join(pieces), ev


def submit(runner: Runner, prompt: str, adapters=(), n: int = N) -> CompletionJob:
    job = CompletionJob(runner.model.vocab.tokenize(prompt), GREEDY, n, adapters=adapter_set(adapters))
    runner.submit(job)
    return job


def complete(runner: Runner, prompt: str, adapters=(), n: int = N) -> tuple[str, object]:
    return collect(submit(runner, prompt, adapters, n))


@pytest.fixture(scope="module")
def runner(smollm2_path, lora_paths):
    a, b, _wrong = lora_paths
    r = Runner(str(smollm2_path), RunnerConfig(n_ctx=1024, n_parallel=4, adapters=(str(a), str(b))))
    yield r
    r.close()


@pytest.fixture(scope="module")
def base_text(runner):
    return complete(runner, PROMPT)[0]


# -- the native adapter ------------------------------------------------------------------------------------------
def test_adapter_reads_its_header(smollm2, lora_paths):
    with _core.LoraAdapter(lora_paths[0], smollm2) as a:
        assert (a.alpha, a.rank, a.architecture) == (16.0, 8, "llama")
        assert len(a.targets) == 3 * 30 and "blk.0.attn_q.weight" in a.targets
        assert a.metadata["general.type"] == "adapter" and a.metadata["adapter.type"] == "lora"
    assert a.closed


def test_adapter_lifetimes(smollm2_path, lora_paths):
    model = _core.Model(smollm2_path)
    a = _core.LoraAdapter(lora_paths[0], model)
    ctx = _core.Context(model, n_ctx=256)
    ctx.set_adapters([a], [0.5])
    assert ctx.adapters == ((a, 0.5),)
    with pytest.raises(RuntimeError, match="context"):
        a.close()  # the context points to it
    ctx.set_adapters([])
    ctx.set_adapters([a])
    ctx.close()
    with pytest.raises(RuntimeError, match="LoRA adapter"):
        model.close()  # llama.cpp would free the adapter with it
    a.close()
    a.close()
    model.close()
    # Dropped without close(): the context first, then the adapter, then the model, whatever the order of the names.
    model = _core.Model(smollm2_path)
    a = _core.LoraAdapter(lora_paths[0], model)
    ctx = _core.Context(model, n_ctx=256)
    ctx.set_adapters([a])
    del model, a
    gc.collect()
    assert ctx.adapters[0][0].model is ctx.model
    del ctx
    gc.collect()


def test_set_adapters_checks_its_arguments(smollm2, smollm2_path, lora_paths):
    a = _core.LoraAdapter(lora_paths[0], smollm2)
    other_model = _core.Model(smollm2_path)
    other = _core.LoraAdapter(lora_paths[1], other_model)
    with _core.Context(smollm2, n_ctx=256) as ctx:
        with pytest.raises(TypeError, match="not a LoraAdapter"):
            ctx.set_adapters([str(lora_paths[0])])
        with pytest.raises(ValueError, match="one scale per adapter"):
            ctx.set_adapters([a], [1.0, 2.0])
        with pytest.raises(ValueError, match="twice"):
            ctx.set_adapters([a, a])
        with pytest.raises(ValueError, match="not a finite number"):
            ctx.set_adapters([a], [float("nan")])
        with pytest.raises(ValueError, match="another model"):
            ctx.set_adapters([other])
        assert ctx.adapters == ()
    other.close()
    other_model.close()
    a.close()
    with _core.Context(smollm2, n_ctx=256) as ctx, pytest.raises(ValueError, match="closed"):
        ctx.set_adapters([a])


def _edited(src: Path, dst: Path, fields: dict) -> Path:
    from gguf_edit import with_fields

    return with_fields(src, dst, fields)


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda paths, tmp, model, minilm: (paths[0], minilm), "for a 'llama' model; the model is a 'bert' model"),
        (lambda paths, tmp, model, minilm: (paths[2], model), "do not fit the model's weight [576, 576]"),
        (lambda paths, tmp, model, minilm: (model, model), "is not a LoRA adapter"),
        (
            lambda paths, tmp, model, minilm: (
                _edited(paths[0], tmp / "type.gguf", {"general.type": (1, gguf.GGUFValueType.UINT32)}),
                model,
            ),
            "general.type is not a string",
        ),
        (
            lambda paths, tmp, model, minilm: (
                _edited(paths[0], tmp / "alpha.gguf", {"adapter.lora.alpha": (16, gguf.GGUFValueType.UINT32)}),
                model,
            ),
            "adapter.lora.alpha is not a float32",
        ),
        (
            lambda paths, tmp, model, minilm: (
                _edited(
                    paths[0],
                    tmp / "alora.gguf",
                    {"adapter.alora.invocation_tokens": ([1, 2], gguf.GGUFValueType.ARRAY)},
                ),
                model,
            ),
            "activated LoRA",
        ),
    ],
    ids=["architecture", "shapes", "not-an-adapter", "type-not-a-string", "alpha-not-float32", "alora"],
)
def test_a_mismatched_adapter_is_a_typed_error(make, words, lora_paths, tmp_path, smollm2_path, minilm_path):
    """Each of these would make llama.cpp refuse the adapter, or abort the process: refused first, typed."""
    adapter, model_path = make(lora_paths, tmp_path, smollm2_path, minilm_path)
    with pytest.raises(AdapterLoadError, match=re.escape(words)) as err:
        _core.check_lora_adapter(adapter, model_path)
    assert err.value.path == str(adapter)
    with _core.Model(model_path) as model, pytest.raises(AdapterLoadError, match=re.escape(words)):
        _core.LoraAdapter(adapter, model)


def test_a_truncated_or_missing_adapter(lora_paths, tmp_path, smollm2):
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(Path(lora_paths[0]).read_bytes()[:100_000])
    with pytest.raises(AdapterLoadError, match="truncated"):
        _core.LoraAdapter(cut, smollm2)
    with pytest.raises(FileNotFoundError):
        _core.LoraAdapter(tmp_path / "none.gguf", smollm2)


# -- the engine: parity with llama.cpp, scale 0, groups ------------------------------------------------------------
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_greedy_matches_llama_completion_with_the_adapter(runner, base_text, lora_paths, llama_greedy, scale):
    text, fin = complete(runner, PROMPT, [(0, scale)])
    flag = ["--lora", str(lora_paths[0])] if scale == 1.0 else ["--lora-scaled", f"{lora_paths[0]}:{scale}"]
    assert text == llama_greedy(runner.path, PROMPT, N, "-c", "1024", "-fa", runner.flash_attn, *flag)
    assert 0 < fin.eval_count <= N
    assert text != base_text  # the adapter changes the output, so the comparison means something


def test_two_adapters_match_llama_completion(runner, base_text, lora_paths, llama_greedy):
    a, b, _ = lora_paths
    text, _fin = complete(runner, PROMPT, [(0, 1.0), (1, 0.5)])
    ref = llama_greedy(runner.path, PROMPT, N, "-c", "1024", "-fa", runner.flash_attn, "--lora", str(a))
    assert text == llama_greedy(
        runner.path, PROMPT, N, "-c", "1024", "-fa", runner.flash_attn, "--lora", str(a), "--lora-scaled", f"{b}:0.5"
    )
    assert text not in (base_text, ref)


def test_scale_zero_is_the_base_model(runner, base_text, llama_greedy):
    assert adapter_set([(0, 0.0), (1, 0.0)]) == NO_ADAPTERS
    assert complete(runner, PROMPT, [(0, 0.0)])[0] == base_text
    assert base_text == llama_greedy(runner.path, PROMPT, N, "-c", "1024", "-fa", runner.flash_attn)


SETS = [(), ((0, 1.0),), ((0, 0.5),), ((1, 1.0),), ((0, 1.0), (1, 1.0))]
CONCURRENT = "Write the names of three colours:"


def test_concurrent_requests_with_different_adapters_give_their_own_output(smollm2_path, lora_paths):
    """Each set alone, then all five at once (on four slots) on a runner with nothing cached: each request is then
    evaluated as it was alone (its whole prompt in one decode, then a token a step), in steps of its own set.

    (A prefix reused from the cache would be evaluated differently, a token at a time, and greedy choices at
    the near-ties of these random adapters follow such differences. So does where a sequence's cells lie in
    the cache, which differs between the two runs, without flash attention: both runners use it.)"""
    n = 2 * GROUP_STEPS + 3  # every group gives its turn away at least twice
    config = RunnerConfig(n_ctx=1024, n_parallel=4, adapters=tuple(map(str, lora_paths[:2])), flash_attn="on")
    solo = Runner(str(smollm2_path), config)
    try:
        alone = {s: complete(solo, CONCURRENT, s, n=n)[0] for s in SETS}
    finally:
        solo.close()
    assert len(set(alone.values())) >= 4  # the sets really differ
    fresh = Runner(str(smollm2_path), config)
    try:
        jobs = [(s, submit(fresh, CONCURRENT, s, n=n)) for s in SETS]
        for s, job in jobs:
            assert collect(job)[0] == alone[s], s
    finally:
        fresh.close()


def test_a_prefix_computed_with_other_adapters_is_not_reused(runner):
    n_prompt = len(runner.model.vocab.tokenize(PROMPT))
    _, first = complete(runner, PROMPT, [(0, 1.0)], n=4)
    _, again = complete(runner, PROMPT, [(0, 1.0)], n=4)
    assert again.prompt_eval_count < n_prompt  # the same set: the cached prefix is reused
    _, other = complete(runner, PROMPT, [(1, 1.0)], n=4)
    assert other.prompt_eval_count == n_prompt  # other adapters: evaluated afresh
    _, base = complete(runner, PROMPT, [], n=4)
    assert base.prompt_eval_count == n_prompt


def test_a_parked_sequence_keeps_its_adapters(smollm2_path, lora_paths):
    """With one slot, a finished request's sequence is parked when another starts; it is restored only for a
    request with its own adapter set."""
    r = Runner(str(smollm2_path), RunnerConfig(n_ctx=1024, n_parallel=1, adapters=(str(lora_paths[0]),)))
    try:
        n_long = len(r.model.vocab.tokenize(LONG))
        alone = complete(r, LONG, [(0, 1.0)], n=8)[0]
        complete(r, PROMPT, [], n=2)  # parks LONG's sequence (computed with the adapter)
        text, fin = complete(r, LONG, [], n=8)
        assert fin.prompt_eval_count == n_long  # not restored for the base model
        complete(r, PROMPT, [], n=2)
        text, fin = complete(r, LONG, [(0, 1.0)], n=8)
        assert fin.prompt_eval_count < 8 and text == alone  # restored for its own set
    finally:
        r.close()


def test_a_job_naming_an_adapter_the_runner_lacks_fails_alone(runner, base_text):
    bad = submit(runner, PROMPT, [(2, 1.0)])
    good = submit(runner, PROMPT)
    with pytest.raises(ValueError, match="no adapter 2"):
        collect(bad)
    assert collect(good)[0] == base_text


def test_embeddings_of_a_model_with_adapters(smollm2_path, lora_paths):
    from llamanative.engine import EmbedJob

    vectors = []
    for adapters in ((), (str(lora_paths[0]),)):
        r = Runner(str(smollm2_path), RunnerConfig(n_ctx=512, n_parallel=1, adapters=adapters))
        try:
            job = EmbedJob.from_sequences([r.model.vocab.tokenize(PROMPT)])
            r.submit(job)
            vectors.append(job.result.result(timeout=120)[0].copy())
        finally:
            r.close()
    assert abs(float(vectors[0] @ vectors[1])) < 0.999  # computed with the adapter


# -- the store and the Client --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lora_client(tmp_path_factory, smollm2_path, lora_paths):
    with Client(models_dir=tmp_path_factory.mktemp("lora-store")) as c:
        c.create("smol", from_=str(smollm2_path))
        c.create("smol-lora", from_=str(smollm2_path), adapters=[lora_paths[0], lora_paths[1]])
        yield c


OPTS = {"temperature": 0, "num_predict": N, "num_ctx": 1024}


def generate(client, model, **options):
    return client.generate(model, PROMPT, raw=True, options={**OPTS, **options}).response


def test_client_applies_stored_adapters_and_request_scales(lora_client, runner, llama_greedy, lora_paths):
    a, b, _ = lora_paths
    flash = runner.flash_attn
    both = llama_greedy(runner.path, PROMPT, N, "-c", "1024", "-fa", flash, "--lora", str(a), "--lora", str(b))
    assert generate(lora_client, "smol-lora") == both  # every stored adapter at 1.0 by default
    half = llama_greedy(runner.path, PROMPT, N, "-c", "1024", "-fa", flash, "--lora-scaled", f"{a}:0.5")
    assert generate(lora_client, "smol-lora", lora=[{"id": 0, "scale": 0.5}]) == half  # adapter 1 left out: 0
    base = generate(lora_client, "smol")
    assert generate(lora_client, "smol-lora", lora=[]) == base
    assert generate(lora_client, "smol-lora", lora=[{"id": 0, "scale": 0}, {"id": 1, "scale": 0.0}]) == base
    assert len({both, half, base}) == 3


def test_client_concurrent_requests_with_different_adapters(lora_client):
    """As the engine's test: each alone on a freshly loaded model (keep_alive 0 unloads it after each), then all
    at once on a freshly loaded one."""
    options = [None, [], [{"id": 0, "scale": 1.0}], [{"id": 1, "scale": 0.5}]]

    def run(i, **kw):
        lora = {"lora": options[i]} if options[i] is not None else {}
        opts = {**OPTS, "num_predict": 2 * GROUP_STEPS + 3, **lora}
        return lora_client.generate("smol-lora", CONCURRENT, raw=True, options=opts, **kw).response

    alone = [run(i, keep_alive=0) for i in range(len(options))]
    assert len(set(alone)) >= 3  # the sets really differ
    got: list[str | None] = [None] * len(options)

    def worker(i):
        got[i] = run(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(options))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert got == alone


@pytest.mark.parametrize(
    "lora, words",
    [
        ([{"id": 2, "scale": 1.0}], "there is no adapter 2; the model has 2 LoRA adapter(s) (ids 0..1)"),
        ([{"id": 0}], 'option "lora" must be an array'),
        ([{"id": 0, "scale": float("inf")}], "not a finite number"),
        ([{"id": 0, "scale": 1}, {"id": 0, "scale": 2}], "adapter 0 is given twice"),
        ("all", 'option "lora" must be an array'),
    ],
)
def test_bad_lora_options_are_400(lora_client, lora, words):
    with pytest.raises(StatusError) as err:
        generate(lora_client, "smol-lora", lora=lora)
    assert err.value.status_code == 400 and words in err.value.error_message


def test_lora_on_a_model_without_adapters_is_400(lora_client):
    with pytest.raises(StatusError, match="the model has no LoRA adapters") as err:
        generate(lora_client, "smol", lora=[{"id": 0, "scale": 1.0}])
    assert err.value.status_code == 400
    assert generate(lora_client, "smol", lora=[]) == generate(lora_client, "smol")


def test_create_refuses_a_mismatched_adapter(lora_client, lora_paths, minilm_path, smollm2_path):
    a, _b, wrong = lora_paths
    for source, adapter, words in (
        (str(minilm_path), a, "for a 'llama' model; the model is a 'bert' model"),
        (str(smollm2_path), wrong, "do not fit the model's weight"),
        (str(smollm2_path), smollm2_path, "is not a LoRA adapter"),
    ):
        with pytest.raises(StatusError, match=re.escape(words)) as err:
            lora_client.create("bad", from_=source, adapters=[adapter])
        assert err.value.status_code == 400
    with pytest.raises(StatusError) as err:
        lora_client.create("bad", from_=str(smollm2_path), adapters=["/no/such/adapter.gguf"])
    assert err.value.status_code == 404
    with pytest.raises(StatusError, match="'lora' is a request option") as err:
        lora_client.create("bad", from_=str(smollm2_path), parameters={"lora": [{"id": 0, "scale": 1}]})
    assert all(m.model != "bad:latest" for m in lora_client.list().models)


def test_a_stored_adapter_that_does_not_fit_is_400_at_load(lora_client, lora_paths):
    """A manifest written elsewhere (not checked by create) names an adapter for another model."""
    import json

    from llamanative.store.names import parse_name

    store = lora_client._session.store
    assert store.resolve("smol").adapters == []
    digest = store.put_blob(Path(lora_paths[2]))
    manifest = json.loads(store.manifest_path(parse_name("smol")).read_bytes())
    manifest["layers"].append(
        {"mediaType": MEDIA_ADAPTER, "digest": digest, "size": Path(lora_paths[2]).stat().st_size}
    )
    store.write_manifest("smol-broken", json.dumps(manifest).encode())
    assert len(store.resolve("smol-broken").adapters) == 1
    with pytest.raises(StatusError, match="cannot use its LoRA adapter") as err:
        generate(lora_client, "smol-broken")
    assert err.value.status_code == 400


def test_modelfile_adapter_round_trip(lora_client, lora_paths, smollm2_path, tmp_path):
    a, b, _ = lora_paths
    (tmp_path / "Modelfile").write_text(f"FROM {smollm2_path}\nADAPTER {a}\nADAPTER {b}\n")
    mf = parse_modelfile((tmp_path / "Modelfile").read_text(), base_dir=tmp_path)
    assert mf.adapters == [str(Path(a).resolve()), str(Path(b).resolve())]
    lora_client.create("from-modelfile", **mf.create_kwargs())
    shown = lora_client.show("from-modelfile")
    assert shown.modelfile.count("\nADAPTER ") == 2
    again = parse_modelfile(shown.modelfile)
    assert [Path(p).read_bytes() for p in again.adapters] == [Path(a).read_bytes(), Path(b).read_bytes()]
    lora_client.create("from-show", **again.create_kwargs())
    store = lora_client._session.store
    first, second = store.resolve("from-modelfile"), store.resolve("from-show")
    adapter_layers = [[x for x in m.layers if x["mediaType"] == MEDIA_ADAPTER] for m in (first, second)]
    assert adapter_layers[0] == adapter_layers[1] and len(adapter_layers[0]) == 2
    assert generate(lora_client, "from-show") == generate(lora_client, "smol-lora")


def test_create_from_a_stored_model_keeps_or_replaces_its_adapters(lora_client, lora_paths):
    store = lora_client._session.store
    lora_client.create("copy", from_="smol-lora", system="Be brief.")
    assert store.resolve("copy").adapters == store.resolve("smol-lora").adapters
    digest = lora_client.create_blob(lora_paths[1])
    lora_client.create("only-b", from_="smol-lora", adapters={"b.gguf": digest})  # as ollama-python sends them
    assert [Path(p).name for p in store.resolve("only-b").adapters] == [digest.replace(":", "-")]
    assert generate(lora_client, "only-b") == generate(lora_client, "smol-lora", lora=[{"id": 1, "scale": 1.0}])


def test_server_create_with_adapter_digests(tmp_path, smollm2_path, lora_paths):
    """POST /api/create takes adapters as file names mapped to uploaded blobs' digests, as Ollama's does."""
    pytest.importorskip("starlette")
    import asyncio
    import hashlib

    import httpx
    from http_server import running

    from llamanative import AsyncClient
    from llamanative.server import create_app

    with Client(models_dir=tmp_path) as c:
        c.create("smol", from_=str(smollm2_path))
    client = AsyncClient(models_dir=tmp_path)
    try:
        with running(create_app(client)) as url:
            digests = {}
            for path in (lora_paths[0], lora_paths[2]):
                data = Path(path).read_bytes()
                digests[path] = "sha256:" + hashlib.sha256(data).hexdigest()
                assert httpx.post(f"{url}/api/blobs/{digests[path]}", content=data).status_code == 201
            body = {"model": "smol-lora", "from": "smol", "adapters": {"a.gguf": digests[lora_paths[0]]}}
            r = httpx.post(f"{url}/api/create", json={**body, "stream": False}, timeout=300)
            assert r.status_code == 200, r.text
            shown = httpx.post(f"{url}/api/show", json={"model": "smol-lora"}).json()
            assert "\nADAPTER " in shown["modelfile"]
            gen = {"model": "smol-lora", "prompt": PROMPT, "raw": True, "stream": False}
            texts = [
                httpx.post(f"{url}/api/generate", json={**gen, "options": {**OPTS, **lora}}, timeout=300).json()
                for lora in ({}, {"lora": []})
            ]
            assert texts[0]["response"] != texts[1]["response"]
            wrong = {"model": "bad", "from": "smol", "adapters": {"w.gguf": digests[lora_paths[2]]}}
            r = httpx.post(f"{url}/api/create", json=wrong)
            assert r.status_code == 400 and "do not fit" in r.json()["error"]
            r = httpx.post(
                f"{url}/api/create", json={"model": "bad", "from": "smol", "adapters": {"a": str(lora_paths[0])}}
            )
            assert r.status_code == 400  # a path of the server's disk, not a digest
            r = httpx.post(f"{url}/api/generate", json={**gen, "options": {"lora": [{"id": 1, "scale": 1}]}})
            assert r.status_code == 400 and "there is no adapter 1" in r.json()["error"]
    finally:
        asyncio.run(client.close())
