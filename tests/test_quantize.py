"""Quantizing on create: ``create(model, from_=..., quantize=TYPE)`` and ``llamanative create -q TYPE``.

The sources are real models: all-MiniLM-L6-v2 F16 as converted for the tests,
and SmolLM2-135M-Instruct as F16. No F16 SmolLM2 is published on the
registries the tests fetch from, so the fixture makes one from the Q4_1 file
with llama.cpp's quantizer itself (requantizing allowed): the Q4_1 weights,
dequantized and stored as F16. Quantizing that copy again exercises every
type on a real llama model; the Q4_1 file stays the already-quantized source
that create refuses.
"""

from __future__ import annotations

import asyncio
import glob
import hashlib
import os
import re
import threading
from pathlib import Path

import numpy as np
import pytest

from llamanative import AsyncClient, Client, StatusError, _core
from llamanative.cli import main
from llamanative.server import create_app

REPO = Path(__file__).resolve().parents[1]

# The types create accepts (F32 too, tried on MiniLM only: a 540 MB SmolLM2), in the order of their sizes.
TYPES_BY_SIZE = ["F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_K_S", "Q4_0"]

# The lowest cosine similarity of a quantized MiniLM's embedding to the F16 one, over SENTENCES:
# the table of docs/models.md ("Quantizing"), which test_docs_table_is_the_tested_one checks.
MINILM_COSINE = {
    "F32": 0.99999,
    "BF16": 0.9999,
    "Q8_0": 0.998,
    "Q6_K": 0.997,
    "Q5_K_M": 0.98,
    "Q4_K_M": 0.97,
    "Q4_K_S": 0.97,
    "Q4_0": 0.9,
}
SENTENCES = [
    "The cat sat on the mat.",
    "Quantum computers use qubits instead of bits.",
    "I love pizza with extra cheese.",
    "Stock markets fell sharply on Monday.",
    "How do I reset my password?",
    "Paris is the capital of France.",
    "The mitochondria is the powerhouse of the cell.",
    "She plays the violin in an orchestra.",
    "Rain is expected over the weekend in the north.",
    "Python is a popular programming language.",
    "hello",
    "A very long sentence about nothing in particular that keeps going on and on, with commas, clauses "
    "and words, to fill the context a little more than the others do.",
]
GREEDY = {"num_predict": 8, "temperature": 0, "num_thread": 1}


@pytest.fixture(scope="module")
def smollm2_f16(smollm2_path, tmp_path_factory) -> Path:
    """SmolLM2's Q4_1 weights dequantized and stored as F16, by llama.cpp's quantizer (see the module docstring)."""
    out = tmp_path_factory.mktemp("smollm2-f16") / "smollm2-f16.gguf"
    _core.quantize_model(smollm2_path, out, _core.QUANTIZE_FILE_TYPES["F16"], allow_requantize=True)
    return out


