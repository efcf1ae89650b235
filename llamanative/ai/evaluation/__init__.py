"""Evaluation: ``evaluate`` and built-in evaluators over local models.

    from llamanative.ai.evaluation import embedding_similarity_evaluator, evaluate
    from llamanative.ai.retrieval import ClientEmbedder

    judge = embedding_similarity_evaluator(ClientEmbedder(client, "all-minilm"), threshold=0.7)
    for r in evaluate(judge, [{"input": "q", "output": "Paris", "reference": "The capital is Paris"}]):
        print(r.test_case_id, r.evaluation[0].status, r.evaluation[0].score)

``evaluate`` (Go's rules: examples in order, missing test case ids filled
with UUIDs, a failing example scored ``FAIL`` and the run going on), the data
types (``Example``, ``Score``, ``EvaluationResult``) and ``new_evaluator`` /
``new_batch_evaluator`` are the ``ai`` layer's (:mod:`llamanative.ai.evaluator`,
which ``Genkit.evaluate`` uses too); they are re-exported here next to the
built-in evaluators.
"""

from ..evaluator import (
    FAIL,
    PASS,
    UNKNOWN,
    EvaluationResult,
    Evaluator,
    EvaluatorCallbackRequest,
    EvaluatorRequest,
    Example,
    Score,
    as_examples,
    evaluate,
    failed_result,
    fill_test_case_ids,
    new_batch_evaluator,
    new_evaluator,
)
from .builtin import embedding_similarity_evaluator, exact_match_evaluator, regex_match_evaluator

__all__ = [
    "EvaluationResult",
    "Evaluator",
    "EvaluatorCallbackRequest",
    "EvaluatorRequest",
    "Example",
    "FAIL",
    "PASS",
    "Score",
    "UNKNOWN",
    "as_examples",
    "embedding_similarity_evaluator",
    "evaluate",
    "exact_match_evaluator",
    "failed_result",
    "fill_test_case_ids",
    "new_batch_evaluator",
    "new_evaluator",
    "regex_match_evaluator",
]
