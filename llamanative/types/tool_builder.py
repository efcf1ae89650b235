"""``tool_from_function``: a :class:`Tool` from a Python function's signature and docstring.

What ollama-python's ``convert_function_to_tool`` does, with these fixes:

- ``Literal[...]`` choices and ``Enum`` classes become an ``enum`` (with the
  matching ``type``), instead of being dropped;
- ``list[int]`` (and other typed sequences) keep their ``items`` schema;
- a union's types are listed in the order written (``int | str`` →
  ``["integer", "string"]``), not in set order; one type is a plain string;
- a parameter is required only if it has no default *and* is not
  ``Optional``; ``None`` is not listed as a type (optional parameters are
  simply not required);
- ``Annotated[int, "text"]`` (or a pydantic ``Field(description=...)``) gives
  the description when the docstring has none.

As in ollama-python: a parameter without an annotation is a ``"string"``
(unless the docstring names its type), the text before the first section of
a Google-style docstring is the description, and ``Args:`` entries
(``name (type): text`` or ``name: text``, continued on indented lines) are
the parameter descriptions. ``*args``/``**kwargs`` are left out.
"""

from __future__ import annotations

import collections.abc as cabc
import dataclasses
import datetime as dt
import decimal
import enum
import inspect
import pathlib
import re
import types
import typing
import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal, Union

from .tools import Tool, ToolFunction, ToolFunctionParameters, ToolProperty

__all__ = ["tool_from_function"]

_SECTION = re.compile(
    r"^\s*(args|arguments|parameters|params|keyword args|keyword arguments|kwargs|other parameters|"
    r"returns?|yields?|raises|examples?|notes?|attributes|see also|warnings?|todo|references)\s*:\s*$",
    re.IGNORECASE,
)
_ARG_SECTIONS = {
    "args",
    "arguments",
    "parameters",
    "params",
    "keyword args",
    "keyword arguments",
    "kwargs",
    "other parameters",
}
_ARG_LINE = re.compile(r"^\*{0,2}([A-Za-z_]\w*)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$")

_SCALARS: dict[type, str] = {
    bool: "boolean",
    int: "integer",
    float: "number",
    decimal.Decimal: "number",
    str: "string",
    bytes: "string",
    dt.datetime: "string",
    dt.date: "string",
    dt.time: "string",
    dt.timedelta: "string",
    uuid.UUID: "string",
    pathlib.PurePath: "string",
}
_ARRAYS = (
    list,
    tuple,
    set,
    frozenset,
    cabc.Sequence,
    cabc.MutableSequence,
    cabc.Set,
    cabc.MutableSet,
    cabc.Iterable,
    cabc.Collection,
    cabc.Iterator,
    cabc.Generator,
)
_OBJECTS = (dict, cabc.Mapping, cabc.MutableMapping)
_DOC_TYPES = {
    "str": "string",
    "string": "string",
    "int": "integer",
    "integer": "integer",
    "float": "number",
    "number": "number",
    "bool": "boolean",
    "boolean": "boolean",
    "list": "array",
    "array": "array",
    "dict": "object",
    "object": "object",
}


