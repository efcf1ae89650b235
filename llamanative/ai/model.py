"""Model actions: a model function behind the built-in middleware, and background models.

A model function is ``fn(request: ModelRequest, on_chunk) -> ModelResponse``,
where ``on_chunk`` is a callback for streamed :class:`ModelResponseChunk`\\ s
(None when the caller does not stream); a function of one parameter
(``fn(request)``) is accepted for models that never stream. The model returns
``toolRequest`` parts; the generate loop runs the tools.

A background model starts an :class:`Operation` and is polled with
``check``: ``generate_operation`` / ``check_model_operation``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from .errors import FailedPreconditionError, InvalidArgumentError, UnimplementedError
from .middleware import (
    ModelFn,
    StreamCallback,
    add_automatic_telemetry,
    augment_with_context,
    chain,
    simulate_system_prompt,
    validate_support,
)
from .model_types import ModelInfo, ModelRequest, ModelResponse, Operation
from .schema import SchemaValidationError, convert, schema_for, validate

__all__ = ["BackgroundModel", "Model", "new_background_model", "new_model"]

InfoArg = ModelInfo | dict[str, Any] | Callable[[], ModelInfo] | None


def _as_model_fn(fn: Callable[..., Any]) -> ModelFn:
    """``fn`` as a two-argument model function."""
    try:
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        varargs = any(p.kind == p.VAR_POSITIONAL for p in inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return fn
    if len(params) == 1 and not varargs:
        return lambda request, on_chunk: fn(request)
    return fn


class _Info:
    """A model's info, possibly computed on first use (local models read their GGUF lazily)."""

    def __init__(self, name: str, info: InfoArg) -> None:
        self._name = name
        self._info = info
        self._resolved: ModelInfo | None = None

    def get(self) -> ModelInfo:
        if self._resolved is None:
            info = self._info() if callable(self._info) else self._info
            info = ModelInfo.model_validate(info) if isinstance(info, dict) else (info or ModelInfo())
            if not info.label:
                info = info.model_copy(update={"label": self._name})
            self._resolved = info
        return self._resolved


def _normalize_config(name: str, config_schema: dict[str, Any] | None, config_type: Any) -> Callable:
    """A middleware that checks ``request.config`` against the model's config schema or converts it to its type."""

    def middleware(next_fn: ModelFn) -> ModelFn:
        def wrapped(request: ModelRequest, on_chunk: StreamCallback | None) -> ModelResponse:
            cfg = request.config
            if cfg is None or (config_schema is None and config_type is None):
                return next_fn(request, on_chunk)
            if hasattr(cfg, "model_dump") and not isinstance(cfg, config_type or ()):
                cfg = cfg.model_dump(by_alias=True, exclude_none=True)
            try:
                if config_type is not None:
                    cfg = convert(cfg, config_type)
                else:
                    validate(cfg, config_schema)
            except (ValidationError, SchemaValidationError) as exc:
                raise InvalidArgumentError(f"invalid config for model {name!r}: {exc}") from exc
            return next_fn(request.model_copy(update={"config": cfg}), on_chunk)

        return wrapped

    return middleware


class Model:
    """A model: a name, its info, and its function behind the built-in middleware.

    Make one with :func:`new_model` (pass it as ``model=``) or
    ``ai.define_model`` (registered, usable by name). Calling it
    (``model(request, on_chunk)``) runs one model call, no tool loop.
    """

    kind = "model"

    def __init__(
        self,
        name: str,
        fn: Callable[..., Any],
        *,
        info: InfoArg = None,
        config_schema: dict[str, Any] | type | None = None,
    ) -> None:
        if not name:
            raise InvalidArgumentError("a model needs a name")
        self.name = name
        self.fn: ModelFn = _as_model_fn(fn)
        self._info = _Info(name, info)
        self.config_type = config_schema if isinstance(config_schema, type) else None
        self.config_schema: dict[str, Any] | None = (
            schema_for(config_schema) if isinstance(config_schema, type) else config_schema
        )
        self._chain: ModelFn | None = None

    def __repr__(self) -> str:
        return f"Model({self.name!r})"

    @property
    def info(self) -> ModelInfo:
        """The model's label, capabilities (``supports``), versions and stage."""
        return self._info.get()

    def supports_constrained(self, has_tools: bool) -> bool:
        """Whether the model constrains output natively for a request with (or without) tools."""
        return _supports_constrained(self.info, has_tools)

    def _built(self) -> ModelFn:
        if self._chain is None:
            info = self.info
            self._chain = chain(
                [
                    _normalize_config(self.name, self.config_schema, self.config_type),
                    simulate_system_prompt(info=info),
                    augment_with_context(info=info),
                    validate_support(self.name, info),
                    add_automatic_telemetry(),
                ],
                self.fn,
            )
        return self._chain

    def generate(self, request: ModelRequest, on_chunk: StreamCallback | None = None) -> ModelResponse:
        """One model call through the built-in middleware."""
        return self._built()(request, on_chunk)

    __call__ = generate


