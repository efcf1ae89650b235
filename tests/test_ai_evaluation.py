"""evaluate (Go's rules) and the built-in evaluators, embedding similarity on MiniLM."""

from __future__ import annotations

import uuid

import pytest

from llamanative.ai.errors import InvalidArgumentError
from llamanative.ai.evaluation import (
    FAIL,
    PASS,
    EvaluationResult,
    EvaluatorRequest,
    Example,
    Score,
    embedding_similarity_evaluator,
    evaluate,
    exact_match_evaluator,
    new_batch_evaluator,
    new_evaluator,
    regex_match_evaluator,
)
from llamanative.ai.messages import Document
from llamanative.ai.retrieval import ClientEmbedder


class CountingEmbedder:
    def __init__(self, inner):
        self.inner = inner
        self.calls = []

    def __call__(self, texts):
        self.calls.append(list(texts))
        return self.inner(texts)


@pytest.fixture(scope="module")
def minilm(client, minilm_path):
    return ClientEmbedder(client, str(minilm_path), options={"num_thread": 1})


def is_uuid4(text: str) -> bool:
    try:
        return uuid.UUID(text).version == 4 and str(uuid.UUID(text)) == text
    except ValueError:
        return False


def test_embedding_similarity_passes_similar_and_fails_unrelated(minilm):
    counting = CountingEmbedder(minilm)
    judge = embedding_similarity_evaluator(counting, threshold=0.6)
    dataset = [
        {
            "testCaseId": "similar",
            "input": "Where is the Eiffel Tower?",
            "output": "The Eiffel Tower is in Paris, France.",
            "reference": "The Eiffel Tower stands in Paris.",
        },
        {
            "input": "Where is the Eiffel Tower?",
            "output": "Bananas are rich in potassium.",
            "reference": "The Eiffel Tower stands in Paris.",
        },
        Example(
            input="capital?",
            output=Document.from_text("Paris is the capital of France."),
            reference=["Berlin is the capital of Germany.", "The capital of France is Paris."],
        ),
        {"testCaseId": "no-reference", "input": "q", "output": "something"},
    ]
    results = evaluate(judge, dataset)
    assert [len(r.evaluation) for r in results] == [1, 1, 1, 1]
    similar, unrelated, several, missing = (r.evaluation[0] for r in results)
    assert results[0].test_case_id == "similar" and similar.status == PASS and similar.score > 0.6
    assert unrelated.status == FAIL and unrelated.score < 0.3
    assert several.status == PASS and several.score > 0.8  # the best of the acceptable answers
    assert "threshold" in similar.details["reasoning"] and similar.details["threshold"] == 0.6
    # Missing test case ids are filled in with UUIDs; given ones are kept.
    assert is_uuid4(results[1].test_case_id) and is_uuid4(results[2].test_case_id)
    assert results[1].test_case_id != results[2].test_case_id
    # An example without a reference is a FAIL score with the error, not an exception.
    assert results[3].test_case_id == "no-reference" and missing.status == FAIL
    assert missing.error == "Evaluation of test case no-reference failed: \n the example has no reference"
    # All the texts of the run in one batched embedding call, each text once.
    assert len(counting.calls) == 1 and len(counting.calls[0]) == 6
    # The threshold can be given per run.
    strict = evaluate(judge, dataset[:1], options={"threshold": 0.99})
    assert strict[0].evaluation[0].status == FAIL
    assert strict[0].to_dict()["evaluation"][0]["status"] == "FAIL"


def test_a_raising_evaluator_is_recorded_as_fail_and_the_run_goes_on():
    seen = []

    def judge(req):
        seen.append(req.input.test_case_id)
        if req.input.input == "boom":
            raise RuntimeError("the judge broke")
        return Score(score=len(req.input.output), status=PASS)

    ev = new_evaluator("length", judge)
    results = evaluate(
        ev,
        [
            {"input": "a", "output": "xy"},
            {"input": "boom", "output": "z"},
            {"testCaseId": "t3", "input": "c", "output": "abc"},
        ],
    )
    assert [r.test_case_id for r in results] == seen and seen[2] == "t3"
    assert all(is_uuid4(t) for t in seen[:2])
    assert results[0].evaluation == [Score(score=2, status=PASS)]
    failed = results[1].evaluation[0]
    assert failed.status == FAIL and failed.score is None
    assert failed.error == f"Evaluation of test case {seen[1]} failed: \n the judge broke"
    assert results[2].evaluation[0].score == 3
    wire = results[1].to_dict()
    assert wire == {"testCaseId": seen[1], "evaluation": [{"status": "FAIL", "error": failed.error}]}


