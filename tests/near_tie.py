"""A greedy output against a reference run, allowing a flip at a near-tie.

llama.cpp's CPU kernels round a token decoded in a batch of several (or on a
reused prefix) slightly differently from the same token decoded alone
(docs/design/engine.md, "Prefix reuse and rounding"), which can flip a greedy
choice between two tokens of nearly equal probability. An error that mixes up
requests or outputs replaces a confident token instead.
"""

from __future__ import annotations

TIE = 0.5  # nats between the reference's choice and the other run's token


def assert_near_tie(ref_logprobs, other_logprobs, i: int, what: str, tie: float = TIE) -> None:
    """At the first difference ``i``, the other run's token is among the reference's top tokens and within
    ``tie`` nats of its choice (both runs with ``logprobs``/``top_logprobs``; tokens named by their text)."""
    top = {t.token: t.logprob for t in ref_logprobs[i].top_logprobs}
    got = other_logprobs[i].token
    assert got in top, f"{what}: token {i} is {got!r}, not among the reference's top tokens {top}"
    gap = ref_logprobs[i].logprob - top[got]
    assert gap < tie, f"{what}: token {i} is {got!r}, {gap:.3f} nats below the reference's choice: no near-tie"


def assert_chat_same_or_near_tie(solo, batched, what: str, tie: float = TIE) -> None:
    """Two chat responses (with logprobs): the same text, or the same tokens up to a first difference at a
    near-tie of ``solo`` (a request batched with others against the same request alone)."""
    if batched.message.content == solo.message.content:
        return
    a, b = solo.logprobs, batched.logprobs
    i = next((i for i, (x, y) in enumerate(zip(a, b)) if x.token != y.token), None)
    assert i is not None, f"{what}: different text from the same tokens"
    assert_near_tie(a, b, i, what, tie)
