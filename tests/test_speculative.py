"""Speculative decoding (options ``spec_type`` ...): the output is the output without it, in every mode.

Drafts come from llama.cpp's n-gram drafters; the stepper verifies them in its
batch by sampling at every draft position. So with greedy decoding the tokens
must be those of a run without speculation, alone and among other slots; with
sampling, the distribution must be the same (a chi-square test); and whatever
was rejected must be gone from the KV cache: the next turn reuses exactly the
same prefix.

One caveat is llama.cpp's, not speculation's: the CPU kernels give slightly
different logits for a token decoded alone and the same token decoded in a
batch of several (different matrix-multiplication paths; with the Q4_1 test
model the log-probabilities of one token differ by up to about 0.2 nats, with
or without speculation: a prompt decoded as one batch against its last token
decoded alone shows it too). Verification decodes several tokens at once, so
at a near-tie the greedy choice may flip, as it may between a batch of one
and a batch of four slots without speculation. The greedy checks therefore
require identical tokens up to the first difference, and at that difference a
near-tie in the run without speculation (the two tokens within ``TIE`` nats);
an error of the verification itself (a wrong output row, a kept rejected
cell) shows up as a confident token replaced and fails.
"""

from __future__ import annotations

import math
import threading
from collections import Counter

import pytest
from near_tie import assert_near_tie, assert_near_tie_with_the_end

from llamanative import StatusError
from llamanative.engine.speculation import resolve

NGRAM_TYPES = ["ngram-simple", "ngram-map-k", "ngram-map-k4v", "ngram-mod", "ngram-cache"]

PARAGRAPH = (
    "The old lighthouse stood at the edge of the cliff, its white paint peeling in long strips. "
    "Every evening the keeper climbed the one hundred and twelve steps to light the lamp, "
    "and every morning he climbed them again to put it out."
)
CODE = """def total(x):
    s = 0
    for item in x:
        if item > 0:
            s = s + item
    return s


def count_positive(x):
    n = 0
    for item in x:
        if item > 0:
            n = n + 1
    return n
"""
# Copy-heavy prompts first (drafts get accepted there), then prose and questions (they mostly do not).
PROMPTS = [
    f"Repeat the following text exactly, word for word:\n\n{PARAGRAPH}",
    f"Rewrite this Python code with the variable `x` renamed to `values`:\n\n{CODE}",
    "Copy this list exactly:\n1. apples\n2. pears\n3. plums\n4. cherries\n5. grapes\n6. figs",
    f"Here is a document:\n\n{PARAGRAPH}\n\nQuote the sentence of the document that mentions the steps.",
    "Write the numbers from 1 to 30, separated by commas.",
    'Return this JSON unchanged: {"name": "Ada", "age": 36, "city": "London", "langs": ["en", "fr"]}',
    "Write a short story about a fox who finds a key.",
    "Why is the sky blue?",
    "List three uses of copper.",
    "What is the capital of France?",
]
N_PREDICT = 48
TIE = 0.5  # nats: see the module docstring


def greedy(spec_type: str | None = None, **extra) -> dict:
    opts = {"temperature": 0, "num_predict": N_PREDICT, "seed": 0, **extra}
    if spec_type is not None:
        opts["spec_type"] = spec_type
    return opts


def run(client, prompt: str, options: dict, **kw):
    return client.generate("smol", prompt, options=options, **kw)


def run_lp(client, prompt: str, options: dict, **kw):
    """As :func:`run`, with the log-probabilities :func:`assert_same_or_near_tie` reads."""
    return run(client, prompt, options, logprobs=True, top_logprobs=5, **kw)


@pytest.fixture(scope="module")
def baseline(client) -> dict:
    """Each prompt's greedy run without speculation, with the log-probabilities of the top tokens."""
    return {p: run_lp(client, p, greedy()) for p in PROMPTS}


