"""Write a tiny LoRA adapter GGUF for SmolLM2-135M-Instruct, with random weights, for the adapter tests.

What: a LoRA adapter as llama.cpp's ``convert_lora_to_gguf.py`` writes one
(``general.type`` "adapter", ``adapter.type`` "lora", ``adapter.lora.alpha``,
``general.architecture`` the model's, and a ``<weight>.lora_a`` /
``<weight>.lora_b`` pair of F32 matrices for each weight it adapts) for the
test model that :func:`llamanative.fetch.fetch_model` fetches as
``"smollm2"``. It adapts the query and value projections and the FFN down
projection of every layer (``blk.N.attn_q``, ``blk.N.attn_v``,
``blk.N.ffn_down``) with rank 8 and alpha 16, so each weight becomes
``W + scale * 2 * B A``. ``lora_a`` is ``[n_in, rank]`` and ``lora_b``
``[rank, n_out]`` in ggml order (NumPy shapes ``(rank, n_in)`` and
``(n_out, rank)``). The entries are small fixed random numbers, large enough
that greedy output differs from the base model's at scale 1 and at scale 0.5.

``--wrong-shape`` writes an adapter that does not fit the model: the pair of
``blk.0.attn_q.weight`` takes inputs one wider than the model's embedding,
as an adapter for another model of the same architecture would.

Why: no LoRA adapter for these models is published on the package
registries, so the tests build one. It was trained on nothing, but every
code path of adapters is real (the adapter loaded by llama.cpp, set on a
context with a scale, applied in the graph), and llama.cpp's own
``llama-completion --lora`` / ``--lora-scaled`` runs the same files as the
reference.

How: ``python scripts/make_test_lora.py OUTDIR [--model PATH] [--seed N] [--name NAME] [--wrong-shape]``
writes ``NAME.gguf`` (default ``smollm2-lora-test-<seed>``) into OUTDIR
(created if missing) and prints, as its last line, ``adapter=<path>``. The
bytes depend only on the seed and on the model's tensor shapes: the random
numbers come from SHAKE-256, not from a NumPy generator whose stream may
change between versions.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import gguf
import numpy as np

from llamanative.fetch import fetch_model

RANK = 8
ALPHA = 16.0
TARGETS = ("attn_q", "attn_v", "ffn_down")
# Standard deviations of A and B: the change of a projection's output is
# about scale * alpha / rank * sqrt(n_in * rank) * A_STD * B_STD times the
# input's scale (0.2 at scale 1 for n_in = 576), against about 1 for W x.
A_STD = 0.05
B_STD = 0.04


def uniform(seed: int, name: str, shape: tuple[int, ...], std: float) -> np.ndarray:
    """Deterministic values, uniform with standard deviation ``std``, as float32 of ``shape``."""
    n = int(np.prod(shape))
    raw = np.frombuffer(hashlib.shake_256(f"{seed}:{name}".encode()).digest(4 * n), dtype="<u4")
    unit = raw.astype(np.float64) / 2.0**32 * 2.0 - 1.0  # [-1, 1): standard deviation 1/sqrt(3)
    return (unit * (std * 3.0**0.5)).astype(np.float32).reshape(shape)


def lora_tensors(model: Path, seed: int, wrong_shape: bool = False) -> tuple[str, dict[str, np.ndarray]]:
    """The model's architecture and the adapter's tensors (NumPy order, float32), by name."""
    reader = gguf.GGUFReader(model)
    arch = str(reader.get_field(gguf.Keys.General.ARCHITECTURE).contents())
    out: dict[str, np.ndarray] = {}
    for t in reader.tensors:
        parts = t.name.split(".")
        if len(parts) != 4 or parts[0] != "blk" or parts[2] not in TARGETS or parts[3] != "weight":
            continue
        n_in, n_out = (int(x) for x in t.shape[:2])  # ggml order: the row length first
        if wrong_shape and t.name == "blk.0.attn_q.weight":
            n_in += 1
        base = t.name
        out[base + ".lora_a"] = uniform(seed, base + ".lora_a", (RANK, n_in), A_STD)
        out[base + ".lora_b"] = uniform(seed, base + ".lora_b", (n_out, RANK), B_STD)
    if not out:
        raise SystemExit(f"{model}: no {', '.join(TARGETS)} weights to adapt")
    return arch, out


def write_lora(model: Path, dst: Path, seed: int, wrong_shape: bool = False) -> Path:
    """Write the adapter ``dst`` for ``model`` (see the module docstring)."""
    arch, tensors = lora_tensors(model, seed, wrong_shape)
    writer = gguf.GGUFWriter(dst, arch=arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, ALPHA)
    writer.add_name(dst.stem)
    for name, data in tensors.items():
        writer.add_tensor(name, data, raw_dtype=gguf.GGMLQuantizationType.F32)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path, help="directory to write the adapter into")
    parser.add_argument(
        "--model", type=Path, default=None, help="the model GGUF it adapts (default: fetch_model('smollm2'))"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    parser.add_argument("--name", default=None, help="file name without .gguf (default smollm2-lora-test-<seed>)")
    parser.add_argument("--wrong-shape", action="store_true", help="write an adapter whose shapes do not fit")
    args = parser.parse_args(argv)
    args.outdir.mkdir(parents=True, exist_ok=True)
    model = args.model or fetch_model("smollm2")
    name = args.name or f"smollm2-lora-test-{args.seed}{'-wrong-shape' if args.wrong_shape else ''}"
    adapter = write_lora(model, args.outdir / f"{name}.gguf", args.seed, args.wrong_shape)
    print(f"adapter={adapter}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
