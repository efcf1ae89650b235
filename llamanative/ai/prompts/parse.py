"""Parsing a ``.prompt`` source: YAML frontmatter between ``---`` fences, then the template.

Reserved frontmatter keys become fields of :class:`ParsedPrompt`; a key
with a dot (``myext.foo: 1``) goes to ``ext`` under its namespace
(``{"myext": {"foo": 1}}``); every key stays in ``raw``. With a
frontmatter the template is trimmed; without one the source is the template.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..retrieval._compat import invalid_argument

__all__ = ["RESERVED_KEYS", "ParsedPrompt", "parse_document"]

# Blank lines and '#' comment lines (license headers) may come before the first fence.
FRONTMATTER_AND_BODY = re.compile(
    r"^(?:(?:#[^\n]*|[ \t]*)\n)*---\s*(?:\r\n|\r|\n)([\s\S]*?)(?:\r\n|\r|\n)---\s*(?:\r\n|\r|\n)([\s\S]*)$"
)

RESERVED_KEYS = (
    "config",
    "description",
    "ext",
    "input",
    "model",
    "name",
    "output",
    "raw",
    "toolDefs",
    "tools",
    "variant",
    "version",
)


@dataclass
class ParsedPrompt:
    """A ``.prompt`` file's metadata and template (the dotprompt ``ParsedPrompt``)."""

    template: str
    name: str | None = None
    variant: str | None = None
    version: str | None = None
    description: str | None = None
    model: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    input: dict[str, Any] = field(default_factory=dict)
    "``{'schema': ..., 'default': {...}}`` as written (Picoschema not yet converted)."
    output: dict[str, Any] = field(default_factory=dict)
    "``{'format': ..., 'schema': ...}`` as written."
    tools: list[str] = field(default_factory=list)
    tool_defs: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    ext: dict[str, dict[str, Any]] = field(default_factory=dict)
    raw: dict[str, Any] | None = None
    "The whole frontmatter (None without one)."


def _mapping(value: Any, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid_argument(f"frontmatter '{key}' must be a mapping, not {type(value).__name__}")
    return dict(value)


def parse_document(source: str) -> ParsedPrompt:
    """Split a ``.prompt`` source into its frontmatter fields and its template.

    Raises:
        InvalidArgumentError: the frontmatter is not valid YAML or not a mapping.
    """
    m = FRONTMATTER_AND_BODY.match(source)
    if not m:
        return ParsedPrompt(template=source)
    try:
        import yaml
    except ImportError as exc:  # the optional dependency of the ai extra
        raise ImportError(".prompt frontmatter needs PyYAML: pip install 'llamanative[ai]'") from exc
    try:
        raw = yaml.safe_load(m.group(1))
    except yaml.YAMLError as exc:
        raise invalid_argument(f"invalid YAML frontmatter: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise invalid_argument("the frontmatter must be a YAML mapping")
    raw = {str(k): v for k, v in raw.items()}
    ext: dict[str, dict[str, Any]] = {}
    for key, value in raw.items():
        if key not in RESERVED_KEYS and "." in key:
            ns, _, name = key.rpartition(".")
            ext.setdefault(ns, {})[name] = value
    tools = raw.get("tools") or []
    if isinstance(tools, str):
        tools = [tools]
    if not isinstance(tools, list):
        raise invalid_argument("frontmatter 'tools' must be a list of tool names")

    def text(key: str) -> str | None:
        v = raw.get(key)
        return None if v is None else str(v)

    return ParsedPrompt(
        template=m.group(2).strip(),
        name=text("name"),
        variant=text("variant"),
        version=text("version"),
        description=text("description"),
        model=text("model"),
        config=_mapping(raw.get("config"), "config"),
        input=_mapping(raw.get("input"), "input"),
        output=_mapping(raw.get("output"), "output"),
        tools=[str(t) for t in tools],
        tool_defs=list(raw.get("toolDefs") or []),
        metadata=_mapping(raw.get("metadata"), "metadata"),
        ext=ext,
        raw=raw,
    )
