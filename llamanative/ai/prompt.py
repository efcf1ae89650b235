"""Prompts: reusable generate requests rendered from an input (``define_prompt``, ``define_data_prompt``).

The input schema is a JSON schema, a type (whose schema it is; the input is
converted to it), or the name of a schema registered with ``define_schema``
(Go's ``WithInputSchemaName``): a name is looked up each time the prompt
renders, so the schema may be defined after the prompt.

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

A :class:`DataPrompt` returns its output typed: one defined with
``define_data_prompt``, or any prompt (one loaded from a ``.prompt`` file)
wrapped by :func:`as_data_prompt` / :func:`lookup_data_prompt`.
``Prompt.desc()`` is the prompt's action descriptor (Go's ``Desc``).
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Sequence
from typing import Any, overload

from pydantic import ValidationError

from ._arity import call_with
from .actions import ActionDesc, ActionRegistry, action_key
from .errors import InputTypeMismatch, InvalidArgumentError, InvalidSchema
from .generate import generate, typed_output
from .messages import Message, as_message
from .model import Model
from .model_ref import ModelRef, resolve_config
from .model_types import ModelResponse
from .request import GenerateActionOptions, build_options
from .schema import SchemaValidationError, convert, schema_for, to_jsonable, validate
from .streaming import GenerateStream, generate_stream, typed_stream
from .tools import Tool

__all__ = ["DataPrompt", "Prompt", "as_data_prompt", "lookup_data_prompt", "render_template"]

_SCHEMA_REF = "genkit:"
'The prefix of a reference to a registered schema in Genkit\'s JSON: ``{"$ref": "genkit:<name>"}``.'


def _schema_name(schema: Any) -> str | None:
    """The registered schema a schema argument names: a string, or Genkit's ``{"$ref": "genkit:<name>"}``."""
    if isinstance(schema, str):
        return schema
    if isinstance(schema, dict) and len(schema) == 1 and str(schema.get("$ref", "")).startswith(_SCHEMA_REF):
        return str(schema["$ref"])[len(_SCHEMA_REF) :]
    return None