def test_batch_evaluator_receives_the_whole_request():
    got = []

    def judge(req: EvaluatorRequest):
        got.append(req)
        return [
            EvaluationResult(test_case_id=e.test_case_id or f"row{i}", evaluation=[Score(score=i)])
            for i, e in enumerate(req.dataset)
        ]

    results = evaluate(
        new_batch_evaluator("rows", judge), [{"input": 1}, {"input": 2}], options={"x": 1}, eval_run_id="run-7"
    )
    assert len(got) == 1 and got[0].eval_run_id == "run-7" and got[0].options == {"x": 1}
    assert [r.test_case_id for r in results] == ["row0", "row1"]


def test_exact_and_regex_match():
    exact = exact_match_evaluator(ignore_case=True)
    results = evaluate(
        exact,
        [
            {"input": "q", "output": "  Paris\n", "reference": "paris"},
            {"input": "q", "output": "Lyon", "reference": "Paris"},
            {"input": "q", "output": {"a": [1, 2]}, "reference": {"a": [1, 2]}},
            {"input": "q", "output": 3, "reference": 4},
            {"input": "q", "output": "Paris"},
        ],
    )
    statuses = [r.evaluation[0].status for r in results]
    assert statuses == [PASS, FAIL, PASS, FAIL, FAIL]
    assert results[0].evaluation[0].score is True and results[1].evaluation[0].score is False
    assert "has no reference" in results[4].evaluation[0].error
    regex = regex_match_evaluator()
    results = evaluate(
        regex,
        [
            {"input": "q", "output": "Order #12345 shipped", "reference": r"#\d{5}\b"},
            {"input": "q", "output": "no number", "reference": r"#\d{5}"},
            {"input": "q", "output": "x", "reference": "(unclosed"},
        ],
    )
    assert [r.evaluation[0].status for r in results] == [PASS, FAIL, FAIL]
    assert "failed" in results[2].evaluation[0].error


def test_evaluate_needs_an_evaluator():
    with pytest.raises(InvalidArgumentError):
        evaluate(None, [])
    with pytest.raises(InvalidArgumentError):
        evaluate(new_evaluator("x", lambda r: Score()), ["not an example"])


def test_builtin_evaluator_registered_in_a_registry(client, minilm_path):
    from llamanative.ai import Genkit

    ai = Genkit(client=client)
    embedder = ai.lookup_embedder(f"llamanative/{minilm_path}")
    judge = ai.register(
        "evaluator",
        "similarity",
        embedding_similarity_evaluator(embedder, options={"num_thread": 1}, threshold=0.6, name="similarity"),
    )
    results = ai.evaluate(
        "similarity",
        [
            {
                "testCaseId": "a",
                "input": "q",
                "output": "A cat sat on the mat.",
                "reference": "The cat is sitting on a mat.",
            },
            {
                "testCaseId": "b",
                "input": "q",
                "output": "Stock prices fell sharply.",
                "reference": "The cat is on a mat.",
            },
        ],
    )
    assert judge.batch and [(r.test_case_id, r.evaluation[0].status) for r in results] == [("a", PASS), ("b", FAIL)]


def test_registry_and_package_evaluate_are_one_implementation():
    """``Genkit.evaluate`` resolves the name and runs ``llamanative.ai.evaluator.evaluate``: same rules."""
    from llamanative.ai import Genkit
    from llamanative.ai import evaluator as core

    assert evaluate is core.evaluate
    ai = Genkit()
    judge = ai.define_evaluator("len", lambda r: Score(score=len(r.input.output)))
    data = [{"testCaseId": "a", "output": "xyz"}, {"output": "boom!"}]
    by_name, by_object, package = ai.evaluate("len", data), ai.evaluate(judge, data), evaluate(judge, data)
    for results in (by_name, by_object, package):
        assert results[0].test_case_id == "a" and [r.evaluation[0].score for r in results] == [3, 5]
        assert is_uuid4(results[1].test_case_id)
    with pytest.raises(InvalidArgumentError, match="mapping"):
        ai.evaluate("len", ["not an example"])
    with pytest.raises(InvalidArgumentError, match="not an evaluator"):
        ai.evaluate(object(), data)