def assert_same_or_near_tie(plain, other, what: str) -> None:
    """``other``'s tokens equal ``plain``'s up to a first difference at a near-tie of ``plain`` (both responses
    with logprobs)."""
    if other.context == plain.context:
        return
    n_prompt = len(plain.context) - plain.eval_count
    assert other.context[:n_prompt] == plain.context[:n_prompt], f"{what}: the prompt differs"
    mine, ref = other.context[n_prompt:], plain.context[n_prompt:]
    i = next((i for i, (a, b) in enumerate(zip(mine, ref)) if a != b), None)
    if i is None:  # one run is the other's start: it ended (at a near-tie with the end) where the other went on
        longer = plain.logprobs if len(ref) > len(mine) else other.logprobs
        assert_near_tie_with_the_end(longer, min(len(mine), len(ref)), what, TIE)
        return
    assert_near_tie(plain.logprobs, other.logprobs, i, what, TIE)


@pytest.mark.parametrize("spec_type", [*NGRAM_TYPES, "auto", "ngram-simple,ngram-map-k"])
def test_greedy_output_is_unchanged(client, baseline, spec_type):
    accepted = 0
    for prompt in PROMPTS:
        r = run_lp(client, prompt, greedy(spec_type, spec_draft_max=8))
        assert_same_or_near_tie(baseline[prompt], r, f"{spec_type}: {prompt[:40]!r}")
        accepted += r.draft_accepted_count or 0
        assert (r.draft_accepted_count or 0) <= (r.draft_count or 0)
    # The copy-heavy prompts copy: some drafts were right (else nothing was tested).
    assert accepted > 0, f"{spec_type} accepted no draft token on copy-heavy prompts"


def test_counts_are_reported_and_eval_count_counts_tokens(client, baseline):
    prompt = PROMPTS[0]
    r = run(client, prompt, greedy("ngram-map-k"))
    plain = run(client, prompt, greedy())
    assert r.eval_count == plain.eval_count  # generated tokens, however many decodes they took
    assert r.draft_count and r.draft_count >= (r.draft_accepted_count or 0) > 0
    assert "draft tokens:" in r.summary()
    assert plain.draft_count is None and plain.draft_accepted_count is None
    assert "draft_count" not in plain.model_dump(exclude_none=True)


