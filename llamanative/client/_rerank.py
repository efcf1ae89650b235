"""``rerank``: query-document pairs to the engine as one packed embed job, scores back sorted."""

from __future__ import annotations

import time

import numpy as np

from ..engine import EmbedJob
from ..errors import StatusError
from ..prompting.rerank import check_reranker, rerank_inputs
from ..types import RerankRequest, RerankResponse, RerankResult
from ._session import Session, load_ns
from ._stream import ns_since


def rerank(session: Session, req: RerankRequest) -> RerankResponse:
    """Score every (query, document) pair with a reranker model; the results best first, cut to ``top_n``.

    The pairs are one embed job (packed into as few decodes as fit, one
    sequence each, shared with concurrent embed and rerank calls); the score
    of a pair is the first output of the model's classifier head, as
    llama-server's ``/rerank`` reports it.

    Raises:
        StatusError: 400 when the model is not a reranker, or a pair is over the
            context and ``truncate`` is false; 404 for an unknown model.
    """
    prep = session.prepare(req.model, req.options, req.keep_alive)
    t0 = time.perf_counter_ns()
    with session.use(prep) as entry:
        check_reranker(entry.runner.model, req.model)
        docs = req.documents
        if not docs:
            return RerankResponse(model=req.model, load_duration=load_ns(entry, t0))
        tokens, offsets = rerank_inputs(
            entry.runner.model, req.query, docs, entry.runner.n_ctx, req.truncate is not False
        )
        job = EmbedJob(tokens, offsets, normalize=False)
        entry.runner.submit(job)
        scores = np.ascontiguousarray(job.result.result()[:, 0])
        if not np.isfinite(scores).all():
            raise StatusError.internal("rerank scores contain NaN or Inf values")
        # Best first; a stable sort keeps tied documents in the request's order.
        order = np.argsort(-scores, kind="stable")
        if req.top_n is not None:
            order = order[: req.top_n]
        values = scores[order].tolist()
        results = [
            RerankResult(index=i, relevance_score=s, document=docs[i] if req.return_documents else None)
            for i, s in zip(order.tolist(), values)
        ]
        return RerankResponse(
            model=req.model,
            results=results,
            total_duration=ns_since(t0),
            load_duration=load_ns(entry, t0),
            prompt_eval_count=job.n_tokens,
        )
