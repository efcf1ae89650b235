"""Reranking: ``Client.rerank`` against llama-server's ``/rerank`` on the same cross-encoder, and its API.

The reranker is MiniLM with a random classification head and rank pooling,
written by ``scripts/make_test_reranker.py``: its scores mean nothing, but
llama-server (built from the vendored tree) scores the same file as the
reference, so every score and the order must match it.
"""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import llamanative
from llamanative import Client, RerankResponse, StatusError
from llamanative.ai import Registry
from llamanative.ai.errors import GenkitError
from llamanative.ai.retrieval import BM25Reranker, ClientReranker, rerank
from llamanative.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]

QUERIES = [
    "how do plants make food",
    "the history of the violin",
    "what is a black hole",
    "best way to bake bread",
    "why is the sky blue",
]
DOCUMENTS = [
    "Photosynthesis turns light, water and carbon dioxide into sugar.",
    "Stradivari built violins in Cremona in the 17th and 18th centuries.",
    "A black hole is a region of spacetime where gravity prevents escape.",
    "Knead the dough, let it rise twice, and bake it in a hot oven.",
    "Rayleigh scattering makes short blue wavelengths dominate the sky.",
    "The stock market fell sharply on Monday.",
    "Cats sleep for most of the day.",
    "Bows are strung with horsehair and rosin.",
    "Yeast ferments sugars and produces carbon dioxide.",
    "Neutron stars are the collapsed cores of massive stars.",
]  # 5 queries x 10 documents = 50 pairs