@functools.lru_cache(maxsize=1)
def _request_schema() -> dict[str, Any]:
    """The JSON schema of what a prompt renders to (a ``GenerateActionOptions``), made once."""
    return schema_for(GenerateActionOptions)


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
        input_schema: dict[str, Any] | type | str | None = None,
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
        self.input_schema_name: str | None = _schema_name(input_schema)
        """The registered schema named as the input schema (``input_schema="<name>"``), None otherwise."""
        if self.input_schema_name == "":
            raise InvalidArgumentError(f"prompt {name!r}: the input schema name is empty")
        self._input_schema: dict[str, Any] | None = None
        if isinstance(input_schema, type):
            self._input_schema = schema_for(input_schema)
        elif self.input_schema_name is None and input_schema is not None:
            if not isinstance(input_schema, dict):
                raise InvalidArgumentError(
                    f"prompt {name!r}: input_schema must be a JSON schema, a type or a schema name, "
                    f"got {type(input_schema).__name__}"
                )
            self._input_schema = input_schema
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

    @property
    def input_schema(self) -> dict[str, Any] | None:
        """The JSON schema the input is validated against: the one given, a type's, or the registered
        schema that ``input_schema="<name>"`` names (looked up now: None while no schema has that name)."""
        if self.input_schema_name is not None:
            return self.registry.lookup_schema(self.input_schema_name)
        return self._input_schema

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.key!r})"

    # -- the descriptor ---------------------------------------------------------------------------
    def _schema_for_desc(self, name: str | None, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        """A schema as a descriptor shows it: a registered name resolved, or Genkit's ``$ref`` to it when
        no schema has that name yet."""
        if name is None:
            return copy.deepcopy(schema)
        found = self.registry.lookup_schema(name)
        return copy.deepcopy(found) if found is not None else {"$ref": f"{_SCHEMA_REF}{name}"}

    def _output_for_desc(self) -> dict[str, Any]:
        o = self._options
        fmt = o["output_format"]
        schema: dict[str, Any] | None = None
        if o["output_enums"] is not None:
            schema, fmt = {"type": "string", "enum": list(o["output_enums"])}, fmt or "enum"
        elif o["output_schema"] is not None:
            schema = self._schema_for_desc(_schema_name(o["output_schema"]), o["output_schema"])
        elif o["output_type"] is not None:
            tp = o["output_type"]
            schema = copy.deepcopy(tp) if isinstance(tp, dict) else schema_for(tp)
        if schema is not None and not fmt:
            fmt = "json"
        return {k: v for k, v in (("format", fmt), ("schema", schema)) if v is not None}

    def _prompt_metadata(self) -> dict[str, Any]:
        """``metadata["prompt"]`` of the descriptor: the prompt's definition, as Genkit's ``DefinePrompt``
        records it."""
        o = self._options
        model = o["model"]
        meta: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "model": getattr(model, "name", model),
            "config": to_jsonable(o["config"]) if o["config"] is not None else None,
            "input": {"schema": self._schema_for_desc(self.input_schema_name, self._input_schema)},
            "output": self._output_for_desc(),
            "defaultInput": copy.deepcopy(self.default_input),
            "tools": [getattr(t, "name", t) for t in o["tools"] or ()],
            "toolChoice": o["tool_choice"],
            "maxTurns": o["max_turns"],
        }
        if self.variant:
            meta["variant"] = self.variant
        return meta

    def desc(self) -> ActionDesc:
        """The prompt's action descriptor (Go's ``Prompt.Desc``), registered schema names resolved.

        ``type`` is ``executable-prompt``, ``key`` ``/executable-prompt/<key>``
        (``lookup_action`` finds the prompt by it), ``input_schema`` the input
        schema, ``output_schema`` the schema of what the prompt renders to (a
        :class:`GenerateActionOptions`). ``metadata`` is the prompt's own
        metadata with ``type`` and ``prompt``: its definition (``name``,
        ``variant``, ``description``, ``model``, ``config``, ``input.schema``,
        ``output.format`` / ``output.schema``, ``defaultInput``, ``tools``,
        ``toolChoice``, ``maxTurns``; a ``.prompt`` file's ``template`` too).
        A schema name that is not registered yet shows as Genkit's
        ``{"$ref": "genkit:<name>"}``.
        """
        metadata = copy.deepcopy(self.metadata) if self.metadata else {}
        prompt_meta = self._prompt_metadata()
        own = metadata.get("prompt")
        metadata["prompt"] = {**own, **prompt_meta} if isinstance(own, dict) else prompt_meta
        metadata["type"] = "executable-prompt"
        return ActionDesc(
            type="executable-prompt",
            key=action_key("prompt", self.key),
            name=self.key,
            description=self.description or "",
            input_schema=prompt_meta["input"]["schema"],
            output_schema=_request_schema(),
            metadata=metadata,
        )

    # -- rendering -----------------------------------------------------------------------------
    def _resolved_input_schema(self) -> dict[str, Any] | None:
        if self.input_schema_name is None:
            return self._input_schema
        found = self.registry.lookup_schema(self.input_schema_name)
        if found is None:
            raise InvalidSchema(
                f"prompt {self.key!r}: invalid input schema: schema {self.input_schema_name!r} is not defined "
                "(register it with define_schema)"
            )
        return found

    def _input(self, value: Any) -> tuple[Any, dict[str, Any]]:
        """(the input as the prompt's input type, its variables for templates).

        Raises:
            InvalidSchema: the input schema names a schema that is not registered.
            InputTypeMismatch: the input does not match the input schema.
        """
        data = to_jsonable(value) if value is not None else {}
        if self.default_input and isinstance(data, dict):
            data = {**self.default_input, **data}
        schema = self._resolved_input_schema()
        try:
            if self.input_type is not None:
                typed = convert(data, self.input_type)
                return typed, to_jsonable(typed)
            validate(data, schema)
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
            InvalidSchema: the input schema names a schema that is not registered (``define_schema``).
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
    """A prompt with typed output: ``execute`` returns ``(output, response)``, the output as ``output_type``.

    Two ways to get one, as in Go Genkit:

    - ``ai.define_data_prompt(name, output_type, ...)`` defines one: the
      output type sets the request's output schema (format ``json``), unless
      it is ``str``, whose output is the response's text;
    - :func:`as_data_prompt` / :func:`lookup_data_prompt` wrap an existing
      prompt (one loaded from a ``.prompt`` file, say) without changing what
      it renders: the prompt's own output format and schema make the model's
      output, ``output_type`` only reads it. ``wrapped`` is that prompt.

    ``output_type`` is ``str`` (the text), a pydantic model, a dataclass, any
    type pydantic validates, or a JSON schema dict (the output as plain data).
    """

    wrapped: Prompt | None = None
    "The prompt this one wraps (:func:`as_data_prompt`); None for one made by ``define_data_prompt``."

    def __init__(self, registry: ActionRegistry, name: str, output_type: Any, **options: Any) -> None:
        super().__init__(registry, name, output_type=None if output_type is str else output_type, **options)
        self.output_type = output_type

    @classmethod
    def wrap(cls, prompt: Prompt, output_type: Any) -> DataPrompt:
        """A data prompt that renders and runs exactly as ``prompt`` does, its output read as ``output_type``
        (see :func:`as_data_prompt`)."""
        if not isinstance(prompt, Prompt):
            raise InvalidArgumentError(f"as_data_prompt needs a Prompt, got {type(prompt).__name__}")
        dp = cls.__new__(cls)
        dp.__dict__.update(prompt.__dict__)  # its name, options, schemas ... (shared, as Go copies the struct)
        dp.wrapped = prompt
        dp.output_type = output_type
        return dp

    def _kwargs(self, input: Any, overrides: dict[str, Any]) -> dict[str, Any]:
        if self.wrapped is not None:  # the wrapped prompt renders (a .prompt file's template ...)
            return self.wrapped._kwargs(input, overrides)
        return super()._kwargs(input, overrides)

    def desc(self) -> ActionDesc:
        """The descriptor of the prompt (the wrapped prompt's, for one made by :func:`as_data_prompt`)."""
        return self.wrapped.desc() if self.wrapped is not None else super().desc()

    def execute(self, input: Any = None, **overrides: Any) -> tuple[Any, ModelResponse]:  # type: ignore[override]
        """Render, generate, and return ``(output as output_type, response)`` (output None without text).

        Raises:
            InvalidOutput: the output does not parse as ``output_type``.
            InputTypeMismatch, InvalidSchema: as :meth:`Prompt.render`; and what ``generate`` raises.
        """
        resp = generate(self.registry, **self._kwargs(input, overrides))
        return typed_output(resp, self.output_type), resp

    __call__ = execute  # type: ignore[assignment]  # the same deliberate override as execute's

    def stream(self, input: Any = None, **overrides: Any) -> GenerateStream:
        """A data stream (see ``Genkit.generate_data_stream``): chunk values carry ``output`` as it parses,
        the last one the final ``output`` as ``output_type`` and the ``response``."""
        return typed_stream(self.registry, self.output_type, **self._kwargs(input, overrides))


