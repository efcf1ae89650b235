"""llamanative: run GGUF models inside the Python process.

The native binding lives in :mod:`llamanative._core`; exceptions in
:mod:`llamanative.errors`. Importing the package does no work beyond loading
the native module.
"""

from __future__ import annotations

import logging as _logging

from . import _core
from ._core import LLAMA_CPP_COMMIT, backends, devices, set_log_level, system_info
from .errors import LlamaError, ModelLoadError

# A library stays silent unless the application configures logging: without
# this, Python's last-resort handler would print llama.cpp's warnings.
_logging.getLogger("llamanative").addHandler(_logging.NullHandler())

__version__ = "0.1.0"

__all__ = [
    "LLAMA_CPP_COMMIT",
    "LlamaError",
    "ModelLoadError",
    "__version__",
    "backends",
    "devices",
    "set_log_level",
    "system_info",
]
