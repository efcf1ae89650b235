"""``evaluate``: run an evaluator on a dataset given as examples or their JSON.

The rules are Go's (``ai.Evaluate``), applied by the ``ai`` layer's
:class:`~llamanative.ai.evaluator.Evaluator`: a per-example evaluator runs on
each example in order; an example without a test case id gets a random
UUID; an exception is recorded as that example's result (one ``FAIL`` score
whose error reads ``"Evaluation of test case <id> failed: \\n <error>"``) and
the run goes on. A batch evaluator receives the whole request.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from ..evaluator import EvaluationResult, Evaluator, EvaluatorRequest, Example, Score
from ..retrieval._compat import invalid_argument

__all__ = ["FAIL", "PASS", "UNKNOWN", "as_examples", "evaluate", "failed_result", "fill_test_case_ids"]

PASS, FAIL, UNKNOWN = "PASS", "FAIL", "UNKNOWN"
"Score statuses."


def as_examples(dataset: Iterable[Any]) -> list[Example]:
    """Examples from :class:`Example` values or their JSON (``testCaseId`` or ``test_case_id`` ...)."""
    out = []
    for item in dataset:
        if isinstance(item, Example):
            out.append(item)
        elif isinstance(item, Mapping):
            out.append(Example.model_validate(dict(item)))
        else:
            raise invalid_argument(f"an example must be an Example or a mapping, not {type(item).__name__}")
    return out


def fill_test_case_ids(dataset: Iterable[Example]) -> list[Example]:
    """The examples, those without a test case id copied with a random UUID (what batch evaluators get to do)."""
    return [e if e.test_case_id else e.model_copy(update={"test_case_id": str(uuid.uuid4())}) for e in dataset]


def failed_result(test_case_id: str, error: BaseException | str) -> EvaluationResult:
    """The result recorded for an example whose evaluation failed (Go's wording)."""
    return EvaluationResult(test_case_id=test_case_id, evaluation=[
        Score(status=FAIL, error=f"Evaluation of test case {test_case_id} failed: \n {error}")])


def evaluate(evaluator: Evaluator, dataset: Iterable[Any], *, options: Any = None,
             eval_run_id: str | None = None) -> list[EvaluationResult]:
    """Run ``evaluator`` on ``dataset`` (examples or their JSON); one result per example, in order.

    Raises:
        InvalidArgumentError: no evaluator, or a malformed example.
    """
    if evaluator is None:
        raise invalid_argument("evaluate: evaluator must be set")
    if not callable(getattr(evaluator, "evaluate", None)):
        raise invalid_argument(f"evaluate: not an evaluator: {type(evaluator).__name__}")
    request = EvaluatorRequest(dataset=as_examples(dataset), eval_run_id=eval_run_id, options=options)
    return list(evaluator.evaluate(request))
