"""Control vectors: the native loader and its checks, the engine's steps by adapter set, the store and the Client.

The control vectors are random ones for SmolLM2 written by ``scripts/make_test_control_vector.py`` (the
``cvec_paths`` fixture): their output means nothing, but it differs from the base model's, and llama.cpp's own
``llama-completion --control-vector-scaled`` / ``--control-vector-layer-range`` on the same files is the
reference of the greedy outputs.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import gguf
import numpy as np
import pytest

from llamanative import Client, _core
from llamanative.engine import CompletionJob, Failed, Piece, Runner, RunnerConfig, SamplingParams
from llamanative.engine.adapters import GROUP_STEPS, NO_ADAPTERS, adapter_set
from llamanative.errors import ControlVectorLoadError, StatusError
from llamanative.store.modelfile import parse_modelfile
from llamanative.store.store import MEDIA_CONTROL_VECTOR

GREEDY = SamplingParams(temperature=0)
PROMPT = "The capital of France is"
N = 24
N_CTX = 1024
# Flash attention off, as the CPU default is: llama.cpp's CPU flash attention may round a token differently from
# one run to the next, which moves a greedy choice at a near-tie of these random vectors.
FA = "off"


def directions(path: Path) -> dict[int, np.ndarray]:
    """Layer -> direction of a control vector file, read with the ``gguf`` package."""
    reader = gguf.GGUFReader(path)
    return {int(t.name.split(".")[1]): np.array(t.data, dtype=np.float32) for t in reader.tensors}


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


def submit(runner: Runner, prompt: str, cvec=(), layers=None, n: int = N) -> CompletionJob:
    job = CompletionJob(runner.model.vocab.tokenize(prompt), GREEDY, n, adapters=adapter_set((), cvec, layers))
    runner.submit(job)
    return job


def complete(runner: Runner, prompt: str, cvec=(), layers=None, n: int = N) -> tuple[str, object]:
    return collect(submit(runner, prompt, cvec, layers, n))


@pytest.fixture(scope="module")
def runner(smollm2_path, cvec_paths):
    a, b, _wrong = cvec_paths
    r = Runner(
        str(smollm2_path), RunnerConfig(n_ctx=N_CTX, n_parallel=4, flash_attn=FA, control_vectors=(str(a), str(b)))
    )
    yield r
    r.close()


@pytest.fixture(scope="module")
def base_text(runner):
    return complete(runner, PROMPT)[0]


@pytest.fixture(scope="module")
def reference(runner, llama_greedy):
    """``reference(*args)``: llama-completion's greedy output for PROMPT with the runner's settings."""

    def run(*args: str, prompt: str = PROMPT, n: int = N) -> str:
        return llama_greedy(runner.path, prompt, n, "-c", str(N_CTX), "-fa", runner.flash_attn, *args)

    return run


# -- the native control vector -------------------------------------------------------------------------------------
def test_control_vector_loads_and_sums_the_files(smollm2, smollm2_path, cvec_paths):
    a, b, _ = cvec_paths
    info = _core.check_control_vector(a, smollm2_path)
    assert info == {"n_embd": 576, "layers": list(range(1, 30)), "model_hint": "llama"}
    da, db = directions(a), directions(b)
    cv = _core.ControlVector([(a, 0.5), (str(b), 1.0)], smollm2)
    assert (cv.n_embd, cv.n_layer, cv.layers) == (576, 30, tuple(range(1, 30)))
    assert cv.files == ((str(a), 0.5), (str(b), 1.0))
    assert cv.data.shape == (30, 576) and cv.data.dtype == np.float32 and not cv.data.flags.writeable
    for layer in range(1, 30):  # row i: layer i + 1, each file's direction times its scale, added (in float32)
        np.testing.assert_array_equal(cv.data[layer - 1], da[layer] * np.float32(0.5) + db[layer])
    assert not cv.data[29].any()  # no direction for the last layer in these files
    single = _core.ControlVector(a, smollm2)  # a plain path: scale 1.0
    assert single.files == ((str(a), 1.0),)
    np.testing.assert_array_equal(single.data[0], da[1])


def _write_vector(path: Path, tensors: dict[str, np.ndarray]) -> Path:
    writer = gguf.GGUFWriter(path, arch="controlvector")
    for name, data in tensors.items():
        writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


V = np.ones(576, dtype=np.float32)


@pytest.mark.parametrize(
    "make, words",
    [
        (
            lambda paths, tmp, model: paths[2],
            "direction.1 has 577 elements; the model's embedding length (n_embd) is 576",
        ),
        (lambda paths, tmp, model: model, "tensor 'token_embd.weight' is not a control vector's"),
        (lambda paths, tmp, model: _write_vector(tmp / "layer.gguf", {"direction.31": V}), "direction for layer 31"),
        (lambda paths, tmp, model: _write_vector(tmp / "zero.gguf", {"direction.0": V}), "direction for layer 0"),
        (lambda paths, tmp, model: _write_vector(tmp / "huge.gguf", {"direction.99999999999": V}), "layer 99999999999"),
        (lambda paths, tmp, model: _write_vector(tmp / "name.gguf", {"direction.1x": V}), "'direction.1x' is not"),
        (
            lambda paths, tmp, model: _write_vector(tmp / "f16.gguf", {"direction.1": V.astype(np.float16)}),
            "direction.1 is of type F16",
        ),
        (
            lambda paths, tmp, model: _write_vector(tmp / "2d.gguf", {"direction.1": np.ones((2, 576), np.float32)}),
            "a direction is one-dimensional",
        ),
        (lambda paths, tmp, model: _write_vector(tmp / "empty.gguf", {}), "holds no direction tensors"),
    ],
    ids=["n_embd", "a-model", "layer-beyond", "layer-0", "huge-layer", "bad-name", "f16", "2-d", "empty"],
)
def test_a_mismatched_control_vector_is_a_typed_error(make, words, cvec_paths, tmp_path, smollm2, smollm2_path):
    """Each of these would make llama.cpp refuse the file, or allocate without bound: refused first, typed."""
    path = make(cvec_paths, tmp_path, smollm2_path)
    with pytest.raises(ControlVectorLoadError, match=re.escape(words)) as err:
        _core.check_control_vector(path, smollm2_path)
    assert err.value.path == str(path)
    with pytest.raises(ControlVectorLoadError, match=re.escape(words)):
        _core.ControlVector([cvec_paths[0], path], smollm2)


def test_a_truncated_corrupt_or_missing_control_vector(cvec_paths, tmp_path, smollm2):
    data = Path(cvec_paths[0]).read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ControlVectorLoadError, match="truncated"):
        _core.ControlVector([cut], smollm2)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + bytes(range(256)) * 4)
    with pytest.raises(ControlVectorLoadError, match="not a valid GGUF"):
        _core.ControlVector([junk], smollm2)
    text = tmp_path / "text.gguf"
    text.write_text("not a gguf")
    with pytest.raises(ControlVectorLoadError, match="not a GGUF file"):
        _core.ControlVector([text], smollm2)
    with pytest.raises(FileNotFoundError):
        _core.ControlVector([tmp_path / "none.gguf"], smollm2)
    with pytest.raises(ValueError, match="no control vector files"):
        _core.ControlVector([], smollm2)
    with pytest.raises(ValueError, match="not a finite number"):
        _core.ControlVector([(cvec_paths[0], float("nan"))], smollm2)
    with pytest.raises(ValueError, match="not a finite number"):
        _core.ControlVector([(cvec_paths[0], 1e39)], smollm2)  # beyond float32


def test_set_control_vector_checks_its_arguments(smollm2, gemma3, cvec_paths):
    cv = _core.ControlVector([cvec_paths[0]], smollm2)
    with _core.Context(smollm2, n_ctx=256) as ctx:
        assert ctx.control_vector is None
        ctx.set_control_vector(cv)
        assert ctx.control_vector == (cv, 1, 30)
        ctx.set_control_vector(cv, 5, 10)
        assert ctx.control_vector == (cv, 5, 10)
        for start, end in ((0, 10), (10, 5), (1, 31)):
            with pytest.raises(ValueError, match="layer range"):
                ctx.set_control_vector(cv, start, end)
        with pytest.raises(TypeError, match="must be an int"):
            ctx.set_control_vector(cv, 1.5)
        with pytest.raises(ValueError, match="without a control vector"):
            ctx.set_control_vector(None, 1, 5)
        with pytest.raises(TypeError):
            ctx.set_control_vector(str(cvec_paths[0]))
        assert ctx.control_vector == (cv, 5, 10)
        ctx.set_control_vector(None)
        assert ctx.control_vector is None
    with _core.Context(gemma3, n_ctx=256) as ctx, pytest.raises(ValueError, match="n_embd 576"):
        ctx.set_control_vector(cv)  # a vector for another model


# -- the engine: parity with llama.cpp, scale 0, groups ------------------------------------------------------------
@pytest.mark.parametrize("scale", [1.0, 0.6, -1.0])
def test_greedy_matches_llama_completion_with_the_vector(runner, base_text, cvec_paths, reference, scale):
    text, fin = complete(runner, PROMPT, [(0, scale)])
    assert text == reference("--control-vector-scaled", f"{cvec_paths[0]}:{scale}")
    assert 0 < fin.eval_count <= N
    assert text != base_text  # the vector changes the output, so the comparison means something


def test_a_layer_range_matches_llama_completion(runner, base_text, cvec_paths, reference):
    text, _ = complete(runner, PROMPT, [(0, 1.0)], (10, 20))
    assert text == reference("--control-vector", str(cvec_paths[0]), "--control-vector-layer-range", "10", "20")
    assert text not in (base_text, complete(runner, PROMPT, [(0, 1.0)])[0])


def test_two_vectors_are_summed_as_llama_completion_sums_them(runner, base_text, cvec_paths, reference):
    a, b, _ = cvec_paths
    text, _ = complete(runner, PROMPT, [(0, 0.5), (1, 1.0)])
    assert text == reference("--control-vector-scaled", f"{a}:0.5", "--control-vector", str(b))
    assert text not in (base_text, complete(runner, PROMPT, [(0, 0.5)])[0], complete(runner, PROMPT, [(1, 1.0)])[0])


def test_scale_zero_and_no_vector_are_the_base_model(runner, base_text, reference):
    assert adapter_set((), [(0, 0.0), (1, 0.0)], (3, 4)) == NO_ADAPTERS
    assert complete(runner, PROMPT, [(0, 0.0)])[0] == base_text
    assert base_text == reference()


SETS = [
    ((), None),
    (((0, 1.0),), None),
    (((0, 0.5),), None),
    (((0, 1.0),), (10, 20)),
    (((0, 1.0), (1, 1.0)), None),
]
CONCURRENT = "Write the names of three colours:"


def test_concurrent_requests_with_different_vectors_give_their_own_output(runner, smollm2_path, cvec_paths):
    """Each set alone, then all five at once (on four slots) on a runner with nothing cached: each request is
    then evaluated as it was alone (its whole prompt in one decode, then a token a step), in steps of its own
    set; the groups take turns, so the vector set on the context changes many times."""
    n = 2 * GROUP_STEPS + 3  # every group gives its turn away at least twice
    alone = {s: complete(runner, CONCURRENT, *s, n=n)[0] for s in SETS}
    assert len(set(alone.values())) >= 4  # the sets really differ
    paths = tuple(map(str, cvec_paths[:2]))
    fresh = Runner(str(smollm2_path), RunnerConfig(n_ctx=N_CTX, n_parallel=4, flash_attn=FA, control_vectors=paths))
    try:
        jobs = [(s, submit(fresh, CONCURRENT, *s, n=n)) for s in SETS]
        for s, job in jobs:
            assert collect(job)[0] == alone[s], s
    finally:
        fresh.close()


def test_a_prefix_computed_with_another_vector_is_not_reused(runner):
    n_prompt = len(runner.model.vocab.tokenize(PROMPT))
    complete(runner, PROMPT, [(1, 0.25)], n=4)
    _, again = complete(runner, PROMPT, [(1, 0.25)], n=4)
    assert again.prompt_eval_count < n_prompt  # the same set: the cached prefix is reused
    for cvec, layers in (([(1, 0.5)], None), ([(1, 0.25)], (2, 30)), ([], None)):
        _, other = complete(runner, PROMPT, cvec, layers, n=4)
        assert other.prompt_eval_count == n_prompt, (cvec, layers)  # another scale, layers or none: afresh


def test_a_job_naming_what_the_runner_lacks_fails_alone(runner, base_text):
    bad = submit(runner, PROMPT, [(2, 1.0)])
    beyond = submit(runner, PROMPT, [(0, 1.0)], (1, 31))
    good = submit(runner, PROMPT)
    with pytest.raises(ValueError, match="no control vector 2"):
        collect(bad)
    with pytest.raises(ValueError, match="ends after the model's 30 layers"):
        collect(beyond)
    assert collect(good)[0] == base_text
    with pytest.raises(ValueError, match="layer range"):
        adapter_set((), [(0, 1.0)], (5, 4))


def test_a_runner_refuses_a_mismatched_vector(smollm2_path, cvec_paths):
    with pytest.raises(ControlVectorLoadError, match="n_embd"):
        Runner(str(smollm2_path), RunnerConfig(n_ctx=256, n_parallel=1, control_vectors=(str(cvec_paths[2]),)))


def test_embeddings_of_a_model_with_control_vectors(smollm2_path, cvec_paths):
    from llamanative.engine import EmbedJob

    vectors = []
    for cvecs in ((), (str(cvec_paths[0]),)):
        r = Runner(str(smollm2_path), RunnerConfig(n_ctx=512, n_parallel=1, control_vectors=cvecs))
        try:
            job = EmbedJob.from_sequences([r.model.vocab.tokenize(PROMPT)])
            r.submit(job)
            vectors.append(job.result.result(timeout=120)[0].copy())
        finally:
            r.close()
    assert abs(float(vectors[0] @ vectors[1])) < 0.999  # computed with the vector


# -- the store and the Client --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cvec_client(tmp_path_factory, smollm2_path, cvec_paths):
    with pytest.MonkeyPatch.context() as mp, Client(models_dir=tmp_path_factory.mktemp("cvec-store")) as c:
        mp.setenv("LLAMANATIVE_FLASH_ATTENTION", FA)
        c.create("smol", from_=str(smollm2_path))
        c.create("smol-cvec", from_=str(smollm2_path), control_vectors=[cvec_paths[0], cvec_paths[1]])
        yield c


OPTS = {"temperature": 0, "num_predict": N, "num_ctx": N_CTX}


def generate(client, model, **options):
    return client.generate(model, PROMPT, raw=True, options={**OPTS, **options}).response


def test_client_applies_stored_vectors_and_request_scales(cvec_client, cvec_paths, reference):
    a, b, _ = cvec_paths
    both = reference("--control-vector", f"{a},{b}")
    assert generate(cvec_client, "smol-cvec") == both  # every stored vector at 1.0 on every layer by default
    half = reference("--control-vector-scaled", f"{a}:0.5")
    assert generate(cvec_client, "smol-cvec", control_vectors=[{"id": 0, "scale": 0.5}]) == half  # b left out
    ranged = reference("--control-vector", str(b), "--control-vector-layer-range", "5", "25")
    got = generate(
        cvec_client, "smol-cvec", control_vectors=[{"id": 1, "scale": 1}], control_vector_layer_range=[5, 25]
    )
    assert got == ranged
    base = generate(cvec_client, "smol")
    assert generate(cvec_client, "smol-cvec", control_vectors=[]) == base
    assert generate(cvec_client, "smol-cvec", control_vectors=[{"id": 0, "scale": 0}]) == base
    assert len({both, half, ranged, base}) == 4


def test_client_concurrent_requests_with_and_without_the_vector(cvec_client):
    """Each alone on a freshly loaded model (keep_alive 0 unloads it after each), then all at once on a freshly
    loaded one: each gives what it gave alone (or the same tokens up to a near-tie, as batching rounds a token
    differently)."""
    from near_tie import assert_near_tie

    options = [
        {},
        {"control_vectors": []},
        {"control_vectors": [{"id": 0, "scale": 1.0}]},
        {"control_vectors": [{"id": 1, "scale": 0.5}], "control_vector_layer_range": [3, 20]},
    ]

    def run(i, **kw):
        opts = {**OPTS, "num_predict": 2 * GROUP_STEPS + 3, **options[i]}
        return cvec_client.generate(
            "smol-cvec", CONCURRENT, raw=True, options=opts, logprobs=True, top_logprobs=5, **kw
        )

    alone = [run(i, keep_alive=0) for i in range(len(options))]
    assert len({r.response for r in alone}) >= 3  # the sets really differ
    got: list = [None] * len(options)

    def worker(i):
        got[i] = run(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(options))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    for i, (solo, batched) in enumerate(zip(alone, got)):
        if batched.response != solo.response:
            k = next(k for k, (x, y) in enumerate(zip(solo.logprobs, batched.logprobs)) if x.token != y.token)
            assert_near_tie(solo.logprobs, batched.logprobs, k, f"request {i}")


@pytest.mark.parametrize(
    "options, words",
    [
        (
            {"control_vectors": [{"id": 2, "scale": 1.0}]},
            "there is no control vector 2; the model has 2 control vector(s) (ids 0..1)",
        ),
        ({"control_vectors": [{"id": 0}]}, 'option "control_vectors" must be an array'),
        ({"control_vectors": [{"id": 0, "scale": float("nan")}]}, "not a finite number"),
        ({"control_vectors": [{"id": 1, "scale": 1}, {"id": 1, "scale": 2}]}, "control vector 1 is given twice"),
        ({"control_vector_layer_range": [1, 31]}, "[1, 31] ends after the model's 30 layers"),
        ({"control_vector_layer_range": [0, 5]}, "1 <= first <= last"),
        ({"control_vector_layer_range": [6, 5]}, "1 <= first <= last"),
        ({"control_vector_layer_range": [1]}, "two layer numbers"),
        ({"control_vector_layer_range": "1 5"}, "two layer numbers"),
    ],
)
def test_bad_control_vector_options_are_400(cvec_client, options, words):
    with pytest.raises(StatusError) as err:
        generate(cvec_client, "smol-cvec", **options)
    assert err.value.status_code == 400 and words in err.value.error_message


def test_control_vectors_on_a_model_without_them(cvec_client):
    with pytest.raises(StatusError, match="the model has no control vectors") as err:
        generate(cvec_client, "smol", control_vectors=[{"id": 0, "scale": 1.0}])
    assert err.value.status_code == 400
    assert generate(cvec_client, "smol", control_vectors=[]) == generate(cvec_client, "smol")


def test_create_refuses_a_mismatched_control_vector(cvec_client, cvec_paths, smollm2_path, gemma3_path):
    a, _b, wrong = cvec_paths
    for source, cvec, words in (
        (str(smollm2_path), wrong, "the model's embedding length (n_embd) is 576"),
        (str(gemma3_path), a, "the model's embedding length (n_embd) is 640"),
        (str(smollm2_path), smollm2_path, "is not a control vector's"),
    ):
        with pytest.raises(StatusError, match=re.escape(words)) as err:
            cvec_client.create("bad", from_=source, control_vectors=[cvec])
        assert err.value.status_code == 400
    with pytest.raises(StatusError) as err:
        cvec_client.create("bad", from_=str(smollm2_path), control_vectors=["/no/such/vector.gguf"])
    assert err.value.status_code == 404
    for key, value in (("control_vectors", [{"id": 0, "scale": 1}]), ("control_vector_layer_range", [1, 2])):
        with pytest.raises(StatusError, match=f"'{key}' is a request option") as err:
            cvec_client.create("bad", from_=str(smollm2_path), parameters={key: value})
        assert err.value.status_code == 400
    assert all(m.model != "bad:latest" for m in cvec_client.list().models)


def test_a_stored_vector_that_does_not_fit_is_400_at_load(cvec_client, cvec_paths):
    """A manifest written elsewhere (not checked by create) names a control vector for another model."""
    from llamanative.store.names import parse_name

    store = cvec_client._session.store
    assert store.resolve("smol").control_vectors == []
    digest = store.put_blob(Path(cvec_paths[2]))
    manifest = json.loads(store.manifest_path(parse_name("smol")).read_bytes())
    size = Path(cvec_paths[2]).stat().st_size
    manifest["layers"].append({"mediaType": MEDIA_CONTROL_VECTOR, "digest": digest, "size": size})
    store.write_manifest("smol-broken", json.dumps(manifest).encode())
    assert len(store.resolve("smol-broken").control_vectors) == 1
    with pytest.raises(StatusError, match="cannot use its control vector") as err:
        generate(cvec_client, "smol-broken")
    assert err.value.status_code == 400


def test_modelfile_controlvector_round_trip(cvec_client, cvec_paths, smollm2_path, tmp_path):
    a, b, _ = cvec_paths
    (tmp_path / "Modelfile").write_text(f"FROM {smollm2_path}\nCONTROLVECTOR {a}\ncontrolvector {b}\n")
    mf = parse_modelfile((tmp_path / "Modelfile").read_text(), base_dir=tmp_path)
    assert mf.control_vectors == [str(Path(a).resolve()), str(Path(b).resolve())]
    cvec_client.create("from-modelfile", **mf.create_kwargs())
    shown = cvec_client.show("from-modelfile")
    assert shown.modelfile.count("\nCONTROLVECTOR ") == 2
    again = parse_modelfile(shown.modelfile)
    assert [Path(p).read_bytes() for p in again.control_vectors] == [Path(a).read_bytes(), Path(b).read_bytes()]
    cvec_client.create("from-show", **again.create_kwargs())
    store = cvec_client._session.store
    layers = [
        [x for x in store.resolve(m).layers if x["mediaType"] == MEDIA_CONTROL_VECTOR]
        for m in ("from-modelfile", "from-show")
    ]
    assert layers[0] == layers[1] and len(layers[0]) == 2
    assert generate(cvec_client, "from-show") == generate(cvec_client, "smol-cvec")
    with pytest.raises(Exception, match="no such file"):
        parse_modelfile("FROM x\nCONTROLVECTOR ./none.gguf", base_dir=tmp_path)


def test_create_from_a_stored_model_keeps_or_replaces_its_vectors(cvec_client, cvec_paths):
    store = cvec_client._session.store
    cvec_client.create("copy", from_="smol-cvec", system="Be brief.")
    assert store.resolve("copy").control_vectors == store.resolve("smol-cvec").control_vectors
    cvec_client.create("only-b", from_="smol-cvec", control_vectors=[cvec_paths[1]])
    assert len(store.resolve("only-b").control_vectors) == 1
    one = generate(cvec_client, "smol-cvec", control_vectors=[{"id": 1, "scale": 1.0}])
    assert generate(cvec_client, "only-b") == one