def tool_from_function(fn: Callable[..., Any]) -> Tool:
    """Build a tool definition from ``fn``'s signature and Google-style docstring.

    >>> from typing import Literal
    >>> def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> str:
    ...     '''Get the current weather.
    ...
    ...     Args:
    ...         city: The city name.
    ...         unit: The temperature unit.
    ...     '''
    >>> tool = tool_from_function(get_weather)
    >>> tool.function.description, tool.function.parameters.required
    ('Get the current weather.', ['city'])
    >>> tool.function.parameters.properties["unit"].to_dict()
    {'type': 'string', 'description': 'The temperature unit.', 'enum': ['celsius', 'fahrenheit']}

    Raises:
        TypeError: ``fn`` is not callable.
    """
    if not callable(fn):
        raise TypeError(f"a tool must be a callable, not {type(fn).__name__}")
    signature = inspect.signature(fn)
    params = [
        p
        for p in signature.parameters.values()
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    description, arg_docs = _parse_docstring(inspect.getdoc(fn), {p.name for p in params})
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception:  # an unresolvable forward reference: use the raw annotations
        hints = {}

    properties: dict[str, ToolProperty] = {}
    required: list[str] = []
    for p in params:
        doc_type, doc_text = arg_docs.get(p.name, ("", ""))
        annotation = hints.get(p.name, p.annotation)
        if annotation is inspect.Parameter.empty or isinstance(annotation, str):
            schema: dict[str, Any] = {"type": _DOC_TYPES.get(_doc_type_name(doc_type), "string")}
        else:
            schema = _schema(annotation)
        types_ = schema.get("type")
        optional = isinstance(types_, list) and "null" in types_ or types_ == "null"
        if optional:
            rest = [t for t in types_ if t != "null"] if isinstance(types_, list) else []
            schema["type"] = rest[0] if len(rest) == 1 else (rest or None)
        annotated_text = schema.pop("description", "")
        properties[p.name] = ToolProperty(description=doc_text or annotated_text, **schema)
        if p.default is inspect.Parameter.empty and not optional:
            required.append(p.name)

    name = getattr(fn, "__name__", None) or type(fn).__name__
    return Tool(
        type="function",
        function=ToolFunction(
            name=name,
            description=description,
            parameters=ToolFunctionParameters(type="object", required=required, properties=properties),
        ),
    )


def _doc_type_name(text: str) -> str:
    # "integer, optional" -> "integer"; "list of str" -> "list"
    return text.split(",")[0].strip().split(" ")[0].lower() if text else ""


def _parse_docstring(doc: str | None, param_names: set[str]) -> tuple[str, dict[str, tuple[str, str]]]:
    """The description and ``{name: (type text, description)}`` of a Google-style docstring."""
    if not doc:
        return "", {}
    description: list[str] = []
    args: dict[str, tuple[str, str]] = {}
    section: str | None = None
    base_indent: int | None = None
    last: str | None = None
    for line in doc.splitlines():
        header = _SECTION.match(line)
        if header:
            section = header.group(1).lower()
            base_indent, last = None, None
            continue
        if section is None:
            description.append(line.strip())
            continue
        if section not in _ARG_SECTIONS or not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if base_indent is None:
            base_indent = indent
        match = _ARG_LINE.match(line.strip())
        if indent <= base_indent and match and match.group(1) in param_names:
            last = match.group(1)
            args[last] = ((match.group(2) or "").strip(), match.group(3).strip())
        elif last is not None:
            doc_type, text = args[last]
            args[last] = (doc_type, f"{text} {line.strip()}".strip())
    return "\n".join(description).strip(), args


def _schema(tp: Any) -> dict[str, Any]:
    """A JSON-schema subset (type, items, enum, description) for a type annotation."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Annotated:
        schema = _schema(args[0])
        for meta in args[1:]:
            text = meta if isinstance(meta, str) else getattr(meta, "description", None)
            if isinstance(text, str) and text:
                schema["description"] = text
                break
        return schema
    if tp is Any:
        return {}
    if tp is None or tp is type(None):
        return {"type": "null"}
    if origin is Union or origin is types.UnionType:
        return _union([_schema(a) for a in args])
    if origin is Literal:
        return _enum(list(args))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum([member.value for member in tp])
    if isinstance(tp, typing.TypeVar):
        return {}
    base = origin or tp
    if isinstance(base, type):
        for cls, name in _SCALARS.items():
            if issubclass(base, cls):
                return {"type": name}
        if issubclass(base, _OBJECTS) or _is_record(base):
            return {"type": "object"}
        if issubclass(base, _ARRAYS):
            return _array(base, args)
    return {"type": "string"}


def _is_record(cls: type) -> bool:
    # pydantic models, dataclasses, TypedDicts: objects with named fields.
    return dataclasses.is_dataclass(cls) or hasattr(cls, "model_fields") or typing.is_typeddict(cls)


def _array(base: type, args: tuple[Any, ...]) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "array"}
    if base is tuple or (isinstance(base, type) and issubclass(base, tuple)):
        if len(args) == 2 and args[1] is Ellipsis:
            args = args[:1]
        elif len(set(args)) != 1:
            args = ()
    if args:
        items = _schema(args[0])
        items.pop("description", None)
        if items:
            schema["items"] = items
    return schema


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


def _enum(values: list[Any]) -> dict[str, Any]:
    types_ = list(dict.fromkeys(_json_type(v) for v in values))
    return {"type": types_[0] if len(types_) == 1 else types_, "enum": [v for v in values if v is not None]}


def _union(members: list[dict[str, Any]]) -> dict[str, Any]:
    types_: list[str] = []
    enum_values: list[Any] = []
    open_member = False  # a member that allows any value of its type
    items = None
    for m in members:
        member_types = m.get("type")
        member_types = [member_types] if isinstance(member_types, str) else list(member_types or [])
        for t in member_types:
            if t not in types_:
                types_.append(t)
        if "enum" in m:
            enum_values.extend(v for v in m["enum"] if v not in enum_values)
        elif member_types != ["null"]:
            open_member = True
        if items is None and "items" in m:
            items = m["items"]
    if not types_ or any(not m.get("type") for m in members):
        return {}  # Any in a union: anything goes
    schema: dict[str, Any] = {"type": types_[0] if len(types_) == 1 else types_}
    if enum_values and not open_member:
        schema["enum"] = enum_values
    if items is not None:
        schema["items"] = items
    return schema
