"""Idle slots parked in RAM: out of the shared KV cache, restored when a request continues them."""

from __future__ import annotations

import numpy as np
import pytest

from llamanative.engine import CompletionJob, Runner, RunnerConfig
from llamanative.engine.prompt_cache import MIN_PARK_TOKENS, PromptCache
from test_engine import GREEDY, collect

STORY = ("Once upon a time, in a small village by the sea, there lived an old fisherman who "
         "told stories to the children every evening. ")


def run(runner, tokens, n=12):
    job = CompletionJob(np.asarray(tokens, np.int32), GREEDY, n)
    runner.submit(job)
    return collect(job)


@pytest.fixture
def runner(smollm2_path):
    r = Runner(str(smollm2_path), RunnerConfig(n_ctx=2048, n_parallel=4))
    yield r
    r.close()


def conversation(runner, i: int) -> np.ndarray:
    text = f"Conversation {i}. " + STORY * 4
    toks = runner.vocab.tokenize(text)
    assert len(toks) >= MIN_PARK_TOKENS
    return toks


def slot_holding(runner, tokens) -> int | None:
    for s in runner._slots:
        cached = runner._stepper.cached(s.seq)
        if len(cached) >= len(tokens) and np.array_equal(cached[:len(tokens)], tokens):
            return s.seq
    return None


def test_a_new_request_parks_the_other_idle_slots(runner):
    a, b = conversation(runner, 1), conversation(runner, 2)
    run(runner, a)
    seq_a = slot_holding(runner, a)
    assert seq_a is not None
    # A request that shares only a few tokens with A takes another slot or A's.
    run(runner, runner.vocab.tokenize("Water is made of"))
    run(runner, b)
    assert slot_holding(runner, a) is None  # not in the KV cache any more ...
    assert len(runner._parked) >= 1  # ... but in RAM
    for s in runner._slots:  # every idle slot but the last one used is empty
        if slot_holding(runner, b) != s.seq:
            assert runner.ctx.seq_pos_max(s.seq) == -1


def test_a_parked_conversation_is_restored_and_gives_the_same_tokens(runner, smollm2_path):
    a, b = conversation(runner, 1), conversation(runner, 2)
    _, fin_a = run(runner, a)
    follow_up = np.concatenate([a, np.asarray(fin_a.tokens, np.int32),
                                runner.vocab.tokenize(" And then?", add_special=False)])
    run(runner, b)  # parks A
    assert slot_holding(runner, a) is None
    text, fin = run(runner, follow_up)
    # Only what follows A's cached tokens was evaluated.
    assert fin.prompt_eval_count <= len(follow_up) - len(a) + 1
    # The same greedy answer as a runner that kept A in its slot: the same
    # batches (A, then the follow-up after A's cached tokens), no parking.
    fresh = Runner(str(smollm2_path), RunnerConfig(n_ctx=2048, n_parallel=4))
    try:
        run(fresh, a)
        ref_text, ref = run(fresh, follow_up)
    finally:
        fresh.close()
    assert ref.prompt_eval_count == fin.prompt_eval_count
    assert list(fin.tokens) == list(ref.tokens) and text == ref_text


def test_cache_ram_zero_clears_idle_slots_without_keeping_them(smollm2_path, monkeypatch):
    monkeypatch.setenv("LLAMANATIVE_CACHE_RAM", "0")
    r = Runner(str(smollm2_path), RunnerConfig(n_ctx=2048, n_parallel=4))
    try:
        a, b = conversation(r, 1), conversation(r, 2)
        run(r, a)
        run(r, runner_prompt := r.vocab.tokenize("Water is made of"))
        run(r, b)
        assert len(r._parked) == 0 and slot_holding(r, a) is None
        _, fin = run(r, np.concatenate([a, runner_prompt]))
        assert fin.prompt_eval_count >= len(a)  # evaluated again (but a few template tokens)
    finally:
        r.close()