def new_model(
    name: str, fn: Callable[..., Any], *, info: InfoArg = None, config_schema: dict[str, Any] | type | None = None
) -> Model:
    """A model that is not registered: pass it as ``model=``.

    Args:
        name: the model's name (``provider/id`` by convention).
        fn: ``fn(request, on_chunk) -> ModelResponse`` (or ``fn(request)``).
        info: a :class:`ModelInfo` (or its dict, or a function returning it).
            Unset capabilities are false: a model without
            ``supports.multiturn`` rejects tool loops.
        config_schema: a JSON schema the config is checked against, or a type
            (pydantic model, dataclass) the config is converted to.
    """
    return Model(name, fn, info=info, config_schema=config_schema)


class BackgroundModel:
    """A long-running model: ``start(request) -> Operation``, ``check(op) -> Operation``, optional ``cancel``."""

    kind = "background-model"

    def __init__(
        self,
        name: str,
        start: Callable[[ModelRequest], Operation],
        check: Callable[[Operation], Operation],
        *,
        cancel: Callable[[Operation], Operation] | None = None,
        info: InfoArg = None,
        config_schema: dict[str, Any] | type | None = None,
    ) -> None:
        if not name:
            raise InvalidArgumentError("a background model needs a name")
        if start is None or check is None:
            raise InvalidArgumentError("a background model needs start and check functions")
        self.name = name
        self._start, self._check, self._cancel = start, check, cancel
        self._info = _Info(name, info)
        self.config_type = config_schema if isinstance(config_schema, type) else None
        self.config_schema: dict[str, Any] | None = (
            schema_for(config_schema) if isinstance(config_schema, type) else config_schema
        )

    def __repr__(self) -> str:
        return f"BackgroundModel({self.name!r})"

    @property
    def key(self) -> str:
        return f"/background-model/{self.name}"

    @property
    def info(self) -> ModelInfo:
        return self._info.get()

    def supports_constrained(self, has_tools: bool) -> bool:
        return _supports_constrained(self.info, has_tools)

    def supports_cancel(self) -> bool:
        return self._cancel is not None

    def _stamp(self, op: Operation) -> Operation:
        if not isinstance(op, Operation):
            op = Operation.model_validate(op)
        if not op.action:
            op = op.model_copy(update={"action": self.key})
        return op

    def as_model_fn(self) -> ModelFn:
        """A model function that starts an operation and returns it in ``response.operation``."""

        def start(request: ModelRequest, on_chunk: StreamCallback | None) -> ModelResponse:
            op = self._stamp(self._start(request))
            return ModelResponse(operation=op, request=request)

        info = self.info
        return chain(
            [
                _normalize_config(self.name, self.config_schema, self.config_type),
                simulate_system_prompt(info=info),
                augment_with_context(info=info),
                validate_support(self.name, info),
            ],
            start,
        )

    def start(self, request: ModelRequest) -> Operation:
        """Start an operation for ``request`` (through the built-in middleware).

        Raises:
            FailedPreconditionError: the middleware returned a response without an operation.
        """
        op = self.as_model_fn()(request, None).operation
        if op is None:
            raise FailedPreconditionError(f"background model {self.name!r} did not return an operation")
        return op

    def check(self, op: Operation) -> Operation:
        """The operation's current state."""
        return self._stamp(self._check(op))

    def cancel(self, op: Operation) -> Operation:
        """Cancel the operation.

        Raises:
            UnimplementedError: the model has no cancel function.
        """
        if self._cancel is None:
            raise UnimplementedError(f"background model {self.name!r} does not support cancel")
        return self._stamp(self._cancel(op))


def new_background_model(
    name: str,
    start: Callable[[ModelRequest], Operation],
    check: Callable[[Operation], Operation],
    *,
    cancel: Callable[[Operation], Operation] | None = None,
    info: InfoArg = None,
    config_schema: dict[str, Any] | type | None = None,
) -> BackgroundModel:
    """A background model that is not registered (see :class:`BackgroundModel`)."""
    return BackgroundModel(name, start, check, cancel=cancel, info=info, config_schema=config_schema)


def _supports_constrained(info: ModelInfo, has_tools: bool) -> bool:
    """Go's rule: ``constrained`` "all", or "no-tools" for a request without tools."""
    sup = info.supports
    c = sup.constrained if sup else None
    return c not in (None, "", "none") and not (c == "no-tools" and has_tools)
