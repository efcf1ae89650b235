"""Every sampler and runner option of the Client is applied, shown with a real model.

Each test compares against greedy decoding or against the same request
without the option, so a silently ignored option fails. Log probabilities
(``logprobs``) make the sampler's effect visible token by token.
"""

from __future__ import annotations

import math

import pytest
from near_tie import assert_generate_same_or_near_tie

from llamanative import StatusError

PROMPT = "Once upon a time, in a small village by the sea,"
GREEDY24 = {"temperature": 0, "num_predict": 24}
COUNT = "1, 2, 3, 4, 5,"


def gen(client, prompt=PROMPT, **options):
    options.setdefault("num_predict", 24)
    return client.generate("smol", prompt, raw=True, options=options)


@pytest.fixture(scope="module")
def greedy(client):
    return gen(client, temperature=0).response


def test_greedy_picks_the_most_likely_token_every_time(client):
    r = client.generate(
        "smol", PROMPT, raw=True, options={"temperature": 0, "num_predict": 12}, logprobs=True, top_logprobs=3
    )
    assert len(r.logprobs) == r.eval_count == 12
    for lp in r.logprobs:
        assert len(lp.top_logprobs) == 3
        assert lp.token == lp.top_logprobs[0].token and lp.logprob == pytest.approx(lp.top_logprobs[0].logprob)
        assert lp.top_logprobs[0].logprob >= lp.top_logprobs[1].logprob >= lp.top_logprobs[2].logprob
        assert sum(math.exp(t.logprob) for t in lp.top_logprobs) <= 1.0 + 1e-6
        assert bytes(lp.bytes).decode("utf-8", "replace") == lp.token
    assert "".join(lp.token for lp in r.logprobs) == r.response


def test_sampling_is_random_without_a_seed_and_reproducible_with_one(client):
    runs = {gen(client, temperature=1.5, seed=s).response for s in (1, 2, 3)}
    assert len(runs) > 1  # the sampler really samples at temperature 1.5
    assert gen(client, temperature=1.5, seed=11).response == gen(client, temperature=1.5, seed=11).response


@pytest.mark.parametrize("option", [{"top_k": 1}, {"top_p": 1e-6}, {"min_p": 1.0}])
def test_truncating_to_one_candidate_is_greedy(client, greedy, option):
    # A hot temperature and different seeds: only the truncation can make them all greedy.
    for seed in (1, 2):
        assert gen(client, temperature=1.5, seed=seed, **{"top_k": 0, "top_p": 1.0, **option}).response == greedy


def test_typical_p_keeps_one_candidate(client):
    runs = {gen(client, temperature=1.5, seed=s, top_k=0, top_p=1.0, typical_p=1e-6).response for s in (1, 2, 3)}
    assert len(runs) == 1


def test_temperature_changes_the_distribution(client):
    # Same seed, different temperature: a flatter distribution picks differently somewhere.
    cold = gen(client, temperature=0.05, seed=5, top_k=0, top_p=1.0).response
    hot = gen(client, temperature=3.0, seed=5, top_k=0, top_p=1.0).response
    assert cold != hot


def test_repeat_penalty_and_repeat_last_n(client):
    base = gen(client, COUNT, temperature=0, num_predict=30).response
    penalised = gen(client, COUNT, temperature=0, num_predict=30, repeat_penalty=3.0, repeat_last_n=64).response
    assert penalised != base
    # repeat_last_n 0 turns the penalty off.
    assert gen(client, COUNT, temperature=0, num_predict=30, repeat_penalty=3.0, repeat_last_n=0).response == base


@pytest.mark.parametrize("option", [{"presence_penalty": 2.0}, {"frequency_penalty": 2.0}])
def test_presence_and_frequency_penalties(client, option):
    base = gen(client, COUNT, temperature=0, num_predict=30).response
    assert gen(client, COUNT, temperature=0, num_predict=30, **option).response != base