@pytest.mark.parametrize("value", ["lots", "-1"])
def test_a_bad_cache_ram_setting_is_refused_before_loading(smollm2_path, monkeypatch, value):
    monkeypatch.setenv("LLAMANATIVE_CACHE_RAM", value)
    with pytest.raises(ValueError, match="LLAMANATIVE_CACHE_RAM"):
        Runner(str(smollm2_path), RunnerConfig(n_ctx=256))


def test_prompt_cache_keeps_the_longest_match_and_evicts_the_oldest():
    n = MIN_PARK_TOKENS
    a, b, c, d = (np.arange(k * 1000, k * 1000 + n, dtype=np.int32) for k in range(4))
    cache = PromptCache(capacity_bytes=100)
    cache.put(a, b"a" * 40)
    cache.put(b, b"b" * 40)
    assert cache.best(a[:n - 1], at_least=0) is None  # fewer than MIN_PARK_TOKENS shared
    assert cache.best(a, at_least=n) is None  # must share more than at_least
    entry, shared = cache.best(np.concatenate([a, d]), at_least=0)
    assert entry.state == b"a" * 40 and shared == n and len(cache) == 2  # copied, not taken
    cache.put(c, b"c" * 40)  # over 100 bytes: the least recently used ("b") goes
    assert cache.size_bytes == 80 and cache.best(b, 0) is None
    cache.put(np.concatenate([c, d]), b"e" * 30)  # extends "c": replaces it
    assert len(cache) == 2 and cache.best(c, 0)[0].state == b"e" * 30
    cache.put(d, b"x" * 101)  # larger than the whole budget: not kept
    assert len(cache) == 2


def test_sliding_window_prefix_that_was_pruned_is_evaluated_again(gemma3_path):
    """Gemma 3's sliding-window layers keep only their last window: a shorter prefix cannot be continued."""
    # One slot: the sliding-window cache holds n_swa + n_ubatch cells, fewer than the first prompt.
    r = Runner(str(gemma3_path), RunnerConfig(n_ctx=2048, n_parallel=1))
    try:
        n_swa = r.model.n_swa
        assert n_swa > 0
        long_text = " ".join(f"Item {i} is blue." for i in range(150))
        first = r.vocab.tokenize(long_text)
        assert len(first) > n_swa + 200
        run(r, first, n=2)
        assert r.ctx.seq_pos_min(0) > 0  # the window's cache dropped the oldest positions
        # Shares a prefix shorter than the window: its attention needs positions that are gone.
        second = np.concatenate([first[:n_swa - 12], r.vocab.tokenize(" Item red.", add_special=False)])
        text, fin = run(r, second, n=8)
        assert fin.prompt_eval_count == len(second)  # not a continuation of a pruned cache
    finally:
        r.close()
    fresh = Runner(str(gemma3_path), RunnerConfig(n_ctx=2048, n_parallel=1))
    try:
        ref_text, _ = run(fresh, second, n=8)
    finally:
        fresh.close()
    assert text == ref_text


def test_a_sequence_larger_than_the_budget_is_cleared_without_a_copy(smollm2_path, monkeypatch):
    monkeypatch.setenv("LLAMANATIVE_CACHE_RAM", "1")  # 1 MiB: SmolLM2 needs ~23 KB a token
    r = Runner(str(smollm2_path), RunnerConfig(n_ctx=2048, n_parallel=4))
    try:
        a = conversation(r, 1)
        run(r, a)
        seq = slot_holding(r, a)
        assert r.ctx.seq_state_size(seq) > 1 << 20
        saved = []

        class Recording:  # the context, recording the states the runner copies out
            def __init__(self, ctx):
                self._ctx = ctx

            def __getattr__(self, name):
                return getattr(self._ctx, name)

            def save_seq_state(self, seq_id):
                saved.append(seq_id)
                return self._ctx.save_seq_state(seq_id)

        real = r.ctx
        r.ctx = Recording(real)
        try:
            run(r, conversation(r, 2))
        finally:
            r.ctx = real
        assert slot_holding(r, a) is None and len(r._parked) == 0 and saved == []
    finally:
        r.close()
