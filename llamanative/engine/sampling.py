"""Sampling parameters and the sampler chain built from them.

One fixed order, the one llama.cpp's ``common`` uses by default: constraints
first (logit bias, grammar), then penalties, then the truncations (top-k,
typical, top-p, min-p), temperature, and the final pick (``dist`` with the
seed, or ``greedy`` when the temperature is 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import _core


@dataclass(frozen=True)
class SamplingParams:
    """What a request asks of the sampler. Values are validated by the request types."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.0
    typical_p: float = 1.0
    repeat_last_n: int = 64
    repeat_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int = -1
    logit_bias: dict[int, float] = field(default_factory=dict)
    grammar: str | None = None
    grammar_lazy: bool = False
    grammar_trigger_patterns: tuple[str, ...] = ()
    grammar_trigger_tokens: tuple[int, ...] = ()
    grammar_prefill: tuple[int, ...] = ()  # tokens the grammar must accept before sampling starts


def make_sampler(model: _core.Model, p: SamplingParams, *, n_ctx: int) -> _core.Sampler:
    """Build the llama.cpp sampler chain for ``p`` (see the module docstring for the order).

    ``n_ctx`` (the context size) is what ``repeat_last_n=-1`` means.

    Raises:
        GrammarError: the grammar does not parse.
        ValueError: a parameter is out of range.
    """
    s = _core.Sampler(model)
    if p.logit_bias:
        s.logit_bias(p.logit_bias)
    if p.grammar:
        if p.grammar_lazy:
            s.grammar_lazy(p.grammar, "root", p.grammar_trigger_patterns, p.grammar_trigger_tokens)
        else:
            s.grammar(p.grammar)
    if p.repeat_last_n != 0 and (p.repeat_penalty != 1.0 or p.presence_penalty or p.frequency_penalty):
        last_n = n_ctx if p.repeat_last_n < 0 else p.repeat_last_n
        s.penalties(last_n, p.repeat_penalty, p.frequency_penalty, p.presence_penalty)
    if p.temperature <= 0:
        s.greedy()
        return _prefilled(s, p)
    if p.top_k > 0:
        s.top_k(p.top_k)
    if 0 < p.typical_p < 1:
        s.typical(p.typical_p)
    if 0 < p.top_p < 1:
        s.top_p(p.top_p)
    if p.min_p > 0:
        s.min_p(p.min_p)
    s.temperature(p.temperature)
    s.dist(None if p.seed < 0 else p.seed)
    return _prefilled(s, p)


def _prefilled(s: _core.Sampler, p: SamplingParams) -> _core.Sampler:
    for token in p.grammar_prefill:
        s.accept(token)
    return s
