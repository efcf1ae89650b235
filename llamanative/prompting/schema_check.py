"""JSON-schema keywords llama.cpp's grammar converter does not enforce, and patterns in the form it does.

``common``'s JSON-schema-to-grammar conversion skips some keywords without an
error (numeric bounds on non-integers, ``multipleOf``, ``uniqueItems``, the
keywords beside a ``$ref`` or an ``anyOf``, ``minLength`` beside a
``pattern``, ...) and accepts a ``pattern`` it cannot translate as any
string. Output would then only *look* constrained; a request with such a
schema is refused instead, naming the keyword and where it is.

Patterns are enforced through :mod:`.schema_patterns`: :func:`for_grammar`
gives the copy of a schema that the converter is handed, with every pattern
rewritten into the subset it translates exactly (``\\d`` → ``[0-9]``, ...).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from .schema_patterns import PatternError, grammar_pattern

# Never enforced, whatever the type.
_IGNORED = frozenset(
    {
        "multipleOf",
        "uniqueItems",
        "contains",
        "minContains",
        "maxContains",
        "not",
        "minProperties",
        "maxProperties",
        "patternProperties",
        "if",
        "then",
        "else",
        "dependentRequired",
        "dependentSchemas",
        "propertyNames",
        "unevaluatedProperties",
        "unevaluatedItems",
    }
)
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")  # enforced for integers only
_FORMATS = frozenset({"date", "time", "date-time", "uuid"})
# Keywords whose values are property names or data, not sub-schemas.
_NOT_SCHEMAS = frozenset({"enum", "const", "default", "examples", "required", "title", "description"})
# Keywords whose values map names to sub-schemas.
_SCHEMA_MAPS = frozenset({"properties", "$defs", "definitions"})
# The keywords the converter reads; beside a $ref or an anyOf/oneOf it reads none of the others.
_CONSTRAINTS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "prefixItems",
        "minItems",
        "maxItems",
        "pattern",
        "format",
        "minLength",
        "maxLength",
        *_BOUNDS,
        "enum",
        "const",
        "allOf",
        "anyOf",
        "oneOf",
    }
)


def _subschemas(schema: Any, path: str) -> Iterator[tuple[dict, str]]:
    """Every schema object in ``schema`` (itself included), with its JSON-pointer path."""
    if isinstance(schema, list):
        for i, item in enumerate(schema):
            yield from _subschemas(item, f"{path}/{i}")
        return
    if not isinstance(schema, dict):
        return
    yield schema, path
    for key, value in schema.items():
        if key in _NOT_SCHEMAS:
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            for name, sub in value.items():
                yield from _subschemas(sub, f"{path}/{key}/{name}")
        elif isinstance(value, (dict, list)):
            yield from _subschemas(value, f"{path}/{key}")


def _may_be_string(schema: dict) -> bool:
    t = schema.get("type")
    return t is None or t == "string" or (isinstance(t, list) and "string" in t)


def _pattern_problem(schema: dict, path: str) -> str | None:
    pattern = schema.get("pattern")
    if not isinstance(pattern, str) or not _may_be_string(schema):
        return None
    try:
        grammar_pattern(pattern)
    except PatternError as exc:
        return f"{path}: pattern {pattern!r} ({exc.reason})"
    return None


def _resolve(root: Any, ref: Any) -> Any:
    """The target of a same-document ``$ref`` (as the converter splits it), or None."""
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return None
    target = root
    for sel in ref[2:].split("/"):
        if isinstance(target, dict) and sel in target:
            target = target[sel]
        elif isinstance(target, list) and sel.isdigit() and int(sel) < len(target):
            target = target[int(sel)]
        else:
            return None
    return target


def _merged_by_all_of(component: Any, root: Any) -> bool:
    """Whether the converter's allOf keeps what ``component`` asks: it merges object properties and enums only."""
    if isinstance(component, dict) and "$ref" in component:
        component = _resolve(root, component["$ref"])
    if not isinstance(component, dict):
        return False
    return "properties" in component or "enum" in component


