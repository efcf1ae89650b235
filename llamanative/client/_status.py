"""``ps``, ``version``, ``heartbeat``: what is loaded and whether the engine can run."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

from .. import __version__
from ..engine import system
from ..engine.scheduler import Loaded
from ..errors import StatusError
from ..store import gguf
from ..types import DevicePlacement, ProcessModelResponse, ProcessResponse, VersionResponse
from . import _details
from ._session import Session, now


def running(session: Session) -> ProcessResponse:
    """The loaded models, the latest to expire first."""
    out: list[tuple[datetime, ProcessModelResponse]] = []
    for entry in session.scheduler.loaded():
        runner = entry.runner
        expires = _expires_at(entry)
        try:
            out.append(
                (
                    expires,
                    ProcessModelResponse(
                        name=entry.name,
                        model=entry.name,
                        size=runner.model_size,
                        size_vram=runner.size_vram,
                        digest=session.store.resolve(entry.name).digest.removeprefix("sha256:"),
                        details=_details.model_details(gguf.read_metadata(runner.path), runner.n_params),
                        expires_at=expires,
                        context_length=runner.n_ctx,
                        devices=[
                            DevicePlacement(**p, size=runner.device_bytes.get(p["device"], 0)) for p in runner.placement
                        ],
                    ),
                )
            )
        except (ValueError, StatusError):
            continue  # unloaded (or deleted from the store) meanwhile
    out.sort(key=lambda pair: pair[0], reverse=True)
    return ProcessResponse(models=[m for _, m in out])


def _expires_at(entry: Loaded) -> datetime:
    """When an idle model unloads; for one in use, as Ollama estimates: now + keep_alive."""
    if entry.refs == 0 and not math.isinf(entry.expires_at):
        return datetime.fromtimestamp(entry.expires_at, timezone.utc)
    ka = entry.keep_alive_s
    forever = ka < 0 or math.isinf(ka)
    return now() + (timedelta(days=365 * 100) if forever else timedelta(seconds=ka))


def version() -> VersionResponse:
    return VersionResponse(version=__version__)


def heartbeat() -> None:
    """Raise if the engine cannot run (no compute backend found)."""
    if not system.has_compute_device():
        raise StatusError.internal("no compute device found by the native backends")
