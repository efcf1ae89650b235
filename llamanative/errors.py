"""Exceptions raised by llamanative.

Native errors (from :mod:`llamanative._core`) derive from :class:`LlamaError`
and also from the built-in exception a caller would naturally catch
(``ValueError`` for bad input, ``RuntimeError`` for failed native calls), so
``except ValueError`` keeps working for code that does not know this module.
"""

from __future__ import annotations

__all__ = [
    "LlamaError",
    "ModelLoadError",
    "ProjectorLoadError",
    "AdapterLoadError",
    "ControlVectorLoadError",
    "MediaError",
    "ContextCreateError",
    "DecodeError",
    "NoKvSlotError",
    "DecodeAbortedError",
    "InvalidBatchError",
    "GrammarError",
    "StateError",
    "ContextBusyError",
    "BackendLoadError",
    "QuantizeError",
    "RpcConnectError",
    "RpcError",
    "RpcLostError",
]


class LlamaError(Exception):
    """Base class of every error raised by the native core."""


class ModelLoadError(LlamaError, ValueError):
    """A file exists but llama.cpp could not load it as a model.

    ``path`` is the file that was being loaded.
    """

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class ProjectorLoadError(LlamaError, ValueError):
    """A file exists but libmtmd could not load it as a projector for the model.

    Not a projector (``general.architecture`` is not ``clip``), a corrupt or
    truncated one, one made for another text model (embedding size), or one
    of a kind llamanative does not run. ``path`` is the projector file.
    """

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class AdapterLoadError(LlamaError, ValueError):
    """A file exists but cannot be used as a LoRA adapter of the model.

    Not a LoRA adapter GGUF (``general.type`` ``adapter``, ``adapter.type``
    ``lora``), one made for another architecture or whose tensors do not fit
    the model's (names or shapes), a corrupt or truncated one, or one of a
    kind llamanative does not run. ``path`` is the adapter file.
    """

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class ControlVectorLoadError(LlamaError, ValueError):
    """A file exists but cannot be used as a control vector of the model.

    Not a control vector GGUF (``direction.<layer>`` F32 tensors, as
    llama.cpp's ``cvector-generator`` writes them), one made for another
    model (another embedding length, layers the model does not have), or a
    corrupt or truncated one. ``path`` is the control vector file.
    """

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class MediaError(LlamaError, ValueError):
    """An image or audio clip that cannot be used: empty, corrupt or truncated, of a format
    libmtmd does not decode, over the pixel limit, or of a kind the projector does not take."""


class ContextCreateError(LlamaError, RuntimeError):
    """llama.cpp could not create a context (usually: not enough memory for n_ctx)."""


class DecodeError(LlamaError, RuntimeError):
    """``llama_decode``/``llama_encode`` returned a non-zero code.

    ``code`` is llama.cpp's return code, ``meaning`` its documented meaning
    (llama.h): 1 = no KV slot for the batch, 2 = aborted, -1 = invalid
    batch, < -1 = fatal error. After 2 or < -1, the ubatches processed before
    the failure stay in the context's memory: re-read
    ``Context.seq_pos_max`` before retrying.
    """

    def __init__(self, code: int, meaning: str, op: str = "decode") -> None:
        super().__init__(f"llama_{op} failed with code {code}: {meaning}")
        self.code = code
        self.meaning = meaning


class NoKvSlotError(DecodeError):
    """Return code 1: the KV cache has no room for the batch (try a smaller batch or a larger n_ctx)."""


class DecodeAbortedError(DecodeError):
    """Return code 2: the abort callback (``Context.cancel()``) stopped the decode."""


class InvalidBatchError(DecodeError, ValueError):
    """Return code -1: llama.cpp rejected the batch as invalid."""


class GrammarError(LlamaError, ValueError):
    """A GBNF grammar could not be parsed or used."""


class StateError(LlamaError, ValueError):
    """A saved context state could not be written or restored."""


class BackendLoadError(LlamaError, RuntimeError):
    """Loading the ggml backend plugins raised (on their first use: the first Model, ``backends()``...).

    The cause is chained (``__cause__``); the same error is raised at every
    later use in the process, since the plugins are loaded once. A plugin that
    merely fails to load is not this error: it is skipped and logged (see
    ``llamanative.backend_load_log()``), and a process left without a CPU
    backend gets :class:`ModelLoadError` from ``Model``.
    """


