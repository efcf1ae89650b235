"""The generate action: Genkit's utility action ``/util/generate`` (Go's and JS's ``DefineGenerateAction``).

It runs one rendered request, a :class:`GenerateActionOptions` (or its
Genkit JSON, as Genkit's Dev UI and reflection API send it), through the
tool loop of the registry it was defined in, exactly as
``Genkit.generate_with_request`` does. Every ``Genkit`` object defines it on
creation, as Genkit's ``Init`` does; look it up by its key:

>>> from llamanative.ai import Genkit
>>> ai = Genkit()
>>> action = ai.lookup_action("/util/generate")
>>> action.key, action.desc().type
('/util/generate', 'util')
>>> action.run({"model": "llamanative/smollm2:135m",
...             "messages": [{"role": "user", "content": [{"text": "Hi"}]}]})   # doctest: +SKIP

A registry made another way (a bare :class:`~llamanative.ai.actions.ActionRegistry`)
gets one with :func:`define_generate_action`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from .actions import ActionDesc, ActionRegistry, action_key
from .errors import InvalidInput
from .generate import generate_with_request
from .model_types import ModelResponse, ModelResponseChunk
from .request import GenerateActionOptions
from .schema import schema_for
from .streaming import GenerateStream, StreamValue

__all__ = ["GenerateAction", "GenerateActionInput", "define_generate_action"]

GenerateActionInput = GenerateActionOptions | Mapping[str, Any] | str | bytes
"""What the generate action takes: a :class:`GenerateActionOptions`, its Genkit JSON as a mapping
(``{"model": ..., "messages": [...], "output": {"format": "json"}}``), or that JSON as text."""


class GenerateAction:
    """Genkit's generate action: a rendered request in, a :class:`ModelResponse` out (key ``/util/generate``).

    Made by :func:`define_generate_action` (every ``Genkit`` object has one);
    it runs in the registry it was defined in, whose models, tools, formats
    and default model the request names.
    """

    kind = "util"
    name = "generate"

    def __init__(self, registry: ActionRegistry) -> None:
        self.registry = registry

    @property
    def key(self) -> str:
        """``/util/generate``."""
        return action_key(self.kind, self.name)

    def __repr__(self) -> str:
        return f"GenerateAction({self.key!r})"

    @staticmethod
    def options(value: GenerateActionInput) -> GenerateActionOptions:
        """``value`` as a :class:`GenerateActionOptions` (the JSON validated).

        Raises:
            InvalidInput: the value is not valid JSON or not a generate request.
        """
        if isinstance(value, GenerateActionOptions):
            return value
        try:
            if isinstance(value, (str, bytes)):
                return GenerateActionOptions.model_validate_json(value)
            if isinstance(value, Mapping):
                return GenerateActionOptions.model_validate(dict(value))
        except ValidationError as exc:
            raise InvalidInput(f"invalid input to action {action_key('util', 'generate')!r}: {exc}") from exc
        raise InvalidInput(
            f"invalid input to action {action_key('util', 'generate')!r}: expected GenerateActionOptions, "
            f"a mapping or JSON text, got {type(value).__name__}"
        )

    def run(
        self,
        options: GenerateActionInput,
        *,
        on_chunk: Callable[[ModelResponseChunk], None] | None = None,
        context: dict[str, Any] | None = None,
    ) -> ModelResponse:
        """Run the request through the tool loop and return the response.

        Args:
            options: the request (see :data:`GenerateActionInput`).
            on_chunk: called with each streamed chunk; raising stops the generation.
            context: request-scoped data for tools (``ToolContext.context``).

        Raises:
            InvalidInput: ``options`` is not a generate request.
            ModelNotFound, ToolNotFound, MaxTurnsExceeded, InvalidOutput ...: as ``Genkit.generate``.
        """
        return generate_with_request(self.registry, self.options(options), on_chunk=on_chunk, context=context)

    __call__ = run

    def stream(self, options: GenerateActionInput, *, context: dict[str, Any] | None = None) -> GenerateStream:
        """:meth:`run` as a stream of :class:`StreamValue` (the chunks, then the response; see
        ``Genkit.generate_stream``). The request is validated here, before anything runs.

        Raises:
            InvalidInput: ``options`` is not a generate request.
        """
        request = self.options(options)

        def run(cb: Callable[[ModelResponseChunk], None]) -> ModelResponse:
            return generate_with_request(self.registry, request, on_chunk=cb, context=context)

        return GenerateStream(
            run, lambda chunk: StreamValue(chunk=chunk), lambda resp: StreamValue(done=True, response=resp)
        )

    async def arun(
        self,
        options: GenerateActionInput,
        *,
        on_chunk: Callable[[ModelResponseChunk], None] | None = None,
        context: dict[str, Any] | None = None,
    ) -> ModelResponse:
        """:meth:`run` in a worker thread (``asyncio.to_thread``)."""
        return await asyncio.to_thread(lambda: self.run(options, on_chunk=on_chunk, context=context))

    def run_json(self, options: GenerateActionInput) -> str:
        """:meth:`run` with Genkit JSON out: the response's JSON text (Go's ``RunJSON``, for callers that
        speak JSON only)."""
        return self.run(options).to_json()

    def desc(self) -> ActionDesc:
        """The action's descriptor: type ``util``, key ``/util/generate``, the request and response schemas."""
        return ActionDesc(
            type=self.kind,
            key=self.key,
            name=self.name,
            description="Generates a model response from a rendered request, running the tool loop.",
            input_schema=_schema(GenerateActionOptions),
            output_schema=_schema(ModelResponse),
            stream_schema=_schema(ModelResponseChunk),
            metadata={},
        )


def _schema(tp: type) -> dict[str, Any] | None:
    try:
        return schema_for(tp)
    except Exception:  # a type pydantic cannot describe as JSON schema: no schema advertised
        return None


def define_generate_action(registry: ActionRegistry) -> GenerateAction:
    """Define Genkit's generate action in ``registry`` (Go's ``DefineGenerateAction``) and return it.

    The action is registered as kind ``util``, name ``generate``: ``registry.lookup_action("/util/generate")``
    finds it, and it runs requests in ``registry``. A ``Genkit`` object defines it when it is created.

    Raises:
        AlreadyExistsError: the registry already has one.
    """
    return registry.register("util", "generate", GenerateAction(registry))
