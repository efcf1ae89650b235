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
    "ContextCreateError",
    "DecodeError",
    "NoKvSlotError",
    "DecodeAbortedError",
    "InvalidBatchError",
    "GrammarError",
    "StateError",
    "ContextBusyError",
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


class ContextBusyError(LlamaError, RuntimeError):
    """A Context (or Sampler) was used from two threads at once.

    A llama_context is not thread-safe; llamanative's engine gives each one a
    single owner thread. Direct users of ``_core`` get this error instead of
    memory corruption.
    """
