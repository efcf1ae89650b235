"""The engine: stop strings, the Runner's continuous batching and prefix cache, the Scheduler."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from llamanative._core import StopMatcher
from llamanative.engine import CompletionJob, EmbedJob, Failed, Finished, Piece, Runner, RunnerConfig, SamplingParams
from llamanative.engine.runner import IDLE_EXIT_S
from llamanative.engine.scheduler import Scheduler
from llamanative.errors import NoKvSlotError

GREEDY = SamplingParams(temperature=0)
PROMPT = "The capital of France is"


def collect_with_logprobs(job):
    """The job's text, its last event, and the token logprobs its pieces carried; raises its error."""
    pieces, logprobs = [], []
    while True:
        ev = job.events.get(timeout=120)
        if isinstance(ev, Piece):
            pieces.append(ev.text)
            logprobs.extend(ev.logprobs)
        elif isinstance(ev, Failed):
            raise ev.error
        else:
            return "".join(pieces), ev, logprobs


def collect(job):
    return collect_with_logprobs(job)[:2]


def complete(runner, prompt, n=16, stops=(), params=GREEDY):
    job = CompletionJob(runner.model.vocab.tokenize(prompt), params, n, tuple(stops))
    runner.submit(job)
    return collect(job)


@pytest.mark.parametrize(
    "pieces, stops, out",
    [
        (["Hello wor", "ld! STOP here"], ["STOP"], "Hello world! "),
        (["abc S", "TO", "P def"], ["STOP"], "abc "),
        (["abc S", "T"], ["STOP"], "abc ST"),  # never completed: held text is released at the end
        (["no stops here"], [], "no stops here"),
        (["x<", "|end", "|>y"], ["<|end|>", "zz"], "x"),
    ],
)
def test_stop_matcher(pieces, stops, out):
    m = StopMatcher(stops)
    text = "".join(m.push(p) for p in pieces) + m.flush()
    assert text == out


@pytest.fixture(scope="module")
def runner(smollm2_path):
    r = Runner(str(smollm2_path), RunnerConfig(n_ctx=1024, n_parallel=4))
    yield r
    r.close()


def test_runner_greedy_matches_llama_cpp_completion_tool(runner, llama_greedy):
    text, fin = complete(runner, PROMPT, 24)
    # The tool with the runner's context size and attention path (greedy follows near-ties, which round
    # differently with and without flash attention).
    assert text == llama_greedy(runner.path, PROMPT, 24, "-c", "1024", "-fa", runner.flash_attn)
    assert fin.reason == "length" and fin.eval_count == 24 and len(fin.tokens) == 24
    assert fin.prompt_eval_duration > 0 and fin.eval_duration > 0


def test_greedy_takes_the_tokens_of_llama_cpps_greedy_sampler(runner):
    """The step loop takes the maximum itself for a greedy-only chain: the same tokens as llama.cpp's sampler."""
    from llamanative import _core
    from llamanative.engine import generate_step

    model = runner.model
    for prompt in ["The capital of France is", "def fibonacci(n):", "Water is made of"]:
        _, fin = complete(runner, prompt, 16)
        # The runner's attention path: the two paths round differently, and greedy follows near-ties.
        with _core.Context(model, n_ctx=1024, n_seq_max=4, flash_attn=runner.flash_attn) as ctx:
            sampler = _core.Sampler(model).greedy()  # sampled by llama_sampler_sample, not the fast path
            ref = [
                s.token
                for s in generate_step(ctx, sampler, model.vocab.tokenize(prompt), max_tokens=16)
                if not s.is_eog
            ]
            sampler.close()
        assert list(fin.tokens) == ref


def test_a_job_not_taken_per_token_gets_its_text_in_one_piece(smollm2_path):
    """per_token=False: no event until the end, then one Piece with all the text (and logprobs) and Finished."""
    # Each on a new runner, so that both prompts are evaluated in the same batches (none from a cache).
    runners = [Runner(str(smollm2_path), RunnerConfig(n_ctx=1024, n_parallel=4)) for _ in range(2)]
    try:
        prompt = runners[0].model.vocab.tokenize("Once upon a time")
        streamed = CompletionJob(prompt, GREEDY, 20, logprobs=1)
        runners[0].submit(streamed)
        text, fin = collect(streamed)
        held = CompletionJob(prompt, GREEDY, 20, logprobs=1, per_token=False)
        runners[1].submit(held)
        events = []
        while not events or not isinstance(events[-1], (Finished, Failed)):
            events.append(held.events.get(timeout=120))
    finally:
        for r in runners:
            r.close()
    assert [type(e) for e in events] == [Piece, Finished]
    assert events[0].text == text and len(text) > 0
    assert len(events[0].logprobs) == fin.eval_count == events[1].eval_count == 20
    assert events[1].tokens == fin.tokens


