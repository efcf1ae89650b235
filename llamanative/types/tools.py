"""Tool definitions and tool calls (Go ``api.Tool``, ``api.ToolCall`` ...).

A tool call's ``arguments`` keep the order the model wrote them in, and a
tool's ``properties`` keep the order they were given in (Python dicts keep
insertion order, as the spec's ordered maps do).

ollama-python's nested names work too: ``Tool.Function``,
``Tool.Function.Parameters``, ``Tool.Function.Parameters.Property``.
"""

from __future__ import annotations

import builtins
import json
from typing import Annotated, Any, ClassVar  # noqa: UP035 (a field named `type` shadows the builtin)

from pydantic import AfterValidator, Field, GetCoreSchemaHandler, field_serializer, field_validator
from pydantic_core import core_schema, to_json

from .base import SubscriptableBaseModel

__all__ = [
    "PropertyType",
    "Tool",
    "ToolCall",
    "ToolCallFunction",
    "ToolCallFunctionArguments",
    "ToolFunction",
    "ToolFunctionParameters",
    "ToolProperty",
    "Tools",
]


class PropertyType(list[str]):
    """A list of JSON-schema type names, as a property's ``type`` holds it (Go's ``api.PropertyType``).

    ``ToolProperty.type`` is a plain ``str`` for one type and a
    ``PropertyType`` for a list (a list of one is written as a plain string in
    JSON, as Go's ``MarshalJSON`` does). ``str()`` is Go's ``String()``: ``""``
    for none, the name for one, ``[a b]`` for more.

    >>> str(PropertyType(["string", "null"])), str(PropertyType(["number"])), str(PropertyType())
    ('[string null]', 'number', '')
    """

    def __str__(self) -> str:
        if len(self) == 1:
            return self[0]
        return f"[{' '.join(self)}]" if self else ""


def _property_type(value: str | list[str]) -> str | list[str]:
    return value if isinstance(value, str) else PropertyType(value)


_PropertyTypeField = Annotated[str | list[str], AfterValidator(_property_type)]


def _compact_json(value: Any) -> str:
    # Go's json.Marshal: no spaces, non-ASCII kept as it is.
    return to_json(value).decode()


class ToolCallFunctionArguments(dict[str, Any]):
    """A tool call's arguments: a ``dict`` in the order the model gave them (Go's ``ToolCallFunctionArguments``).

    ``str()`` is the JSON object, as Go's ``String()``.

    >>> str(ToolCallFunctionArguments(city="Paris", days=2))
    '{"city":"Paris","days":2}'
    """

    def __str__(self) -> str:
        return _compact_json(dict(self))

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(cls, handler(dict[str, Any]))


class ToolCallFunction(SubscriptableBaseModel):
    """The function a model wants to call, with its arguments."""

    index: int | None = None
    "Position of this call among the calls of one response."

    name: str
    "Name of the function."

    arguments: ToolCallFunctionArguments = Field(default_factory=ToolCallFunctionArguments)
    "Arguments, in the order the model gave them (a ``dict``; ``str()`` is its JSON). A JSON object text is parsed."

    _omitempty = frozenset({"index"})

    @field_validator("arguments", mode="before")
    @classmethod
    def _parse_arguments(cls, value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, str):  # OpenAI-style: arguments as JSON text
            try:
                value = json.loads(value) if value.strip() else {}
            except ValueError as exc:
                raise ValueError(f"tool call arguments are not valid JSON: {exc}") from None
            if not isinstance(value, dict):
                raise ValueError("tool call arguments must be a JSON object")
        return value


class ToolCall(SubscriptableBaseModel):
    """A tool call in an assistant message (``Message.ToolCall`` in ollama-python)."""

    Function: ClassVar[type[ToolCallFunction]] = ToolCallFunction

    id: str | None = None
    "Call id (``call_`` + 8 characters in Ollama), echoed back as ``tool_call_id``."

    function: ToolCallFunction
    "The function to call."

    _omitempty = frozenset({"id"})


