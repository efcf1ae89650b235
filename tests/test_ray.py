"""llamanative on a local Ray cluster (``llamanative.ray``): Ray Data embeddings and a Ray Serve deployment.

Its own test job: it needs the ``ray`` extra (``ray[data,serve]``) and is
skipped where Ray is not installed. The cluster is this machine only
(``ray.init(num_cpus=2)``, no dashboard, no usage reporting); the Serve
application listens on 127.0.0.1. Results are compared with an in-process
:class:`llamanative.Client` on the same store: the test checks the
distribution, not the model.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no report to Ray's usage server, here or in the workers

import ollama  # noqa: E402
import openai  # noqa: E402
import ray  # noqa: E402
import ray.data  # noqa: E402
from ray import serve  # noqa: E402
from ray.exceptions import RayError  # noqa: E402

from llamanative import Client  # noqa: E402
from llamanative.errors import StatusError  # noqa: E402
from llamanative.ray import ColumnError, ColumnTypeError, embed_dataset, serve_app, serve_deployment  # noqa: E402

GREEDY = {"temperature": 0, "num_predict": 12}
HI = [{"role": "user", "content": "Name a colour."}]
KEY = "ray-test-key"


def sentences(n: int) -> list[str]:
    """``n`` distinct short sentences of varied length (4-27 words)."""
    words = "the a small quick model cache river city night engine reads builds finds keeps under over every".split()
    return [
        " ".join(words[(i * 7 + j * 3) % len(words)] for j in range(4 + i % 24)).capitalize() + f" ({i})."
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def store(tmp_path_factory, smollm2_path, minilm_path) -> Path:
    root = tmp_path_factory.mktemp("ray-store")
    with Client(models_dir=root) as c:
        c.create("smol", from_=str(smollm2_path))
        c.create("mini", from_=str(minilm_path))
    return root


@pytest.fixture(scope="module")
def flash_attention_on() -> Iterator[None]:
    """Flash attention for every model this module loads, here and in Ray's workers (which inherit the
    environment of ``ray.init``). Without it, a prompt found in the prefix cache but for its last token rounds
    differently from one evaluated whole (docs/design/engine.md, "Prefix reuse and rounding"), and a greedy
    answer can flip at a near-tie between a first request and a repeated one; with it, every layout gives the
    same bits, so the in-process and the served answers can be compared token for token."""
    before = os.environ.get("LLAMANATIVE_FLASH_ATTENTION")
    os.environ["LLAMANATIVE_FLASH_ATTENTION"] = "on"
    try:
        yield
    finally:
        if before is None:
            del os.environ["LLAMANATIVE_FLASH_ATTENTION"]
        else:
            os.environ["LLAMANATIVE_FLASH_ATTENTION"] = before


@pytest.fixture(scope="module")
def local(store, flash_attention_on) -> Iterator[Client]:
    """The in-process client the distributed results are compared with."""
    with Client(models_dir=store) as c:
        yield c


@pytest.fixture(scope="module")
def cluster(flash_attention_on) -> Iterator[None]:
    """A Ray cluster of this process and its workers: 2 CPUs, no dashboard, a small object store."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=128 * 2**20)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture
def ordered(cluster) -> Iterator[None]:
    """Datasets made inside the test keep their blocks' order (Ray's default does not)."""
    ctx = ray.data.DataContext.get_current()
    before = ctx.execution_options.preserve_order
    ctx.execution_options.preserve_order = True
    try:
        yield
    finally:
        ctx.execution_options.preserve_order = before


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# -- Ray Data ------------------------------------------------------------------------------------------------
def test_5000_texts_through_two_actors_equal_the_in_process_embeddings(ordered, store, local):
    texts = sentences(5000)
    expected = local.embed("mini", texts).as_array()
    ds = ray.data.from_items([{"id": i, "text": t} for i, t in enumerate(texts)], override_num_blocks=8)
    out = embed_dataset(ds, "mini", models_dir=store, concurrency=2, batch_size=256).take_batch(
        len(texts), batch_format="numpy"
    )
    assert out["id"].tolist() == list(range(len(texts)))  # same order
    assert out["text"].tolist() == texts  # each row keeps its text
    got = out["embedding"]
    assert got.dtype == np.float32 and got.shape == expected.shape == (5000, 384)
    assert cosines(got, expected).min() >= 0.99999


def test_rows_keep_their_text_in_any_order_and_dimensions_apply(cluster, store, local):
    texts = sentences(300)
    expected = local.embed("mini", texts, dimensions=64).as_array()
    ds = ray.data.from_items([{"id": i, "text": t} for i, t in enumerate(texts)], override_num_blocks=5)
    out = embed_dataset(ds, "mini", models_dir=store, output_column="vec", dimensions=64, batch_size=50)
    rows = out.take_batch(len(texts), batch_format="numpy")
    order = np.argsort(rows["id"])
    assert [rows["text"][i] for i in order] == texts
    got = rows["vec"][order]
    assert got.shape == (300, 64)
    assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)
    assert cosines(got, expected).min() >= 0.99999


def test_a_batch_of_one_empty_text_gets_its_vector(ordered, store, local):
    expected = local.embed("mini", ["", "x"]).as_array()[:1]
    out = embed_dataset(ray.data.from_items([{"text": ""}]), "mini", models_dir=store).take_all()
    assert len(out) == 1 and cosines(out[0]["embedding"][None, :], expected)[0] >= 0.99999