def _two_jobs_that_overflow_the_cache(smollm2_path, per_token):
    """Two 60-token prompts generating 150 tokens each in a 256-cell cache: they fit alone, not together."""
    r = Runner(str(smollm2_path), RunnerConfig(n_ctx=256, n_parallel=2))
    try:
        prompts = [
            r.vocab.tokenize(f"Story {i}: once upon a time, in a village by the sea, there lived " * 4)[:60]
            for i in (1, 2)
        ]
        jobs = [CompletionJob(np.asarray(p, np.int32), GREEDY, 150, shift=False, per_token=per_token) for p in prompts]
        for job in jobs:
            r.submit(job)
        outcomes = []
        for job in jobs:
            try:
                outcomes.append(collect(job)[1])
            except NoKvSlotError as exc:
                outcomes.append(exc)
        return outcomes
    finally:
        r.close()


def test_a_full_cache_defers_a_request_that_has_handed_out_nothing(smollm2_path):
    """Not streamed, the newer request waits for the older one and starts again: both complete."""
    outcomes = _two_jobs_that_overflow_the_cache(smollm2_path, per_token=False)
    assert [o.eval_count for o in outcomes] == [150, 150]


def test_a_full_cache_fails_a_request_that_has_streamed_text_with_a_typed_error(smollm2_path):
    """Streamed, the newer request cannot start again without repeating itself: it fails, the older completes."""
    first, second = _two_jobs_that_overflow_the_cache(smollm2_path, per_token=True)
    assert isinstance(first, Finished) and first.eval_count == 150
    assert isinstance(second, NoKvSlotError)


def test_concurrent_requests_share_steps_and_match_single_runs(runner):
    prompts = [
        "The capital of France is",
        "1, 2, 3, 4,",
        "Water is made of",
        "Once upon a time",
        "The largest planet is",
        "My favourite colour is",
    ]
    single = {p: complete(runner, p, 12)[0] for p in prompts}
    results = {}

    def worker(p):
        results[p] = complete(runner, p, 12)[0]

    threads = [threading.Thread(target=worker, args=(p,)) for p in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # llama.cpp's kernels round differently for different batch shapes, so a
    # near-tie late in a greedy run may break the other way; the starts agree.
    assert set(results) == set(prompts)
    assert sum(results[p][:10] == single[p][:10] for p in prompts) >= len(prompts) - 1


def test_prefix_cache_evaluates_only_new_tokens(runner):
    base = "You are a helpful assistant. Answer briefly.\nQuestion: what is 2+2?"
    _, first = complete(runner, base, 4)
    _, again = complete(runner, base + " And 3+3?", 4)
    n_new = len(runner.model.vocab.tokenize(base + " And 3+3?")) - len(runner.model.vocab.tokenize(base))
    assert again.prompt_eval_count <= n_new + 1 < first.prompt_eval_count


def test_stop_strings_and_max_tokens(runner):
    full, _ = complete(runner, PROMPT, 24)
    stop = full.split()[2]  # a word of the greedy answer (whatever this CPU's kernels make it)
    text, fin = complete(runner, PROMPT, 24, stops=[stop])
    assert text == full[: full.index(stop)] and fin.reason == "stop"


def test_cancel_frees_the_slot(runner):
    answer = complete(runner, PROMPT, 3)[0]
    job = CompletionJob(runner.model.vocab.tokenize("Count: 1, 2, 3,"), GREEDY, 500)
    runner.submit(job)
    assert isinstance(job.events.get(timeout=60), Piece)
    job.cancel()
    deadline = time.time() + 30
    while runner.busy and time.time() < deadline:
        time.sleep(0.01)
    assert not runner.busy
    assert complete(runner, PROMPT, 3)[0] == answer  # the runner serves as before


def test_bad_grammar_fails_only_its_request(runner):
    answer = complete(runner, PROMPT, 3)[0]
    job = CompletionJob(runner.model.vocab.tokenize("x"), SamplingParams(grammar="root ::= ("), 4)
    runner.submit(job)
    with pytest.raises(ValueError):
        collect(job)
    assert complete(runner, PROMPT, 3)[0] == answer


def test_prompt_longer_than_context_fails_clearly(runner):
    job = CompletionJob(np.ones(5000, np.int32), GREEDY, 4)
    runner.submit(job)
    with pytest.raises(ValueError, match="context holds 1024"):
        collect(job)


def test_embeddings_batched_equal_single(minilm_path):
    r = Runner(str(minilm_path), RunnerConfig(n_ctx=512))
    try:
        v = r.model.vocab
        texts = [f"sentence number {i} about {w}" for i, w in enumerate(["cats", "dogs", "cars"] * 30)]
        job = EmbedJob.from_sequences([v.tokenize(t) for t in texts])
        r.submit(job)
        many = job.result.result(timeout=120)
        assert many.shape == (90, 384) and many.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(many, axis=1), 1.0, rtol=1e-5)
        one = EmbedJob.from_sequences([v.tokenize(texts[47])])
        r.submit(one)
        alone = one.result.result(timeout=60)[0]
        assert float(alone @ many[47]) > 0.9999
    finally:
        r.close()


