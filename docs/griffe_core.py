"""A griffe extension for the API reference (mkdocs.yml loads it).

- ``llamanative._core``: the signatures come from ``llamanative/_core.pyi``
  (read statically, as every other module is); a stub has no docstrings, so
  they are taken from the compiled extension itself, where Cython keeps them.
  Cython's embedded signature line (``Vocab.tokenize(self, text, ...)``) is
  dropped: the stub's signature is the one shown.
- Every docstring: Sphinx roles (``:class:`Model```, ``:meth:`tokenize```)
  become inline code, and doctest lines (``>>> ...`` and their output) a
  ``pycon`` code block, which is how they read in Markdown.
"""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

import griffe

_SIGNATURE_LINE = re.compile(r"^[A-Za-z_][\w.]*\(.*\)(\s*->\s*.+)?$")
_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|mod|data|attr|obj|exc|const):`~?([^`]+)`")


def _clean(doc: object) -> str | None:
    """A runtime docstring without Cython's signature line, or None."""
    if not isinstance(doc, str) or not doc:
        return None
    lines = inspect.cleandoc(doc).splitlines()
    if lines and _SIGNATURE_LINE.match(lines[0]):
        lines = lines[1:]
        while lines and not lines[0].strip():
            lines = lines[1:]
    text = "\n".join(lines).strip()
    return text or None


def _doctests(text: str) -> str:
    """Fence every run of doctest lines (from a ``>>>`` line to the next blank line) as ``pycon``."""
    out: list[str] = []
    lines = text.splitlines()
    fenced = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced and line.lstrip().startswith(">>>"):
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}```pycon")
            while i < len(lines) and lines[i].strip():
                out.append(lines[i])
                i += 1
            out.append(f"{indent}```")
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


class CoreDocstrings(griffe.Extension):
    """Docstrings for the stub of ``llamanative._core``; Sphinx roles as inline code everywhere."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.name != "llamanative":
            return
        if "_core" in pkg.members:
            self._fill(pkg.members["_core"], importlib.import_module("llamanative._core"))
        self._roles(pkg, set())

    def _fill(self, obj: griffe.Object, live: Any) -> None:
        for name, member in obj.members.items():
            if member.is_alias:
                continue
            try:
                value = inspect.getattr_static(live, name)
            except AttributeError:
                continue
            if not member.docstring:
                doc = _clean(getattr(value, "__doc__", None))
                # An attribute without a docstring of its own reports its type's.
                if doc and not (member.is_attribute and doc == _clean(getattr(type(value), "__doc__", None))):
                    member.docstring = griffe.Docstring(doc, parent=member)
            if member.is_class:
                self._fill(member, getattr(live, name))

    def _roles(self, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring:
            obj.docstring.value = _doctests(_ROLE.sub(r"`\1`", obj.docstring.value))
        for member in obj.members.values():
            if not member.is_alias:
                self._roles(member, seen)