def test_concurrent_slots_two_speculating_two_not(client, baseline):
    prompts = [PROMPTS[0], PROMPTS[6], PROMPTS[1], PROMPTS[7]]
    specs = ["ngram-map-k", None, "ngram-mod", None]
    results: dict[int, object] = {}
    errors: list[BaseException] = []

    def go(i: int) -> None:
        try:
            results[i] = run_lp(client, prompts[i], greedy(specs[i]))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    for _ in range(2):
        threads = [threading.Thread(target=go, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert not errors
        for i in range(4):
            assert_same_or_near_tie(baseline[prompts[i]], results[i], f"slot {i} ({specs[i]})")


@pytest.mark.parametrize("n_predict", [1, 5, 17, 23])
def test_num_predict_cuts_inside_a_draft(client, n_predict):
    prompt = PROMPTS[0]
    plain = run(client, prompt, greedy(num_predict=n_predict))
    spec = run(client, prompt, greedy("ngram-map-k", num_predict=n_predict))
    assert spec.context == plain.context
    assert spec.eval_count == plain.eval_count == n_predict
    assert spec.done_reason == plain.done_reason == "length"


def test_stop_string_inside_a_draft(client, baseline):
    # A stop string that the copied paragraph reaches after a few accepted drafts.
    prompt = PROMPTS[0]
    opts = {"stop": ["twelve"]}
    plain = run(client, prompt, greedy(**opts))
    spec = run(client, prompt, greedy("ngram-map-k", **opts))
    assert "twelve" not in plain.response and plain.done_reason == "stop"
    assert (spec.response, spec.context, spec.done_reason) == (plain.response, plain.context, plain.done_reason)


def next_turn(client, first, spec_type: str | None):
    """The follow-up generate on ``first``'s context: its prompt reuse shows what the KV cache held."""
    return client.generate(
        "smol",
        " Now say it again.",
        context=first.context,
        options=greedy(spec_type, num_predict=16),
        logprobs=True,
        top_logprobs=5,
    )


@pytest.mark.parametrize("opts", [{}, {"num_predict": 9}, {"stop": ["twelve"]}])
def test_kv_cache_after_rejections_matches_a_plain_run(model_store, opts):
    """The next turn's prefix-cache hit (prompt tokens evaluated) and output are the same with and without."""
    from llamanative import Client

    runs = []
    for spec_type in (None, "ngram-simple"):
        with Client(models_dir=model_store) as c:  # a fresh runner each: the same cache history
            # A 3-token n-gram drafts from the first tokens on: rejections happen before 9 tokens too.
            first = run_lp(c, PROMPTS[0], greedy(spec_type, **opts, spec_ngram_size_n=3))
            runs.append((first, next_turn(c, first, spec_type)))
    (plain, plain_next), (spec, spec_next) = runs
    assert spec.draft_count
    assert_same_or_near_tie(plain, spec, "first turn")
    if spec.context == plain.context:
        # What the cache held after the first turn decides what the second reuses: the same, to the token.
        assert spec_next.prompt_eval_count == plain_next.prompt_eval_count
        assert_same_or_near_tie(plain_next, spec_next, "second turn")


def test_end_of_context_without_shift(model_store):
    """A copy that runs into a small context ends at the same token, with ``length``, as without speculation."""
    from llamanative import Client

    outcomes = []
    for spec_type in (None, "ngram-map-k"):
        with Client(models_dir=model_store) as c:
            # The copy runs into the end of a 256-token context (the prompt takes about 170; llama.cpp
            # rounds a context up to a multiple of 256).
            prompt = "Repeat the following text exactly, word for word:\n\n" + " ".join([PARAGRAPH] * 3)
            r = c.generate("smol", prompt, options=greedy(spec_type, num_ctx=256, num_predict=-1), shift=False)
            outcomes.append((r.context, r.done_reason, r.eval_count, r.draft_accepted_count is not None))
    assert outcomes[0][:3] == outcomes[1][:3]
    assert outcomes[0][1] == "length" and outcomes[1][3]


def test_context_shift_with_speculation(model_store):
    from llamanative import Client

    outs = []
    prompt = "Write the numbers from 1 to 400, separated by commas."
    for spec_type in (None, "ngram-simple,ngram-map-k"):
        with Client(models_dir=model_store) as c:
            # 320 tokens after a prompt of about 25 do not fit a context of 256: it shifts (the n-gram maps then
            # index the shortened history anew).
            r = c.generate("smol", prompt, options=greedy(spec_type, num_ctx=256, num_predict=320))
            outs.append((r.response, r.eval_count, r.done_reason, r.draft_count))
    assert outs[0][:3] == outs[1][:3]
    assert outs[0][1] == 320 and outs[1][3]


def test_logprobs_per_accepted_token(client):
    prompt = PROMPTS[0]
    plain = run_lp(client, prompt, greedy())
    spec = run_lp(client, prompt, greedy("ngram-map-k"))
    assert spec.draft_accepted_count
    assert_same_or_near_tie(plain, spec, "logprobs run")
    assert len(spec.logprobs) == spec.eval_count == len(spec.context) - (len(plain.context) - plain.eval_count)
    assert "".join(lp.token for lp in spec.logprobs) == spec.response  # one per token, accepted drafts included
    for a, b in zip(spec.logprobs, plain.logprobs):
        if a.token != b.token:
            break
        # The same distribution, up to the batched kernels' rounding (module docstring).
        assert a.logprob == pytest.approx(b.logprob, abs=0.3)


def test_streaming_and_cancel(client, baseline):
    prompt = PROMPTS[0]
    parts = list(client.generate("smol", prompt, stream=True, options=greedy("ngram-map-k")))
    assert parts[-1].draft_accepted_count
    whole = run_lp(client, prompt, greedy("ngram-map-k"))
    assert "".join(p.response for p in parts) == whole.response
    assert_same_or_near_tie(baseline[prompt], whole, "stream")
    # Breaking out of a speculating stream stops it; the model serves the next request as before.
    for i, _part in enumerate(client.generate("smol", prompt, stream=True, options=greedy("ngram-map-k"))):
        if i == 3:
            break
    assert_same_or_near_tie(baseline[prompt], run_lp(client, prompt, greedy("ngram-map-k")), "after a cancel")


def test_chat_tools_parse_the_same(client):
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    msgs = [{"role": "user", "content": "What is 2 plus 3? Use the add tool."}]
    plain = client.chat("smol", msgs, tools=[add], options=greedy())
    spec = client.chat("smol", msgs, tools=[add], options=greedy("ngram-map-k"))
    assert spec.message.model_dump() == plain.message.model_dump()


def test_json_schema_always_validates(client):
    import json

    import jsonschema

    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}, "city": {"type": "string"}},
        "required": ["name", "age", "city"],
    }
    prompt = 'Copy this record as JSON: {"name": "Ada", "age": 36, "city": "London"}'
    for seed in range(6):
        opts = {"temperature": 0.9, "seed": seed, "num_predict": 64, "spec_type": "ngram-map-k", "spec_draft_max": 8}
        r = client.generate("smol", prompt, format=schema, options=opts)
        jsonschema.validate(json.loads(r.response), schema)


