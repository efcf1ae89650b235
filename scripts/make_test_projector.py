"""Write a tiny vision projector GGUF with random weights, and the text model it pairs with, for the image tests.

What: an Idefics3 projector (SmolVLM's: a SigLIP vision tower, a pixel shuffle
and one linear layer; ``clip.projector_type`` "idefics3", a type libmtmd
loads) with a tiny tower (64x64 tiles of 8x8 patches, 2 layers of width 64)
and small random weights, whose output width is SmolLM2-135M-Instruct's
embedding size (576); and a copy of SmolLM2-135M-Instruct (the test model
that :func:`llamanative.fetch.fetch_model` fetches) whose vocabulary has
SmolVLM's image tokens appended (``<fake_token_around_image>``, ``<image>``,
``<end_of_utterance>``, ``<global-img>`` and ``<row_R_col_C>`` for R, C in
1..6), each with a random embedding row. libmtmd looks
``<fake_token_around_image>`` and ``<global-img>`` up in the text model's
vocabulary and puts a token it does not find into the prompt as -1, on which
its batch helper aborts (GGML_ASSERT), so SmolLM2 itself cannot take an
Idefics3 image; the rest of the model (weights, chat template) is SmolLM2's.

Why: no small vision GGUF is published on the package registries, so the
tests build one. It cannot describe a picture, but every code path of the
image pipeline is real (decoding, Idefics3 tiling into a 2x2 grid plus an
overview for a 4:3 photo, encoding, embeddings written into the KV
cache), and llama.cpp's own ``llama-mtmd-cli`` runs the same pair as the
reference.

How: ``python scripts/make_test_projector.py OUTDIR [--seed N]`` writes both
files into OUTDIR (created if missing) and prints, as its last line,
``model=<path> projector=<path>``. The bytes depend only on the seed and on
the fetched text model (whose sha256 is checked): the random numbers come
from SHAKE-256, not from a NumPy generator whose stream may change between
versions.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import gguf
import numpy as np

from llamanative.fetch import fetch_model

# The vision tower. Tiles are IMAGE_SIZE x IMAGE_SIZE; a tile gives
# (IMAGE_SIZE / PATCH_SIZE / SCALE_FACTOR)^2 = 16 image tokens. An image is
# first resized so that its longer side is LONGEST_EDGE, then cut into a grid of
# tiles (2x2 for a 4:3 photo), and an overview tile is added.
IMAGE_SIZE = 64
PATCH_SIZE = 8
SCALE_FACTOR = 2  # pixel shuffle: 2x2 patches merged into one token
LONGEST_EDGE = 128
N_EMBD = 64
N_HEAD = 4
N_FF = 128  # not N_EMBD: libmtmd takes an ffn_down of width N_EMBD for an up/down swap of old files
N_LAYER = 2
EPS = 1e-6
PROJECTION_DIM = 576  # SmolLM2-135M's embedding size

# SmolVLM's image tokens, appended to SmolLM2's vocabulary as control tokens.
IMAGE_TOKENS = (
    "<fake_token_around_image>",
    "<image>",
    "<end_of_utterance>",
    "<global-img>",
    *(f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)),
)
TEXT_MODEL = "smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct-image-tokens.Q4_1.gguf"
PROJECTOR_FILE = "mmproj-test-idefics3-F16.gguf"


def uniform(seed: int, name: str, shape: tuple[int, ...], std: float) -> np.ndarray:
    """Deterministic values, uniform with standard deviation ``std``, as float32 of ``shape``."""
    n = int(np.prod(shape))
    raw = np.frombuffer(hashlib.shake_256(f"{seed}:{name}".encode()).digest(4 * n), dtype="<u4")
    unit = raw.astype(np.float64) / 2.0**32 * 2.0 - 1.0  # [-1, 1): standard deviation 1/sqrt(3)
    return (unit * (std * 3.0**0.5)).astype(np.float32).reshape(shape)


def projector_tensors(seed: int) -> dict[str, np.ndarray]:
    """The projector's tensors, in NumPy order (the reverse of ggml's ``ne``), in the order of the file.

    Matrices are float16, as llama.cpp's converter writes an F16 projector;
    the patch and position embeddings (``.embeddings.`` in the HF names) and
    the 1-D tensors are float32.
    """
    n_patches = (IMAGE_SIZE // PATCH_SIZE) ** 2
    t: dict[str, np.ndarray] = {}

    def mat(name: str, shape: tuple[int, ...], std: float) -> None:
        t[name] = uniform(seed, name, shape, std).astype(np.float16)

    def norm(prefix: str) -> None:
        t[f"{prefix}.weight"] = 1.0 + uniform(seed, f"{prefix}.weight", (N_EMBD,), 0.02)
        t[f"{prefix}.bias"] = uniform(seed, f"{prefix}.bias", (N_EMBD,), 0.02)

    # conv2d kernel, ggml ne = [PATCH_SIZE, PATCH_SIZE, 3, N_EMBD] (PyTorch's [out, in, kh, kw])
    t["v.patch_embd.weight"] = uniform(seed, "v.patch_embd.weight", (N_EMBD, 3, PATCH_SIZE, PATCH_SIZE), 0.05)
    t["v.patch_embd.bias"] = uniform(seed, "v.patch_embd.bias", (N_EMBD,), 0.02)
    t["v.position_embd.weight"] = uniform(seed, "v.position_embd.weight", (n_patches, N_EMBD), 0.02)
    for il in range(N_LAYER):
        p = f"v.blk.{il}"
        norm(f"{p}.ln1")
        for proj in ("attn_q", "attn_k", "attn_v", "attn_out"):
            mat(f"{p}.{proj}.weight", (N_EMBD, N_EMBD), N_EMBD**-0.5)
            t[f"{p}.{proj}.bias"] = uniform(seed, f"{p}.{proj}.bias", (N_EMBD,), 0.02)
        norm(f"{p}.ln2")
        mat(f"{p}.ffn_up.weight", (N_FF, N_EMBD), N_EMBD**-0.5)
        t[f"{p}.ffn_up.bias"] = uniform(seed, f"{p}.ffn_up.bias", (N_FF,), 0.02)
        mat(f"{p}.ffn_down.weight", (N_EMBD, N_FF), N_FF**-0.5)
        t[f"{p}.ffn_down.bias"] = uniform(seed, f"{p}.ffn_down.bias", (N_EMBD,), 0.02)
    norm("v.post_ln")
    # pixel shuffle: SCALE_FACTOR^2 patches of N_EMBD each -> one token of PROJECTION_DIM;
    # an output about as large as SmolLM2's token embeddings (standard deviation 0.12)
    fc_in = N_EMBD * SCALE_FACTOR**2
    mat("mm.model.fc.weight", (PROJECTION_DIM, fc_in), 0.12 * fc_in**-0.5)
    return t


def write_projector(path: Path, seed: int) -> Path:
    """Write the projector GGUF to ``path``."""
    w = gguf.GGUFWriter(path, arch="clip")
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name("llamanative test projector (Idefics3, random weights)")
    w.add_description(f"tiny random Idefics3 vision projector for tests, seed {seed}; paired with SmolLM2-135M")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_clip_has_vision_encoder(True)
    w.add_clip_projector_type(gguf.VisionProjectorType.IDEFICS3)
    w.add_vision_use_gelu(True)
    w.add_vision_image_size(IMAGE_SIZE)
    w.add_vision_patch_size(PATCH_SIZE)
    w.add_vision_embedding_length(N_EMBD)
    w.add_vision_feed_forward_length(N_FF)
    w.add_vision_block_count(N_LAYER)
    w.add_vision_head_count(N_HEAD)
    w.add_vision_attention_layernorm_eps(EPS)
    w.add_vision_projection_dim(PROJECTION_DIM)
    w.add_vision_image_mean([0.5, 0.5, 0.5])
    w.add_vision_image_std([0.5, 0.5, 0.5])
    w.add_vision_projector_scale_factor(SCALE_FACTOR)
    w.add_vision_preproc_image_size(LONGEST_EDGE)
    for name, data in projector_tensors(seed).items():
        w.add_tensor(name, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _q8_0_rows(seed: int, n_rows: int, n_embd: int) -> np.ndarray:
    """``n_rows`` random Q8_0 rows of ``n_embd`` values (blocks of a float16 scale and 32 int8), as bytes.

    The scale is SmolLM2's median token-embedding block scale, the int8 values
    are uniform in [-80, 80]: rows about as large as its own (standard deviation 0.12).
    """
    block, per_block = 32, 34
    n_blocks = n_rows * n_embd // block
    digest = hashlib.shake_256(f"{seed}:token_embd.image_tokens".encode()).digest(n_blocks * block)
    raw = np.frombuffer(digest, dtype=np.uint8)
    qs = (raw.astype(np.int16) % 161 - 80).astype(np.int8).reshape(n_blocks, block)
    out = np.empty((n_blocks, per_block), dtype=np.uint8)
    out[:, :2] = np.full((n_blocks, 1), 0.0026, dtype=np.float16).view(np.uint8)
    out[:, 2:] = qs.view(np.uint8)
    return out.reshape(n_rows, n_embd // block * per_block)


def write_text_model(src: Path, dst: Path, seed: int) -> Path:
    """Write ``dst``: ``src`` (SmolLM2, tied embeddings) with :data:`IMAGE_TOKENS` appended to its vocabulary."""
    reader = gguf.GGUFReader(src)
    arch = reader.get_field(gguf.Keys.General.ARCHITECTURE).contents()
    tokens = reader.get_field(gguf.Keys.Tokenizer.LIST).contents()
    present = sorted(set(IMAGE_TOKENS) & set(tokens))
    if present:
        raise SystemExit(f"{src} already has image tokens {present}")
    n_vocab = len(tokens) + len(IMAGE_TOKENS)
    new_fields = {
        gguf.Keys.Tokenizer.LIST: [*tokens, *IMAGE_TOKENS],
        gguf.Keys.Tokenizer.TOKEN_TYPE: [
            *reader.get_field(gguf.Keys.Tokenizer.TOKEN_TYPE).contents(),
            *[int(gguf.TokenType.CONTROL)] * len(IMAGE_TOKENS),
        ],
        gguf.Keys.LLM.VOCAB_SIZE.format(arch=arch): n_vocab,
    }
    writer = gguf.GGUFWriter(dst, arch=arch, endianess=reader.endianess)
    alignment = reader.get_field(gguf.Keys.General.ALIGNMENT)
    if alignment is not None:
        writer.data_alignment = alignment.contents()
    for field in reader.fields.values():
        # GGUF.* are the header's own fields; the architecture is written by GGUFWriter.
        if field.name.startswith("GGUF.") or field.name == gguf.Keys.General.ARCHITECTURE:
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, new_fields.get(field.name, field.contents()), kind, sub_type=sub)
    data = {}
    for t in reader.tensors:
        data[t.name] = t.data
        if t.name in ("token_embd.weight", "output.weight"):
            if t.tensor_type != gguf.GGMLQuantizationType.Q8_0:
                raise SystemExit(f"{src}: {t.name} is {t.tensor_type.name}, this script appends Q8_0 rows")
            n_embd = int(t.shape[0])
            data[t.name] = np.concatenate([t.data, _q8_0_rows(seed, len(IMAGE_TOKENS), n_embd)])
    for t in reader.tensors:
        d = data[t.name]
        writer.add_tensor_info(t.name, d.shape, d.dtype, d.nbytes, t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for t in reader.tensors:
        writer.write_tensor_data(data[t.name])
    writer.close()
    return dst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path, help="directory to write the text model and the projector into")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    args = parser.parse_args(argv)
    args.outdir.mkdir(parents=True, exist_ok=True)
    model = write_text_model(fetch_model(TEXT_MODEL), args.outdir / MODEL_FILE, args.seed)
    projector = write_projector(args.outdir / PROJECTOR_FILE, args.seed)
    print(f"model={model} projector={projector}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
