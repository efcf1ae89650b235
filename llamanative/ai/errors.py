"""The errors of the ``ai`` layer: one class per status, subtypes for the named failures.

Go's ``core/status`` gives every error a status name (``INVALID_ARGUMENT``,
``NOT_FOUND``, ...) and the ``ai`` package derives specific sentinels from
them (``ErrMaxTurnsExceeded`` from ``ErrAborted`` ...), matched with
``errors.Is``. Here the same tree is a class hierarchy, so ``except`` works
at either level::

    try:
        ai.generate(...)
    except MaxTurnsExceeded:      # the specific failure
        ...
    except AbortedError:          # any ABORTED error
        ...

Every class derives from :class:`GenkitError`, whose ``status`` is the status
name and ``http_code`` the matching HTTP code.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AbortedError",
    "ActionNotFound",
    "AlreadyExistsError",
    "CancelledError",
    "FailedPreconditionError",
    "GenkitError",
    "InputTypeMismatch",
    "InternalError",
    "InvalidArgumentError",
    "InvalidInput",
    "InvalidOutput",
    "InvalidPart",
    "InvalidSchema",
    "MaxTurnsExceeded",
    "MediaTooLarge",
    "ModelNotFound",
    "NotFoundError",
    "ToolFailed",
    "ToolNotFound",
    "UnavailableError",
    "UnimplementedError",
    "UnresolvedToolRequest",
    "UnsupportedByModel",
    "UnsupportedMedia",
    "error_for_status",
]

HTTP_CODES: dict[str, int] = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
}


class GenkitError(Exception):
    """An error with a status name, as Go's ``core.Error``.

    Args:
        message: what went wrong.
        status: the status name; defaults to the class's own (``INTERNAL`` here).
        details: optional structured details.
    """

    default_status: ClassVar[str] = "INTERNAL"

    def __init__(self, message: str, *, status: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.status: str = status or self.default_status
        self.details = details

    @property
    def http_code(self) -> int:
        """The HTTP status code of ``status`` (500 for an unknown name)."""
        return HTTP_CODES.get(self.status, 500)

    def to_dict(self) -> dict[str, Any]:
        """``{"status": ..., "message": ...}`` (plus ``details`` when set), Genkit's error JSON."""
        out: dict[str, Any] = {"status": self.status, "message": self.message}
        if self.details is not None:
            out["details"] = self.details
        return out


class CancelledError(GenkitError):
    default_status = "CANCELLED"


class InvalidArgumentError(GenkitError, ValueError):
    default_status = "INVALID_ARGUMENT"


class NotFoundError(GenkitError, LookupError):
    default_status = "NOT_FOUND"


class AlreadyExistsError(GenkitError):
    default_status = "ALREADY_EXISTS"


class FailedPreconditionError(GenkitError):
    default_status = "FAILED_PRECONDITION"


class AbortedError(GenkitError):
    default_status = "ABORTED"


class UnimplementedError(GenkitError, NotImplementedError):
    default_status = "UNIMPLEMENTED"


class InternalError(GenkitError):
    default_status = "INTERNAL"


class UnavailableError(GenkitError):
    default_status = "UNAVAILABLE"


# -- the ai package's named failures (Go's ai/errors.go and core/status sentinels) --------------
class ModelNotFound(NotFoundError):
    """The named model is neither registered nor resolvable (e.g. ``llamanative/<name>``)."""


class ToolNotFound(NotFoundError):
    """A tool named by the request or by the model is not registered."""


class ActionNotFound(NotFoundError):
    """No action of that kind is registered under the name."""


class MaxTurnsExceeded(AbortedError):
    """The tool loop hit ``max_turns`` before the model gave a final answer."""


class ToolFailed(InternalError):
    """A tool raised (or its input failed its schema); ``tool_name`` names it, ``__cause__`` is the error."""

    def __init__(self, message: str, *, tool_name: str = "", **kw: Any) -> None:
        super().__init__(message, **kw)
        self.tool_name = tool_name


class InvalidOutput(InternalError):
    """The model (or an action) produced output that does not match the expected schema or format."""


class UnsupportedByModel(InvalidArgumentError):
    """The request uses a capability the model does not advertise (media, tools, system role ...)."""


class UnsupportedMedia(InvalidArgumentError):
    """A media part the model cannot read: an http(s) URL that no ``download_request_media`` fetched, a URL
    scheme it does not know, a missing file, or a content type it has no encoder for (audio, video)."""


class MediaTooLarge(InvalidArgumentError):
    """A download of ``download_request_media`` is larger than its ``max_bytes``."""


class InvalidPart(InvalidArgumentError):
    """A part is of the wrong kind for the operation (e.g. not a tool request)."""


class InputTypeMismatch(InvalidArgumentError):
    """A prompt's input could not be read as its declared input type."""


class UnresolvedToolRequest(InvalidArgumentError):
    """A resumed generation left a tool request without a response or a restart."""


class InvalidSchema(InvalidArgumentError):
    """A declared schema is not usable (e.g. ``jsonl`` output without an array-of-objects schema)."""


class InvalidInput(InvalidArgumentError):
    """A value failed validation against an action's input schema."""


_BY_STATUS: dict[str, type[GenkitError]] = {
    cls.default_status: cls
    for cls in (
        CancelledError,
        InvalidArgumentError,
        NotFoundError,
        AlreadyExistsError,
        FailedPreconditionError,
        AbortedError,
        UnimplementedError,
        InternalError,
        UnavailableError,
    )
}


def error_for_status(status: str, message: str, **kw: Any) -> GenkitError:
    """The :class:`GenkitError` subclass for a status name (``GenkitError`` itself for the others)."""
    cls = _BY_STATUS.get(status)
    return cls(message, **kw) if cls else GenkitError(message, status=status, **kw)