def make_test_reranker(outdir: Path, minilm: Path) -> Path:
    """Run ``scripts/make_test_reranker.py outdir --minilm minilm``; return the path of its last line."""
    script = REPO / "scripts" / "make_test_reranker.py"
    proc = subprocess.run(
        [sys.executable, str(script), str(outdir), "--minilm", str(minilm)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.fail(f"{script.name} failed ({proc.returncode}):\n{proc.stderr}", pytrace=False)
    last = proc.stdout.splitlines()[-1] if proc.stdout else ""
    m = re.fullmatch(r"model=(.+)", last)
    if m is None:
        pytest.fail(f"{script.name}: last line is not 'model=...': {last!r}", pytrace=False)
    return Path(m[1])


@pytest.fixture(scope="module")
def reranker_path(tmp_path_factory, minilm_path) -> Path:
    return make_test_reranker(tmp_path_factory.mktemp("reranker"), minilm_path)


@pytest.fixture(scope="module")
def server_scores(reranker_path, tmp_path_factory) -> Iterator[dict[str, np.ndarray]]:
    """llama-server's ``/rerank`` scores of every document for each query (by document index), one request
    per query, each pair decoded alone (``-np 1``); the server is built from the vendored tree and stopped
    after the module."""
    from compare_llama_server import Server, post
    from reference_tools import build_reference_tools

    exe = build_reference_tools(names=("llama-server",))["llama-server"]
    log = tmp_path_factory.mktemp("server") / "llama-server.log"
    with Server(exe, ["-m", str(reranker_path), "--rerank", "-t", "1", "-np", "1"], log) as srv:
        out = {}
        for q in QUERIES:
            data = post(srv.port, "/rerank", {"query": q, "documents": DOCUMENTS})
            scores = np.full(len(DOCUMENTS), np.nan)
            order = []
            for r in data["results"]:
                scores[r["index"]] = r["relevance_score"]
                order.append(r["index"])
            out[q] = scores
            out[q + "#order"] = np.array(order)
        yield out


@pytest.fixture(scope="module")
def rr_client(model_store) -> Iterator[Client]:
    with Client(models_dir=model_store) as c:
        yield c


def by_index(resp: RerankResponse, n: int) -> np.ndarray:
    scores = np.full(n, np.nan)
    for r in resp.results:
        scores[r.index] = r.relevance_score
    return scores


# llama.cpp's scores of a pair depend on what else is in its batch (the attention sums run over the
# whole batch, masked, in another order; the flash-attention kernel accumulates in F16): llama-server's own
# answer for these pairs differs by up to 7e-4 between -np 4 (pairs batched) and -np 1 (one a decode).
# So the reference runs one pair a decode (-np 1), which one-at-a-time calls match to 1e-4, and a batched
# call matches it to this tolerance, in the same order.
BATCHED_ATOL = 2e-3


def test_scores_match_llama_server_batched(rr_client, reranker_path, server_scores):
    for q in QUERIES:
        resp = rr_client.rerank(str(reranker_path), q, DOCUMENTS, options={"num_thread": 1})
        assert len(resp.results) == len(DOCUMENTS)
        np.testing.assert_allclose(by_index(resp, len(DOCUMENTS)), server_scores[q], atol=BATCHED_ATOL, rtol=0)
        assert [r.index for r in resp.results] == server_scores[q + "#order"].tolist()
        assert resp.scores() == sorted(resp.scores(), reverse=True)
        assert resp.prompt_eval_count and resp.prompt_eval_count > 0


def test_scores_match_llama_server_one_at_a_time(rr_client, reranker_path, server_scores):
    for q in QUERIES:
        single = np.array(
            [
                rr_client.rerank(str(reranker_path), q, [d], options={"num_thread": 1}).results[0].relevance_score
                for d in DOCUMENTS
            ]
        )
        np.testing.assert_allclose(single, server_scores[q], atol=1e-4, rtol=0)
        assert np.argsort(-single, kind="stable").tolist() == server_scores[q + "#order"].tolist()


def test_top_n_and_return_documents(rr_client, reranker_path):
    full = rr_client.rerank(str(reranker_path), QUERIES[0], DOCUMENTS)
    top = rr_client.rerank(str(reranker_path), QUERIES[0], DOCUMENTS, top_n=3, return_documents=True)
    assert [r.index for r in top.results] == [r.index for r in full.results[:3]]
    assert [r.document for r in top.results] == [DOCUMENTS[r.index] for r in top.results]
    assert all(r.document is None for r in full.results)
    assert "document" not in full.results[0].model_dump(exclude_none=True)
    assert rr_client.rerank(str(reranker_path), QUERIES[0], DOCUMENTS, top_n=0).results == []
    with pytest.raises(StatusError) as exc:
        rr_client.rerank(str(reranker_path), QUERIES[0], DOCUMENTS, top_n=-1)
    assert exc.value.status_code == 400


def test_empty_documents_load_the_model_and_return_nothing(rr_client, reranker_path):
    resp = rr_client.rerank(str(reranker_path), "anything", [])
    assert resp.results == []
    assert any(m.model == str(reranker_path) or m.name == str(reranker_path) for m in rr_client.ps().models)


def test_a_model_that_is_not_a_reranker_is_a_400(rr_client):
    with pytest.raises(StatusError) as exc:
        rr_client.rerank("mini", "q", ["a document"])
    assert exc.value.status_code == 400
    assert "does not support reranking" in str(exc.value) and "embedding model" in str(exc.value)
    with pytest.raises(StatusError) as exc:
        rr_client.rerank("smol", "q", ["a document"])
    assert exc.value.status_code == 400
    assert "generative model" in str(exc.value)


def test_embed_on_a_reranker_is_a_400(rr_client, reranker_path):
    with pytest.raises(StatusError) as exc:
        rr_client.embed(str(reranker_path), "text")
    assert exc.value.status_code == 400
    assert "reranker" in str(exc.value)


def test_truncate(rr_client, reranker_path):
    long_doc = "word " * 600  # over the model's 512-token context with the query
    resp = rr_client.rerank(str(reranker_path), "q", ["short", long_doc])
    assert sorted(r.index for r in resp.results) == [0, 1]
    assert np.isfinite(resp.scores()).all()
    with pytest.raises(StatusError) as exc:
        rr_client.rerank(str(reranker_path), "q", ["short", long_doc], truncate=False)
    assert exc.value.status_code == 400
    assert "document 1" in str(exc.value) and "context length" in str(exc.value)


def test_show_reports_the_rerank_capability(rr_client, reranker_path):
    assert rr_client.show(str(reranker_path)).capabilities == ["rerank"]
    assert rr_client.show("mini").capabilities == ["embedding"]


def test_module_level_rerank(monkeypatch, tmp_path, reranker_path, rr_client):
    monkeypatch.setenv("LLAMANATIVE_MODELS", str(tmp_path / "store"))
    monkeypatch.setattr(llamanative, "_default_client", None)
    try:
        resp = llamanative.rerank(str(reranker_path), QUERIES[1], DOCUMENTS, top_n=2)
    finally:
        if llamanative._default_client is not None:
            llamanative._default_client.close()
    expected = rr_client.rerank(str(reranker_path), QUERIES[1], DOCUMENTS, top_n=2)
    assert [r.index for r in resp.results] == [r.index for r in expected.results]


def test_cli(monkeypatch, tmp_path, reranker_path, rr_client):
    monkeypatch.setenv("LLAMANATIVE_MODELS", str(tmp_path / "store"))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli_main(["rerank", str(reranker_path), QUERIES[2], *DOCUMENTS[:4], "-n", "2"]) == 0
    lines = out.getvalue().splitlines()
    expected = rr_client.rerank(str(reranker_path), QUERIES[2], DOCUMENTS[:4], top_n=2)
    assert len(lines) == 2
    for line, r in zip(lines, expected.results):
        score, index, text = line.split("\t")
        assert int(index) == r.index and text == DOCUMENTS[r.index]
        assert float(score) == pytest.approx(r.relevance_score, abs=1e-5)


def test_ai_reranker(rr_client, reranker_path):
    expected = rr_client.rerank(str(reranker_path), QUERIES[3], DOCUMENTS)
    ai = Registry(client=rr_client)
    ranked = ai.rerank(f"llamanative/{reranker_path}", QUERIES[3], DOCUMENTS, {"k": 4})
    assert [r.text() for r in ranked] == [DOCUMENTS[r.index] for r in expected.results[:4]]
    assert [r.score for r in ranked] == pytest.approx(expected.scores()[:4])
    direct = rerank(ClientReranker(rr_client, str(reranker_path)), QUERIES[3], DOCUMENTS, k=4)
    assert [r.text() for r in direct] == [r.text() for r in ranked]
    # The existing rerankers are still there, beside it; a name that is not a reranker fails with why.
    assert ai.rerank(BM25Reranker(), "horsehair and rosin", DOCUMENTS, {"k": 1})[0].text() == DOCUMENTS[7]
    with pytest.raises(GenkitError, match="does not support reranking"):
        ai.rerank("llamanative/mini", "q", ["a"])
