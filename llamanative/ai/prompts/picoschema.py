"""Picoschema → JSON Schema, as the dotprompt spec defines it.

Picoschema is the compact schema notation of ``.prompt`` files::

    name: string, the person's name      # required, with a description
    age?: integer                         # optional (and nullable)
    tags(array, labels): string           # array of strings
    address(object):                      # nested object
      city: string
    status(enum): [ACTIVE, INACTIVE]      # enum
    (*): string                           # any other key, with string values

Objects are closed (``additionalProperties: false``) unless a ``(*)``
wildcard is given. Optional fields become nullable. Scalar types are
``string``, ``number``, ``integer``, ``boolean``, ``null`` and ``any`` (no
constraint). Any other type name is looked up with ``schema_resolver``
(registered schemas). A schema whose top level has a JSON-Schema ``type``
(or ``properties``) is taken as JSON Schema and returned as is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["SCALAR_TYPES", "PicoschemaError", "picoschema"]

SCALAR_TYPES = ("any", "boolean", "integer", "null", "number", "string")
WILDCARD = "(*)"
_DESCRIPTION = re.compile(r"(.*?), *(.*)$", re.DOTALL)

SchemaResolver = Callable[[str], Mapping[str, Any] | None]


class PicoschemaError(ValueError):
    """A Picoschema that cannot be converted."""


def _split_description(text: str) -> tuple[str, str | None]:
    if "," not in text:
        return text, None
    m = _DESCRIPTION.match(text)
    return (m.group(1), m.group(2)) if m else (text, None)


def _is_json_schema(obj: Any) -> bool:
    return isinstance(obj, Mapping) and obj.get("type") in (*SCALAR_TYPES, "object", "array")


class _Parser:
    def __init__(self, resolver: SchemaResolver | None) -> None:
        self.resolver = resolver

    def resolve(self, name: str) -> dict[str, Any]:
        if self.resolver is None:
            raise PicoschemaError(f"Picoschema: unknown schema resolver for '{name}'.")
        found = self.resolver(name)
        if not found:
            raise PicoschemaError(f"Picoschema: could not find schema with name '{name}'")
        return dict(found)

    def scalar(self, text: str) -> dict[str, Any]:
        type_, description = _split_description(text)
        if type_ not in SCALAR_TYPES:
            out = self.resolve(type_)
        elif type_ == "any":
            out = {}
        else:
            out = {"type": type_}
        if description:
            out["description"] = description
        return out

    def parse(self, schema: Any) -> dict[str, Any] | None:
        if not schema:
            return None
        if isinstance(schema, str):
            return self.scalar(schema)
        if _is_json_schema(schema):
            return dict(schema)
        if isinstance(schema, Mapping) and isinstance(schema.get("properties"), Mapping):
            return {**schema, "type": "object"}
        return self.pico(schema)

    def pico(self, obj: Any) -> dict[str, Any]:
        if isinstance(obj, str):
            return self.scalar(obj)
        if not isinstance(obj, Mapping):
            raise PicoschemaError(
                f"Picoschema: only consists of objects and strings. Got: {json.dumps(obj, default=str)}"
            )
        schema: dict[str, Any] = {"type": "object", "properties": {}, "required": [], "additionalProperties": False}
        for key, value in obj.items():
            key = str(key)
            if key == WILDCARD:
                schema["additionalProperties"] = self.pico(value)
                continue
            name, _, type_info = key.partition("(")
            optional = name.endswith("?")
            prop_name = name[:-1] if optional else name
            if not optional:
                schema["required"].append(prop_name)
            if not type_info:
                prop = dict(self.pico(value))
                if optional and isinstance(prop.get("type"), str):
                    prop["type"] = [prop["type"], "null"]
                schema["properties"][prop_name] = prop
                continue
            type_, description = _split_description(type_info[:-1] if type_info.endswith(")") else type_info)
            if type_ == "array":
                prop = {"type": ["array", "null"] if optional else "array", "items": self.pico(value)}
            elif type_ == "object":
                prop = dict(self.pico(value))
                if optional and isinstance(prop.get("type"), str):
                    prop["type"] = [prop["type"], "null"]
            elif type_ == "enum":
                if not isinstance(value, (list, tuple)):
                    raise PicoschemaError(f"Picoschema: the values of enum '{prop_name}' must be a list")
                prop = {"enum": list(value)}
                if optional and None not in prop["enum"]:
                    prop["enum"].append(None)
            else:
                raise PicoschemaError(f"Picoschema: parenthetical types must be 'object' or 'array', got: {type_}")
            if description:
                prop["description"] = description
            schema["properties"][prop_name] = prop
        if not schema["required"]:
            del schema["required"]
        return schema


def picoschema(schema: Any, schema_resolver: SchemaResolver | None = None) -> dict[str, Any] | None:
    """The JSON Schema of a Picoschema (or of a JSON Schema, returned as is); None for an empty one.

    Args:
        schema: the schema from a ``.prompt`` file's frontmatter: a mapping, or a type name.
        schema_resolver: looks up a named schema (``name -> JSON Schema or None``).

    Raises:
        PicoschemaError: an invalid Picoschema, or a type name that does not resolve.
    """
    return _Parser(schema_resolver).parse(schema)