class RpcError(LlamaError, ConnectionError):
    """A llama.cpp RPC server (``llamanative rpc-server``) that a model is placed on failed.

    ``endpoint`` is the server's ``host:port`` (None when it is not known).
    """

    def __init__(self, message: str, endpoint: str | None = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint


class RpcConnectError(RpcError):
    """The RPC server cannot be used: nothing listens at the endpoint, it did not answer the handshake
    (it serves one client at a time, or is not an RPC server), it speaks another protocol version,
    or this build has no RPC backend."""


class RpcLostError(RpcError):
    """The connection to an RPC server broke during a call (the server stopped or the network failed).

    The results of that call are lost and the model placed on the server
    cannot be used any more: close it, and load it again once the server runs.
    """


class QuantizeError(LlamaError, RuntimeError):
    """llama.cpp's quantizer (``llama_model_quantize``) failed; llama.cpp logs the reason at ERROR level."""


class ContextBusyError(LlamaError, RuntimeError):
    """A Context (or Sampler) was used from two threads at once.

    A llama_context is not thread-safe; llamanative's engine gives each one a
    single owner thread. Direct users of ``_core`` get this error instead of
    memory corruption.
    """


# --- Errors of the Ollama-compatible API -------------------------------------
# ollama-python users catch ``ResponseError``; the Go spec's name is
# ``StatusError``. Every StatusError is a ResponseError, so both ``except``
# clauses work. These are plain Exceptions, as in ollama-python.

__all__ += ["AuthorizationError", "RequestError", "ResponseError", "StatusError"]

_FALLBACK_MESSAGE = "something went wrong, please see the llamanative logs for details"


class RequestError(Exception):
    """A request could not be made (ollama-python's ``RequestError``).

    ``error`` is the reason.
    """

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error

    def __reduce__(self):
        return (type(self), (self.error,))


class ResponseError(Exception):
    """An error answer to a request, with an HTTP-like status code.

    ollama-python's class and signature: ``ResponseError(error, status_code=-1)``.
    A JSON text ``{"error": "..."}`` as ``error`` is unwrapped. ``str(e)`` is
    ``"<error> (status code: <code>)"``. The library raises
    :class:`StatusError`, a subclass.
    """

    def __init__(self, error: str, status_code: int = -1) -> None:
        if isinstance(error, str) and error.startswith("{"):
            import json

            try:
                parsed = json.loads(error)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
                error = parsed["error"]
        super().__init__(error)
        self.error = error
        self.status_code = status_code

    def __str__(self) -> str:
        return f"{self.error} (status code: {self.status_code})"

    def __reduce__(self):
        return (type(self), (self.error, self.status_code))


class StatusError(ResponseError):
    """The Go spec's ``api.StatusError``: a status code, a status text and a message.

    ``status`` defaults to the HTTP status line text (``"404 Not Found"``).
    ``error`` (ollama-python's attribute) is ``error_message``, or ``status``
    when there is no message.

    >>> e = StatusError.not_found('model "x" not found, try pulling it first')
    >>> e.status_code, e.status
    (404, '404 Not Found')
    >>> str(e)
    'model "x" not found, try pulling it first (status code: 404)'
    """

    def __init__(self, status_code: int, status: str = "", error_message: str = "") -> None:
        if not status:
            from http import HTTPStatus

            try:
                status = f"{status_code} {HTTPStatus(status_code).phrase}"
            except ValueError:
                status = ""
        super().__init__(error_message or status or _FALLBACK_MESSAGE, status_code)
        self.status = status
        self.error_message = error_message

    @classmethod
    def bad_request(cls, message: str) -> StatusError:
        """A 400 error: invalid input (options, format, capabilities ...)."""
        return cls(400, error_message=message)

    @classmethod
    def not_found(cls, message: str) -> StatusError:
        """A 404 error: e.g. a model that is not in the store."""
        return cls(404, error_message=message)

    @classmethod
    def internal(cls, message: str) -> StatusError:
        """A 500 error: a failure inside the engine."""
        return cls(500, error_message=message)

    def __reduce__(self):
        return (type(self), (self.status_code, self.status, self.error_message))


class AuthorizationError(ResponseError):
    """The Go spec's ``api.AuthorizationError`` (401/403), with a sign-in URL."""

    def __init__(self, status_code: int, status: str = "", signin_url: str = "") -> None:
        super().__init__(status or _FALLBACK_MESSAGE, status_code)
        self.status = status
        self.signin_url = signin_url

    def __reduce__(self):
        return (type(self), (self.status_code, self.status, self.signin_url))
