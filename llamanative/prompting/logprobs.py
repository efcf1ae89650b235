"""The engine's token log probabilities as the API's ``Logprob`` objects.

Ollama reports, for every generated token, its text, its natural-log
probability under the model's raw logits, its bytes (a token may hold part
of a UTF-8 character) and, with ``top_logprobs``, the most likely
alternatives at that position.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from .. import _core
from ..types import Logprob, TokenLogprob


class TokenLogprobsLike(Protocol):
    """What the engine reports per token (``engine.TokenLogprobs``)."""

    @property
    def token(self) -> int: ...
    @property
    def logprob(self) -> float: ...
    @property
    def top(self) -> Sequence[tuple[int, float]]: ...


def _text_and_bytes(vocab: _core.Vocab, token: int) -> tuple[str, list[int]]:
    raw = vocab.token_to_piece(token, special=True)
    return raw.decode("utf-8", errors="replace"), list(raw)


def to_logprobs(vocab: _core.Vocab, items: Iterable[TokenLogprobsLike]) -> list[Logprob]:
    """One :class:`Logprob` per generated token, alternatives most likely first."""
    out = []
    for item in items:
        text, raw = _text_and_bytes(vocab, item.token)
        top = None
        if item.top:
            top = []
            for tok, lp in item.top:
                t, b = _text_and_bytes(vocab, tok)
                top.append(TokenLogprob(token=t, logprob=lp, bytes=b))
        out.append(Logprob(token=text, logprob=item.logprob, bytes=raw, top_logprobs=top))
    return out
