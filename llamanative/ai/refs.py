"""References to embedders, retrievers and evaluators: a name with a bundled config (Go's ``EmbedderRef``,
``RetrieverRef``, ``EvaluatorRef`` and their ``New...Ref``).

Pass one wherever the action is accepted by name (``embed``, ``retrieve``,
``evaluate`` and their async twins)::

    mini = embedder_ref("llamanative/minilm", {"dimensions": 128})
    ai.embed(mini, ["a cat"])                          # embedded with dimensions=128
    ai.embed(mini, ["a cat"], {"dimensions": 64})      # the call's options instead

As with :class:`~.model_ref.ModelRef`, the bundled config is used only when
the call gives no options, and then as a whole (never merged). On the wire
a reference is ``{"name": ..., "config": ...}``; a plain string is read as
a name.
"""

from __future__ import annotations

from typing import Any

from pydantic import model_validator

from ._wire import WireModel
from .errors import InvalidArgumentError

__all__ = [
    "EmbedderRef",
    "EvaluatorRef",
    "RetrieverRef",
    "embedder_ref",
    "evaluator_ref",
    "resolve_ref",
    "retriever_ref",
]


class _ActionRef(WireModel):
    name: str
    "The action's registry name (``llamanative/minilm``, ``myplugin/retriever`` ...)."

    config: Any = None
    "The options to use when a call gives none. None: no default."

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data


class EmbedderRef(_ActionRef):
    """An embedder name and the options to embed with when a call gives none (Go's ``EmbedderRef``)."""


class RetrieverRef(_ActionRef):
    """A retriever name and the options to retrieve with when a call gives none (Go's ``RetrieverRef``)."""


class EvaluatorRef(_ActionRef):
    """An evaluator name and the options to evaluate with when a call gives none (Go's ``EvaluatorRef``)."""


def _check(kind: str, name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(f"an {kind} reference needs a name")
    return name


def embedder_ref(name: str, config: Any = None) -> EmbedderRef:
    """A reference to the embedder ``name`` with default options (Go's ``NewEmbedderRef``).

    Raises:
        InvalidArgumentError: ``name`` is empty or not a string.
    """
    return EmbedderRef(name=_check("embedder", name), config=config)


def retriever_ref(name: str, config: Any = None) -> RetrieverRef:
    """A reference to the retriever ``name`` with default options (Go's ``NewRetrieverRef``).

    Raises:
        InvalidArgumentError: ``name`` is empty or not a string.
    """
    return RetrieverRef(name=_check("retriever", name), config=config)


def evaluator_ref(name: str, config: Any = None) -> EvaluatorRef:
    """A reference to the evaluator ``name`` with default options (Go's ``NewEvaluatorRef``).

    Raises:
        InvalidArgumentError: ``name`` is empty or not a string.
    """
    return EvaluatorRef(name=_check("evaluator", name), config=config)


def resolve_ref(action: Any, options: Any) -> tuple[Any, Any]:
    """``(name or action, options)``: a reference becomes its name, and its config the options when none are given.

    >>> resolve_ref(embedder_ref("e", {"dimensions": 8}), None)
    ('e', {'dimensions': 8})
    >>> resolve_ref(embedder_ref("e", {"dimensions": 8}), {"dimensions": 4})
    ('e', {'dimensions': 4})
    """
    if isinstance(action, _ActionRef):
        return action.name, action.config if options is None else options
    return action, options
