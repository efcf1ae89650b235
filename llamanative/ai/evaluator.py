"""Evaluators: score a dataset of examples (Go's ``DefineEvaluator`` / ``DefineBatchEvaluator``).

A per-example evaluator function is
``fn(request: EvaluatorCallbackRequest) -> EvaluationResult`` (a
:class:`Score` or a list of scores is accepted too). Examples run one after
the other; an example without ``test_case_id`` gets a UUID; an example whose
function raises gets a ``FAIL`` score with the error and the run goes on.

A batch evaluator function is ``fn(request: EvaluatorRequest) ->
list[EvaluationResult]`` and sees the whole dataset at once.

:func:`evaluate` runs an evaluator on a dataset (Go's ``ai.Evaluate``);
``Genkit.evaluate`` and ``llamanative.ai.evaluation.evaluate`` are this function.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import Enum
from typing import Any

from pydantic import ConfigDict

from ._wire import WireModel
from .errors import InvalidArgumentError

__all__ = [
    "FAIL",
    "PASS",
    "UNKNOWN",
    "EvaluationResult",
    "Evaluator",
    "EvaluatorCallbackRequest",
    "EvaluatorRequest",
    "Example",
    "Score",
    "ScoreStatus",
    "as_examples",
    "evaluate",
    "case_id",
    "failed_result",
    "fill_test_case_ids",
    "new_batch_evaluator",
    "new_evaluator",
]


class ScoreStatus(str, Enum):
    """A score's status (Go's ``ScoreStatus``); ``str()`` is its name, as Go's ``String()``.

    A ``str`` enum: ``ScoreStatus.PASS == "PASS"``, and a score's status given as text is read as one.

    >>> str(ScoreStatus.PASS), ScoreStatus("FAIL") is ScoreStatus.FAIL, ScoreStatus.UNKNOWN == "UNKNOWN"
    ('PASS', True, True)
    """

    UNKNOWN = "UNKNOWN"
    FAIL = "FAIL"
    PASS = "PASS"

    def __str__(self) -> str:
        return self.value


PASS, FAIL, UNKNOWN = ScoreStatus.PASS, ScoreStatus.FAIL, ScoreStatus.UNKNOWN
"Score statuses (the :class:`ScoreStatus` members)."

log = logging.getLogger("llamanative.ai")


class Example(WireModel):
    """One test case: an input, the output to judge, and optional context and reference."""

    test_case_id: str | None = None
    input: Any = None
    output: Any = None
    context: list[Any] | None = None
    reference: Any = None
    trace_ids: list[str] | None = None


class Score(WireModel):
    # The status stays a ScoreStatus member (equal to its text), not the bare string; the rest of the
    # config is WireModel's (pydantic merges it).
    model_config = ConfigDict(use_enum_values=False)

    id: str | None = None
    score: Any = None
    status: ScoreStatus | None = None
    "``UNKNOWN``, ``FAIL`` or ``PASS`` (text is read as the :class:`ScoreStatus`)."

    error: str | None = None
    details: dict[str, Any] | None = None
    'e.g. ``{"reasoning": ...}``.'


class EvaluationResult(WireModel):
    test_case_id: str
    trace_id: str | None = None
    span_id: str | None = None
    evaluation: list[Score] = []


class EvaluatorRequest(WireModel):
    dataset: list[Example] = []
    eval_run_id: str | None = None
    options: Any = None


class EvaluatorCallbackRequest(WireModel):
    input: Example
    options: Any = None


def as_examples(dataset: Iterable[Any]) -> list[Example]:
    """Examples from :class:`Example` values or their JSON (``testCaseId`` or ``test_case_id`` ...).

    Raises:
        InvalidArgumentError: an item is neither.
    """
    out = []
    for item in dataset:
        if isinstance(item, Example):
            out.append(item)
        elif isinstance(item, Mapping):
            out.append(Example.model_validate(dict(item)))
        else:
            raise InvalidArgumentError(f"an example must be an Example or a mapping, not {type(item).__name__}")
    return out


def fill_test_case_ids(dataset: Iterable[Example]) -> list[Example]:
    """The examples, those without a test case id copied with a random UUID (Go's rule; batch evaluators use it
    too)."""
    return [e if e.test_case_id else e.model_copy(update={"test_case_id": str(uuid.uuid4())}) for e in dataset]


def case_id(example: Example) -> str:
    """The test case id of an example from :func:`fill_test_case_ids`.

    Raises:
        InvalidArgumentError: the example has none (it did not come from :func:`fill_test_case_ids`).
    """
    if not example.test_case_id:
        raise InvalidArgumentError("the example has no test case id")
    return example.test_case_id


def failed_result(test_case_id: str, error: BaseException | str) -> EvaluationResult:
    """The result recorded for an example whose evaluation failed (Go's wording)."""
    return EvaluationResult(
        test_case_id=test_case_id,
        evaluation=[Score(status=FAIL, error=f"Evaluation of test case {test_case_id} failed: \n {error}")],
    )


def _as_result(value: Any, test_case_id: str) -> EvaluationResult:
    if isinstance(value, EvaluationResult):
        return value
    if isinstance(value, Score):
        return EvaluationResult(test_case_id=test_case_id, evaluation=[value])
    if isinstance(value, dict):
        return EvaluationResult.model_validate({"testCaseId": test_case_id, **value})
    return EvaluationResult(test_case_id=test_case_id, evaluation=list(value))


class Evaluator:
    """An evaluator (per example or batch)."""

    kind = "evaluator"

    def __init__(
        self,
        name: str,
        fn: Callable[[Any], Any],
        *,
        batch: bool = False,
        display_name: str = "",
        definition: str = "",
        is_billed: bool = False,
        config_schema: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if not name:
            raise InvalidArgumentError("an evaluator needs a name")
        self.name = name
        self.fn = fn
        self.batch = batch
        self.display_name = display_name or name
        self.definition = definition
        self.is_billed = is_billed
        self.config_schema = config_schema
        self.metadata = metadata

    def __repr__(self) -> str:
        return f"Evaluator({self.name!r})"

    def evaluate(self, request: EvaluatorRequest) -> list[EvaluationResult]:
        """Score every example of ``request.dataset`` (see the module doc for the rules)."""
        if self.batch:
            return [_as_result(r, "") if not isinstance(r, EvaluationResult) else r for r in self.fn(request)]
        results = []
        for example in fill_test_case_ids(request.dataset):
            tc = case_id(example)
            try:
                out = self.fn(EvaluatorCallbackRequest(input=example, options=request.options))
                results.append(_as_result(out, tc))
            except Exception as exc:  # one failing example does not stop the run
                log.warning("evaluation of test case %s failed, continuing: %s", tc, exc)
                results.append(failed_result(tc, exc))
        return results


def evaluate(
    evaluator: Evaluator, dataset: Iterable[Any], *, options: Any = None, eval_run_id: str | None = None
) -> list[EvaluationResult]:
    """Run ``evaluator`` on ``dataset`` (examples or their JSON): one result per example, in order.

    ``evaluator`` is an :class:`Evaluator` (or any object with its
    ``evaluate(EvaluatorRequest)``); ``options`` reach the evaluator function.

    Raises:
        InvalidArgumentError: no evaluator, or a malformed example.
    """
    if evaluator is None:
        raise InvalidArgumentError("evaluate: evaluator must be set")
    if not callable(getattr(evaluator, "evaluate", None)):
        raise InvalidArgumentError(f"evaluate: not an evaluator: {type(evaluator).__name__}")
    request = EvaluatorRequest(dataset=as_examples(dataset), eval_run_id=eval_run_id, options=options)
    return list(evaluator.evaluate(request))


def new_evaluator(
    name: str,
    fn: Callable[[EvaluatorCallbackRequest], Any],
    *,
    display_name: str = "",
    definition: str = "",
    is_billed: bool = False,
    config_schema: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Evaluator:
    """A per-example evaluator that is not registered (pass it to ``evaluate``)."""
    return Evaluator(
        name,
        fn,
        display_name=display_name,
        definition=definition,
        is_billed=is_billed,
        config_schema=config_schema,
        metadata=metadata,
    )


def new_batch_evaluator(
    name: str,
    fn: Callable[[EvaluatorRequest], Sequence[Any]],
    *,
    display_name: str = "",
    definition: str = "",
    is_billed: bool = False,
    config_schema: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Evaluator:
    """A batch evaluator that is not registered (pass it to ``evaluate``)."""
    return Evaluator(
        name,
        fn,
        batch=True,
        display_name=display_name,
        definition=definition,
        is_billed=is_billed,
        config_schema=config_schema,
        metadata=metadata,
    )
