# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, embedsignature=True
# cython: auto_pickle=False, autotestdict=False
# auto_pickle: every class wraps a native object, which cannot be pickled.
# autotestdict: the docstrings hold no doctests, so no __test__ dict.
"""llamanative._core: the Cython binding of llama.cpp.

Only this module touches native pointers. Each wrapper class owns exactly one
llama.cpp object (``Model`` a llama_model, ``Context`` a llama_context,
``Batch`` a llama_batch, ``Sampler`` a sampler chain), frees it in ``close()``
(idempotent) or when collected, and keeps a reference to what it depends on
(a Context keeps its Model alive).

Every user-supplied value is checked here, before llama.cpp sees it: llama.cpp
aborts the process on some invalid inputs (a bad token id, a batch larger than
n_ubatch for an encoder, ...), and an abort cannot be caught.
"""

cimport cython
cimport numpy as cnp
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport INT32_MAX, int8_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, strlen
from libcpp cimport bool as cppbool
from libcpp.string cimport string
from libcpp.vector cimport vector

cimport chat_bridge as cb
cimport plugin_probe as pp
cimport stepper as st
cimport llama
from llama cimport llama_pos, llama_seq_id, llama_token

import logging as _logging
import os as _os
import threading as _threading

import numpy as np

from llamanative._cpus import cpu_limit as _cpu_limit
from llamanative.errors import (
    AdapterLoadError,
    BackendLoadError,
    ContextBusyError,
    ContextCreateError,
    ControlVectorLoadError,
    DecodeAbortedError,
    DecodeError,
    GrammarError,
    InvalidBatchError,
    MediaError,
    ModelLoadError,
    ProjectorLoadError,
    QuantizeError,
    RpcConnectError,
    RpcLostError,
    NoKvSlotError,
    StateError,
)

cnp.import_array()

# The upstream commit this module was built from (vendor/llama.cpp/VENDOR.md).
LLAMA_CPP_COMMIT = "0c1e57098bba43ac29e6e3b677cdceebdd22334f"

include "util.pxi"
include "log.pxi"
include "system.pxi"
include "rpc.pxi"  # RPC servers: their devices, the probe, the failure record
include "gguf.pxi"
include "quantize.pxi"
include "model.pxi"
include "vocab.pxi"
include "detokenizer.pxi"
include "batch.pxi"
include "embed.pxi"
include "context_params.pxi"
include "threadpool.pxi"
include "context_handle.pxi"  # Context, in layers: see context.pxi
include "context_decode.pxi"
include "context_outputs.pxi"
include "context_memory.pxi"
include "context_state.pxi"
include "lora.pxi"  # LoraAdapter, and the Context layer that sets adapters
include "control_vector.pxi"  # ControlVector, and the Context layer that sets one
include "context.pxi"
include "sampler.pxi"
include "chat.pxi"
include "projector.pxi"
include "stepper.pxi"
include "bench.pxi"

# Only the log callback at import; the backends are loaded on first use (system.pxi).
_install_log_callback()
