"""``embed`` and ``embeddings``: texts to the engine as one packed job, a matrix back."""

from __future__ import annotations

import time

import numpy as np

from ..engine import EmbedJob
from ..errors import StatusError
from ..prompting.rerank import pooling_of
from ..types import EmbeddingRequest, EmbeddingResponse, EmbedRequest, EmbedResponse
from ._session import Session, load_ns
from ._stream import ns_since


def embed(session: Session, req: EmbedRequest) -> EmbedResponse:
    """L2-normalised embeddings of ``req.input``, cut to ``req.dimensions`` (then normalised again)."""
    prep = session.prepare(req.model, req.options, req.keep_alive)
    texts = [req.input] if isinstance(req.input, str) else list(req.input or [])
    t0 = time.perf_counter_ns()
    with session.use(prep) as entry:
        _check_not_reranker(entry.runner.model, req.model)
        if not texts or texts == [""]:
            return EmbedResponse(model=req.model, embeddings=[], load_duration=load_ns(entry, t0))
        tokens, offsets = entry.prompts.embedding_inputs(texts, entry.runner.n_ctx, req.truncate is not False)
        job = EmbedJob(tokens, offsets, True)
        entry.runner.submit(job)
        matrix = job.result.result()
        if req.dimensions:
            matrix = np.ascontiguousarray(matrix[:, : req.dimensions])
            matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        if not np.isfinite(matrix).all():
            raise StatusError.internal("embedding contains NaN or Inf values")
        return EmbedResponse.from_array(
            matrix,
            model=req.model,
            total_duration=ns_since(t0),
            load_duration=load_ns(entry, t0),
            prompt_eval_count=job.n_tokens,
        )


def embeddings(session: Session, req: EmbeddingRequest) -> EmbeddingResponse:
    """The legacy single-prompt embedding: not normalised."""
    prep = session.prepare(req.model, req.options, req.keep_alive)
    with session.use(prep) as entry:
        _check_not_reranker(entry.runner.model, req.model)
        if not req.prompt:
            return EmbeddingResponse(embedding=[])
        tokens, offsets = entry.prompts.embedding_inputs([req.prompt], entry.runner.n_ctx, True)
        job = EmbedJob(tokens, offsets, normalize=False)
        entry.runner.submit(job)
        return EmbeddingResponse(embedding=job.result.result()[0].tolist())


def _check_not_reranker(model, name: str) -> None:
    """A reranker's outputs are scores of pairs, not embeddings: 400, pointing to ``rerank``."""
    if pooling_of(model) == "rank":
        raise StatusError.bad_request(f'"{name}" is a reranker (rank pooling), not an embedding model: use rerank')
