"""Built-in evaluators: embedding similarity (a local embedding model), exact match, regex match."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..evaluator import (
    FAIL,
    PASS,
    EvaluationResult,
    Evaluator,
    EvaluatorCallbackRequest,
    EvaluatorRequest,
    Score,
    case_id,
    failed_result,
    fill_test_case_ids,
    new_batch_evaluator,
    new_evaluator,
)
from ..retrieval._compat import text_of
from ..retrieval.embedders import as_text_embedder, embed_texts

__all__ = ["embedding_similarity_evaluator", "exact_match_evaluator", "regex_match_evaluator"]


def _option(options: Any, key: str, default: Any) -> Any:
    if isinstance(options, Mapping):
        return options.get(key, default)
    return getattr(options, key, default) if options is not None else default


def _references(value: Any) -> list[str]:
    """The reference texts: one, or several acceptable answers given as a list of strings."""
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return [v for v in value]
    return [text_of(value)]


def embedding_similarity_evaluator(
    embedder: Any,
    *,
    model: str | None = None,
    options: Any = None,
    threshold: float = 0.8,
    name: str = "llamanative/embedding_similarity",
) -> Evaluator:
    """PASS when the output's embedding is close to the reference's (cosine ≥ ``threshold``).

    The score is the cosine similarity (the best one when the reference is a
    list of acceptable answers). All texts of a run are embedded in one
    batched call. An example without output or reference, or a failed
    embedding, gets a ``FAIL`` score with the error. Options: ``{"threshold": x}``.

    Args:
        embedder: a text embedder (e.g. ``ClientEmbedder(client, "all-minilm")``), an ``ai``
            Embedder (``ai.lookup_embedder("llamanative/all-minilm")``), or a Client with ``model``.
        options: embedding options (model options for a Client, the ``ai`` embedder's options).
        threshold: the similarity at or above which an example passes.
    """
    embed = as_text_embedder(embedder, model, options)

    def run(request: EvaluatorRequest) -> list[EvaluationResult]:
        limit = float(_option(request.options, "threshold", threshold))
        examples = fill_test_case_ids(request.dataset)
        results: dict[str, EvaluationResult] = {}
        pending: list[tuple[str, str, list[str]]] = []
        for ex in examples:
            tc = case_id(ex)
            out, refs = text_of(ex.output), _references(ex.reference)
            if not out.strip():
                results[tc] = failed_result(tc, "the example has no output")
            elif not any(r.strip() for r in refs):
                results[tc] = failed_result(tc, "the example has no reference")
            else:
                pending.append((tc, out, [r for r in refs if r.strip()]))
        if pending:
            texts = list(dict.fromkeys(t for _, out, refs in pending for t in (out, *refs)))
            try:
                matrix = embed_texts(embed, texts)
            except Exception as exc:  # every pending example fails with the embedder's error
                for tc, _, _ in pending:
                    results[tc] = failed_result(tc, exc)
            else:
                row = {t: i for i, t in enumerate(texts)}
                for tc, out, refs in pending:
                    sims = matrix[[row[r] for r in refs]] @ matrix[row[out]]
                    best = float(np.max(sims))
                    ok = best >= limit
                    results[tc] = EvaluationResult(
                        test_case_id=tc,
                        evaluation=[
                            Score(
                                score=best,
                                status=PASS if ok else FAIL,
                                details={
                                    "reasoning": (
                                        f"cosine similarity {best:.3f} {'>=' if ok else '<'} threshold {limit}"
                                    ),
                                    "threshold": limit,
                                },
                            )
                        ],
                    )
        return [results[case_id(ex)] for ex in examples]

    return new_batch_evaluator(
        name,
        run,
        display_name="Embedding similarity",
        definition="Cosine similarity between the embeddings of the output and the reference; "
        "passes at or above a threshold.",
    )


def _normalize(text: str, ignore_case: bool, collapse_whitespace: bool) -> str:
    if collapse_whitespace:
        text = " ".join(text.split())
    return text.casefold() if ignore_case else text


def exact_match_evaluator(
    *, ignore_case: bool = False, collapse_whitespace: bool = True, name: str = "llamanative/exact_match"
) -> Evaluator:
    """PASS when the output equals the reference (score ``True``/``False``).

    Texts (strings, documents, messages) are compared after collapsing
    whitespace (and case-folding with ``ignore_case``); other values (numbers,
    lists, dicts) are compared for deep equality.
    """

    def run(req: EvaluatorCallbackRequest) -> Score:
        ex = req.input
        if ex.reference is None:
            raise ValueError("the example has no reference")
        if not any(isinstance(v, str) or _doc_like(v) for v in (ex.output, ex.reference)):
            ok = ex.output == ex.reference
        else:
            ok = _normalize(text_of(ex.output), ignore_case, collapse_whitespace) == _normalize(
                text_of(ex.reference), ignore_case, collapse_whitespace
            )
        return Score(score=ok, status=PASS if ok else FAIL)

    return new_evaluator(
        name,
        run,
        display_name="Exact match",
        definition="The output equals the reference (texts with whitespace collapsed).",
    )


def _doc_like(value: Any) -> bool:
    return hasattr(value, "content") or (isinstance(value, Mapping) and "content" in value)


def regex_match_evaluator(*, name: str = "llamanative/regex") -> Evaluator:
    """PASS when the reference, a regular expression, matches somewhere in the output text."""

    def run(req: EvaluatorCallbackRequest) -> Score:
        pattern = req.input.reference
        if not isinstance(pattern, str) or not pattern:
            raise ValueError("the reference must be a regular expression")
        ok = re.search(pattern, text_of(req.input.output)) is not None
        return Score(score=ok, status=PASS if ok else FAIL)

    return new_evaluator(
        name, run, display_name="Regex match", definition="The reference, a regular expression, matches the output."
    )