def chi_square_critical(df: int, alpha_z: float = 2.326) -> float:
    """Upper critical value of the chi-square distribution (Wilson-Hilferty; z = 2.326 is a 1 % level)."""
    return df * (1 - 2 / (9 * df) + alpha_z * math.sqrt(2 / (9 * df))) ** 3


def test_sampling_distribution_is_unchanged(client):
    """Over many seeds, the first token where a sampled run leaves the greedy continuation is distributed
    the same with and without speculation: a two-sample chi-square test at the 1 % level.

    The two arms use disjoint seeds, so the samples are independent (with the same seed the runs give the
    same tokens, which would test nothing about the distribution).
    """
    prompt = PROMPTS[0]
    ref = run(client, prompt, {"temperature": 0, "num_predict": 24}).context
    n_prompt = len(ref) - 24
    greedy_tail = ref[n_prompt:]

    def first_departure(spec_type: str | None, seed: int) -> str:
        opts = {"temperature": 0.8, "top_k": 40, "top_p": 1.0, "num_predict": 24, "seed": seed}
        if spec_type:
            opts["spec_type"] = spec_type
        tail = run(client, prompt, opts).context[n_prompt:]
        for i, (a, b) in enumerate(zip(tail, greedy_tail)):
            if a != b:
                return f"{i}:{a}"
        return "none"

    n = 160
    plain = Counter(first_departure(None, seed) for seed in range(n))
    spec = Counter(first_departure("ngram-map-k", 10_000 + seed) for seed in range(n))
    # Categories with fewer than 10 observations in both arms together are pooled.
    cats = [c for c in set(plain) | set(spec) if plain[c] + spec[c] >= 10]
    rows = [(plain[c], spec[c]) for c in cats]
    rest = (n - sum(a for a, _ in rows), n - sum(b for _, b in rows))
    if sum(rest) > 0:
        rows.append(rest)
    assert len(rows) >= 2, f"the test has no spread to compare: {plain}"
    stat = sum((a - b) ** 2 / (a + b) for a, b in rows if a + b)  # equal sample sizes
    df = len(rows) - 1
    assert stat < chi_square_critical(df), f"chi2={stat:.2f} df={df}: {plain} vs {spec}"


@pytest.mark.parametrize(
    "options, message",
    [
        ({"spec_type": "bogus"}, "unknown spec_type"),
        ({"spec_type": "draft-simple"}, "needs a draft model"),
        ({"spec_type": "auto,ngram-mod"}, "cannot be combined"),
        ({"spec_type": "ngram-map-k", "spec_draft_max": 4, "spec_draft_min": 5}, "spec_draft_min"),
        ({"spec_type": 3}, "must be of type string"),
        ({"spec_draft_max": 0}, "spec_draft_max"),
        ({"spec_ngram_size_n": 5000}, "spec_ngram_size_n"),
    ],
)
def test_bad_settings_are_400(client, options, message):
    with pytest.raises(StatusError) as err:
        client.generate("smol", "Hi", options={"num_predict": 2, **options})
    assert err.value.status_code == 400
    assert message in str(err.value)


def test_environment_default(client, monkeypatch, baseline):
    monkeypatch.setenv("LLAMANATIVE_SPECULATIVE", "ngram-map-k")
    r = run_lp(client, PROMPTS[0], greedy())
    assert r.draft_count
    assert_same_or_near_tie(baseline[PROMPTS[0]], r, "environment default")
    # The request's option wins over the environment.
    assert run(client, PROMPTS[0], greedy("none")).draft_count is None
    monkeypatch.setenv("LLAMANATIVE_SPECULATIVE", "nonsense")
    with pytest.raises(StatusError, match="LLAMANATIVE_SPECULATIVE"):
        run(client, PROMPTS[0], greedy())


