"""Embedding: pooled, packed decodes of embed jobs on an embedding context.

An embedding model's runner embeds with its only context. A generative
model embeds too (``embed`` on a chat model, as Ollama allows) with a second
context, created on first use, that mean-pools its last hidden states.
Concurrent embed calls on one model are merged into one packed input list,
so that they share decodes. A reranker's context (rank pooling) runs the
same jobs: each input is a query-document pair and its row the classifier
head's outputs (the relevance score first).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from .. import _core
from .attention import FlashAttn
from .jobs import EmbedJob

# Tokens of short inputs packed into one embedding decode. An encoder attends
# over the whole batch, so a pack that is too large costs more than it saves;
# packs of a few hundred tokens embed fastest (figures: docs/design/engine.md).
# Inputs longer than this still get a decode of their own.
EMBED_PACK_TOKENS = 256


def embedding_sequences(n_batch: int) -> int:
    """Sequences per decode of an embedding context whose batch (= ubatch = context) is ``n_batch`` tokens.

    Up to 64 inputs share a decode; llama.cpp's mean pooling also needs the
    batch to be a multiple of the count (see ``Context``), so the largest
    divisor of ``n_batch`` up to that bound.
    """
    bound = min(64, _core.max_parallel_sequences(), n_batch)
    return next(d for d in range(bound, 0, -1) if n_batch % d == 0)


def embedding_context(
    model: _core.Model,
    n_ctx: int,
    *,
    n_threads: int | None,
    flash_attn: FlashAttn,
    pooling_type: Literal["mean"] | None = None,
) -> _core.Context:
    """An embedding context: encoders attend to the whole input at once, so one ubatch holds a sequence."""
    return _core.Context(
        model,
        n_ctx=n_ctx,
        n_batch=n_ctx,
        n_ubatch=n_ctx,
        n_seq_max=embedding_sequences(n_ctx),
        n_threads=n_threads,
        embeddings=True,
        pooling_type=pooling_type,
        flash_attn=flash_attn,
    )


class Embedding:
    """Serves embed jobs on ``ctx``, or on a mean-pooling context of ``model`` made on first use.

    Args:
        model: the loaded model.
        ctx: the embedding model's context (owned by the caller), or None for a generative model.
        n_ctx: the context size of a context made here.
        n_threads: threads of a context made here (None = all available CPUs).
        flash_attn: the flash-attention setting of a context made here.
        job_done: called once for every job that ends, whichever way.
        adapters: LoRA adapters of ``model``, set at scale 1 on a context made here.
        control_vector: a control vector of ``model``, set on every layer of a context made here.
    """

    def __init__(
        self,
        model: _core.Model,
        ctx: _core.Context | None,
        *,
        n_ctx: int,
        n_threads: int | None,
        flash_attn: FlashAttn,
        job_done: Callable[[], None],
        adapters: Sequence[_core.LoraAdapter] = (),
        control_vector: _core.ControlVector | None = None,
    ) -> None:
        self._model = model
        self._adapters = list(adapters)
        self._control_vector = control_vector
        self._ctx = ctx
        self._own: _core.Context | None = None  # the context made here, closed by close()
        self._n_ctx = n_ctx
        self._n_threads = n_threads
        self._flash_attn = flash_attn
        self._job_done = job_done

    def _context(self) -> _core.Context:
        if self._ctx is not None:
            return self._ctx
        if self._own is None:
            # A generative model declares no pooling.
            self._own = embedding_context(
                self._model, self._n_ctx, n_threads=self._n_threads, flash_attn=self._flash_attn, pooling_type="mean"
            )
            self._own.set_adapters(self._adapters)
            if self._control_vector is not None:
                self._own.set_control_vector(self._control_vector)
        return self._own

    def run(self, jobs: list[EmbedJob]) -> None:
        """Embed ``jobs`` together and set each one's result (or its exception)."""
        native_norm = all(job.normalize for job in jobs)
        try:
            if len(jobs) == 1:
                tokens, offsets = jobs[0].tokens, jobs[0].offsets
            else:
                tokens = np.concatenate([job.tokens for job in jobs])
                shifts = np.cumsum([0] + [job.n_tokens for job in jobs[:-1]])
                offsets = np.concatenate([jobs[0].offsets[:1]] + [job.offsets[1:] + s for job, s in zip(jobs, shifts)])
            matrix = self._embed(tokens, offsets, normalize=native_norm)
        except BaseException as exc:
            if len(jobs) > 1:  # one bad input must fail only its own call
                for job in jobs:
                    self.run([job])
                return
            jobs[0].result.set_exception(exc)
            self._job_done()
            return
        row = 0
        for job in jobs:
            rows = matrix[row : row + job.n_inputs]  # a view: each call gets its own rows, no copy
            row += job.n_inputs
            if job.normalize and not native_norm:
                _l2_normalize(rows)
            job.result.set_result(rows)
            self._job_done()

    def _embed(self, tokens: np.ndarray, offsets: np.ndarray, normalize: bool) -> np.ndarray:
        """Pooled rows of the packed inputs, from as few decodes as the embedding context allows."""
        ctx = self._context()
        # Rank pooling (a reranker) gives the classifier head's outputs per sequence, not an embedding.
        width = self._model.n_cls_out if ctx.pooling_type == "rank" else ctx.n_embd_out
        out = np.empty((len(offsets) - 1, width), dtype=np.float32)
        ctx.embed_sequences(tokens, offsets, out, normalize=normalize, pack=EMBED_PACK_TOKENS)
        return out

    def close(self) -> None:
        """Free the context made here (a context passed in stays the caller's)."""
        if self._own is not None:
            self._own.close()
            self._own = None


def _l2_normalize(rows: np.ndarray) -> None:
    """Scale each row to unit length, in place (zero rows stay zero)."""
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    np.divide(rows, norms, out=rows, where=norms > 0)
