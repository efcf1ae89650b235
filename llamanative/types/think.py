"""``ThinkValue``: the ``think`` request field (Go ``api.ThinkValue``).

``think`` is a bool or a level string. The levels are ``"high"``,
``"medium"``, ``"low"`` and ``"max"``; ``"max"`` is what Ollama's server
accepts (ollama-python's client rejects it); Harmony models (gpt-oss) treat it
as ``"high"``.
"""

from __future__ import annotations

import builtins
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import core_schema

__all__ = ["THINK_LEVELS", "ThinkValue"]

THINK_LEVELS = ("high", "medium", "low", "max")
"""The string values ``think`` accepts."""

_ALLOWED = '"high", "medium", "low", "max", true, or false'


class ThinkValue:
    """A bool or a level string; the methods mirror Go's ``ThinkValue``.

    ``ThinkValue(value)`` stores any value, like a Go struct literal, so
    :meth:`is_valid` can report on it; :meth:`validate` (used for request
    fields) accepts only valid values.

    >>> t = ThinkValue(True)
    >>> t.is_bool(), t.bool(), t.string()
    (True, True, 'medium')
    >>> t = ThinkValue.validate("low")
    >>> t.is_string(), t.bool(), t.string()
    (True, True, 'low')
    >>> ThinkValue(False).string()
    ''
    >>> ThinkValue("none").is_valid()
    False

    A ``ThinkValue`` equals its plain value (``ThinkValue("low") == "low"``)
    and is truthy when thinking is on in any way.
    """

    __slots__ = ("value",)

    def __init__(self, value: bool | str) -> None:
        self.value = value

    @classmethod
    def validate(cls, value: Any) -> ThinkValue:
        """``value`` as a ``ThinkValue``, as Go's ``UnmarshalJSON`` accepts it.

        Raises:
            ValueError: ``value`` is not a bool or one of :data:`THINK_LEVELS`.
        """
        if isinstance(value, ThinkValue):
            value = value.value
        if isinstance(value, bool):
            return cls(value)
        if isinstance(value, str):
            if value not in THINK_LEVELS:
                raise ValueError(f"invalid think value: {value!r} (must be {_ALLOWED})")
            return cls(value)
        raise ValueError(f"think must be a boolean or string ({_ALLOWED}), not {type(value).__name__}")

    def is_valid(self) -> bool:
        """True for a bool or one of :data:`THINK_LEVELS`."""
        return isinstance(self.value, bool) or (isinstance(self.value, str) and self.value in THINK_LEVELS)

    def is_bool(self) -> bool:
        """True if the value is a bool."""
        return isinstance(self.value, bool)

    def is_string(self) -> bool:
        """True if the value is a string (a level)."""
        return isinstance(self.value, str)

    def bool(self) -> bool:
        """True if thinking is enabled: ``True`` or any valid level."""
        if isinstance(self.value, bool):
            return self.value
        return isinstance(self.value, str) and self.value in THINK_LEVELS

    def string(self) -> str:
        """The level: ``"medium"`` for ``True``, ``""`` for ``False``, else the string itself."""
        if isinstance(self.value, bool):
            return "medium" if self.value else ""
        return self.value if isinstance(self.value, str) else ""

    def __bool__(self) -> builtins.bool:  # in the class body ``bool`` is the method above
        return self.bool()

    def __eq__(self, other: object) -> builtins.bool:
        if isinstance(other, ThinkValue):
            other = other.value
        if isinstance(other, (bool, str)):
            return type(self.value) is type(other) and self.value == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return f"ThinkValue({self.value!r})"

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls.validate,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda t: t.value),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return {"anyOf": [{"type": "boolean"}, {"type": "string", "enum": list(THINK_LEVELS)}]}
