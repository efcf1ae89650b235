"""The prompt cache: idle slots parked in RAM and restored, prefixes shared between slots, kept or dropped.

What the runner does is read from outside: the cells each sequence slot holds
(the context's ``seq_pos_max``) and the prompt tokens a request evaluated
(``Finished.prompt_eval_count``). A conversation that no slot holds and whose
next turn evaluates only the new tokens came back from RAM; one evaluated
whole again was dropped.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_engine import GREEDY, collect, collect_with_logprobs

from llamanative.engine import CompletionJob, Finished, Runner, RunnerConfig, TokenLogprobs
from llamanative.engine.admission import MIN_SHARE_TOKENS
from llamanative.engine.prompt_cache import MIN_PARK_TOKENS, PromptCache, common_prefix

STORY = (
    "Once upon a time, in a small village by the sea, there lived an old fisherman who "
    "told stories to the children every evening. "
)


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


def filled(runner) -> dict[int, int]:
    """The sequence slots that hold cells, and how many (read from the runner's context)."""
    cells = {seq: runner.ctx.seq_pos_max(seq) + 1 for seq in range(runner.config.n_parallel)}
    return {seq: n for seq, n in cells.items() if n > 0}


def next_turn(runner, prompt, fin) -> np.ndarray:
    """The conversation ``prompt`` with its answer and one more question."""
    question = runner.vocab.tokenize(" And then?", add_special=False)
    return np.concatenate([prompt, np.asarray(fin.tokens, np.int32), question])


class Recording:
    """A runner's context, recording the calls named in ``calls`` (name -> list of (args, kwargs)).

    Whether the runner copies a sequence's state out or back in shows from outside only in what it
    costs, so the tests that are about avoiding a copy put this in place of the context (``Runner.ctx``
    is settable for that) and look at the calls.
    """

    def __init__(self, ctx, calls: dict[str, list]):
        self._ctx, self._calls = ctx, calls

    def __getattr__(self, name):
        attr = getattr(self._ctx, name)
        if name not in self._calls:
            return attr

        def recorded(*args, **kwargs):
            self._calls[name].append((args, kwargs))
            return attr(*args, **kwargs)

        return recorded


def test_a_new_request_parks_the_other_idle_slots(runner):
    a, b = conversation(runner, 1), conversation(runner, 2)
    _, fin_a = run(runner, a)
    (cells,) = filled(runner).values()
    assert cells >= len(a)  # in a slot
    # A request that shares only a few tokens with A takes another slot or A's.
    run(runner, runner.vocab.tokenize("Water is made of"))
    run(runner, b)
    # Every idle slot but the last one used is empty: A is not in the KV cache any more ...
    (cells,) = filled(runner).values()
    assert cells >= len(b)
    # ... but in RAM: its next turn evaluates only what follows it.
    follow_up = next_turn(runner, a, fin_a)
    _, fin = run(runner, follow_up)
    assert fin.prompt_eval_count <= len(follow_up) - len(a) + 1


def test_a_parked_conversation_is_restored_and_gives_the_same_tokens(runner, smollm2_path):
    a, b = conversation(runner, 1), conversation(runner, 2)
    _, fin_a = run(runner, a)
    follow_up = next_turn(runner, a, fin_a)
    run(runner, b)  # parks A
    assert len(filled(runner)) == 1  # B's slot: A is in no slot
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
        assert len(filled(r)) == 1  # B's slot: A is in no slot ...
        _, fin = run(r, np.concatenate([a, runner_prompt]))
        assert fin.prompt_eval_count >= len(a)  # ... nor in RAM: evaluated again (but a few template tokens)
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
    assert cache.best(a[: n - 1], at_least=0) is None  # fewer than MIN_PARK_TOKENS shared
    assert cache.best(a, at_least=n) is None  # must share more than at_least
    entry, shared = cache.best(np.concatenate([a, d]), at_least=0)
    assert entry.state == b"a" * 40 and shared == n and len(cache) == 2  # copied, not taken
    cache.put(c, b"c" * 40)  # over 100 bytes: the least recently used ("b") goes
    assert cache.size_bytes == 80 and cache.best(b, 0) is None
    cache.put(np.concatenate([c, d]), b"e" * 30)  # extends "c": replaces it
    assert len(cache) == 2 and cache.best(c, 0)[0].state == b"e" * 30
    # A prefix of a kept entry is held already: the runner does not copy it out again.
    assert cache.holds(c) and cache.holds(np.concatenate([c, d])) and not cache.holds(np.concatenate([c, d, a]))
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
        second = np.concatenate([first[: n_swa - 12], r.vocab.tokenize(" Item red.", add_special=False)])
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
        (seq,) = filled(r)
        assert r.ctx.seq_state_size(seq) > 1 << 20
        calls: dict[str, list] = {"save_seq_state": []}  # the states the runner copies out
        real = r.ctx
        r.ctx = Recording(real, calls)
        b = conversation(r, 2)
        try:
            run(r, b)
        finally:
            r.ctx = real
        assert calls["save_seq_state"] == [] and len(filled(r)) == 1  # A was cleared, not copied
        follow_up = np.concatenate([a, r.vocab.tokenize(" And then?", add_special=False)])
        _, fin = run(r, follow_up)
        # Not in RAM either: evaluated again but for the few tokens it shares with B's slot.
        assert fin.prompt_eval_count >= len(follow_up) - common_prefix(follow_up, b)
    finally:
        r.close()


def test_a_slot_parked_for_another_conversation_keeps_their_shared_prefix(runner):
    """A new conversation that shares its start with an idle slot's evaluates only the rest,
    while the old conversation goes to RAM."""
    system = runner.vocab.tokenize("System: you are a careful assistant who answers briefly. " * 2)
    a = np.concatenate([system, runner.vocab.tokenize(STORY * 4, add_special=False)])
    _, fin_a = run(runner, a)
    b = np.concatenate([system, runner.vocab.tokenize(" Question: what is water made of?", add_special=False)])
    _, fin = run(runner, b)
    assert fin.prompt_eval_count == len(b) - len(system)
    assert len(filled(runner)) == 1  # B took A's slot ...
    follow_up = next_turn(runner, a, fin_a)
    _, fin = run(runner, follow_up)
    assert fin.prompt_eval_count <= len(follow_up) - len(a) + 1  # ... and A was kept in RAM for its next turn


def first_token_logprob(job) -> tuple[TokenLogprobs, Finished]:
    """The first generated token with its log probability, and the Finished event."""
    _, fin, logprobs = collect_with_logprobs(job)
    return logprobs[0], fin


def test_requests_that_start_together_share_a_running_slots_prefix(smollm2_path):
    # Flash attention on, on both sides: without it llama.cpp's CPU attention rounds differently with
    # where a sequence's cells lie in the KV cache (by up to ~0.1 in a logprob with SmolLM2), which
    # flips near-ties such as "count to three"'s first token; its flash-attention result does not
    # depend on the layout. docs/design/engine.md, "Prefix reuse and rounding".
    config = RunnerConfig(n_ctx=2048, n_parallel=4, flash_attn="on")
    runner = Runner(str(smollm2_path), config)
    try:
        _share_a_running_slots_prefix(runner, smollm2_path, config)
    finally:
        runner.close()


def _share_a_running_slots_prefix(runner, smollm2_path, config):
    system = runner.vocab.tokenize("System: you are a careful assistant. Answer briefly, kindly and in English. ")
    assert len(system) >= MIN_SHARE_TOKENS
    questions = [" Question: what is water made of?", " Question: name a colour.", " Question: count to three."]
    prompts = [np.concatenate([system, runner.vocab.tokenize(q, add_special=False)]) for q in questions]
    refs = []
    for p in prompts:  # each alone in a new runner: the reference first tokens
        fresh = Runner(str(smollm2_path), config)
        try:
            job = CompletionJob(p, GREEDY, 4, logprobs=0)
            fresh.submit(job)
            refs.append(first_token_logprob(job)[0])
        finally:
            fresh.close()
    # Started while the first one runs: the later ones find the shared start in its slot.
    first = CompletionJob(prompts[0], GREEDY, 40)
    runner.submit(first)
    first.events.get(timeout=120)  # its first piece: its prompt is in the KV cache
    later = [CompletionJob(p, GREEDY, 4, logprobs=0) for p in prompts[1:]]
    for job in later:
        runner.submit(job)
    for job, p, ref in zip(later, prompts[1:], refs[1:]):
        lp, fin = first_token_logprob(job)
        # What it shares with the running request (the system prompt and " Question:") was not evaluated again ...
        assert fin.prompt_eval_count == len(p) - common_prefix(p, prompts[0])
        # ... and the shared cells give what its own evaluation gave: the same first token and
        # probability, up to the rounding of a different batch shape. (Later greedy tokens may
        # break a near-tie the other way, as in any batch: "count to three" has one at its 2nd.)
        assert lp.token == ref.token and abs(lp.logprob - ref.logprob) < 0.02
    collect(first)


def test_a_running_slots_longer_prefix_is_shared_without_restoring_a_shorter_parked_one(smollm2_path):
    """A parked sequence that shares less with a new prompt than a running slot does is not
    loaded: the running slot's cells cost nothing to share, a restore costs a copy."""
    # Flash attention on: a sequence generated beside another is parked, not dropped.
    r = Runner(str(smollm2_path), RunnerConfig(n_ctx=2048, n_parallel=4, flash_attn="on"))
    try:

        def tok(text):
            return r.vocab.tokenize(text, add_special=False)

        system = r.vocab.tokenize("System: you are a careful assistant. Answer briefly, kindly and in English. ")
        topic = tok(" Context: " + STORY * 4)
        donor_prompt = np.concatenate([system, topic, tok(" Question: who told the stories?")])
        # Shares the system prompt and two thirds of the context with the later prompt: less than the donor.
        parked_prompt = np.concatenate(
            [system, topic[: 2 * len(topic) // 3], tok(" Meanwhile, far away. " + STORY * 2)]
        )
        new_prompt = np.concatenate([system, topic, tok(" Question: where did he live?")])
        donor = CompletionJob(donor_prompt, GREEDY, 400, shift=False)
        r.submit(donor)
        donor.events.get(timeout=120)  # its prompt is in the KV cache
        _, fin_parked = run(r, parked_prompt, n=4)
        run(r, r.vocab.tokenize("Something else entirely, about the weather today."), n=4)  # parks it
        assert common_prefix(parked_prompt, new_prompt) >= MIN_PARK_TOKENS  # a restore would be worth it alone
        calls: dict[str, list] = {"load_seq_state": [], "seq_cp": []}
        real = r.ctx
        r.ctx = Recording(real, calls)
        try:
            _, fin = run(r, new_prompt, n=4)
            assert calls["load_seq_state"] == [] and len(calls["seq_cp"]) == 1
            assert fin.prompt_eval_count == len(new_prompt) - common_prefix(new_prompt, donor_prompt)
            # It was parked all along (a restore was there to be had): its own next turn restores it.
            follow_up = next_turn(r, parked_prompt, fin_parked)
            _, fin = run(r, follow_up, n=4)
            assert len(calls["load_seq_state"]) == 1
            assert fin.prompt_eval_count <= len(follow_up) - len(parked_prompt) + 1
        finally:
            r.ctx = real
        assert collect(donor)[1].eval_count == 400  # it ran throughout
    finally:
        r.close()


@pytest.mark.parametrize("fa, expect_parked", [("off", 0), ("on", 1), ("auto", 0)])
def test_an_interleaved_sequence_is_dropped_not_copied_without_flash_attention(
    smollm2_path, monkeypatch, fa, expect_parked
):
    """Without flash attention, copying out a sequence whose cells alternate with another's is slow:
    such a sequence is cleared without a copy, and a contiguous one is still parked. With "auto"
    (as on a GPU, where llama.cpp decides and does not say) the layout is unknown: cleared too."""
    # The runner resolves "auto" to "off" on the CPU; keep it "auto", as a GPU runner does.
    monkeypatch.setattr("llamanative.engine.runner.generation_flash_attn", lambda *a, setting, **k: setting)
    r = Runner(str(smollm2_path), RunnerConfig(n_ctx=2048, n_parallel=4, flash_attn=fa))
    try:
        assert r.flash_attn == fa
        a, b = conversation(r, 1), conversation(r, 2)
        ja, jb = CompletionJob(a, GREEDY, 24), CompletionJob(b, GREEDY, 24)
        r.submit(ja)
        r.submit(jb)
        _, fin_a = collect(ja)
        _, fin_b = collect(jb)  # generated side by side: their cells alternate
        run(r, r.vocab.tokenize("Something else entirely, about the weather today."))  # parks or drops A and B
        # A conversation generated alone is contiguous: parked either way.
        c = conversation(r, 3)
        _, fin_c = run(r, c)
        run(r, r.vocab.tokenize("And now a question about cooking rice properly."))
        # Their next turns: evaluated whole again when dropped, only the new tokens when parked.
        for prompt, fin, parked in ((a, fin_a, expect_parked), (b, fin_b, expect_parked), (c, fin_c, 1)):
            follow_up = next_turn(r, prompt, fin)
            _, fin = run(r, follow_up)
            if parked:
                assert fin.prompt_eval_count <= len(follow_up) - len(prompt) + 1
            else:
                assert fin.prompt_eval_count >= len(prompt)
    finally:
        r.close()


def test_only_the_first_half_of_a_context_is_shared(smollm2_path):
    """A context shift slides the cells of the second half for every sequence that holds them: never shared."""
    r = Runner(str(smollm2_path), RunnerConfig(n_ctx=512, n_parallel=2))
    try:
        long_start = r.vocab.tokenize(STORY * 12)[:300]  # more than half the context; both fit beside each other
        assert len(long_start) == 300 and r.ctx.n_ctx_seq == 512
        first = CompletionJob(
            np.concatenate([long_start, r.vocab.tokenize(" One.", add_special=False)]), GREEDY, 50, shift=False
        )
        r.submit(first)
        first.events.get(timeout=120)  # its prompt is in the KV cache
        second_prompt = np.concatenate([long_start, r.vocab.tokenize(" Two.", add_special=False)])
        second = CompletionJob(second_prompt, GREEDY, 4)
        r.submit(second)
        _, fin = collect(second)
        _, fin_first = collect(first)
        assert fin_first.eval_count == 50  # it was still running when the second one started
        assert fin.prompt_eval_count == len(second_prompt) - (r.ctx.n_ctx_seq - 1) // 2
    finally:
        r.close()


def test_a_sliding_window_model_does_not_share_a_running_slots_cells(gemma3_path):
    """Gemma 3's window cache reuses a cell only once it has left the window of the one sequence holding it."""
    r = Runner(str(gemma3_path), RunnerConfig(n_ctx=2048, n_parallel=2))
    try:
        start = r.vocab.tokenize("System: you are a careful assistant. Answer briefly, kindly and in English. ")
        first = CompletionJob(np.concatenate([start, r.vocab.tokenize(" Hi.", add_special=False)]), GREEDY, 30)
        r.submit(first)
        first.events.get(timeout=120)
        second_prompt = np.concatenate([start, r.vocab.tokenize(" Hello.", add_special=False)])
        second = CompletionJob(second_prompt, GREEDY, 4)
        r.submit(second)
        _, fin = collect(second)
        collect(first)
        assert fin.prompt_eval_count == len(second_prompt)
    finally:
        r.close()
