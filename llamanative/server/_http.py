"""HTTP pieces shared by the routes: reading a JSON body, error answers, NDJSON streams.

Errors follow the API a path belongs to: Ollama's ``{"error": "..."}`` under
``/api/`` and ``/``, OpenAI's ``{"error": {"message", "type", "param",
"code"}}`` under ``/v1/`` (what the middleware answers before a route runs:
auth, body size, queue, timeout).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import numpy as np
import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from ..errors import LlamaError, ResponseError

log = logging.getLogger("llamanative.server")

NDJSON = "application/x-ndjson"
JSON = "application/json; charset=utf-8"

_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    503: "server_error",
    504: "server_error",
}


class BadRequest(Exception):
    """A request the server refuses before the Client sees it (400 unless ``status`` says otherwise)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def is_openai_path(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


def error_body(path: str, status: int, message: str, code: str | None = None) -> bytes:
    """The JSON error object for ``path``'s API."""
    if is_openai_path(path):
        err = {"message": message, "type": _OPENAI_TYPES.get(status, "server_error"), "param": None, "code": code}
        return json.dumps({"error": err}, separators=(",", ":")).encode()
    return json.dumps({"error": message}, separators=(",", ":")).encode()


def error_response(
    path: str, status: int, message: str, *, headers: Mapping[str, str] | None = None, code: str | None = None
) -> Response:
    return Response(error_body(path, status, message, code), status, headers=dict(headers or {}), media_type=JSON)


def validation_message(exc: ValidationError) -> str:
    """pydantic's first error as one line, as the Client words it (``field: message``)."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    if err.get("type") == "missing" and where:
        return f"{where} is required"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{where}: {msg}" if where else msg


def status_of(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and message for an exception raised while answering a request."""
    if isinstance(exc, BadRequest):
        return exc.status, exc.message
    if isinstance(exc, ResponseError):
        code = exc.status_code if 400 <= exc.status_code <= 599 else 500
        return code, exc.error
    if isinstance(exc, ValidationError):
        return 400, validation_message(exc)
    if isinstance(exc, (ValueError, TypeError)) and not isinstance(exc, LlamaError):
        return 400, str(exc)
    log.error("request failed", exc_info=exc)
    return 500, f"{type(exc).__name__}: {exc}"


async def read_json(request: Request) -> dict[str, Any]:
    """The request's JSON object (Ollama's 400s: a missing body, malformed JSON, not an object)."""
    raw = await request.body()
    if not raw.strip():
        raise BadRequest("missing request body")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"invalid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest(f"invalid JSON: expected an object, got {type(body).__name__}")
    return body


def json_response(value: BaseModel | Mapping[str, Any], status: int = 200) -> Response:
    """A response type's wire JSON (None and Go-omitempty zero fields left out, as Ollama omits them)."""
    if isinstance(value, BaseModel):
        text = value.model_dump_json(exclude_none=True, by_alias=True)
    else:
        text = json.dumps(value, separators=(",", ":"))
    return Response(text, status, media_type=JSON)


def _array_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):  # an array orjson cannot write as it is (not C-contiguous, not native order)
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def embeddings_json(value: Mapping[str, Any]) -> bytes:
    """An embeddings answer whose vectors are float32 arrays, as compact JSON.

    Each float32 is written as the shortest decimal that reads back as the same
    float32 (what Ollama's Go encoder writes for its ``[]float32``), not as the
    17 digits of the widened double that ``json.dumps`` of ``tolist()`` gives:
    orjson writes 1,000 MiniLM vectors in about a tenth of the time, and the
    text is about 40 % shorter, so a client parses it faster too. Only the
    embedding routes use it: the others keep ``json.dumps``' treatment of
    non-finite floats (a logprob of ``-Infinity``), which orjson would turn into
    ``null``.
    """
    return orjson.dumps(value, default=_array_default, option=orjson.OPT_SERIALIZE_NUMPY)


def ndjson_line(value: BaseModel | Mapping[str, Any]) -> bytes:
    if isinstance(value, BaseModel):
        return value.model_dump_json(exclude_none=True, by_alias=True).encode() + b"\n"
    return json.dumps(value, separators=(",", ":")).encode() + b"\n"


async def ndjson_stream(first: Any, rest: AsyncIterator[Any]) -> AsyncIterator[bytes]:
    """One JSON object a line; a failure after the first line becomes a last ``{"error": ...}`` line.

    Each line is produced only when the previous one has been handed to the
    server (``StreamingResponse`` awaits every send, and Uvicorn's send waits
    while the socket's buffer is full), so a slow reader holds the request
    back instead of piling lines up in memory; the engine then pauses the slot.
    Closing this generator (a disconnect) closes ``rest``, which cancels the
    job.
    """
    try:
        yield ndjson_line(first)
        try:
            async for item in rest:
                yield ndjson_line(item)
        except Exception as exc:  # noqa: BLE001 (the status line is gone: the error goes in the stream)
            yield ndjson_line({"error": status_of(exc)[1]})
    finally:
        aclose = getattr(rest, "aclose", None)
        if aclose is not None:
            await aclose()
