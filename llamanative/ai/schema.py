"""JSON schemas from Python types, validation, and conversion of JSON data into those types.

A *type* here is anything pydantic can validate: a pydantic model, a
dataclass, a ``TypedDict``, ``list[int]``, ``str`` ... Its schema is
pydantic's, with ``$ref``s inlined (models and grammars read it more
easily); a recursive type keeps its ``$defs``.

Validation uses the ``jsonschema`` package when it is installed, and a
built-in validator of the common keywords otherwise (``type``, ``enum``,
``const``, ``properties``, ``required``, ``additionalProperties``, ``items``,
``prefixItems``, lengths, bounds, ``anyOf``/``oneOf``/``allOf``/``not``,
local ``$ref``).

>>> from dataclasses import dataclass
>>> @dataclass
... class City:
...     name: str
...     population: int
>>> schema_for(City)["required"]
['name', 'population']
>>> validate({"name": "Oslo", "population": "many"}, schema_for(City))
Traceback (most recent call last):
...
llamanative.ai.schema.SchemaValidationError: population: 'many' is not of type 'integer'
>>> convert({"name": "Oslo", "population": 700000}, City)
City(name='Oslo', population=700000)
"""

from __future__ import annotations

import copy
import functools
import math
import re
from typing import Any

from pydantic import TypeAdapter
from pydantic_core import to_jsonable_python

__all__ = ["SchemaValidationError", "convert", "inline_refs", "schema_for", "to_jsonable", "validate"]


class SchemaValidationError(ValueError):
    """A value does not match a schema; the message says where (``a.b[0]: ...``)."""


@functools.lru_cache(maxsize=256)
def _adapter(tp: Any) -> TypeAdapter:
    return TypeAdapter(tp)


def _adapter_for(tp: Any) -> TypeAdapter:
    try:
        return _adapter(tp)
    except TypeError:  # unhashable type expression
        return TypeAdapter(tp)


