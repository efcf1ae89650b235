"""Embeddings with MiniLM (BERT encoder, mean pooling), checked against sentence-transformers."""

from __future__ import annotations

import numpy as np
import pytest

from llamanative import _core

A = "A man is eating food."
B = "A man is riding a white horse on an enclosed ground."


def embed(model, texts, **kw):
    ctx = _core.Context(model, n_ctx=512, n_batch=512, n_ubatch=512, n_seq_max=len(texts), embeddings=True, **kw)
    batch = _core.Batch(512)
    for i, t in enumerate(texts):
        batch.add_sequence(model.vocab.tokenize(t), 0, i, output="all")
    ctx.decode(batch)
    return ctx, [ctx.embeddings_seq(i) for i in range(len(texts))]


def test_minilm_mean_pooling_matches_sentence_transformers(minilm):
    ctx, (a, b) = embed(minilm, [A, B])
    assert ctx.pooling_type == "mean"
    assert a.shape == (384,) and a.dtype == np.float32
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-6)
    # sentence-transformers/all-MiniLM-L6-v2 gives 0.171 for this pair.
    assert float(a @ b) == pytest.approx(0.171, abs=0.01)


def test_embedding_views_are_zero_copy(minilm):
    ctx, (a, _) = embed(minilm, [A, B])
    assert not a.flags.writeable and a.base.context is ctx
    assert np.shares_memory(a, ctx.embeddings_seq(0))
    out = np.zeros(384, np.float32)
    assert ctx.embeddings_seq(0, out=out) is out
    np.testing.assert_array_equal(out, a)
    with pytest.raises(ValueError, match="384"):
        ctx.embeddings_seq(0, out=np.zeros(10, np.float32))


def test_batched_equals_single(minilm):
    _, (alone,) = embed(minilm, [B])
    _, many = embed(minilm, [A, B, "something else entirely", "x"])
    cos = float(alone @ many[1] / np.linalg.norm(alone) / np.linalg.norm(many[1]))
    assert cos > 0.9999


def test_per_token_embeddings_with_pooling_none(minilm):
    ctx = _core.Context(minilm, n_ctx=512, embeddings=True, pooling_type="none")
    toks = minilm.vocab.tokenize(A)
    b = _core.Batch(64)
    b.add_sequence(toks, 0, 0, output="all")
    ctx.decode(b)
    rows = [ctx.embeddings_ith(i) for i in range(len(toks))]
    assert all(r.shape == (384,) for r in rows)
    with pytest.raises(ValueError, match="none"):
        ctx.embeddings_seq(0)


def test_encoder_batch_must_fit_in_ubatch(minilm):
    ctx = _core.Context(minilm, n_ctx=512, n_batch=512, n_ubatch=8, embeddings=True)
    b = _core.Batch(64)
    b.add_sequence(minilm.vocab.tokenize(B), 0, 0, output="all")
    # llama.cpp would abort the process here; we refuse first.
    with pytest.raises(ValueError, match="n_ubatch=8"):
        ctx.decode(b)
    with pytest.raises(ValueError, match="n_ubatch=8"):
        ctx.encode(b)


def test_generative_model_embeddings(smollm2):
    ctx = _core.Context(smollm2, n_ctx=256, n_seq_max=2, embeddings=True, pooling_type="mean")
    b = _core.Batch(64)
    b.add_sequence(smollm2.vocab.tokenize(A), 0, 0, output="all")
    ctx.decode(b)
    e = ctx.embeddings_seq(0)
    assert e.shape == (smollm2.n_embd_out,) and np.isfinite(e).all()
    with pytest.raises(IndexError, match="not in the last batch"):
        ctx.embeddings_seq(1)
    with pytest.raises(IndexError, match="out of range"):
        ctx.embeddings_seq(2)


def test_embeddings_off_raises(smollm2):
    ctx = _core.Context(smollm2, n_ctx=256)
    with pytest.raises(ValueError, match="embeddings=True"):
        ctx.embeddings_seq(0)