def test_scheduler_keep_alive_eviction_and_reload(smollm2_path, gemma3_path, minilm_path):
    a, b, c = str(smollm2_path), str(gemma3_path), str(minilm_path)
    s = Scheduler(max_loaded=2)
    cfg = RunnerConfig(n_ctx=512, n_parallel=1)
    with s.use(a, cfg, 0.3) as ea:
        assert ea.refs == 1 and ea.runner.model.architecture == "llama"
    assert s.get(a) is not None
    time.sleep(1.5)
    assert s.get(a) is None and ea.runner.model.closed  # keep_alive expired
    with s.use(a, cfg, -1):
        pass
    with s.use(b, cfg, 60):
        pass
    with s.use(c, cfg, 60):  # no room: evicts the least recently used idle model (a)
        pass
    assert [e.path for e in s.loaded()] == [c, b]
    with s.use(b, RunnerConfig(n_ctx=1024, n_parallel=1), 60) as eb:  # load-time change: reload
        assert eb.runner.n_ctx == 1024
    with s.use(c, cfg, 0):
        pass
    assert s.get(c) is None  # keep_alive 0: unloaded when the request ended
    s.close()
    assert s.loaded() == []


def test_concurrent_embed_calls_are_merged_and_exact(minilm_path):
    r = Runner(str(minilm_path), RunnerConfig(n_ctx=512))
    try:
        v = r.vocab
        texts = [f"text {i} about {w}" for i, w in enumerate(["sun", "rain", "snow", "wind"] * 8)]
        alone = {}
        for t in texts[:4]:
            j = EmbedJob.from_sequences([v.tokenize(t)])
            r.submit(j)
            alone[t] = j.result.result(timeout=60)[0].copy()
        jobs = [EmbedJob.from_sequences([v.tokenize(t) for t in texts[i : i + 8]]) for i in range(0, 32, 8)]
        jobs.append(EmbedJob.from_sequences([np.ones(600, np.int32)]))  # too long: fails alone
        for j in jobs:
            r.submit(j)  # queued together: the worker packs them into shared batches
        results = [j.result.result(timeout=120) for j in jobs[:4]]
        with pytest.raises(ValueError, match="tokens"):
            jobs[4].result.result(timeout=60)
        for t in texts[:4]:
            assert float(alone[t] @ results[0][texts.index(t)]) > 0.9999
        assert all(res.shape == (8, 384) for res in results)
    finally:
        r.close()


def _wait_for(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_idle_worker_ends_and_the_next_job_starts_one(runner):
    # An idle runner must not keep a thread (and with it an OpenMP team, which
    # would slow every other model of the process: see runner.py).
    answer, _ = complete(runner, PROMPT, 24)

    def worker_running() -> bool:
        return any(t.name == f"llamanative-runner:{runner.path}" for t in threading.enumerate())

    assert _wait_for(lambda: not worker_running(), timeout=5 * IDLE_EXIT_S + 5)  # the timeout only stops a hang
    text, fin = complete(runner, PROMPT, 24)
    assert text == answer and fin.eval_count == 24  # a new worker, the same greedy answer


def test_jobs_submitted_as_the_worker_ends_are_never_lost(runner):
    # Submit right around the idle deadline, many times: every job must finish.
    for i in range(30):
        complete(runner, "Hello", 1)
        time.sleep(IDLE_EXIT_S * (0.8 + 0.02 * i))  # sweeps across the moment the worker ends
    done = []
    jobs = [CompletionJob(runner.model.vocab.tokenize(f"Count {i}:"), GREEDY, 2, ()) for i in range(8)]
    threads = [threading.Thread(target=lambda j=j: (runner.submit(j), done.append(collect(j)))) for j in jobs]
    time.sleep(IDLE_EXIT_S)
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(done) == 8 and all(fin.eval_count == 2 for _, fin in done)
