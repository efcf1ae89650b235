"""Where llama.cpp puts a model's weights: how many bytes of them are on a GPU (``ps``'s ``size_vram``).

llama.cpp's rule (``llama_model::load_tensors``): with ``n_gpu_layers = n``
(``-1``: all, ``n_layer + 1``), the output layer and the last ``n - 1``
repeating layers (``blk.<i>.*``) go to the GPU devices; the input layer
(the token embeddings and what else is not in a block) stays on the CPU.
A model whose output reuses the token embeddings (no ``output.weight``) gets
a copy of them on the output's device. Without a GPU device nothing is
offloaded, whatever ``n_gpu_layers`` says.

This counts the weights only, as ``size`` does; the KV cache and compute
buffers are not in either.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .. import _core

__all__ = ["gpu_available", "offloaded_bytes"]

_BLOCK = re.compile(r"blk\.(\d+)\.")
_OUTPUT = frozenset({"output.weight", "output.bias", "output_norm.weight", "output_norm.bias"})
_GPU_TYPES = frozenset({"gpu", "igpu"})


def gpu_available() -> bool:
    """Whether llama.cpp can offload layers here: a GPU backend is loaded and found a device."""
    return _core.supports_gpu_offload() and any(d.get("type") in _GPU_TYPES for d in _core.devices())


def offloaded_bytes(tensors: Iterable[tuple[str, int]], n_layer: int, n_gpu_layers: int, *, gpu: bool) -> int:
    """Bytes of the tensors ``(name, size_in_bytes)`` that llama.cpp places on a GPU (0 when ``gpu`` is False).

    ``n_layer`` is the model's block count; ``n_gpu_layers`` the load setting
    (``-1`` or more than ``n_layer``: all of them and the output layer).
    """
    if not gpu or n_gpu_layers == 0:
        return 0
    n = n_layer + 1 if n_gpu_layers < 0 else min(n_gpu_layers, n_layer + 1)
    first_block = n_layer + 1 - n  # llama.cpp's i_gpu_start: blocks from here on, then the output layer
    total = 0
    embeddings = 0
    has_output = False
    for name, size in tensors:
        block = _BLOCK.match(name)
        if block is not None:
            total += size if int(block.group(1)) >= first_block else 0
        elif name in _OUTPUT:
            total += size
            has_output = has_output or name == "output.weight"
        elif name == "token_embd.weight":
            embeddings = size
    return total + (0 if has_output else embeddings)  # a tied output: its copy of the embeddings
