"""JSON-schema keywords llama.cpp's grammar converter does not enforce.

``common``'s JSON-schema-to-grammar conversion skips some keywords without an
error (numeric bounds on non-integers, ``multipleOf``, ``uniqueItems``, ...)
and accepts an unanchored ``pattern`` as any string. Output would then only
*look* constrained; a request with such a schema is refused instead, naming
the keyword and where it is.
"""

from __future__ import annotations

from typing import Any

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


def unenforced(schema: Any, path: str = "#") -> list[str]:
    """Where ``schema`` uses a keyword the grammar would not enforce, as ``"<path>: <keyword>"``."""
    out: list[str] = []
    if isinstance(schema, list):
        for i, item in enumerate(schema):
            out += unenforced(item, f"{path}/{i}")
        return out
    if not isinstance(schema, dict):
        return out
    for key in schema:
        if key in _IGNORED:
            out.append(f"{path}: {key}")
    if schema.get("type") != "integer":
        out += [f"{path}: {key} (bounds are enforced for integers only)" for key in _BOUNDS if key in schema]
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt not in _FORMATS:
        out.append(f"{path}: format {fmt!r} (supported: {', '.join(sorted(_FORMATS))})")
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and not (pattern.startswith("^") and pattern.endswith("$")):
        out.append(f"{path}: pattern {pattern!r} (must be anchored with ^ and $)")
    for key, value in schema.items():
        if key in _NOT_SCHEMAS:
            continue
        if key == "properties" and isinstance(value, dict):
            for name, sub in value.items():
                out += unenforced(sub, f"{path}/properties/{name}")
        elif isinstance(value, (dict, list)):
            out += unenforced(value, f"{path}/{key}")
    return out
