"""What a GGUF file's header says, read without loading the model (for ``list``, ``show`` and ``ps``)."""

from __future__ import annotations

import math
import os
from typing import Any

from .. import _core

# llama_ftype values (llama.h) as Ollama names them.
_FILE_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4",
}


def read_metadata(path: str | os.PathLike[str], *, arrays: bool = False) -> dict[str, Any]:
    """The header's key/values; array values are read only with ``arrays`` (else None)."""
    return _core.read_gguf_metadata(path, arrays=arrays)


def parameter_count(path: str | os.PathLike[str]) -> int:
    """Number of weights, summed over the tensor shapes of the header."""
    return sum(math.prod(shape) for _name, _offset, _size, shape in tensors(path))


def tensors(path: str | os.PathLike[str]) -> list[tuple[str, int, int, tuple[int, ...]]]:
    """The header's tensors as ``(name, offset, size_in_bytes, shape)``."""
    return _core.read_gguf_tensors(path)


def tensor_infos(path: str | os.PathLike[str]) -> list[tuple[str, str, tuple[int, ...]]]:
    """The header's tensors as ``(name, ggml type, shape)``: ``("blk.0.attn_q.weight", "Q4_K", (576, 576))``.

    The type is ggml's name in upper case, as Ollama's ``show`` writes it; the
    shape is in ggml order (the row length first), trailing dimensions of 1 left out.
    """
    types = _core.read_gguf_tensor_types(path)
    return [(name, kind, shape) for (name, _offset, _size, shape), kind in zip(tensors(path), types, strict=True)]


def file_type_name(file_type: Any) -> str:
    """Ollama's name of a ``general.file_type`` value (``"Q4_K_M"``); ``""`` for an unknown one."""
    return _FILE_TYPES.get(file_type, "")
