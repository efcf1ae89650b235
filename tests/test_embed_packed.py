"""The packed embedding path: ``Vocab.tokenize_many`` and ``Context.embed_sequences``.

Real MiniLM (BERT encoder, mean pooling) and SmolLM2 (a causal model with mean
pooling forced): packed results equal one-at-a-time results, and every bad
input is a ValueError raised before llama.cpp runs, leaving the context usable.
"""

from __future__ import annotations

import numpy as np
import pytest

from llamanative import _core
from llamanative.errors import DecodeAbortedError

TEXTS = [
    f"Sentence {i}: the {w} crosses the river at night."
    for i, w in enumerate(["cat", "train", "cloud", "letter", "teacher", "signal", "garden", "engine"] * 32)
]


def encoder_ctx(model, n_seq_max=64, **kw):
    return _core.Context(
        model, n_ctx=512, n_batch=512, n_ubatch=512, n_seq_max=n_seq_max, n_threads=2, embeddings=True, **kw
    )


def test_tokenize_many_equals_tokenize(minilm, smollm2):
    for model in (minilm, smollm2):
        v = model.vocab
        texts = ["", "héllo wörld", b"raw bytes", "<|im_start|>user", *TEXTS[:20]]
        for special in (False, True):
            tokens, offsets = v.tokenize_many(texts, add_special=True, parse_special=special)
            assert tokens.dtype == np.int32 and offsets.dtype == np.int64
            assert len(offsets) == len(texts) + 1 and offsets[0] == 0 and offsets[-1] == len(tokens)
            for i, t in enumerate(texts):
                np.testing.assert_array_equal(
                    tokens[offsets[i] : offsets[i + 1]], v.tokenize(t, add_special=True, parse_special=special)
                )
    empty_tokens, empty_offsets = minilm.vocab.tokenize_many([])
    assert len(empty_tokens) == 0 and list(empty_offsets) == [0]


def test_tokenize_many_long_text_retries_with_the_exact_size(smollm2):
    # A text whose token count exceeds the first guess cannot happen for BPE (<= 1 per byte),
    # but a long text exercises the buffer growth across inputs.
    texts = ["word " * 5000, "short", "x" * 10000]
    tokens, offsets = smollm2.vocab.tokenize_many(texts)
    for i, t in enumerate(texts):
        np.testing.assert_array_equal(tokens[offsets[i] : offsets[i + 1]], smollm2.vocab.tokenize(t))


def test_tokenize_many_rejects_bad_input(minilm):
    with pytest.raises(TypeError, match="sequence of texts"):
        minilm.vocab.tokenize_many("one text")
    with pytest.raises(TypeError, match="str or bytes"):
        minilm.vocab.tokenize_many(["ok", 3])


def test_packed_equals_one_at_a_time_for_256_inputs(minilm):
    ctx = encoder_ctx(minilm)
    tokens, offsets = minilm.vocab.tokenize_many(TEXTS)
    out = np.empty((len(TEXTS), ctx.n_embd_out), np.float32)
    n_decodes = ctx.embed_sequences(tokens, offsets, out, normalize=True)
    # Whole inputs only, at most 512 tokens and 64 sequences per decode.
    assert n_decodes >= max(len(tokens) / 512, len(TEXTS) / 64)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    one = np.empty((1, ctx.n_embd_out), np.float32)
    for i in (0, 1, 63, 64, 200, 255):
        toks = minilm.vocab.tokenize(TEXTS[i])
        ctx.embed_sequences(toks, [0, len(toks)], one, normalize=True)
        assert float(one[0] @ out[i]) >= 0.9999
    # Un-normalised rows are the pooled vectors; normalising them gives `out`.
    raw = np.empty_like(out)
    ctx.embed_sequences(tokens, offsets, raw)
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), out, rtol=1e-5, atol=1e-6)
    # The same vector (up to float rounding: another batch shape) as the per-sequence reader.
    ref_ctx = encoder_ctx(minilm, n_seq_max=2)
    batch = _core.Batch(512)
    batch.add_sequence(minilm.vocab.tokenize(TEXTS[5]), 0, 0, output="all")
    ref_ctx.decode(batch)
    ref = ref_ctx.embeddings_seq(0)
    assert float(raw[5] @ ref) / float(np.linalg.norm(raw[5]) * np.linalg.norm(ref)) >= 0.9999
    np.testing.assert_allclose(np.linalg.norm(raw[5]), np.linalg.norm(ref), rtol=1e-3)


