"""Single-sequence generation over a `_core.Context`: a generator of steps.

This is the innermost loop (mlx-lm's ``generate_step``): evaluate the prompt
in chunks of ``n_batch``, then sample, yield and feed back one token at a
time. Text assembly, stop strings and metrics live in the layers above.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .. import _core


@dataclass(frozen=True)
class GenerationStep:
    """One generated token and the text it completed (``""`` mid-character)."""

    token: int
    text: str
    is_eog: bool


def generate_step(
    ctx: _core.Context,
    sampler: _core.Sampler,
    prompt: np.ndarray,
    *,
    max_tokens: int = -1,
    seq_id: int = 0,
    pos0: int = 0,
) -> Iterator[GenerationStep]:
    """Evaluate ``prompt`` then yield generated tokens until end-of-generation.

    Args:
        ctx: the context (its KV cache for ``seq_id`` must end at ``pos0``).
        sampler: the sampler chain (ends with greedy or dist).
        prompt: int32 token ids, at least one.
        max_tokens: stop after this many tokens; -1 = until the context is full.
        seq_id: the sequence to use.
        pos0: position of the first prompt token.

    Yields:
        :class:`GenerationStep` for each token; the end-of-generation token
        itself is yielded last (``is_eog=True``; its text is whatever was held
        back for an unfinished character, usually ``""``).

    Raises:
        ValueError: the prompt is empty or does not fit in the context.
    """
    n = len(prompt)
    if n == 0:
        raise ValueError("the prompt is empty")
    if pos0 + n > ctx.n_ctx_seq:
        raise ValueError(f"the prompt ({n} tokens from position {pos0}) exceeds the context of {ctx.n_ctx_seq} tokens")
    vocab = ctx.model.vocab
    batch = _core.Batch(ctx.n_batch)
    for start in range(0, n, ctx.n_batch):
        batch.clear()
        chunk = prompt[start : start + ctx.n_batch]
        batch.add_sequence(chunk, pos0 + start, seq_id, output="last" if start + len(chunk) == n else "none")
        ctx.decode(batch)
    detok = _core.Detokenizer(vocab)
    pos = pos0 + n
    produced = 0
    while max_tokens < 0 or produced < max_tokens:
        token = sampler.sample(ctx, -1)
        produced += 1
        if vocab.is_eog(token):
            yield GenerationStep(token, detok.flush(), True)
            return
        last = produced == max_tokens or pos >= ctx.n_ctx_seq
        # The last token also releases bytes held back for an unfinished character.
        text = detok.add(token) + (detok.flush() if last else "")
        yield GenerationStep(token, text, False)
        if last:
            return
        batch.clear()
        batch.add(token, pos, seq_id, True)
        ctx.decode(batch)
        pos += 1
