"""Flash attention: the setting a model's generation context is created with.

llama.cpp's ``auto`` turns flash attention on wherever the device supports
it, the CPU included. On the CPU that is the faster choice for prompt
processing but the slower one for generation as soon as the context holds
more than a few dozen tokens: its flash-attention kernel handles one KV cell
at a time for a single query token, where the plain path multiplies
matrices, so the gap grows with the depth of the context (the llama-bench
figures are in docs/design/engine.md).

A chat spends most of its time generating, with the conversation so far in
the context, so ``auto`` here means *off* when every layer runs on the CPU,
which is also llama-cpp-python's default (``flash_attn=False``). The prices:

- memory: without flash attention a prompt chunk's attention scores are
  materialised, ``n_ctx * n_ubatch * n_head * 4`` bytes at a full context.
  Where that estimate exceeds ``SCORES_BUDGET_BYTES``, ``auto`` keeps flash
  attention on;
- near an empty context, V is stored transposed, one row per dimension as
  long as the context, and a decode reads a strided slice of each row, so a
  large context generates a little slower than a small one without flash
  attention: flash attention stays ahead for the first few dozen tokens of
  a large context.

With a GPU, ``auto`` is left to llama.cpp.

``LLAMANATIVE_FLASH_ATTENTION`` overrides the choice for every model:
``on``/``off``/``auto`` (also ``1``/``true`` and ``0``/``false``, as Ollama's
``OLLAMA_FLASH_ATTENTION``).
"""

from __future__ import annotations

import os
from typing import Literal

from .. import _core

FlashAttn = Literal["auto", "on", "off"]

ENV_VAR = "LLAMANATIVE_FLASH_ATTENTION"

# Above this estimate of the attention-score buffer, ``auto`` on the CPU keeps
# flash attention on: the memory would cost more than the speed is worth.
SCORES_BUDGET_BYTES = 1 << 30

_ALIASES: dict[str, FlashAttn] = {
    "auto": "auto",
    "on": "on",
    "off": "off",
    "1": "on",
    "true": "on",
    "0": "off",
    "false": "off",
}


def flash_attn_setting() -> FlashAttn:
    """``LLAMANATIVE_FLASH_ATTENTION`` as ``"on"``, ``"off"`` or ``"auto"`` (the default when unset or empty).

    Raises ValueError for any other value.
    """
    value = os.environ.get(ENV_VAR, "").strip().lower()
    if not value:
        return "auto"
    try:
        return _ALIASES[value]
    except KeyError:
        raise ValueError(
            f"{ENV_VAR} must be on, off or auto (or 1/true, 0/false), got {os.environ[ENV_VAR]!r}"
        ) from None


def scores_bytes(n_ctx: int, n_ubatch: int, n_head: int) -> int:
    """Bytes of one layer's attention scores for a full ubatch at a full context, without flash attention."""
    return n_ctx * n_ubatch * n_head * 4


def resolve_flash_attn(setting: FlashAttn, *, on_cpu: bool, n_ctx: int, n_ubatch: int, n_head: int) -> FlashAttn:
    """The ``flash_attn`` value to create a generation context with.

    ``setting`` is ``"on"``, ``"off"`` or ``"auto"``; ``on_cpu`` is true when no
    layer is offloaded to a GPU. ``"on"`` and ``"off"`` are returned as given.
    ``"auto"`` becomes ``"off"`` on the CPU (see the module docstring) unless
    the score buffer would exceed ``SCORES_BUDGET_BYTES``, and stays
    ``"auto"`` (llama.cpp decides) otherwise.
    """
    if setting != "auto" or not on_cpu:
        return setting
    return "off" if scores_bytes(n_ctx, n_ubatch, n_head) <= SCORES_BUDGET_BYTES else "on"


def generation_flash_attn(
    model: _core.Model, *, n_ctx: int, n_ubatch: int, setting: FlashAttn | None = None
) -> FlashAttn:
    """The ``flash_attn`` a Runner creates ``model``'s generation context with.

    ``setting`` defaults to ``LLAMANATIVE_FLASH_ATTENTION`` (see
    :func:`flash_attn_setting`); the model is on the CPU when every layer
    is on this machine's CPU (``Model.placement()``: no GPU layer, no RPC
    server, whose devices llama.cpp treats as GPUs).
    """
    if model.n_layer <= 0:
        raise ValueError("a vocab_only model has no attention layers to decide for")
    on_cpu = all(p["backend"] == "CPU" for p in model.placement())
    return resolve_flash_attn(
        flash_attn_setting() if setting is None else setting,
        on_cpu=on_cpu,
        n_ctx=n_ctx,
        n_ubatch=n_ubatch,
        n_head=model.n_head,
    )
