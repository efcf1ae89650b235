"""Resources: content addressed by URI, expanded into ``resource`` parts before the model is called.

A resource has a fixed ``uri`` or a URI ``template`` (RFC 6570 simple
expressions: ``{name}`` matches one path segment, ``{+name}`` and ``{#name}``
match anything). Its function is ``fn(input: ResourceInput) ->
ResourceOutput`` (a list of parts or a string is accepted too).

>>> r = new_resource("file", lambda inp: f"contents of {inp.variables['path']}", template="file:///{+path}")
>>> r.matches("file:///docs/a.txt"), r.extract_variables("file:///docs/a.txt")
(True, {'path': 'docs/a.txt'})
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from typing import Any

from ._wire import WireModel
from .errors import InvalidArgumentError
from .parts import Part

__all__ = ["Resource", "ResourceInput", "ResourceOutput", "new_resource"]


class ResourceInput(WireModel):
    uri: str
    variables: dict[str, str] = {}
    "Values of the template's variables."


class ResourceOutput(WireModel):
    content: list[Part] = []


def _normalize_uri(uri: str) -> str:
    """The URI without query and fragment, and without a trailing slash on its path (as Go's matcher)."""
    try:
        u = urllib.parse.urlsplit(uri)
    except ValueError:
        return uri
    path = u.path[:-1] if len(u.path) > 1 and u.path.endswith("/") else u.path
    return urllib.parse.urlunsplit((u.scheme, u.netloc, path, "", ""))


def _template_regex(template: str) -> re.Pattern[str]:
    out, pos = [], 0
    for m in re.finditer(r"\{([+#]?)([A-Za-z0-9_.,]+)\}", template):
        out.append(re.escape(template[pos : m.start()]))
        op, name = m.group(1), m.group(2).split(",")[0]
        out.append(f"(?P<{name}>.+)" if op else f"(?P<{name}>[^/?#]+)")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out) + r"\Z")


class Resource:
    """A resource: a name, a URI or template, and the function giving its content."""

    kind = "resource"

    def __init__(
        self,
        name: str,
        fn: Callable[[ResourceInput], Any],
        *,
        uri: str | None = None,
        template: str | None = None,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if not name:
            raise InvalidArgumentError("a resource needs a name")
        if uri and template:
            raise InvalidArgumentError("a resource takes a uri or a template, not both")
        if not uri and not template:
            raise InvalidArgumentError("a resource needs a uri or a template")
        self.name, self.fn = name, fn
        self.uri, self.template = uri, template
        self.description, self.metadata = description, metadata
        self._rx = _template_regex(template) if template else None

    def __repr__(self) -> str:
        return f"Resource({self.name!r})"

    def matches(self, uri: str) -> bool:
        if self._rx is None:
            return self.uri == uri
        return self._rx.match(_normalize_uri(uri)) is not None

    def extract_variables(self, uri: str) -> dict[str, str]:
        """The template's variables in ``uri`` (``{}`` for a fixed URI).

        Raises:
            InvalidArgumentError: ``uri`` does not match.
        """
        if self._rx is None:
            if self.uri != uri:
                raise InvalidArgumentError(f"URI {uri!r} does not match static URI {self.uri!r}")
            return {}
        m = self._rx.match(_normalize_uri(uri))
        if m is None:
            raise InvalidArgumentError(f"URI {uri!r} does not match template {self.template!r}")
        return {k: urllib.parse.unquote(v) for k, v in m.groupdict().items()}

    def execute(self, input: ResourceInput) -> ResourceOutput:
        """Run the function; a string or a list of parts becomes the output's content."""
        out = self.fn(input)
        if isinstance(out, ResourceOutput):
            return out
        if isinstance(out, str):
            return ResourceOutput(content=[Part(text=out)])
        if isinstance(out, dict):
            return ResourceOutput.model_validate(out)
        return ResourceOutput(content=list(out or ()))


def new_resource(
    name: str,
    fn: Callable[[ResourceInput], Any],
    *,
    uri: str | None = None,
    template: str | None = None,
    description: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Resource:
    """A resource that is not registered: pass it in ``resources=`` (visible to that call only)."""
    return Resource(name, fn, uri=uri, template=template, description=description, metadata=metadata)