def schema_for(tp: Any) -> dict[str, Any]:
    """The JSON schema of a Python type, ``$ref``s inlined (when not recursive)."""
    return inline_refs(_adapter_for(tp).json_schema())


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with local ``#/$defs/...`` references replaced by their definitions.

    A recursive definition cannot be inlined: the schema is then returned unchanged.
    """
    defs = schema.get("$defs") or schema.get("definitions")
    if not defs:
        return schema

    def resolve(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(("#/$defs/", "#/definitions/")):
                name = ref.rsplit("/", 1)[1]
                if name in seen:
                    raise RecursionError(name)
                target = resolve(copy.deepcopy(defs[name]), seen + (name,))
                rest = {k: resolve(v, seen) for k, v in node.items() if k != "$ref"}
                return {**target, **rest}
            return {k: resolve(v, seen) for k, v in node.items() if k not in ("$defs", "definitions")}
        if isinstance(node, list):
            return [resolve(v, seen) for v in node]
        return node

    try:
        return resolve(schema, ())
    except RecursionError:
        return schema


def convert(value: Any, tp: Any) -> Any:
    """JSON data as an instance of ``tp`` (pydantic validation in lax mode).

    Raises:
        pydantic.ValidationError: the value does not fit the type.
    """
    if tp is Any or tp is object:
        return value
    return _adapter_for(tp).validate_python(value)


def to_jsonable(value: Any) -> Any:
    """Python data (pydantic models, dataclasses, datetimes ...) as JSON-able data."""
    return to_jsonable_python(value, by_alias=True, exclude_none=False)


def validate(value: Any, schema: dict[str, Any] | None) -> None:
    """Check ``value`` against a JSON schema (None or ``{}`` accepts anything).

    Raises:
        SchemaValidationError: with the path and reason of the first problem.
    """
    if not schema:
        return
    try:
        import jsonschema
    except ImportError:  # the built-in subset
        err = _check(value, schema, schema, "")
        if err:
            raise SchemaValidationError(err) from None
        return
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    error = jsonschema.exceptions.best_match(cls(schema).iter_errors(value))
    if error is not None:
        where = _path(error.absolute_path)
        raise SchemaValidationError(f"{where}: {error.message}" if where else error.message) from None


def _path(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


_TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and math.isfinite(v) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "array": lambda v: isinstance(v, (list, tuple)),
    "object": lambda v: isinstance(v, dict),
}


def _check(v: Any, s: Any, root: dict, at: str) -> str | None:
    """The first problem of ``v`` against ``s`` (None when valid): the built-in validator."""
    if s is True or s == {} or s is None:
        return None
    if s is False:
        return f"{at or 'value'}: not allowed"
    where = f"{at}: " if at else ""
    if "$ref" in s:
        ref = s["$ref"]
        if ref == "#":
            target = root
        elif isinstance(ref, str) and ref.startswith("#/"):
            target = root
            for key in ref[2:].split("/"):
                target = target[key]
        else:
            return None  # remote references are not followed
        err = _check(v, target, root, at)
        if err:
            return err
    types = s.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else types
        if not any(_TYPES.get(t, lambda _: True)(v) for t in names):
            return f"{where}{v!r} is not of type {' or '.join(repr(t) for t in names)}"
    if "enum" in s and v not in s["enum"]:
        return f"{where}{v!r} is not one of {s['enum']!r}"
    if "const" in s and v != s["const"]:
        return f"{where}{s['const']!r} was expected"
    if isinstance(v, str):
        if "minLength" in s and len(v) < s["minLength"]:
            return f"{where}{v!r} is too short"
        if "maxLength" in s and len(v) > s["maxLength"]:
            return f"{where}{v!r} is too long"
        if "pattern" in s and not re.search(s["pattern"], v):
            return f"{where}{v!r} does not match {s['pattern']!r}"
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if "minimum" in s and v < s["minimum"]:
            return f"{where}{v!r} is less than the minimum of {s['minimum']!r}"
        if "maximum" in s and v > s["maximum"]:
            return f"{where}{v!r} is greater than the maximum of {s['maximum']!r}"
        if "exclusiveMinimum" in s and v <= s["exclusiveMinimum"]:
            return f"{where}{v!r} is less than or equal to the minimum of {s['exclusiveMinimum']!r}"
        if "exclusiveMaximum" in s and v >= s["exclusiveMaximum"]:
            return f"{where}{v!r} is greater than or equal to the maximum of {s['exclusiveMaximum']!r}"
    if isinstance(v, dict):
        props = s.get("properties") or {}
        for name in s.get("required") or ():
            if name not in v:
                return f"{where}{name!r} is a required property"
        for key, item in v.items():
            sub = f"{at}.{key}" if at else str(key)
            if key in props:
                err = _check(item, props[key], root, sub)
            elif "additionalProperties" in s:
                err = _check(item, s["additionalProperties"], root, sub)
                if s["additionalProperties"] is False:
                    err = f"{where}additional property {key!r} is not allowed"
            else:
                err = None
            if err:
                return err
    if isinstance(v, (list, tuple)):
        if "minItems" in s and len(v) < s["minItems"]:
            return f"{where}{list(v)!r} should have at least {s['minItems']} items"
        if "maxItems" in s and len(v) > s["maxItems"]:
            return f"{where}{list(v)!r} should have at most {s['maxItems']} items"
        prefix = s.get("prefixItems") or []
        for i, item in enumerate(v):
            sub_schema = prefix[i] if i < len(prefix) else s.get("items")
            if sub_schema is not None:
                err = _check(item, sub_schema, root, f"{at}[{i}]")
                if err:
                    return err
    for sub in s.get("allOf") or ():
        err = _check(v, sub, root, at)
        if err:
            return err
    if "anyOf" in s and all(_check(v, sub, root, at) for sub in s["anyOf"]):
        return f"{where}{v!r} is not valid under any of the given schemas"
    if "oneOf" in s and sum(_check(v, sub, root, at) is None for sub in s["oneOf"]) != 1:
        return f"{where}{v!r} is not valid under exactly one of the given schemas"
    if "not" in s and _check(v, s["not"], root, at) is None:
        return f"{where}{v!r} should not be valid under {s['not']!r}"
    return None
