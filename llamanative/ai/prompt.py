"""Prompts: reusable generate requests rendered from an input (``define_prompt``, ``define_data_prompt``).

A prompt's ``system``, ``prompt`` and ``messages`` are rendered from its
input when it runs:

- a string is a template, rendered by the registry's ``template_renderer``
  (by default ``{{name}}`` / ``{{a.b}}`` substitution; the prompts package
  installs full Handlebars/Dotprompt rendering);
- a function ``fn(input, context)`` (or ``fn(input)``) returns text or parts
  (``messages``: a list of messages).

The messages are: system, the prompt's messages, the caller's ``messages``
(history), then the user prompt. ``execute`` options override the prompt's
(``config`` is replaced, not merged). A :class:`ModelRef` as the prompt's
model gives its config when the prompt has none; as ``execute(model=...)``
without ``config=`` its config replaces the prompt's (Go's rules).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from ._arity import call_with
from .actions import ActionRegistry
from .errors import InputTypeMismatch, InvalidArgumentError
from .generate import generate, typed_output
from .messages import Message, as_message
from .model import Model
from .model_ref import ModelRef, resolve_config
from .model_types import ModelResponse
from .request import GenerateActionOptions, build_options
from .schema import SchemaValidationError, convert, schema_for, to_jsonable, validate
from .streaming import GenerateStream, generate_data_stream, generate_stream
from .tools import Tool

__all__ = ["DataPrompt", "Prompt", "render_template"]

_VAR = re.compile(r"\{\{\s*([A-Za-z_@][\w.@]*)\s*\}\}")


def render_template(template: str, variables: dict[str, Any]) -> str:
    """``{{name}}`` and ``{{a.b}}`` replaced by the input's values ("" when missing).

    >>> render_template("Hello {{ user.name }}!", {"user": {"name": "Ada"}})
    'Hello Ada!'
    """

    def value(m: re.Match[str]) -> str:
        cur: Any = variables
        for key in m.group(1).split("."):
            cur = cur.get(key) if isinstance(cur, dict) else getattr(cur, key, None)
            if cur is None:
                return ""
        return cur if isinstance(cur, str) else str(cur)

    return _VAR.sub(value, template)


_EXECUTE_OPTIONS = frozenset(
    {
        "model",
        "config",
        "messages",
        "docs",
        "tools",
        "tool_choice",
        "max_turns",
        "return_tool_requests",
        "use",
        "middleware",
        "on_chunk",
        "context",
        "output_instructions",
        "tool_responses",
        "tool_restarts",
        "resume_metadata",
        "resources",
    }
)


class Prompt:
    """A registered prompt; ``execute(input)`` runs it, ``render(input)`` gives the request without running it."""

    kind = "prompt"

    def __init__(
        self,
        registry: ActionRegistry,
        name: str,
        *,
        variant: str | None = None,
        model: str | Model | ModelRef | None = None,
        config: Any = None,
        description: str | None = None,
        system: Any = None,
        prompt: Any = None,
        messages: Any = None,
        tools: Sequence[str | Tool] | None = None,
        tool_choice: str | None = None,
        max_turns: int | None = None,
        return_tool_requests: bool | None = None,
        input_schema: dict[str, Any] | type | None = None,
        default_input: dict[str, Any] | None = None,
        output_type: Any = None,
        output_schema: dict[str, Any] | str | None = None,
        output_format: str | None = None,
        output_enums: Sequence[str] | None = None,
        output_instructions: str | None = None,
        custom_constrained: bool = False,
        docs: Any = None,
        use: Sequence[Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if not name:
            raise InvalidArgumentError("a prompt needs a name")
        if isinstance(messages, str):
            raise InvalidArgumentError("messages must be a list of messages or a function returning one")
        self.registry = registry
        self.name, self.variant = name, variant
        self.description, self.metadata = description, metadata
        self.input_type = input_schema if isinstance(input_schema, type) else None
        self.input_schema: dict[str, Any] | None = (
            schema_for(input_schema) if isinstance(input_schema, type) else input_schema
        )
        self.default_input = default_input
        self._system, self._prompt, self._messages, self._docs = system, prompt, messages, docs
        self._options: dict[str, Any] = {
            "model": model,
            "config": resolve_config(model, config),
            "tools": list(tools) if tools else None,
            "tool_choice": tool_choice,
            "max_turns": max_turns,
            "return_tool_requests": return_tool_requests,
            "output_type": output_type,
            "output_schema": output_schema,
            "output_format": output_format,
            "output_enums": output_enums,
            "output_instructions": output_instructions,
            "custom_constrained": custom_constrained or None,
            "use": list(use) if use else None,
        }

    @property
    def key(self) -> str:
        """The registry key: ``name`` or ``name.variant``."""
        return f"{self.name}.{self.variant}" if self.variant else self.name

    def __repr__(self) -> str:
        return f"Prompt({self.key!r})"

    # -- rendering -----------------------------------------------------------------------------
    def _input(self, value: Any) -> tuple[Any, dict[str, Any]]:
        """(the input as the prompt's input type, its variables for templates)."""
        data = to_jsonable(value) if value is not None else {}
        if self.default_input and isinstance(data, dict):
            data = {**self.default_input, **data}
        try:
            if self.input_type is not None:
                typed = convert(data, self.input_type)
                return typed, to_jsonable(typed)
            validate(data, self.input_schema)
        except (ValidationError, SchemaValidationError) as exc:
            raise InputTypeMismatch(f"prompt {self.key!r}: invalid input: {exc}") from exc
        return data, data if isinstance(data, dict) else {"input": data}

    def _text(self, spec: Any, typed: Any, variables: dict[str, Any], context: dict[str, Any]) -> Any:
        if spec is None:
            return None
        if isinstance(spec, str):
            renderer = self.registry.template_renderer or render_template
            return renderer(spec, variables)
        if callable(spec):
            return call_with(spec, typed, context)
        return spec

    def _kwargs(self, input: Any, overrides: dict[str, Any]) -> dict[str, Any]:
        unknown = set(overrides) - _EXECUTE_OPTIONS
        if unknown:
            raise InvalidArgumentError(f"unknown prompt option(s): {', '.join(sorted(unknown))}")
        context = overrides.get("context") or {}
        typed, variables = self._input(input)
        msgs: list[Message] = []
        own = self._messages
        if callable(own):
            own = call_with(own, typed, context)
        msgs.extend(as_message(m) for m in own or ())
        msgs.extend(as_message(m) for m in overrides.get("messages") or ())
        docs = self._docs(typed) if callable(self._docs) else self._docs
        kw: dict[str, Any] = {k: v for k, v in self._options.items() if v is not None}
        kw.update(
            system=self._text(self._system, typed, variables, context),
            messages=msgs,
            prompt=self._text(self._prompt, typed, variables, context),
            docs=docs,
        )
        kw.update({k: v for k, v in overrides.items() if k != "messages" and v is not None})
        ref_config = resolve_config(overrides.get("model"), overrides.get("config"))
        if ref_config is not None:  # execute(model=ref) without config: the ref's config replaces the prompt's
            kw["config"] = ref_config
        return {k: v for k, v in kw.items() if v is not None}

    def render(self, input: Any = None, *, context: dict[str, Any] | None = None) -> GenerateActionOptions:
        """The rendered request (for ``ai.generate_with_request``), without running it.

        Raises:
            InputTypeMismatch: the input does not match the input schema.
        """
        kw = self._kwargs(input, {"context": context} if context else {})
        for key in ("use", "middleware", "on_chunk", "context"):
            kw.pop(key, None)
        return build_options(self.registry, kw)[1]

    # -- running ----------------------------------------------------------------------------------
    def execute(self, input: Any = None, **overrides: Any) -> ModelResponse:
        """Render with ``input`` and generate.

        ``overrides`` (each replaces the prompt's): model, config, messages
        (history), docs, tools, tool_choice, max_turns, return_tool_requests,
        use, middleware, on_chunk, context, output_instructions, tool_responses,
        tool_restarts, resume_metadata, resources.
        """
        return generate(self.registry, **self._kwargs(input, overrides))

    __call__ = execute

    def stream(self, input: Any = None, **overrides: Any) -> GenerateStream:
        """:meth:`execute` as a stream of :class:`StreamValue` (see ``Genkit.generate_stream``)."""
        return generate_stream(self.registry, **self._kwargs(input, overrides))


class DataPrompt(Prompt):
    """A prompt with typed output: ``execute`` returns ``(output, response)``."""

    def __init__(self, registry: ActionRegistry, name: str, output_type: Any, **options: Any) -> None:
        super().__init__(registry, name, output_type=output_type, **options)
        self.output_type = output_type

    def execute(self, input: Any = None, **overrides: Any) -> tuple[Any, ModelResponse]:  # type: ignore[override]
        """Render, generate, and return ``(output as output_type, response)`` (output None without text)."""
        resp = generate(self.registry, **self._kwargs(input, overrides))
        return typed_output(resp, self.output_type), resp

    __call__ = execute  # type: ignore[assignment]  # the same deliberate override as execute's

    def stream(self, input: Any = None, **overrides: Any) -> GenerateStream:
        """A data stream (see ``Genkit.generate_data_stream``)."""
        kw = self._kwargs(input, overrides)
        kw.pop("output_type", None)
        return generate_data_stream(self.registry, self.output_type, **kw)
