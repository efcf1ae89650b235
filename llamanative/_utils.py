"""ollama-python's ``ollama._utils`` module path: ``convert_function_to_tool``.

It is :func:`llamanative.tool_from_function`: a Python function (with type
hints and a Google-style docstring) as a :class:`~llamanative.Tool`.
"""

from .types import tool_from_function as convert_function_to_tool

__all__ = ["convert_function_to_tool"]
