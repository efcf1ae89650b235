"""The base of the wire types: Genkit's JSON (camelCase keys, unset fields left out)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class WireModel(BaseModel):
    """A pydantic model whose JSON is Genkit's: ``toolRequest``, ``finishReason``, ``inputTokens`` ...

    Python code uses the snake_case names (``part.tool_request``); both names
    are accepted when validating. ``to_dict()`` / ``to_json()`` give the wire
    form (``by_alias=True, exclude_none=True``), which is also what
    ``model_dump(by_alias=True, exclude_none=True)`` returns.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        use_enum_values=True,
        extra="ignore",
        protected_namespaces=(),
    )

    def to_dict(self) -> dict[str, Any]:
        """The Genkit JSON object of this value, as Python data."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")

    def to_json(self) -> str:
        """The Genkit JSON text of this value."""
        return self.model_dump_json(by_alias=True, exclude_none=True)
