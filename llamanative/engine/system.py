"""What the compiled engine reports about itself: the llama.cpp commit and the compute devices."""

from __future__ import annotations

from .. import _core

LLAMA_CPP_COMMIT: str = _core.LLAMA_CPP_COMMIT


def has_compute_device() -> bool:
    """Whether the native backends found a device to compute on (the CPU counts)."""
    return bool(_core.devices())
