"""pytest-benchmark timings of the native core's hot calls.

    python -m pytest benchmarks/test_bench_core.py --benchmark-only

Absolute times depend on the machine; compare runs with
``--benchmark-save`` / ``--benchmark-compare``, and use
``compare_llama_bench.py`` for ratios against llama.cpp itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from llamanative import _core
from llamanative.fetch import fetch_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_llama_bench import corpus  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return _core.Model(fetch_model("smollm2", quiet=True))


@pytest.fixture(scope="module")
def text_1mb():
    return corpus()


def test_tokenize_short(benchmark, model):
    benchmark(model.vocab.tokenize, "Hello, how are you doing today?")


def test_tokenize_short_c_call(benchmark, model):
    benchmark(_core._bench_tokenize_c, model.vocab, "Hello, how are you doing today?", 1)


def test_tokenize_1mb(benchmark, model, text_1mb):
    benchmark.pedantic(model.vocab.tokenize, args=(text_1mb,), rounds=3, iterations=1)


def test_detokenize_1mb(benchmark, model, text_1mb):
    toks = model.vocab.tokenize(text_1mb)
    benchmark.pedantic(model.vocab.detokenize, args=(toks,), rounds=3, iterations=1)


def test_decode_prompt_512(benchmark, model):
    ctx = _core.Context(model, n_ctx=512, n_batch=512)
    toks = np.random.default_rng(0).integers(0, model.vocab.n_vocab, 512, dtype=np.int32)
    batch = _core.Batch(512)
    batch.add_sequence(toks, 0, 0)

    def run():
        ctx.clear(False)
        ctx.decode(batch)
        ctx.logits(-1)

    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)


def test_generate_one_token(benchmark, model):
    ctx = _core.Context(model, n_ctx=512)
    sampler = _core.Sampler(model).top_k(40).temperature(0.8).dist(0)
    batch = _core.Batch(1)
    state = {"pos": 0}

    def step():
        if state["pos"] >= 500:
            ctx.clear(False)
            state["pos"] = 0
        batch.clear()
        batch.add(1, state["pos"], 0, True)
        ctx.decode(batch)
        sampler.sample(ctx, -1)
        state["pos"] += 1

    benchmark.pedantic(step, rounds=100, iterations=1, warmup_rounds=2)
