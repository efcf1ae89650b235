"""The flash-attention setting of generation contexts: parsed, resolved, and equal in results."""

from __future__ import annotations

import numpy as np
import pytest
from test_engine import GREEDY, collect

from llamanative import Client, _core
from llamanative.engine import CompletionJob, Piece, Runner, RunnerConfig
from llamanative.engine.attention import (
    ENV_VAR,
    SCORES_BUDGET_BYTES,
    flash_attn_setting,
    resolve_flash_attn,
    scores_bytes,
)

STORY = (
    "The lighthouse keeper climbed the stairs every evening, counted the ships on the horizon "
    "and wrote their names in a book that nobody else ever read. "
)


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, "auto"),
        ("", "auto"),
        ("auto", "auto"),
        ("on", "on"),
        ("ON", "on"),
        ("1", "on"),
        ("true", "on"),
        ("off", "off"),
        ("0", "off"),
        ("False", "off"),
        (" off ", "off"),
    ],
)
def test_the_environment_variable_is_parsed(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv(ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(ENV_VAR, value)
    assert flash_attn_setting() == expected


def test_a_bad_value_is_refused_before_a_model_loads(monkeypatch, smollm2_path):
    monkeypatch.setenv(ENV_VAR, "sometimes")
    with Client() as client:
        with pytest.raises(ValueError, match=ENV_VAR):
            client.generate(str(smollm2_path), "Hi", options={"num_predict": 1})
        assert client.ps().models == []


def test_auto_is_off_on_the_cpu_and_left_to_llama_cpp_on_a_gpu():
    small = {"n_ctx": 4096, "n_ubatch": 512, "n_head": 9}
    assert resolve_flash_attn("auto", on_cpu=True, **small) == "off"
    assert resolve_flash_attn("auto", on_cpu=False, **small) == "auto"
    for explicit in ("on", "off"):
        assert resolve_flash_attn(explicit, on_cpu=True, **small) == explicit
        assert resolve_flash_attn(explicit, on_cpu=False, **small) == explicit


def test_auto_keeps_flash_attention_when_the_scores_would_not_fit_the_budget():
    # An 8B model with 32 heads at a 32k context: 2 GiB of scores per ubatch without flash attention.
    big = {"n_ctx": 32768, "n_ubatch": 512, "n_head": 32}
    assert scores_bytes(**big) > SCORES_BUDGET_BYTES
    assert resolve_flash_attn("auto", on_cpu=True, **big) == "on"


def test_a_runner_on_the_cpu_resolves_auto_to_off_and_keeps_an_explicit_choice(smollm2_path):
    if _core.supports_gpu_offload():
        pytest.skip("this build offloads to a GPU: auto is left to llama.cpp there")
    for setting, expected in (("auto", "off"), ("on", "on"), ("off", "off")):
        runner = Runner(str(smollm2_path), RunnerConfig(n_ctx=1024, flash_attn=setting))
        try:
            assert runner.flash_attn == expected
        finally:
            runner.close()


@pytest.mark.parametrize("name", ["smollm2", "gemma3"])
def test_both_attention_paths_compute_the_same_logits_deep_in_a_context(name, request):
    """Several hundred tokens in, flash attention on and off give close distributions and the same greedy
    tokens (except at a near-tie).

    Both paths are fed the same tokens (the first path's greedy choices), so that a near-tie broken the other
    way, as any change of kernel may break one on some CPU, does not make the rows incomparable."""
    path = request.getfixturevalue(f"{name}_path")
    logits = []
    fed: list[int] = []
    for fa in ("on", "off"):
        with (
            _core.Model(path) as model,
            _core.Context(model, n_ctx=1024, n_batch=512, n_ubatch=512, flash_attn=fa) as ctx,
        ):
            tokens = model.vocab.tokenize(STORY * 12)
            assert len(tokens) > 300
            b = _core.Batch(512)
            b.add_sequence(tokens, 0, 0, output="last")
            ctx.decode(b)
            rows, pos = [], len(tokens)
            for i in range(4):  # single-token decodes: the path generation takes
                row = np.array(ctx.logits(-1))
                rows.append(row)
                if len(fed) <= i:
                    fed.append(int(np.argmax(row)))
                b.clear()
                b.add(fed[i], pos, 0, True)
                ctx.decode(b)
                pos += 1
            logits.append(np.array(rows))
    a, b = logits
    # The distributions, not the raw logits: the two paths may shift or scale a row a little (on an AVX2 CPU
    # Gemma 3's logits 300 tokens in differ by up to 5.4 % of their range, most of it common to every token).
    la, lb = (x - logsumexp(x) for x in (a.astype(np.float64), b.astype(np.float64)))
    kl = (np.exp(la) * (la - lb)).sum(axis=1)
    assert kl.max() < 0.1, kl  # nats; measured: up to 0.002 (SmolLM2) and 0.04 (Gemma 3)
    top = np.argmax(la, axis=1)
    for i, row in enumerate(la):
        second = np.partition(row, -2)[-2]
        if row[top[i]] - second > 0.5:  # not a near-tie: the other path chooses the same token
            assert np.argmax(lb[i]) == top[i], i


def logsumexp(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=1, keepdims=True)
    return m + np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def test_runners_with_either_setting_start_with_the_same_token_and_probability(smollm2_path):
    """Through the Runner: the first token and its log probability agree (later greedy tokens may
    break a near-tie either way, as any change of kernel does)."""
    firsts = []
    for fa in ("on", "off"):
        runner = Runner(str(smollm2_path), RunnerConfig(n_ctx=1024, flash_attn=fa))
        try:
            job = CompletionJob(
                np.asarray(runner.vocab.tokenize(STORY * 6), np.int32), GREEDY, 4, logprobs=0, per_token=False
            )
            runner.submit(job)
            piece = job.events.get(timeout=120)
            assert isinstance(piece, Piece) and len(piece.logprobs) == 4
            firsts.append(piece.logprobs[0])
            collect(job)
        finally:
            runner.close()
    a, b = firsts
    assert a.token == b.token and abs(a.logprob - b.logprob) < 0.05
