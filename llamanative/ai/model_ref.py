"""Model references: a model name with a default config (Go's ``ai.ModelRef`` / ``NewModelRef``).

Pass a reference wherever a model is accepted (``model=`` of ``generate``
and its variants, ``define_prompt``, ``Prompt.execute``)::

    fast = model_ref("llamanative/smollm2", {"temperature": 0, "maxOutputTokens": 64})
    ai.generate(model=fast, prompt="Hi")                         # uses the bundled config
    ai.generate(model=fast, prompt="Hi", config={"topK": 5})     # the call's config instead

The rules are Go's: the bundled config is used only when the call gives no
config, and then **replaces** it as a whole; a given config is never merged
with it. A prompt defined with a reference and no config of its own uses
the reference's config; ``Prompt.execute(model=ref)`` without ``config=``
replaces the prompt's config with the reference's (when it has one).

On the wire a reference is ``{"name": ..., "config": ...}``; a plain string
is read as a name.
"""

from __future__ import annotations

from typing import Any

from pydantic import model_validator

from ._wire import WireModel
from .errors import InvalidArgumentError

__all__ = ["ModelRef", "model_ref"]


class ModelRef(WireModel):
    """A model name and the config to use when a call gives none."""

    name: str
    "The model's registry name (``llamanative/smollm2``, ``myplugin/model`` ...)."

    config: Any = None
    """The default config: a dict (``{"temperature": 0}``), a ``GenerationCommonConfig``, llamanative
    ``Options`` or the model's own config type. None: no default."""

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        # Go's ModelRef.UnmarshalJSON reads a bare string as the name.
        return {"name": data} if isinstance(data, str) else data

    def with_config(self, config: Any) -> ModelRef:
        """The same model with another default config."""
        return ModelRef(name=self.name, config=config)


def model_ref(name: str, config: Any = None) -> ModelRef:
    """A reference to the model ``name`` with a default ``config`` (Go's ``NewModelRef``).

    Raises:
        InvalidArgumentError: ``name`` is empty or not a string.
    """
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError("a model reference needs a model name")
    return ModelRef(name=name, config=config)


def resolve_config(model: Any, config: Any) -> Any:
    """The config of a call: ``config`` if given, else the reference's default (``model`` may be anything)."""
    if config is None and isinstance(model, ModelRef):
        return model.config
    return config