def test_smaller_packs_give_the_same_rows_in_more_decodes(minilm):
    ctx = encoder_ctx(minilm)
    texts = TEXTS[:40] + [" ".join(TEXTS[:12])] + TEXTS[40:60]  # one input longer than the pack
    tokens, offsets = minilm.vocab.tokenize_many(texts)
    assert np.diff(offsets).max() > 128
    full = np.empty((len(texts), ctx.n_embd_out), np.float32)
    packed = np.empty_like(full)
    n_full = ctx.embed_sequences(tokens, offsets, full, normalize=True)
    n_packed = ctx.embed_sequences(tokens, offsets, packed, normalize=True, pack=128)
    assert n_packed > n_full
    # Every decode but the long input's holds at most 128 tokens: at least that many decodes.
    assert n_packed >= (len(tokens) - np.diff(offsets).max()) / 128 + 1
    assert float(np.min(np.sum(full * packed, axis=1))) >= 0.9999
    assert ctx.embed_sequences(tokens, offsets, packed, normalize=True, pack=10**6) == n_full  # capped at n_batch
    with pytest.raises(ValueError, match="pack"):
        ctx.embed_sequences(tokens, offsets, packed, pack=-1)


def test_causal_model_with_mean_pooling(smollm2):
    ctx = _core.Context(
        smollm2, n_ctx=256, n_batch=256, n_ubatch=256, n_seq_max=16, n_threads=2, embeddings=True, pooling_type="mean"
    )
    texts = TEXTS[:40]
    tokens, offsets = smollm2.vocab.tokenize_many(texts)
    out = np.empty((len(texts), ctx.n_embd_out), np.float32)
    assert ctx.embed_sequences(tokens, offsets, out, normalize=True) >= 3  # 16 sequences per decode at most
    one = np.empty((1, ctx.n_embd_out), np.float32)
    for i in (0, 17, 39):
        toks = smollm2.vocab.tokenize(texts[i])
        ctx.embed_sequences(toks, [0, len(toks)], one, normalize=True)
        assert float(one[0] @ out[i]) >= 0.9999


@pytest.mark.parametrize(
    "case, match",
    [
        ("bad_token", "input 2: token id"),
        ("negative_token", "input 0: token id -1"),
        ("empty_input", "input 1 is empty"),
        ("too_long", "input 0 has 600 tokens"),
        ("offsets_end", "end at len"),
        ("offsets_start", "start at 0"),
        ("out_shape", r"\(3, 384\) float32 matrix"),
        ("offsets_2d", "one-dimensional"),
    ],
)
def test_bad_input_is_a_value_error_and_the_context_stays_usable(minilm, case, match):
    ctx = encoder_ctx(minilm)
    good = [minilm.vocab.tokenize(t) for t in TEXTS[:3]]
    tokens = np.concatenate(good)
    offsets = np.cumsum([0] + [len(g) for g in good])
    out = np.empty((3, 384), np.float32)
    if case == "bad_token":
        tokens = tokens.copy()
        tokens[offsets[2] + 1] = minilm.vocab.n_vocab
    elif case == "negative_token":
        tokens = tokens.copy()
        tokens[0] = -1
    elif case == "empty_input":
        offsets = offsets.copy()
        offsets[2] = offsets[1]  # input 1 has no tokens
    elif case == "too_long":
        tokens = np.ones(600, np.int32)
        offsets = [0, 600]
        out = np.empty((1, 384), np.float32)
    elif case == "offsets_end":
        offsets = offsets.copy()
        offsets[-1] -= 1
    elif case == "offsets_start":
        offsets = offsets.copy()
        offsets[0] = 1
    elif case == "out_shape":
        out = np.empty((3, 100), np.float32)
    elif case == "offsets_2d":
        offsets = np.zeros((2, 2), np.int64)
    with pytest.raises(ValueError, match=match):
        ctx.embed_sequences(tokens, offsets, out)
    ok = np.empty((3, 384), np.float32)
    assert ctx.embed_sequences(np.concatenate(good), np.cumsum([0] + [len(g) for g in good]), ok) == 1


def test_contexts_that_cannot_pool_are_refused(minilm, smollm2):
    toks = minilm.vocab.tokenize("hello")
    out = np.empty((1, 384), np.float32)
    with pytest.raises(ValueError, match="pooling_type is 'none'"):
        encoder_ctx(minilm, pooling_type="none").embed_sequences(toks, [0, len(toks)], out)
    gen = _core.Context(smollm2, n_ctx=128, n_batch=128, n_threads=2)
    with pytest.raises(ValueError, match="embeddings=True"):
        gen.embed_sequences(toks, [0, len(toks)], np.empty((1, gen.n_embd_out), np.float32))


def test_no_inputs_runs_nothing(minilm):
    ctx = encoder_ctx(minilm)
    assert ctx.embed_sequences(np.empty(0, np.int32), [0], np.empty((0, 384), np.float32)) == 0


def test_cancel_before_the_call_aborts_it_and_the_next_call_runs(minilm):
    ctx = encoder_ctx(minilm)
    tokens, offsets = minilm.vocab.tokenize_many(TEXTS)
    out = np.zeros((len(TEXTS), 384), np.float32)
    ctx.cancel()  # asks the next decode to stop
    with pytest.raises(DecodeAbortedError) as info:
        ctx.embed_sequences(tokens, offsets, out)
    assert "starts at input 0" in str(info.value)
    assert ctx.embed_sequences(tokens, offsets, out) >= 4
    assert np.all(np.isfinite(out)) and np.all(np.linalg.norm(out, axis=1) > 0)
