"""Where llama.cpp puts a model's weights: how many bytes of them are on each device (``ps``).

llama.cpp's rule (``llama_model::load_tensors``): with ``n_gpu_layers = n``
(``-1``: all, ``n_layer + 1``), the output layer and the last ``n - 1``
repeating layers (``blk.<i>.*``) go to the GPU (and RPC) devices, split in
consecutive ranges; the input layer (the token embeddings and what else is
not in a block) stays on the CPU. A model whose output reuses the token
embeddings (no ``output.weight``) gets a copy of them on the output's
device. ``Model.placement()`` says which device holds how many layers.

This counts the weights only, as ``size`` does; the KV cache and compute
buffers are not in either.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .. import _core

__all__ = ["device_bytes", "gpu_available"]

_BLOCK = re.compile(r"blk\.(\d+)\.")
_OUTPUT = frozenset({"output.weight", "output.bias", "output_norm.weight", "output_norm.bias"})
_GPU_TYPES = frozenset({"gpu", "igpu"})


def gpu_available() -> bool:
    """Whether llama.cpp can offload layers here: a GPU backend is loaded and found a device."""
    return _core.supports_gpu_offload() and any(d.get("type") in _GPU_TYPES for d in _core.devices())


def device_bytes(tensors: Iterable[tuple[str, int]], placement: list[dict]) -> dict[str, int]:
    """Bytes of the weights ``(name, size_in_bytes)`` on each device, by a model's ``placement()``.

    ``placement`` lists the devices holding layers, each with its count, in
    layer order: the CPU's first layers, then consecutive ranges, the output
    layer (the last one) on the last device. The input embeddings are on the
    CPU (which is in the result even when it holds no layer); a tied output
    has its copy on the output's device.
    """
    owners: list[str] = []
    for entry in placement:
        owners += [entry["device"]] * int(entry["layers"])
    out: dict[str, int] = {"CPU": 0}
    out.update({entry["device"]: 0 for entry in placement})
    if not owners:
        return out
    output_device = owners[-1]
    embeddings = 0
    has_output = False
    for name, size in tensors:
        block = _BLOCK.match(name)
        if block is not None:
            index = int(block.group(1))
            out[owners[min(index, len(owners) - 1)]] += size
        elif name in _OUTPUT:
            out[output_device] += size
            has_output = has_output or name == "output.weight"
        else:
            out["CPU"] += size
            if name == "token_embd.weight":
                embeddings = size
    if not has_output and output_device != "CPU":
        out[output_device] += embeddings
    return out