def test_stop_strings_split_across_tokens_never_appear(client):
    base = gen(client, COUNT, temperature=0, num_predict=30).response
    # A stop string taken from the middle of the greedy answer (whatever this CPU's kernels make it), several tokens
    # long: the text before it is held back until the stop string either completes or cannot.
    stop = base[len(base) // 2 : len(base) // 2 + 5]
    assert len(client.tokenize("smol", stop, add_special=False)) > 1
    r = gen(client, COUNT, temperature=0, num_predict=30, stop=[stop])
    assert r.done_reason == "stop" and r.response == base[: base.index(stop)]


def test_num_predict_caps_the_output(client):
    r = gen(client, temperature=0, num_predict=7)
    assert r.eval_count == 7 and r.done_reason == "length"


def test_context_shift_goes_past_the_context(client):
    # num_ctx 256 (llama.cpp rounds contexts up to a multiple of 256): 400 tokens need shifts.
    r = gen(client, COUNT, temperature=0, num_predict=400, num_ctx=256)
    assert r.eval_count == 400 and r.done_reason == "length"
    ps = client.ps().models[0]
    assert ps.context_length == 256
    # Without shifting, generation ends when the context is full.
    r = client.generate(
        "smol", COUNT, raw=True, shift=False, options={"temperature": 0, "num_predict": 400, "num_ctx": 256}
    )
    assert r.done_reason == "length" and len(r.context) == 256  # prompt + answer fill the context


def test_num_keep_is_accepted_and_validated(client):
    assert gen(client, COUNT, temperature=0, num_predict=300, num_ctx=256, num_keep=-1).eval_count == 300
    with pytest.raises(StatusError) as e:
        gen(client, num_keep=-2)
    assert e.value.status_code == 400 and "num_keep" in str(e.value)


def test_runner_options_reach_the_runner(client):
    ref = client.generate("smol", PROMPT, raw=True, options=GREEDY24, logprobs=True, top_logprobs=5)
    settings = {"num_thread": 1, "num_batch": 32, "num_gpu": 0, "use_mmap": False}
    r = client.generate("smol", PROMPT, raw=True, options={**GREEDY24, **settings}, logprobs=True, top_logprobs=5)
    # Same model, same answer, different load-time settings; but a prompt evaluated in batches of 32 rounds
    # differently from one evaluated whole, which may flip a near-tie on some CPUs (near_tie.py).
    assert_generate_same_or_near_tie(ref, r, "num_batch=32, num_thread=1")
    # No public call reports the load-time settings (ps and props give the context length only): the runner the
    # client loaded is looked at.
    (entry,) = [e for e in client._scheduler.loaded() if e.config.n_threads == 1]
    assert entry.runner.ctx.n_threads == 1 and entry.runner.ctx.n_batch == 32
    assert entry.config.use_mmap is False and entry.config.n_gpu_layers == 0


def test_chat_streams_logprobs_with_each_chunk(client):
    msgs = [{"role": "user", "content": "Name a colour."}]
    # Each chat starts from an unloaded model, so both evaluate the whole prompt: a prompt found in
    # the cache evaluates only its last token, and without flash attention llama.cpp's CPU attention
    # rounds a one-token batch differently, enough to flip a near-tie (this prompt has one at the
    # third token). docs/design/engine.md, "Prefix reuse and rounding".
    client.unload("smol")
    chunks = list(
        client.chat(
            "smol", msgs, stream=True, logprobs=True, top_logprobs=2, options={"temperature": 0, "num_predict": 10}
        )
    )
    text = "".join(c.message.content for c in chunks)
    tokens = [lp for c in chunks for lp in (c.logprobs or [])]
    assert len(tokens) == chunks[-1].eval_count
    assert "".join(t.token for t in tokens).startswith(text)
    client.unload("smol")
    joined = client.chat("smol", msgs, logprobs=True, options={"temperature": 0, "num_predict": 10})
    assert [t.token for t in joined.logprobs] == [t.token for t in tokens]
    assert all(t.top_logprobs is None for t in joined.logprobs)  # top_logprobs not asked for
    plain = client.chat("smol", msgs, options={"temperature": 0, "num_predict": 10})
    assert plain.logprobs is None and "logprobs" not in plain.model_dump_json()


def test_top_logprobs_out_of_range_is_a_400(client):
    with pytest.raises(StatusError) as e:
        client.generate("smol", "Hi", logprobs=True, top_logprobs=21)
    assert e.value.status_code == 400 and "top_logprobs" in str(e.value)


def test_images_on_a_model_without_vision_are_a_400(client, tmp_path):
    png = (
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15"
        b"\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d\x00\x00\x00"
        b"\x00IEND\xaeB`\x82"
    )
    path = tmp_path / "dot.png"
    path.write_bytes(png)
    for call in (
        lambda: client.generate("smol", "What is this?", images=[path]),
        lambda: client.chat("smol", [{"role": "user", "content": "What?", "images": [png]}]),
    ):
        with pytest.raises(StatusError) as e:
            call()
        assert e.value.status_code == 400 and e.value.error == '"smol" does not support vision'
