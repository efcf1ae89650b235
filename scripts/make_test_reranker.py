"""Write a tiny cross-encoder reranker GGUF for the rerank tests: MiniLM with a random classification head.

What: a copy of all-MiniLM-L6-v2 (the converted BERT embedding model that
:func:`llamanative.fetch.fetch_model` fetches as ``"minilm"``) whose
``bert.pooling_type`` is 4 (llama.cpp's ``LLAMA_POOLING_TYPE_RANK``) and which
has the classification head of a BERT sequence classifier, as llama.cpp's
converter writes a reranker's: ``cls.weight``/``cls.bias`` (a dense layer
applied to the [CLS] hidden state, then tanh) and ``cls.output.weight``/
``cls.output.bias`` (one output: the relevance score). The head's weights are
small fixed random numbers; the encoder is MiniLM's.

Why: no small reranker GGUF is published on the package registries, so the
tests build one. Its scores mean nothing, but every code path of reranking is
real (query-document pairs tokenized as ``[CLS] query [SEP] document [SEP]``,
rank pooling, one score per sequence), and llama.cpp's own ``llama-server
--rerank`` runs the same file as the reference.

How: ``python scripts/make_test_reranker.py OUTDIR [--minilm PATH] [--seed N]``
writes the file into OUTDIR (created if missing) and prints, as its last line,
``model=<path>``. The bytes depend only on the seed and on MiniLM's file: the
random numbers come from SHAKE-256, not from a NumPy generator whose stream
may change between versions.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import gguf
import numpy as np

from llamanative.fetch import fetch_model

MODEL_FILE = "all-MiniLM-L6-v2-reranker-test-F16.gguf"
POOLING_RANK = 4  # llama.cpp's LLAMA_POOLING_TYPE_RANK
# Standard deviations of the head: the dense layer keeps tanh out of saturation
# (inputs of unit scale, 384 of them), the output spreads scores over about +-1.
DENSE_STD = 0.05
OUT_STD = 0.1


def uniform(seed: int, name: str, shape: tuple[int, ...], std: float) -> np.ndarray:
    """Deterministic values, uniform with standard deviation ``std``, as float32 of ``shape``."""
    n = int(np.prod(shape))
    raw = np.frombuffer(hashlib.shake_256(f"{seed}:{name}".encode()).digest(4 * n), dtype="<u4")
    unit = raw.astype(np.float64) / 2.0**32 * 2.0 - 1.0  # [-1, 1): standard deviation 1/sqrt(3)
    return (unit * (std * 3.0**0.5)).astype(np.float32).reshape(shape)


def head_tensors(seed: int, n_embd: int) -> dict[str, np.ndarray]:
    """The classification head, in NumPy order (the reverse of ggml's ``ne``), float32."""
    return {
        "cls.weight": uniform(seed, "cls.weight", (n_embd, n_embd), DENSE_STD),
        "cls.bias": uniform(seed, "cls.bias", (n_embd,), DENSE_STD),
        "cls.output.weight": uniform(seed, "cls.output.weight", (1, n_embd), OUT_STD),
        "cls.output.bias": uniform(seed, "cls.output.bias", (1,), OUT_STD),
    }


def write_reranker(src: Path, dst: Path, seed: int) -> Path:
    """Write ``dst``: ``src`` (a BERT GGUF) with rank pooling and :func:`head_tensors` added."""
    reader = gguf.GGUFReader(src)
    arch = reader.get_field(gguf.Keys.General.ARCHITECTURE).contents()
    if arch != "bert":
        raise SystemExit(f"{src}: architecture {arch!r}, this script adds a BERT classification head")
    n_embd = int(reader.get_field(gguf.Keys.LLM.EMBEDDING_LENGTH.format(arch=arch)).contents())
    pooling_key = gguf.Keys.LLM.POOLING_TYPE.format(arch=arch)
    writer = gguf.GGUFWriter(dst, arch=arch, endianess=reader.endianess)
    alignment = reader.get_field(gguf.Keys.General.ALIGNMENT)
    if alignment is not None:
        writer.data_alignment = alignment.contents()
    for field in reader.fields.values():
        # GGUF.* are the header's own fields; the architecture is written by GGUFWriter.
        if field.name.startswith("GGUF.") or field.name in (gguf.Keys.General.ARCHITECTURE, pooling_key):
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
    writer.add_pooling_type(gguf.PoolingType(POOLING_RANK))
    head = head_tensors(seed, n_embd)
    for t in reader.tensors:
        writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
    for name, d in head.items():
        writer.add_tensor_info(name, d.shape, d.dtype, d.nbytes, gguf.GGMLQuantizationType.F32)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for t in reader.tensors:
        writer.write_tensor_data(t.data)
    for d in head.values():
        writer.write_tensor_data(d)
    writer.close()
    return dst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path, help="directory to write the reranker into")
    parser.add_argument(
        "--minilm", type=Path, default=None, help="the MiniLM GGUF to start from (default: fetch_model('minilm'))"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the head's random weights (default 0)")
    args = parser.parse_args(argv)
    args.outdir.mkdir(parents=True, exist_ok=True)
    src = args.minilm or fetch_model("minilm")
    model = write_reranker(src, args.outdir / MODEL_FILE, args.seed)
    print(f"model={model}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
