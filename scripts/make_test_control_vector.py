"""Write a small control vector GGUF for SmolLM2-135M-Instruct, with random directions, for the control vector tests.

What: a control vector as llama.cpp's ``cvector-generator`` writes one
(``general.architecture`` "controlvector", ``controlvector.model_hint`` the
model's architecture, ``controlvector.layer_count`` the number of
directions, and one F32 tensor ``direction.<layer>`` of ``n_embd`` floats for
each layer 1 .. n_layer - 1) for the test model that
:func:`llamanative.fetch.fetch_model` fetches as ``"smollm2"``. llama.cpp
adds ``scale * direction.<L>`` to the output of layer ``L`` (numbered from
0). Each direction is a random vector of Euclidean norm ``--norm`` (default
8), large enough that greedy output differs from the base model's at scales
0.5 and 1 and over a part of the layers, small enough that it stays text.

``--wrong-n-embd`` writes one whose directions are one element longer than
the model's embedding, as a control vector for another model would be.

Why: no control vector for these models is published on the package
registries, so the tests build one. Its directions mean nothing, but every
code path is real (the file loaded by llama.cpp's loader, set on a context,
added in the graph), and llama.cpp's own ``llama-completion
--control-vector-scaled`` runs the same file as the reference.

How: ``python scripts/make_test_control_vector.py OUTDIR [--model PATH] [--seed N] [--norm X] [--name NAME]
[--wrong-n-embd]`` writes ``NAME.gguf`` (default ``smollm2-cvec-test-<seed>``) into OUTDIR (created if
missing) and prints, as its last line, ``control_vector=<path>``. The bytes depend only on the arguments and
on the model's shape: the random numbers come from SHAKE-256, not from a NumPy generator whose stream may
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


def direction(seed: int, layer: int, n_embd: int, norm: float) -> np.ndarray:
    """A deterministic random direction of ``n_embd`` float32 with Euclidean norm ``norm``."""
    raw = np.frombuffer(hashlib.shake_256(f"{seed}:direction.{layer}".encode()).digest(4 * n_embd), dtype="<u4")
    unit = raw.astype(np.float64) / 2.0**32 * 2.0 - 1.0  # [-1, 1)
    return (unit * (norm / np.linalg.norm(unit))).astype(np.float32)


def model_shape(model: Path) -> tuple[str, int, int]:
    """``(architecture, n_embd, n_layer)`` from the model's GGUF header."""
    reader = gguf.GGUFReader(model)
    arch = str(reader.get_field(gguf.Keys.General.ARCHITECTURE).contents())
    n_embd = int(reader.get_field(gguf.Keys.LLM.EMBEDDING_LENGTH.format(arch=arch)).contents())
    n_layer = int(reader.get_field(gguf.Keys.LLM.BLOCK_COUNT.format(arch=arch)).contents())
    return arch, n_embd, n_layer


def write_control_vector(model: Path, dst: Path, seed: int, norm: float, wrong_n_embd: bool = False) -> Path:
    """Write the control vector ``dst`` for ``model`` (see the module docstring)."""
    arch, n_embd, n_layer = model_shape(model)
    if wrong_n_embd:
        n_embd += 1
    writer = gguf.GGUFWriter(dst, arch="controlvector")
    writer.add_string("controlvector.model_hint", arch)
    writer.add_int32("controlvector.layer_count", n_layer - 1)
    for layer in range(1, n_layer):  # as cvector-generator: none for layer 0 (llama.cpp never adds one there)
        writer.add_tensor(f"direction.{layer}", direction(seed, layer, n_embd, norm))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path, help="directory to write the control vector into")
    parser.add_argument(
        "--model", type=Path, default=None, help="the model GGUF it is for (default: fetch_model('smollm2'))"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random directions (default 0)")
    parser.add_argument("--norm", type=float, default=8.0, help="Euclidean norm of each direction (default 8)")
    parser.add_argument("--name", default=None, help="file name without .gguf (default smollm2-cvec-test-<seed>)")
    parser.add_argument("--wrong-n-embd", action="store_true", help="directions one element longer than n_embd")
    args = parser.parse_args(argv)
    args.outdir.mkdir(parents=True, exist_ok=True)
    model = args.model or fetch_model("smollm2")
    name = args.name or f"smollm2-cvec-test-{args.seed}{'-wrong-n-embd' if args.wrong_n_embd else ''}"
    path = write_control_vector(model, args.outdir / f"{name}.gguf", args.seed, args.norm, args.wrong_n_embd)
    print(f"control_vector={path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