class ToolProperty(SubscriptableBaseModel):
    """One parameter of a tool, as a JSON-schema subset."""

    any_of: list[ToolProperty] | None = Field(None, alias="anyOf")
    "Alternative schemas (JSON ``anyOf``)."

    type: _PropertyTypeField | None = None
    "JSON-schema type name(s): ``'string'`` or ``['string', 'null']`` (a :class:`PropertyType`)."

    items: Any = None
    "Schema of the elements, for an array."

    description: str | None = None
    "What the parameter means."

    enum: list[Any] | None = None
    "The allowed values."

    properties: dict[str, ToolProperty] | None = None
    "Nested properties, for an object."

    required: list[str] | None = None
    "Required nested properties, for an object."

    _omitempty = frozenset({"any_of", "type", "items", "description", "enum", "properties", "required"})

    @field_serializer("type")
    def _serialize_type(self, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) == 1:
            return value[0]
        return value

    def types(self) -> list[str]:
        """The type names as a list (``[]`` when no type is given)."""
        if self.type is None:
            return []
        return [self.type] if isinstance(self.type, str) else list(self.type)

    def to_typescript_type(self) -> str:
        """The TypeScript type of this property, for prompts that describe tools.

        As Go's ``ToolProperty.ToTypeScriptType``: ``anyOf`` branches and type
        lists become unions; ``string`` → ``string``, ``number``/``integer`` →
        ``number``, ``boolean`` → ``boolean``, ``object`` →
        ``Record<string, any>``, ``null`` → ``null``, no or an unknown type →
        ``any``. Two extensions, which Go does not have: an ``enum`` becomes a
        union of its JSON literals (plus ``null`` if the type allows it), and
        an array whose ``items`` has a type becomes ``T[]`` (else ``any[]``).

        >>> ToolProperty(type=["string", "number"]).to_typescript_type()
        'string | number'
        >>> ToolProperty(type="array", items={"type": "string"}).to_typescript_type()
        'string[]'
        >>> ToolProperty(type="string", enum=["celsius", "fahrenheit"]).to_typescript_type()
        '"celsius" | "fahrenheit"'
        """
        if self.any_of:
            return " | ".join(p.to_typescript_type() for p in self.any_of)
        types = self.types()
        if self.enum:
            literals = [json.dumps(v, ensure_ascii=False) for v in self.enum]
            if "null" in types and None not in self.enum:
                literals.append("null")
            return " | ".join(literals)
        if not types:
            return "any"
        return " | ".join(self._typescript_name(t) for t in types)

    def _typescript_name(self, json_type: str) -> str:
        if json_type == "array":
            return self._items_typescript() + "[]"
        return _TS_NAMES.get(json_type, "any")

    def _items_typescript(self) -> str:
        items = self.items
        if isinstance(items, dict):
            try:
                items = ToolProperty.model_validate(items)
            except ValueError:
                return "any"
        if not isinstance(items, ToolProperty):
            return "any"
        ts = items.to_typescript_type()
        return f"({ts})" if " | " in ts else ts


_TS_NAMES = {
    "string": "string",
    "number": "number",
    "integer": "number",
    "boolean": "boolean",
    "object": "Record<string, any>",
    "null": "null",
}


class ToolFunctionParameters(SubscriptableBaseModel):
    """The parameters of a tool function: a JSON-schema object."""

    Property: ClassVar[builtins.type[ToolProperty]] = ToolProperty

    type: str = "object"
    "Always ``'object'``."

    defs: Any = Field(None, alias="$defs")
    "Shared schema definitions (JSON ``$defs``)."

    items: Any = None
    "Element schema (unused for objects; kept for the spec)."

    required: list[str] | None = None
    "Names of the parameters the model must give."

    properties: dict[str, ToolProperty] | None = None
    "The parameters, in order."

    _omitempty = frozenset({"defs", "items", "required"})

    def __str__(self) -> str:
        """The JSON object, as Go's ``ToolFunctionParameters.String()``."""
        return self.model_dump_json()


class ToolFunction(SubscriptableBaseModel):
    """A function the model may call."""

    Parameters: ClassVar[type[ToolFunctionParameters]] = ToolFunctionParameters

    name: str | None = None
    "Function name."

    description: str | None = None
    "What the function does."

    parameters: ToolFunctionParameters | None = None
    "The function's parameters."

    _omitempty = frozenset({"description"})

    def __str__(self) -> str:
        """The JSON object, as Go's ``ToolFunction.String()``."""
        return self.model_dump_json()


class Tool(SubscriptableBaseModel):
    """A tool the model has access to. ``str(tool)`` is its JSON, as Go's ``Tool.String()``.

    >>> str(Tool(function={"name": "now"}))
    '{"type":"function","function":{"name":"now"}}'
    """

    Function: ClassVar[builtins.type[ToolFunction]] = ToolFunction

    type: str = "function"
    "Tool type; ``'function'``."

    items: Any = None
    "Kept for the spec."

    function: ToolFunction | None = None
    "The function."

    _omitempty = frozenset({"items"})

    def __str__(self) -> str:
        return self.model_dump_json()


class Tools(list[Tool]):
    """The tools of a request (Go's ``api.Tools``): a ``list`` of :class:`Tool` whose ``str()`` is the JSON array.

    ``ChatRequest.tools`` holds one.

    >>> str(Tools([Tool(function={"name": "now"})]))
    '[{"type":"function","function":{"name":"now"}}]'
    """

    def __str__(self) -> str:
        return "[" + ",".join(str(t) for t in self) + "]"

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(cls, handler(list[Tool]))