@pytest.fixture(scope="module")
def qstore(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("qstore")


@pytest.fixture(scope="module")
def qclient(qstore):
    with Client(models_dir=qstore) as c:
        yield c


def _model_layer(client: Client, name: str) -> dict:
    stored = client._session.store.resolve(name)
    return next(layer for layer in stored.layers if layer["mediaType"] == "application/vnd.ollama.image.model")


def _blob_names(store: Path) -> set[str]:
    return {p.name for p in (store / "blobs").iterdir()} if (store / "blobs").is_dir() else set()


def _children() -> set[int] | None:
    """The ids of this process's child processes (Linux's /proc), or None where it cannot be read."""
    files = glob.glob(f"/proc/{os.getpid()}/task/*/children")
    if not files:
        return None
    return {int(pid) for f in files for pid in Path(f).read_text().split()}


@pytest.fixture(scope="module")
def smollm2_quantized(qclient, smollm2_f16) -> dict[str, list]:
    """Each type's progress responses: ``create("smol-<type>", from_=<F16 SmolLM2>, quantize=<type>, stream=True)``."""
    return {
        t: list(qclient.create(f"smol-{t.lower()}", from_=str(smollm2_f16), quantize=t.lower(), stream=True))
        for t in TYPES_BY_SIZE
    }


@pytest.mark.parametrize("qtype", [t for t in TYPES_BY_SIZE if t != "F16"])
def test_smollm2_each_type(qclient, smollm2_quantized, smollm2_f16, qtype):
    progress = smollm2_quantized[qtype]
    status = f"quantizing F16 model to {qtype}"
    bars = [p for p in progress if p.status == status]
    total = smollm2_f16.stat().st_size
    assert bars[0].completed == 0 and bars[-1].completed == total
    assert all(p.digest and p.total == total for p in bars)
    done = [p.completed for p in bars]
    assert done == sorted(done) and len(done) > len(_core.read_gguf_tensors(smollm2_f16))  # one a tensor
    layer = _model_layer(qclient, f"smol-{qtype.lower()}")
    assert [p.status for p in progress[len(bars) :]] == [
        "verifying conversion",
        f"creating new layer {layer['digest']}",
        "writing manifest",
        "success",
    ]
    # a new blob with its own digest
    blob = qclient._session.store.blob_path(layer["digest"])
    assert "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest() == layer["digest"]
    assert layer["size"] == blob.stat().st_size
    shown = qclient.show(f"smol-{qtype.lower()}")
    assert shown.details.quantization_level == qtype
    assert shown.details.family == "llama"
    r = qclient.generate(f"smol-{qtype.lower()}", prompt="The capital of France is", options=GREEDY)
    assert r.eval_count == GREEDY["num_predict"] and r.response.strip()


def test_smollm2_sizes_shrink_in_order(qclient, smollm2_quantized, smollm2_f16):
    sizes = {t: _model_layer(qclient, f"smol-{t.lower()}")["size"] for t in TYPES_BY_SIZE}
    f16 = smollm2_f16.stat().st_size
    assert sizes["F16"] == sizes["BF16"] == f16
    ordered = [sizes[t] for t in TYPES_BY_SIZE[1:]]
    assert ordered == sorted(ordered, reverse=True) and len(set(ordered)) == len(ordered)
    assert sizes["Q8_0"] < 0.55 * f16 and sizes["Q4_0"] < 0.36 * f16  # 8.5 and 4.5 bits a weight, F32 norms


def test_same_type_is_stored_as_it_is(qclient, smollm2_quantized, smollm2_f16):
    """As Ollama: quantizing an F16 model to F16 stores the source itself, no quantizing."""
    assert [p.status for p in smollm2_quantized["F16"]] == ["success"]
    layer = _model_layer(qclient, "smol-f16")
    assert layer["digest"] == "sha256:" + hashlib.sha256(smollm2_f16.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def minilm_f16_embeddings(qclient, minilm_path) -> np.ndarray:
    return np.array(qclient.embed(str(minilm_path), input=SENTENCES).embeddings)


@pytest.mark.parametrize("qtype", list(MINILM_COSINE))
def test_minilm_embeddings_close_to_f16(qclient, minilm_path, minilm_f16_embeddings, qtype):
    done = qclient.create(f"mini-{qtype.lower()}", from_=str(minilm_path), quantize=qtype)
    assert done.status == "success"
    assert qclient.show(f"mini-{qtype.lower()}").details.quantization_level == qtype
    got = np.array(qclient.embed(f"mini-{qtype.lower()}", input=SENTENCES).embeddings)
    ref = minilm_f16_embeddings
    cosine = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
    assert cosine.min() >= MINILM_COSINE[qtype], (qtype, cosine.min())
    size = _model_layer(qclient, f"mini-{qtype.lower()}")["size"]
    assert (size > minilm_path.stat().st_size) == (qtype == "F32")


def test_docs_table_is_the_tested_one():
    text = (REPO / "docs" / "models.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| [^|]+ \| ([0-9.]+) \|", text, re.M))
    assert {k.upper(): float(v) for k, v in rows.items()} == MINILM_COSINE


@pytest.mark.parametrize("bad", ["q3_K", "q4_1", "Q8", "f8", "iq2_xs", " "])
def test_bad_type_is_a_400(qclient, qstore, minilm_path, bad):
    before = _blob_names(qstore)
    with pytest.raises(StatusError) as e:
        qclient.create("bad", from_=str(minilm_path), quantize=bad)
    assert e.value.status_code == 400
    assert "unsupported quantization type" in str(e.value) and "Q4_K_M" in str(e.value)
    assert _blob_names(qstore) == before
    with pytest.raises(StatusError, match="not found"):
        qclient.show("bad")


def test_type_is_case_insensitive_and_q4_k_is_q4_k_m(qclient, minilm_path):
    assert qclient.create("mini-q4k", from_=str(minilm_path), quantize="Q4_k").status == "success"
    assert qclient.show("mini-q4k").details.quantization_level == "Q4_K_M"


def test_quantized_source_is_a_400(qclient, qstore, smollm2_path):
    qclient.create("smol-q41", from_=str(smollm2_path))
    digest = qclient.create_blob(smollm2_path)
    before = _blob_names(qstore)
    for kwargs in ({"from_": str(smollm2_path)}, {"from_": "smol-q41"}, {"files": {"model.gguf": digest}}):
        with pytest.raises(StatusError) as e:
            qclient.create("requant", quantize="q8_0", **kwargs)
        assert e.value.status_code == 400, kwargs
        assert "quantization is only supported for F16, BF16 and F32 models (this one is Q4_1)" in str(e.value)
    assert _blob_names(qstore) == before


def test_missing_source_bad_name_and_adapters(qclient, minilm_path, tmp_path):
    with pytest.raises(StatusError) as e:
        qclient.create("a/b/c/d/e", from_=str(minilm_path), quantize="q8_0")
    assert e.value.status_code == 400
    with pytest.raises(StatusError) as e:
        qclient.create("x", from_=str(tmp_path / "none.gguf"), quantize="q8_0")
    assert e.value.status_code == 404
    with pytest.raises(StatusError) as e:
        qclient.create("x", from_="no-such-model", quantize="q8_0")
    assert e.value.status_code == 404
    with pytest.raises(StatusError) as e:
        qclient.create("x", from_="mini-f32", adapters={"a": "sha256:" + "0" * 64})
    assert e.value.status_code == 400


def test_a_failing_quantizer_is_a_500_with_its_reason(qclient, qstore, tmp_path):
    """An F16 file of an architecture llama.cpp does not know passes the checks; llama.cpp refuses it."""
    import gguf

    path = tmp_path / "unknown-arch.gguf"
    w = gguf.GGUFWriter(path, arch="nonexistent")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_tensor("blk.0.attn_q.weight", np.zeros((64, 64), dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    before = _blob_names(qstore)
    with pytest.raises(StatusError) as e:
        qclient.create("unknown-arch", from_=str(path), quantize="q8_0")
    assert e.value.status_code == 500
    message = e.value.error
    assert message.startswith("quantizing failed: ") and "unknown model architecture: 'nonexistent'" in message
    assert _blob_names(qstore) == before


def test_from_a_stored_model_keeps_its_other_layers(qclient, minilm_path):
    qclient.create("mini-base", from_=str(minilm_path), system="Embed this.", parameters={"num_ctx": 128})
    qclient.create("mini-base-q8", from_="mini-base", quantize="q8_0")
    base, quant = (qclient._session.store.resolve(n) for n in ("mini-base", "mini-base-q8"))
    kinds = [layer["mediaType"] for layer in quant.layers]
    assert kinds == [layer["mediaType"] for layer in base.layers]
    assert [x for x in quant.layers[1:]] == [x for x in base.layers[1:]]  # same template/system/params blobs
    assert quant.layers[0]["digest"] != base.layers[0]["digest"]
    shown = qclient.show("mini-base-q8")
    assert shown.system == "Embed this." and "num_ctx" in (shown.parameters or "")


class _Stop(Exception):
    pass


def test_a_raising_loop_stops_quantizing(qclient, qstore, smollm2_f16):
    before, children = _blob_names(qstore), _children()
    seen = 0
    with pytest.raises(_Stop):
        for p in qclient.create("smol-stopped", from_=str(smollm2_f16), quantize="q4_K_M", stream=True):
            seen += 1
            if p.completed:  # a tensor is done: the worker runs
                raise _Stop
    assert seen < 20
    assert _blob_names(qstore) == before  # no partial blob, no temporary file
    if children is not None:
        assert _children() == children  # the worker process is gone
    with pytest.raises(StatusError, match="not found"):
        qclient.show("smol-stopped")


def test_close_from_another_thread_stops_a_running_next(qclient, qstore, smollm2_f16):
    """A server's cancelled request: the stream is closed while a thread is in its ``next``."""
    before = _blob_names(qstore)
    progress = qclient.create("smol-closed", from_=str(smollm2_f16), quantize="q6_K", stream=True)
    next(progress)
    errors: list[BaseException] = []

    def drain() -> None:
        try:
            for _ in progress:
                pass
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=drain)
    t.start()
    progress.close()
    t.join(60)
    assert not t.is_alive()
    assert errors and isinstance(errors[0], StatusError) and "stopped" in str(errors[0])
    assert _blob_names(qstore) == before
    with pytest.raises(StatusError, match="not found"):
        qclient.show("smol-closed")


def test_async_stream_closed_early(qstore, minilm_path):
    before = _blob_names(qstore)

    async def run() -> None:
        async with AsyncClient(models_dir=qstore) as ac:
            stream = await ac.create("mini-async", from_=str(minilm_path), quantize="q8_0", stream=True)
            async for p in stream:
                assert p.status == "quantizing F16 model to Q8_0"
                break
            await stream.aclose()
            assert _blob_names(qstore) == before
            with pytest.raises(StatusError, match="not found"):
                await ac.show("mini-async")
            done = await ac.create("mini-async", from_=str(minilm_path), quantize="q8_0")
            assert done.status == "success"
            assert (await ac.show("mini-async")).details.quantization_level == "Q8_0"

    asyncio.run(run())
    assert not [name for name in _blob_names(qstore) if name.startswith(".")]  # no temporary file left


def test_server_with_the_ollama_client(qstore, minilm_path):
    """ollama-python's create(quantize=...) against the server: the progress stream, and the 400s as ResponseError."""
    ollama = pytest.importorskip("ollama")
    from http_server import running

    with Client(models_dir=qstore) as c:
        c.create("mini-source", from_=str(minilm_path))  # the server takes stored models, not paths
    client = AsyncClient(models_dir=qstore)
    try:
        with running(create_app(client)) as base, ollama.Client(host=base) as oc:
            progress = list(oc.create("mini-http", from_="mini-source", quantize="q4_0", stream=True))
            assert progress[0].status == "quantizing F16 model to Q4_0" and progress[0].total
            assert progress[-1].status == "success"
            assert [p.status for p in progress[-4:-1]][0] == "verifying conversion"
            assert oc.show("mini-http").details.quantization_level == "Q4_0"
            with pytest.raises(ollama.ResponseError) as e:
                oc.create("x", from_="mini-source", quantize="q9")
            assert e.value.status_code == 400 and "unsupported quantization type q9" in e.value.error
            with pytest.raises(ollama.ResponseError) as e:
                oc.create("x", from_="mini-http", quantize="q8_0", stream=True).__next__()
            assert e.value.status_code == 400 and "only supported for F16, BF16 and F32" in e.value.error
    finally:
        asyncio.run(client.close())


def test_cli_create_quantize(qstore, minilm_path, tmp_path, monkeypatch, capsys):
    (tmp_path / "Modelfile").write_text(f"FROM {minilm_path}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LLAMANATIVE_MODELS", str(qstore))
    assert main(["create", "mini-cli", "-q", "q5_K_M"]) == 0
    err = capsys.readouterr().err
    assert "quantizing F16 model to Q5_K_M: 100%" in err and err.rstrip().endswith("success")
    assert main(["show", "mini-cli"]) == 0
    assert re.search(r"quantization\s+Q5_K_M", capsys.readouterr().out)
    assert main(["create", "mini-cli2", "--quantize", "q2_K"]) == 1
    assert "unsupported quantization type q2_K" in capsys.readouterr().err