def test_bad_input_is_a_typed_error_before_any_actor_starts(cluster, store):
    texts = ray.data.from_items([{"text": "a cat"}, {"text": "a dog"}])
    with pytest.raises(ColumnError, match="no column 'body'") as missing:
        embed_dataset(texts, "mini", column="body", models_dir=store)
    assert missing.value.column == "body" and isinstance(missing.value, ValueError)
    with pytest.raises(ColumnTypeError, match="must hold strings, not int64") as numbers:
        embed_dataset(ray.data.from_items([{"text": 1}, {"text": 2}]), "mini", models_dir=store)
    assert isinstance(numbers.value, TypeError) and isinstance(numbers.value, ColumnError)
    with pytest.raises(ColumnError, match="already has a column 'text'"):
        embed_dataset(
            ray.data.from_items([{"body": "x", "text": "y"}]),
            "mini",
            column="body",
            output_column="text",
            models_dir=store,
        )
    with pytest.raises(ColumnError, match="is the text column"):
        embed_dataset(texts, "mini", output_column="text", models_dir=store)
    with pytest.raises(StatusError, match="not found") as absent:
        embed_dataset(texts, "no-such-model", models_dir=store)
    assert absent.value.status_code == 404
    with pytest.raises(StatusError, match="num_ctx") as option:
        embed_dataset(texts, "mini", options={"num_ctx": "many"}, models_dir=store)
    assert option.value.status_code == 400
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        embed_dataset(texts, "mini", batch_size=0, models_dir=store)
    with pytest.raises(ValueError, match="above its max"):
        embed_dataset(texts, "mini", concurrency=(3, 1), models_dir=store)
    with pytest.raises(TypeError, match="concurrency must be an integer"):
        embed_dataset(texts, "mini", concurrency=1.5, models_dir=store)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ray.data.Dataset"):
        embed_dataset(["a cat"], "mini", models_dir=store)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="model must be a non-empty string"):
        embed_dataset(texts, "", models_dir=store)


def test_a_null_text_fails_its_batch_with_the_column_error(cluster, store):
    ds = ray.data.from_items([{"text": "a cat"}, {"text": None}])  # a string column: only a batch can tell
    with pytest.raises(RayError, match=r"ColumnTypeError: column 'text' must hold strings: a row of it holds null"):
        embed_dataset(ds, "mini", models_dir=store).take_all()


# -- Ray Serve -----------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(cluster, store) -> Iterator[str]:
    """The application on 2 replicas (Ray Serve's options, given and through ``.options``), both models loaded
    when a replica starts, behind an API key."""
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    deployment = serve_deployment(["smol", "mini"], models_dir=store, api_key=KEY, ray_actor_options={"num_cpus": 0.5})
    app = deployment.options(num_replicas=2).bind()
    serve.run(app, name="llamanative", route_prefix="/")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()


def test_serve_runs_the_replicas_it_was_given(served):
    status = serve.status().applications["llamanative"]
    assert status.deployments["llamanative"].replica_states == {"RUNNING": 2}


def test_serve_answers_ollama_chat_and_embed_as_in_process(served, local):
    client = ollama.Client(host=served, headers={"Authorization": f"Bearer {KEY}"})
    want = local.chat("smol", messages=HI, options=GREEDY).message.content
    assert want and client.chat("smol", messages=HI, options=GREEDY).message.content == want
    chunks = [c.message.content for c in client.chat("smol", messages=HI, options=GREEDY, stream=True)]
    assert len(chunks) > 1 and "".join(chunks) == want
    texts = ["a cat sat on the mat", "the stock market fell"]
    got = np.asarray(client.embed("mini", texts).embeddings, dtype=np.float32)
    assert cosines(got, local.embed("mini", texts).as_array()).min() >= 0.99999
    with pytest.raises(ollama.ResponseError) as absent:
        client.chat("no-such-model", messages=HI)
    assert absent.value.status_code == 404


def test_serve_answers_openai_chat_and_embeddings(served, local):
    client = openai.OpenAI(base_url=f"{served}/v1", api_key=KEY, max_retries=0)
    want = local.chat("smol", messages=HI, options=GREEDY).message.content
    resp = client.chat.completions.create(model="smol", messages=HI, temperature=0, max_tokens=12)  # type: ignore[arg-type]
    assert resp.choices[0].message.content == want
    vec = np.asarray([client.embeddings.create(model="mini", input="a cat").data[0].embedding], dtype=np.float32)
    assert cosines(vec, local.embed("mini", ["a cat"]).as_array())[0] >= 0.99999
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{served}/v1", api_key="wrong", max_retries=0).models.list()


def test_a_replica_whose_model_does_not_load_fails_to_start(served, store):
    with pytest.raises(RuntimeError, match="Deploying application bad failed"):
        serve.run(
            serve_app("no-such-model", models_dir=store, ray_actor_options={"num_cpus": 0.25}),
            name="bad",
            route_prefix="/bad",
        )
    serve.delete("bad")
    assert "bad" not in serve.status().applications


def test_serve_app_refuses_a_model_that_is_not_a_name(cluster):
    with pytest.raises(TypeError, match="model must be a model name"):
        serve_app(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="model must be a model name"):
        serve_app(["smol", ""])
