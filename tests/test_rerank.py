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
from llamanative.engine.embedding import EMBED_PACK_TOKENS

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


def llama_server_scores(reranker_path: Path, slots: int, log: Path) -> dict[str, np.ndarray]:
    """llama-server's ``/rerank`` scores of every document for each query (by document index), their order,
    and (``#decode``) the documents in the order the server decoded them: one request per query, from a
    server built from the vendored tree with ``-t 1 -np slots``."""
    from compare_llama_server import Server, post
    from reference_tools import build_reference_tools

    exe = build_reference_tools(names=("llama-server",))["llama-server"]
    out = {}
    with Server(exe, ["-m", str(reranker_path), "--rerank", "-t", "1", "-np", str(slots)], log) as srv:
        for q in QUERIES:
            data = post(srv.port, "/rerank", {"query": q, "documents": DOCUMENTS})
            scores = np.full(len(DOCUMENTS), np.nan)
            order = []
            for r in data["results"]:
                scores[r["index"]] = r["relevance_score"]
                order.append(r["index"])
            out[q] = scores
            out[q + "#order"] = np.array(order)
    # A request's documents become tasks in document order, and each goes to a free slot by LRU; a decode
    # takes the slots' tokens in slot order. Which slot a task gets depends on release times that tie, so
    # the order is read from the log.
    launched = [
        (int(slot), int(task)) for slot, task in re.findall(r"launch_slot_: id +(\d+) \| task (\d+)", log.read_text())
    ]
    assert len(launched) == len(DOCUMENTS) * len(QUERIES), f"llama-server's log has {len(launched)} launches"
    for i, q in enumerate(QUERIES):
        tasks = launched[i * len(DOCUMENTS) : (i + 1) * len(DOCUMENTS)]
        document = {task: k for k, (_, task) in enumerate(sorted(tasks, key=lambda st: st[1]))}
        out[q + "#decode"] = np.array([document[task] for _, task in sorted(tasks)])
    return out


@pytest.fixture(scope="module")
def server_scores(reranker_path, tmp_path_factory) -> dict[str, np.ndarray]:
    """The reference for one pair a decode: llama-server with one slot (``-np 1``)."""
    return llama_server_scores(reranker_path, 1, tmp_path_factory.mktemp("server") / "llama-server.log")


@pytest.fixture(scope="module")
def server_scores_batched(reranker_path, tmp_path_factory) -> dict[str, np.ndarray]:
    """The reference for a batched call: llama-server with a slot per document (``-np 10``), so that each
    query's 10 pairs (about 200 tokens, under both its ubatch of 512 and the engine's pack,
    ``EMBED_PACK_TOKENS``) are one decode in document order, as ``Client.rerank`` packs them."""
    return llama_server_scores(
        reranker_path, len(DOCUMENTS), tmp_path_factory.mktemp("server-batched") / "llama-server.log"
    )


@pytest.fixture(scope="module")
def rr_client(model_store) -> Iterator[Client]:
    with Client(models_dir=model_store) as c:
        yield c


def by_index(resp: RerankResponse, n: int) -> np.ndarray:
    scores = np.full(n, np.nan)
    for r in resp.results:
        scores[r.index] = r.relevance_score
    return scores


# llama.cpp's score of a pair depends on what else is in its decode and in which order (the attention
# sums run over the whole ubatch, masked, and the kernels' blocking follows the batch): llama-server's own
# answers for these pairs differ by up to 7e-4 between -np 10 (a query's pairs in one decode) and -np 1
# (one pair a decode). So each call is compared with the reference that decodes the same pairs together.
def test_scores_match_llama_server_batched(rr_client, reranker_path, server_scores_batched):
    for q in QUERIES:
        # The same pairs in the same order as the reference's decode; the results say each one's index.
        decode = server_scores_batched[q + "#decode"]
        resp = rr_client.rerank(str(reranker_path), q, [DOCUMENTS[k] for k in decode], options={"num_thread": 1})
        assert len(resp.results) == len(DOCUMENTS)
        # One pack, as in the reference's decode.
        assert resp.prompt_eval_count and resp.prompt_eval_count <= EMBED_PACK_TOKENS
        scores = np.full(len(DOCUMENTS), np.nan)
        for r in resp.results:
            scores[decode[r.index]] = r.relevance_score
        np.testing.assert_allclose(scores, server_scores_batched[q], atol=1e-4, rtol=0)
        assert [int(decode[r.index]) for r in resp.results] == server_scores_batched[q + "#order"].tolist()
        assert resp.scores() == sorted(resp.scores(), reverse=True)


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
