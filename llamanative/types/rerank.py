"""Reranking: the request and response of ``rerank`` (a llamanative extension; llama-server's ``/rerank``).

A reranker is a cross-encoder (a model whose GGUF declares rank pooling): it
reads the query and one document together and gives one relevance score.
The response lists the documents best first, each with its index in the
request, as llama-server's ``/rerank`` (Jina's API) does.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, StrictBool, StrictInt, field_validator

from .base import SubscriptableBaseModel
from .duration import Duration
from .options import Options
from .requests import _ModelRequest


class RerankRequest(_ModelRequest):
    """Scores of ``documents`` for ``query`` by a reranker model (``rerank``)."""

    query: str
    "The query the documents are scored against."

    documents: list[str] = Field(default_factory=list)
    "The candidate documents. Empty: load the model only (an empty result)."

    top_n: StrictInt | None = None
    "Keep the best N results (None: all)."

    return_documents: StrictBool = False
    "Put each document's text in its result."

    truncate: bool | None = None
    "Cut query-document pairs that exceed the context length (default: true); false makes them an error."

    keep_alive: Duration | None = None
    "How long the model stays loaded after the request."

    options: Options | None = None
    "Model options for this request."

    @field_validator("documents", mode="before")
    @classmethod
    def _check_documents(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            raise ValueError("documents must be a list of strings, not one string")
        if isinstance(value, (list, tuple)) and all(isinstance(s, str) for s in value):
            return list(value)
        raise ValueError("documents must be a list of strings")

    @field_validator("top_n")
    @classmethod
    def _check_top_n(cls, value: int | None) -> int | None:
        if value is not None and value < 0:
            raise ValueError("top_n must be >= 0")
        return value


class RerankResult(SubscriptableBaseModel):
    """One scored document."""

    index: int
    "Its position in the request's ``documents``."

    relevance_score: float
    "The model's score (higher is more relevant; its scale is the model's: often a logit)."

    document: str | None = None
    "The document's text, with ``return_documents``."

    _omitempty = frozenset({"document"})


class RerankResponse(SubscriptableBaseModel):
    """The documents of a ``rerank`` request, best first (ties keep the request's order)."""

    model: str | None = None
    "The model that scored them."

    results: list[RerankResult] = Field(default_factory=list)
    "Best first; at most ``top_n``."

    total_duration: int | None = None
    "Time spent on the whole request, in nanoseconds."

    load_duration: int | None = None
    "Time spent loading the model, in nanoseconds."

    prompt_eval_count: int | None = None
    "Number of tokens of all the query-document pairs."

    _omitempty = frozenset({"total_duration", "load_duration", "prompt_eval_count"})

    def scores(self) -> list[float]:
        """The relevance score of each result, in the results' order (best first)."""
        return [r.relevance_score for r in self.results]