def test_resolve():
    assert resolve("none") is None and resolve("") is None
    auto = resolve("auto")
    assert auto is not None and auto.gate and auto.types == "ngram-mod"
    p = resolve(" ngram-mod , ngram-simple ", n_max=4)
    assert p is not None and p.types == "ngram-mod,ngram-simple" and p.n_max == 4 and not p.gate


# -- a draft model (draft-simple): SmolLM2 drafting for itself proves the machinery ---------------------------
@pytest.fixture(scope="module")
def draft_client(model_store, smollm2_path, tmp_path_factory):
    """A Client whose store also holds ``smol-draft``: SmolLM2 with itself as its draft model, made from a
    Modelfile's DRAFT line."""
    from llamanative import Client
    from llamanative.store.modelfile import parse_modelfile

    mf = parse_modelfile(f"FROM smol\nDRAFT {smollm2_path}\n")
    with Client(models_dir=model_store) as c:
        c.create("smol-draft", **mf.create_kwargs())
        yield c
        c.delete("smol-draft")


def test_draft_model_greedy_output_is_unchanged(draft_client, baseline):
    accepted = 0
    for prompt in PROMPTS:
        # No spec_type: a model stored with a draft drafts with it.
        r = draft_client.generate("smol-draft", prompt, options=greedy(), logprobs=True, top_logprobs=5)
        assert_same_or_near_tie(baseline[prompt], r, f"draft model: {prompt[:40]!r}")
        assert r.draft_count and (r.draft_accepted_count or 0) <= r.draft_count
        accepted += r.draft_accepted_count or 0
    assert accepted > 0


def test_draft_model_concurrent_with_slots_that_do_not_speculate(draft_client, baseline):
    prompts = [PROMPTS[0], PROMPTS[6], PROMPTS[1], PROMPTS[7]]
    specs = [None, "none", "draft-simple,ngram-simple", "none"]
    results: dict[int, object] = {}

    def go(i: int) -> None:
        opts = greedy(specs[i], spec_draft_max=4)
        results[i] = draft_client.generate("smol-draft", prompts[i], options=opts, logprobs=True, top_logprobs=5)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert len(results) == 4
    for i in range(4):
        assert_same_or_near_tie(baseline[prompts[i]], results[i], f"slot {i} ({specs[i]})")
        assert bool(results[i].draft_count) == (specs[i] != "none")
    # The next turn on the first one reuses its prefix: the draft context follows the target's cells.
    again = draft_client.generate("smol-draft", prompts[0], options=greedy(), logprobs=True, top_logprobs=5)
    assert again.prompt_eval_count == 1 and again.draft_accepted_count
    assert_same_or_near_tie(baseline[prompts[0]], again, "prefix reused")


def test_draft_model_stored_and_shown(draft_client, smollm2_path):
    show = draft_client.show("smol-draft")
    assert "DRAFT " in show.modelfile
    from llamanative.store.modelfile import parse_modelfile

    assert parse_modelfile(show.modelfile.split("\n", 1)[1]).draft is not None


def test_draft_errors(client, model_store, minilm_path, tmp_path):
    # draft-simple on a model without a draft model.
    with pytest.raises(StatusError, match="needs a draft model") as err:
        client.generate("smol", "Hi", options={"num_predict": 2, "spec_type": "draft-simple"})
    assert err.value.status_code == 400
    # A draft whose vocabulary is another model's, a projector-like non-model, a missing file.
    with pytest.raises(StatusError, match="vocabulary") as err:
        client.create("smol-bad-draft", from_="smol", draft=str(minilm_path))
    assert err.value.status_code == 400
    with pytest.raises(StatusError) as err:
        client.create("smol-bad-draft", from_="smol", draft=str(tmp_path / "missing.gguf"))
    assert err.value.status_code == 404
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf at all")
    with pytest.raises(StatusError, match="not a GGUF") as err:
        client.create("smol-bad-draft", from_="smol", draft=str(junk))
    assert err.value.status_code == 400
