"""Sampler chains: every stage, seeds, grammars, and their parameter checks."""

from __future__ import annotations

import numpy as np
import pytest

from llamanative import _core
from llamanative.engine import generate_step
from llamanative.errors import GrammarError

PROMPT = "Once upon a time"


def run(model, sampler, n=16, prompt=PROMPT):
    ctx = _core.Context(model, n_ctx=256)
    return [s.token for s in generate_step(ctx, sampler, model.vocab.tokenize(prompt), max_tokens=n)]


def full_chain(model, seed):
    return (
        _core.Sampler(model)
        .penalties(64, 1.1, 0.1, 0.1)
        .top_k(40)
        .typical(0.95)
        .top_p(0.9)
        .min_p(0.05)
        .temperature(0.8)
        .dist(seed)
    )


def test_seed_makes_runs_reproducible(smollm2):
    a = run(smollm2, full_chain(smollm2, 1234), 24)
    b = run(smollm2, full_chain(smollm2, 1234), 24)
    c = run(smollm2, full_chain(smollm2, 99), 24)
    assert a == b
    assert a != c


def test_stage_names_and_order(smollm2):
    s = full_chain(smollm2, 1)
    assert [x.split("(")[0] for x in s.stages] == [
        "penalties",
        "top_k",
        "typical",
        "top_p",
        "min_p",
        "temperature",
        "dist",
    ]
    with pytest.raises(ValueError, match="last stage"):
        s.top_k(5)


def test_greedy_equals_argmax(smollm2):
    ctx = _core.Context(smollm2, n_ctx=128)
    b = _core.Batch(32)
    b.add_sequence(smollm2.vocab.tokenize(PROMPT), 0, 0)
    ctx.decode(b)
    assert _core.Sampler(smollm2).greedy().sample(ctx, -1) == int(np.argmax(ctx.logits(-1)))


def test_logit_bias_bans_and_forces(smollm2):
    greedy_tokens = run(smollm2, _core.Sampler(smollm2).greedy(), 4)
    banned = run(smollm2, _core.Sampler(smollm2).logit_bias({greedy_tokens[0]: float("-inf")}).greedy(), 4)
    assert banned[0] != greedy_tokens[0]
    forced_tok = smollm2.vocab.tokenize(" banana", add_special=False)[0]
    forced = run(smollm2, _core.Sampler(smollm2).logit_bias({int(forced_tok): 100.0}).greedy(), 3)
    assert forced == [forced_tok] * 3


def test_grammar_constrains_output(smollm2):
    grammar = 'root ::= "yes" | "no"'
    toks = run(smollm2, _core.Sampler(smollm2).grammar(grammar).greedy(), 8, prompt="Is the sky blue?")
    text = smollm2.vocab.detokenize([t for t in toks if not smollm2.vocab.is_eog(t)])
    assert text in ("yes", "no")
    assert smollm2.vocab.is_eog(toks[-1])


def test_json_grammar(smollm2):
    grammar = r"""
root   ::= "{" ws "\"name\":" ws string "," ws "\"age\":" ws number ws "}"
string ::= "\"" [a-zA-Z ]{1,12} "\""
number ::= [0-9]{1,3}
ws     ::= [ ]?
"""
    toks = run(smollm2, _core.Sampler(smollm2).grammar(grammar).greedy(), 48, prompt="A person as JSON:")
    import json

    text = smollm2.vocab.detokenize([t for t in toks if not smollm2.vocab.is_eog(t)])
    data = json.loads(text)
    assert set(data) == {"name", "age"} and isinstance(data["age"], int)


def test_lazy_grammar_starts_at_trigger(smollm2):
    s = _core.Sampler(smollm2).grammar_lazy('root ::= "<x>" [0-9]+', trigger_patterns=["<x>"]).greedy()
    assert s.stages[0] == "grammar_lazy"
    run(smollm2, s, 8)  # unconstrained until "<x>" appears: generation runs normally


def test_invalid_grammar_raises(smollm2):
    with pytest.raises(GrammarError):
        _core.Sampler(smollm2).grammar("root ::= (")
    with pytest.raises(GrammarError):
        _core.Sampler(smollm2).grammar('other ::= "a"')
    with pytest.raises(ValueError, match="trigger"):
        _core.Sampler(smollm2).grammar_lazy('root ::= "a"')


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda s: s.top_p(0.0), "top_p"),
        (lambda s: s.top_p(1.5), "top_p"),
        (lambda s: s.min_p(-0.1), "min_p"),
        (lambda s: s.typical(0.0), "typical_p"),
        (lambda s: s.temperature(float("nan")), "temperature"),
        (lambda s: s.penalties(-2), "repeat_last_n"),
        (lambda s: s.penalties(64, 0.0), "repeat_penalty"),
        (lambda s: s.dist(2**32), "seed"),
        (lambda s: s.logit_bias({10**6: 1.0}), "out of range"),
    ],
)
def test_bad_parameters_raise_value_error(smollm2, build, match):
    with pytest.raises(ValueError, match=match):
        build(_core.Sampler(smollm2))


def test_sample_needs_a_final_stage_and_an_output(smollm2, gemma3):
    ctx = _core.Context(smollm2, n_ctx=128)
    b = _core.Batch(32)
    b.add_sequence(smollm2.vocab.tokenize(PROMPT), 0, 0)
    ctx.decode(b)
    with pytest.raises(ValueError, match="greedy"):
        _core.Sampler(smollm2).top_k(4).sample(ctx, -1)
    with pytest.raises(IndexError):
        _core.Sampler(smollm2).greedy().sample(ctx, 0)
    with pytest.raises(ValueError, match="another model"):
        _core.Sampler(gemma3).greedy().sample(ctx, -1)
    fresh = _core.Context(smollm2, n_ctx=128)
    with pytest.raises(IndexError):
        _core.Sampler(smollm2).greedy().sample(fresh, -1)
    s = _core.Sampler(smollm2).greedy()
    with pytest.raises(ValueError, match="out of range"):
        s.accept(-5)
    s.accept(1)
    s.reset()
    assert s.perf()["n_sample"] >= 0


def test_grammar_is_checked_after_sampling_with_the_same_result(smollm2):
    # The grammar sits beside the chain (common's order): the chain samples, the
    # grammar checks that one token and only on a rejection constrains and resamples.
    # Greedy must still give the most likely *allowed* token, sampling only allowed ones.
    ctx = _core.Context(smollm2, n_ctx=128)
    b = _core.Batch(32)
    b.add_sequence(smollm2.vocab.tokenize("My favourite number is"), 0, 0)
    ctx.decode(b)
    logits = np.array(ctx.logits(-1))
    vocab = smollm2.vocab
    digits = np.array([vocab.token_to_piece(t).isdigit() for t in range(len(vocab))])
    s = _core.Sampler(smollm2).grammar("root ::= [0-9]+").greedy()
    assert s.stages == ["grammar", "greedy"]
    expected = int(np.flatnonzero(digits)[np.argmax(logits[digits])])
    assert int(np.argmax(logits)) != expected  # the free pick is rejected: the resampling path runs
    assert s.sample(ctx, -1) == expected
    for seed in range(20):
        tok = _core.Sampler(smollm2).grammar("root ::= [0-9]+").temperature(1.5).dist(seed).sample(ctx, -1)
        assert digits[tok]
    with pytest.raises(ValueError, match="one grammar"):
        _core.Sampler(smollm2).grammar("root ::= [0-9]+").grammar('root ::= "a"')