@overload
def as_data_prompt(prompt: Prompt, output_type: Any = str) -> DataPrompt: ...
@overload
def as_data_prompt(prompt: None, output_type: Any = str) -> None: ...
def as_data_prompt(prompt: Prompt | None, output_type: Any = str) -> DataPrompt | None:
    """``prompt`` with typed output (Go's ``AsDataPrompt``): a :class:`DataPrompt` whose ``execute``
    returns ``(output as output_type, response)``. None for None (a lookup that found nothing).

    What the prompt renders does not change: for structured output the prompt
    needs its own output schema (a ``.prompt`` file's ``output.schema``, or
    ``output_schema=`` / ``output_type=`` when defined); ``output_type``
    (default ``str``: the text) reads the output. The prompt stays registered
    as it was; the data prompt is not registered.

    Raises:
        InvalidArgumentError: ``prompt`` is not a prompt.
    """
    if prompt is None:
        return None
    return DataPrompt.wrap(prompt, output_type)


def lookup_data_prompt(
    registry: ActionRegistry, name: str, output_type: Any = str, *, variant: str | None = None
) -> DataPrompt | None:
    """The registered prompt ``name`` (or its ``variant``) with typed output (Go's ``LookupDataPrompt``):
    ``as_data_prompt(registry.lookup_prompt(name, variant), output_type)``, None when there is no such prompt.

    Useful for prompts loaded from ``.prompt`` files, which are plain prompts when loaded.
    """
    return as_data_prompt(registry.lookup_prompt(name, variant), output_type)
