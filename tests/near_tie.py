"""A greedy output against a reference run, allowing a flip at a near-tie.

llama.cpp's CPU kernels round a token decoded in a batch of several (or on a
reused prefix) slightly differently from the same token decoded alone
(docs/design/engine.md, "Prefix reuse and rounding"), which can flip a greedy
choice between two tokens of nearly equal probability. An error that mixes up
requests or outputs replaces a confident token instead.
"""

from __future__ import annotations

import math

TIE = 0.5  # nats between the reference's choice and the other run's token


def assert_near_tie(ref_logprobs, other_logprobs, i: int, what: str, tie: float = TIE) -> None:
    """At the first difference ``i``, the other run's token is among the reference's top tokens and within
    ``tie`` nats of its choice (both runs with ``logprobs``/``top_logprobs``; tokens named by their text)."""
    top = {t.token: t.logprob for t in ref_logprobs[i].top_logprobs}
    got = other_logprobs[i].token
    assert got in top, f"{what}: token {i} is {got!r}, not among the reference's top tokens {top}"
    gap = ref_logprobs[i].logprob - top[got]
    assert gap < tie, f"{what}: token {i} is {got!r}, {gap:.3f} nats below the reference's choice: no near-tie"


def assert_near_tie_with_the_end(longer_logprobs, i: int, what: str, tie: float = TIE) -> None:
    """One run ended at token ``i`` where the other (``longer_logprobs``) went on: the end of generation,
    which gets no logprob of its own, was within ``tie`` nats of the token the longer run chose there.

    Only the probability of that choice can tell: another token within ``tie`` nats of it means that the
    choice had a probability of at most 1 / (1 + e^-tie) (0.62 for 0.5 nats)."""
    lp = longer_logprobs[i]
    bound = -math.log1p(math.exp(-tie))
    assert lp.logprob <= bound, (
        f"{what}: one run ended at token {i}, where the other chose {lp.token!r} with logprob {lp.logprob:.3f} "
        f"(above {bound:.3f}): no near-tie with the end"
    )


def assert_chat_same_or_near_tie(solo, batched, what: str, tie: float = TIE) -> None:
    """Two chat responses (with logprobs): the same text, or the same tokens up to a first difference at a
    near-tie of ``solo`` (a request batched with others against the same request alone)."""
    _same_or_near_tie(solo.message.content, solo.logprobs, batched.message.content, batched.logprobs, what, tie)


def assert_generate_same_or_near_tie(ref, other, what: str, tie: float = TIE) -> None:
    """Two generate responses (with logprobs and top_logprobs): the same text, or the same tokens up to a
    first difference at a near-tie of ``ref``."""
    _same_or_near_tie(ref.response, ref.logprobs, other.response, other.logprobs, what, tie)


def _same_or_near_tie(ref_text, a, other_text, b, what: str, tie: float) -> None:
    if other_text == ref_text:
        return
    i = next((i for i, (x, y) in enumerate(zip(a, b)) if x.token != y.token), None)
    if i is None:  # one run is the other's start: it ended where the other went on
        assert len(a) != len(b), f"{what}: different text from the same tokens"
        assert_near_tie_with_the_end(a if len(a) > len(b) else b, min(len(a), len(b)), what, tie)
        return
    assert_near_tie(a, b, i, what, tie)


def assert_engine_same_or_near_tie(got, ref, what: str, tie: float = TIE) -> None:
    """The engine's token logprobs (``TokenLogprobs``, tokens by id) of two greedy runs: the same tokens, or the
    same up to a first difference where the other run's token was within ``tie`` nats of the reference's."""
    i = next((i for i, (a, b) in enumerate(zip(got, ref)) if a.token != b.token), None)
    if i is None:
        assert len(got) == len(ref), f"{what}: one run stopped early"
        return
    top = dict(ref[i].top)
    assert got[i].token in top, f"{what}: token {i} is {got[i].token}, not among the reference's top {top}"
    gap = ref[i].logprob - top[got[i].token]
    assert gap < tie, f"{what}: token {i} is {got[i].token}, {gap:.3f} nats below the reference's choice"
