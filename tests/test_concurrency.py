"""Correctness under concurrency: mixed requests from many threads, cancellation, the prefix cache.

Greedy outputs are compared with the same requests run one at a time.
llama.cpp's kernels may round differently for different batch shapes, so a
near-tie late in a run can break the other way: the comparisons use the first
words of each answer, and embeddings a cosine of at least 0.9999.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from test_engine import collect

from llamanative.engine import CompletionJob, Piece, Runner, RunnerConfig, SamplingParams

GREEDY = {"temperature": 0, "num_predict": 12}
HEAD = 12  # characters of each answer that must agree


REQUESTS = [
    ("chat", "smol", "Name a fruit."),
    ("generate", "smol", "The capital of France is"),
    ("embed", "mini", "A cat sits on the mat."),
    ("chat", "gemma", "Say hello."),
    ("generate", "gemma", "Water is made of"),
    ("embed", "mini", "Stock markets fell sharply today."),
    ("chat", "smol", "What is 2+2?"),
    ("generate", "smol", "1, 2, 3, 4,"),
]


def run(client, kind, model, text):
    if kind == "chat":
        return client.chat(model, [{"role": "user", "content": text}], options=GREEDY).message.content
    if kind == "generate":
        return client.generate(model, text, raw=True, options=GREEDY).response
    return np.asarray(client.embed(model, text).embeddings[0])


def test_eight_threads_of_mixed_requests_on_two_models_match_sequential_runs(client):
    sequential = [run(client, *r) for r in REQUESTS]
    results: list = [None] * len(REQUESTS)
    errors = []

    def worker(i):
        try:
            results[i] = run(client, *REQUESTS[i])
        except BaseException as exc:  # reported below with the request
            errors.append((REQUESTS[i], exc))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(REQUESTS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors
    for req, got, want in zip(REQUESTS, results, sequential):
        if req[0] == "embed":
            assert float(got @ want) >= 0.9999, req
        else:
            assert got[:HEAD] == want[:HEAD], (req, got, want)


@pytest.fixture(scope="module")
def runner(smollm2_path):
    r = Runner(str(smollm2_path), RunnerConfig(n_ctx=1024, n_parallel=4))
    yield r
    r.close()


def job_for(runner, prompt, n=12):
    return CompletionJob(runner.model.vocab.tokenize(prompt), SamplingParams(temperature=0), n)


def test_cancelling_one_stream_does_not_disturb_the_others(runner):
    prompts = ["The capital of France is", "Water is made of", "The largest planet is"]
    alone = {p: collect(_submitted(runner, job_for(runner, p)))[0] for p in prompts}
    victim = _submitted(runner, job_for(runner, "Count: 1, 2, 3,", 400))
    others = [_submitted(runner, job_for(runner, p)) for p in prompts]
    assert isinstance(victim.events.get(timeout=60), Piece)  # it is generating alongside the others
    victim.cancel()
    for p, job in zip(prompts, others):
        text, fin = collect(job)
        assert fin.reason == "length" and text[:HEAD] == alone[p][:HEAD], (p, text, alone[p])
    deadline = time.time() + 30
    while runner.busy and time.time() < deadline:
        time.sleep(0.01)
    assert not runner.busy


def _submitted(runner, job):
    runner.submit(job)
    return job


def test_the_prefix_cache_never_returns_a_stale_prefix(runner, smollm2_path):
    # Prompts that share a long prefix and then differ: each must get the answer a
    # fresh model gives, whichever slot and cached prefix it lands on.
    base = "Here is a list of facts about the world. " * 4
    prompts = [
        base + "The capital of France is",
        base + "The capital of Italy is",
        base + "Water is made of",
        base + "The capital of France is",
    ]
    fresh = Runner(str(smollm2_path), RunnerConfig(n_ctx=1024, n_parallel=1))
    try:
        expected = [collect(_submitted(fresh, job_for(fresh, p)))[0] for p in prompts]
    finally:
        fresh.close()
    for p, want in zip(prompts, expected):
        text, fin = collect(_submitted(runner, job_for(runner, p)))
        assert text[:HEAD] == want[:HEAD], (p, text, want)
    # Each prompt took the slot with the longest shared prefix and evaluated only its own tail.
    tail = len(runner.model.vocab.tokenize("The capital of France is", add_special=False))
    assert fin.prompt_eval_count <= tail + 1 < len(runner.model.vocab.tokenize(prompts[-1]))


def test_a_reload_starts_with_an_empty_cache(client):
    a = client.generate("smol", "The capital of France is", raw=True, options=GREEDY)
    n_prompt = len(client.tokenize("smol", "The capital of France is"))
    again = client.generate("smol", "The capital of France is", raw=True, options=GREEDY)
    assert again.prompt_eval_count == 1  # same settings: the cached prompt is reused
    b = client.generate("smol", "The capital of France is", raw=True, options={**GREEDY, "num_ctx": 1536})
    assert b.prompt_eval_count == n_prompt  # a reload (num_ctx changed): nothing cached survives
    assert b.response[:HEAD] == a.response[:HEAD]
