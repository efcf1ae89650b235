"""What every request of a Client goes through: validation, the store, the scheduler.

A request is validated once (the request types), its model resolved in the
store (a 404 before anything loads) with the model's stored layers (system
prompt, parameters, MESSAGE lines), and then held loaded by the engine's
scheduler for as long as the request runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..engine.runner import RunnerConfig
from ..engine.scheduler import Loaded, Scheduler
from ..errors import (
    AdapterLoadError,
    ControlVectorLoadError,
    LlamaError,
    ProjectorLoadError,
    RpcError,
    StatusError,
)
from ..store import ModelStore, StoredModel
from ..types import Message, Options
from . import _details
from ._options import effective_options, keep_alive_seconds, runner_config

R = TypeVar("R", bound=BaseModel)


def validate(cls: type[R], **fields: Any) -> R:
    """Build a request type; its validation errors become 400s (as the server answers)."""
    try:
        return cls.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()))
        msg = err["msg"].removeprefix("Value error, ")
        raise StatusError.bad_request(f"{where}: {msg}" if where else msg) from exc


def now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Prepared:
    """A request resolved against the store: what to load and how."""

    stored: StoredModel
    opts: Options
    keep_alive_s: float
    system: str | None
    has_projector: bool = False
    messages: tuple[Message, ...] = ()  # the model's MESSAGE lines, prepended to each conversation

    @property
    def config(self) -> RunnerConfig:
        return dataclasses.replace(
            runner_config(self.opts),
            projector=self.stored.projector,
            adapters=tuple(self.stored.adapters),
            control_vectors=tuple(self.stored.control_vectors),
            draft=self.stored.draft,
        )


class Session:
    """The model store and the engine's scheduler of one Client.

    Args:
        models_dir: the model store (default ``LLAMANATIVE_MODELS`` or the user cache dir).
        max_loaded_models: most models loaded at once.
    """

    def __init__(self, models_dir: str | None, max_loaded_models: int | None) -> None:
        self.store = ModelStore(models_dir)
        self.scheduler = Scheduler(max_loaded_models)

    def close(self) -> None:
        self.scheduler.close()

    def prepare(self, model: str, options: Options | dict | None, keep_alive: Any) -> Prepared:
        """Resolve ``model`` (404 here, before anything loads) and merge its stored parameters with ``options``."""
        stored = self.store.resolve(model)
        _template, system, params, _license, projector = _details.stored_layers(stored)
        messages = tuple(Message.model_validate(m) for m in _details.stored_messages(stored))
        return Prepared(
            stored, effective_options(params, options), keep_alive_seconds(keep_alive), system, projector, messages
        )

    @contextmanager
    def use(self, prep: Prepared) -> Iterator[Loaded]:
        """The loaded model for a request (loading it if needed), named as the request named it."""
        with ExitStack() as stack:
            try:
                entry = stack.enter_context(self.scheduler.use(prep.stored.path, prep.config, prep.keep_alive_s))
            except ProjectorLoadError as exc:
                # The stored pair does not fit together (a projector made for another text model): the
                # request's model is at fault, not the server, and no retry helps.
                raise StatusError.bad_request(
                    f"model {prep.stored.name!r} cannot use its projector: {exc}; create it again with the "
                    f"projector made for this model"
                ) from exc
            except AdapterLoadError as exc:  # a stored adapter that does not fit the model (or no longer loads)
                raise StatusError.bad_request(f"model {prep.stored.name!r} cannot use its LoRA adapter: {exc}") from exc
            except ControlVectorLoadError as exc:  # a stored control vector that does not fit the model
                raise StatusError.bad_request(
                    f"model {prep.stored.name!r} cannot use its control vector: {exc}"
                ) from exc
            except RpcError as exc:  # an RPC server the model is placed on: down, busy or lost
                raise StatusError(502, error_message=f"failed to load model {prep.stored.name!r}: {exc}") from exc
            except (LlamaError, OSError) as exc:  # the file is not a loadable model
                raise StatusError.internal(f"failed to load model {prep.stored.name!r}: {exc}") from exc
            entry.name = prep.stored.name
            yield entry


def load_ns(entry: Loaded, t0: int) -> int:
    """The load duration to report: the model was loaded by this request when its load ended after ``t0``."""
    return entry.runner.load_duration if entry.runner.loaded_at_ns >= t0 else 0


def check_images(name: str, prep: Prepared) -> None:
    """Images need a model stored with a projector (400 otherwise, as Ollama answers)."""
    if not prep.has_projector:
        raise StatusError.bad_request(f'"{name}" does not support vision')


def check_audio(name: str, prep: Prepared) -> None:
    """Audio needs a model stored with a projector (400 otherwise, worded as for images). Whether the
    projector has an audio encoder is checked once it is loaded (``PromptPipeline``)."""
    if not prep.has_projector:
        raise StatusError.bad_request(f'"{name}" does not support audio')