def _dropped(schema: dict, path: str, root: Any) -> list[str]:
    """The keywords of ``schema`` the converter reads past, following the order in which it picks one."""
    keys = set(schema)
    for first in ("$ref", "oneOf", "anyOf"):
        if first in keys:
            return [f"{path}: {k} (ignored beside {first})" for k in sorted(keys & _CONSTRAINTS - {first})]
    if keys & {"const", "enum"}:
        return []  # the listed values are the whole constraint
    out: list[str] = []
    t = schema.get("type")
    has_properties = "properties" in keys or schema.get("additionalProperties", True) is not True
    if "allOf" in keys:
        if t not in (None, "object", "string") or has_properties:
            out.append(f"{path}: allOf (ignored beside {'properties' if has_properties else f'type {t!r}'})")
        elif isinstance(schema["allOf"], list):
            for i, comp in enumerate(schema["allOf"]):
                if isinstance(comp, dict) and "anyOf" in comp:
                    out.append(f"{path}/allOf/{i}: anyOf inside allOf (its properties would all be optional)")
                elif not _merged_by_all_of(comp, root):
                    out.append(f"{path}/allOf/{i}: only object properties and enums are merged by allOf")
    elif t in (None, "object") and isinstance(schema.get("required"), list):
        props = schema.get("properties")
        names = props if isinstance(props, dict) else {}
        out += [f"{path}: required {n!r} (not among properties)" for n in schema["required"] if n not in names]
    if _may_be_string(schema):
        if "pattern" in keys:
            out += [
                f"{path}: {k} (not enforced together with pattern)"
                for k in ("format", "minLength", "maxLength")
                if k in keys
            ]
        elif "format" in keys:
            out += [f"{path}: {k} (not enforced together with format)" for k in ("minLength", "maxLength") if k in keys]
    if t == "integer":
        out += [
            f"{path}: exclusive{side} (not enforced together with {side.lower()})"
            for side in ("Minimum", "Maximum")
            if side.lower() in keys and f"exclusive{side}" in keys
        ]
    if "items" in keys and "prefixItems" in keys:
        out.append(f"{path}: prefixItems (ignored beside items)")
    items = schema.get("items", schema.get("prefixItems"))
    if isinstance(items, list):
        out += [f"{path}: {k} (not enforced for a tuple)" for k in ("minItems", "maxItems") if k in keys]
    structural = {"properties", "allOf", "items", "prefixItems", "pattern", "minLength", "maxLength", "format"}
    if t is None and not has_properties and not keys & structural:
        out += [f"{path}: {k} (ignored without a type)" for k in ("minItems", "maxItems") if k in keys]
    return out


def unenforced(schema: Any, path: str = "#") -> list[str]:
    """Where ``schema`` uses a keyword the grammar would not enforce, as ``"<path>: <keyword> (<why>)"``."""
    out: list[str] = []
    for node, where in _subschemas(schema, path):
        out += [f"{where}: {key}" for key in node if key in _IGNORED]
        if node.get("type") != "integer":
            out += [f"{where}: {key} (bounds are enforced for integers only)" for key in _BOUNDS if key in node]
        fmt = node.get("format")
        if isinstance(fmt, str) and fmt not in _FORMATS and _may_be_string(node):
            out.append(f"{where}: format {fmt!r} (supported: {', '.join(sorted(_FORMATS))})")
        if problem := _pattern_problem(node, where):
            out.append(problem)
        out += _dropped(node, where, schema)
    return out


def unsupported_patterns(schema: Any, path: str = "#") -> list[str]:
    """Where ``schema`` has a ``pattern`` the grammar cannot enforce, as ``"<path>: pattern '...' (<why>)"``."""
    return [p for node, where in _subschemas(schema, path) if (p := _pattern_problem(node, where))]


def for_grammar(schema: Any) -> Any:
    """A copy of ``schema`` with every ``pattern`` in the form the converter enforces (``schema`` is left as is).

    Raises:
        ValueError: a pattern cannot be enforced; the message names each one and where it is.
    """
    problems = unsupported_patterns(schema)
    if problems:
        raise ValueError("the grammar cannot enforce these patterns: " + "; ".join(problems))
    out = copy.deepcopy(schema)
    for node, _ in _subschemas(out, "#"):
        if isinstance(node.get("pattern"), str) and _may_be_string(node):
            node["pattern"] = grammar_pattern(node["pattern"])
    return out
