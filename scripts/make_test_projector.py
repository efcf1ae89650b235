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

With ``--kind audio`` the projector is an audio one instead: Ultravox's
(``clip.projector_type`` "ultravox": a Whisper encoder, frames stacked by
ten, an RMS-normed SwiGLU projection; a type libmtmd loads, and the one of
its Whisper-encoder audio projectors that wraps its embeddings in no
tokens, so SmolLM2's vocabulary needs nothing added for it) with a tiny
encoder (128 mel bins, 2 layers of width 64), output 576 like the vision
one. libmtmd cuts audio into 30-second windows of 3,000 mel frames; each
window becomes 3,000 / 2 (the encoder's stride-2 convolution) / 10
(stacking) = 150 embeddings. ``--kind both`` writes one projector with
both encoders (``clip.vision.projector_type`` and
``clip.audio.projector_type``, as omni models' projectors do). The text
model is the same in every kind.

``--kind qwen2vl`` writes a Qwen2-VL pair instead, for M-RoPE positions:
a Qwen2-VL projector (``clip.projector_type`` "qwen2vl_merger": two patch
convolutions, a 2-D M-RoPE ViT of 2 layers of width 64, 2x2 patch merging and
a two-layer MLP into 576) with random weights, and SmolLM2-135M-Instruct as a
``qwen2vl`` text model: its weights with the query and key rows put back into
the Hugging Face order (llama.cpp's converter interleaves them for llama's
RoPE; Qwen2-VL's M-RoPE rotates halves, as the Hugging Face weights expect),
``qwen2vl.rope.dimension_sections`` [8, 12, 12, 0] (Qwen2-VL's
[16, 24, 24, 0] for its head size of 128, scaled to SmolLM2's 64), and
Qwen2-VL's vision tokens (``<|vision_start|>``, ``<|vision_end|>``,
``<|image_pad|>``) appended to the vocabulary. For text the model is
SmolLM2 (M-RoPE with one position in every section is the usual RoPE); an
image takes max(width, height) of its token grid in positions, fewer than its
tokens (the 640x488 test photo: 20x15 tokens, 20 positions).

How: ``python scripts/make_test_projector.py OUTDIR [--kind vision|audio|both|qwen2vl]
[--seed N]`` writes both files into OUTDIR (created if missing) and prints,
as its last line, ``model=<path> projector=<path>``. The bytes depend only on the seed and on
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
# The audio encoder (Whisper's layout; Ultravox's projector). libmtmd resamples
# audio to 16 kHz mono and makes 100 mel frames a second of N_MEL_BINS each;
# the encoder takes 3,000 frames (30 s) at a time and halves them (stride-2
# convolution): AUDIO_N_POS positions, then STACK_FACTOR positions are stacked
# into one embedding. STACK_FACTOR must divide AUDIO_N_POS: libmtmd counts
# ceil(3000 / STACK_FACTOR) / 2 tokens, its graph makes
# ceil(AUDIO_N_POS / STACK_FACTOR), and it aborts when the two differ.
N_MEL_BINS = 128
AUDIO_N_POS = 1500
STACK_FACTOR = 10
AUDIO_N_EMBD = 64
AUDIO_N_HEAD = 4
AUDIO_N_FF = 128
AUDIO_N_LAYER = 2
AUDIO_EPS = 1e-5
AUDIO_HIDDEN = 128  # width of the projector's SwiGLU (its first matrix makes twice this)

TEXT_MODEL = "smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct-image-tokens.Q4_1.gguf"
PROJECTOR_FILE = "mmproj-test-idefics3-F16.gguf"
PROJECTOR_FILES = {
    "vision": PROJECTOR_FILE,
    "audio": "mmproj-test-ultravox-F16.gguf",
    "both": "mmproj-test-idefics3-ultravox-F16.gguf",
}
KINDS = tuple(PROJECTOR_FILES)

# The Qwen2-VL pair (--qwen2vl). An image is resized to multiples of
# 2 x QWEN_PATCH_SIZE (one token a 2x2 patch square), within Qwen2-VL's limits
# of 8..4096 tokens.
QWEN_PATCH_SIZE = 16
QWEN_N_EMBD = 64
QWEN_N_HEAD = 2  # heads of 32: M-RoPE sections of 8
QWEN_N_FF = 128
QWEN_N_LAYER = 2
QWEN_MERGER = 256  # the hidden width of the merger MLP
QWEN_ROPE_SECTIONS = [8, 12, 12, 0]
QWEN_IMAGE_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>")
QWEN_MODEL_FILE = "SmolLM2-135M-Instruct-qwen2vl.Q4_1.gguf"
QWEN_PROJECTOR_FILE = "mmproj-test-qwen2vl-F16.gguf"


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


def audio_tensors(seed: int) -> dict[str, np.ndarray]:
    """The audio encoder's and Ultravox projector's tensors, in NumPy order, in the order of the file.

    As in :func:`projector_tensors`: matrices and convolution kernels
    float16, the position embeddings and the 1-D tensors float32.
    """
    t: dict[str, np.ndarray] = {}

    def mat(name: str, shape: tuple[int, ...], std: float) -> None:
        t[name] = uniform(seed, name, shape, std).astype(np.float16)

    def vec(name: str, n: int, std: float = 0.02, mean: float = 0.0) -> None:
        t[name] = mean + uniform(seed, name, (n,), std)

    def norm(prefix: str) -> None:
        vec(f"{prefix}.weight", AUDIO_N_EMBD, mean=1.0)
        vec(f"{prefix}.bias", AUDIO_N_EMBD)

    # conv1d kernels, ggml ne = [3, in, out] (PyTorch's [out, in, k]); the biases are [1, out] in ggml
    # (NumPy (out, 1)), so that they broadcast over the frames of the [frames, out] output.
    mat("a.conv1d.1.weight", (AUDIO_N_EMBD, N_MEL_BINS, 3), (3 * N_MEL_BINS) ** -0.5)
    t["a.conv1d.1.bias"] = uniform(seed, "a.conv1d.1.bias", (AUDIO_N_EMBD, 1), 0.02)
    mat("a.conv1d.2.weight", (AUDIO_N_EMBD, AUDIO_N_EMBD, 3), (3 * AUDIO_N_EMBD) ** -0.5)
    t["a.conv1d.2.bias"] = uniform(seed, "a.conv1d.2.bias", (AUDIO_N_EMBD, 1), 0.02)
    t["a.position_embd.weight"] = uniform(seed, "a.position_embd.weight", (AUDIO_N_POS, AUDIO_N_EMBD), 0.02)
    for il in range(AUDIO_N_LAYER):
        p = f"a.blk.{il}"
        norm(f"{p}.ln1")
        for proj in ("attn_q", "attn_k", "attn_v", "attn_out"):
            mat(f"{p}.{proj}.weight", (AUDIO_N_EMBD, AUDIO_N_EMBD), AUDIO_N_EMBD**-0.5)
            if proj != "attn_k":  # Whisper's key projection has no bias (libmtmd asserts it)
                vec(f"{p}.{proj}.bias", AUDIO_N_EMBD)
        norm(f"{p}.ln2")
        mat(f"{p}.ffn_up.weight", (AUDIO_N_FF, AUDIO_N_EMBD), AUDIO_N_EMBD**-0.5)
        vec(f"{p}.ffn_up.bias", AUDIO_N_FF)
        mat(f"{p}.ffn_down.weight", (AUDIO_N_EMBD, AUDIO_N_FF), AUDIO_N_FF**-0.5)
        vec(f"{p}.ffn_down.bias", AUDIO_N_EMBD)
    norm("a.post_ln")
    # Ultravox: RMS norm, [stacked -> 2 x hidden] matrix, SwiGLU, RMS norm, [hidden -> 576] matrix; the
    # output about as large as SmolLM2's token embeddings, as the vision projector's.
    stacked = AUDIO_N_EMBD * STACK_FACTOR
    vec("mm.a.norm_pre.weight", stacked, mean=1.0)
    mat("mm.a.mlp.1.weight", (2 * AUDIO_HIDDEN, stacked), stacked**-0.5)
    vec("mm.a.norm_mid.weight", AUDIO_HIDDEN, mean=1.0)
    mat("mm.a.mlp.2.weight", (PROJECTION_DIM, AUDIO_HIDDEN), 0.12 * AUDIO_HIDDEN**-0.5)
    return t


def write_projector(path: Path, seed: int, kind: str = "vision") -> Path:
    """Write the projector GGUF of ``kind`` (``vision``, ``audio`` or ``both``) to ``path``."""
    vision, audio = kind in ("vision", "both"), kind in ("audio", "both")
    w = gguf.GGUFWriter(path, arch="clip")
    w.add_type(gguf.GGUFType.MODEL)
    if kind == "vision":
        w.add_name("llamanative test projector (Idefics3, random weights)")
        w.add_description(f"tiny random Idefics3 vision projector for tests, seed {seed}; paired with SmolLM2-135M")
    else:
        what = "Ultravox audio" if kind == "audio" else "Idefics3 vision and Ultravox audio"
        w.add_name(f"llamanative test projector ({what}, random weights)")
        w.add_description(f"tiny random {what} projector for tests, seed {seed}; paired with SmolLM2-135M")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    if vision:
        w.add_clip_has_vision_encoder(True)
        if audio:  # two encoders: each names its own projector type
            w.add_clip_vision_projector_type(gguf.VisionProjectorType.IDEFICS3)
        else:
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
    if audio:
        w.add_clip_has_audio_encoder(True)
        if vision:
            w.add_clip_audio_projector_type(gguf.VisionProjectorType.ULTRAVOX)
        else:
            w.add_clip_projector_type(gguf.VisionProjectorType.ULTRAVOX)
        w.add_audio_num_mel_bins(N_MEL_BINS)
        w.add_audio_embedding_length(AUDIO_N_EMBD)
        w.add_audio_feed_forward_length(AUDIO_N_FF)
        w.add_audio_block_count(AUDIO_N_LAYER)
        w.add_audio_head_count(AUDIO_N_HEAD)
        w.add_audio_attention_layernorm_eps(AUDIO_EPS)
        w.add_audio_projection_dim(PROJECTION_DIM)
        w.add_audio_stack_factor(STACK_FACTOR)
    tensors = {**(projector_tensors(seed) if vision else {}), **(audio_tensors(seed) if audio else {})}
    for name, data in tensors.items():
        w.add_tensor(name, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def qwen2vl_projector_tensors(seed: int) -> dict[str, np.ndarray]:
    """The Qwen2-VL projector's tensors, NumPy order, as :func:`projector_tensors` (layer norms with
    biases, as Qwen2-VL's; no position embeddings: the tower's positions are M-RoPE)."""
    t: dict[str, np.ndarray] = {}
    e, ff = QWEN_N_EMBD, QWEN_N_FF

    def mat(name: str, shape: tuple[int, ...], std: float) -> None:
        t[name] = uniform(seed, name, shape, std).astype(np.float16)

    def norm(prefix: str) -> None:
        t[f"{prefix}.weight"] = 1.0 + uniform(seed, f"qwen2vl:{prefix}.weight", (e,), 0.02)
        t[f"{prefix}.bias"] = uniform(seed, f"qwen2vl:{prefix}.bias", (e,), 0.02)

    # two conv2d kernels (Qwen2-VL's 3-D patch convolution over a still image's two equal frames)
    for name in ("v.patch_embd.weight", "v.patch_embd.weight.1"):
        mat(name, (e, 3, QWEN_PATCH_SIZE, QWEN_PATCH_SIZE), 0.5 * (3 * QWEN_PATCH_SIZE**2) ** -0.5)
    for il in range(QWEN_N_LAYER):
        p = f"v.blk.{il}"
        norm(f"{p}.ln1")
        for proj in ("attn_q", "attn_k", "attn_v", "attn_out"):
            mat(f"{p}.{proj}.weight", (e, e), e**-0.5)
            t[f"{p}.{proj}.bias"] = uniform(seed, f"qwen2vl:{p}.{proj}.bias", (e,), 0.02)
        norm(f"{p}.ln2")
        mat(f"{p}.ffn_up.weight", (ff, e), e**-0.5)
        t[f"{p}.ffn_up.bias"] = uniform(seed, f"qwen2vl:{p}.ffn_up.bias", (ff,), 0.02)
        mat(f"{p}.ffn_down.weight", (e, ff), ff**-0.5)
        t[f"{p}.ffn_down.bias"] = uniform(seed, f"qwen2vl:{p}.ffn_down.bias", (e,), 0.02)
    norm("v.post_ln")
    # the merger: 2x2 patches (4 x QWEN_N_EMBD) -> QWEN_MERGER -> GELU -> 576, an output about as
    # large as SmolLM2's token embeddings (standard deviation 0.12)
    mat("mm.0.weight", (QWEN_MERGER, 4 * e), (4 * e) ** -0.5)
    t["mm.0.bias"] = uniform(seed, "qwen2vl:mm.0.bias", (QWEN_MERGER,), 0.02)
    mat("mm.2.weight", (PROJECTION_DIM, QWEN_MERGER), 0.1 * QWEN_MERGER**-0.5)
    t["mm.2.bias"] = uniform(seed, "qwen2vl:mm.2.bias", (PROJECTION_DIM,), 0.02)
    return t


def write_qwen2vl_projector(path: Path, seed: int) -> Path:
    """Write the Qwen2-VL projector GGUF to ``path``."""
    w = gguf.GGUFWriter(path, arch="clip")
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name("llamanative test projector (Qwen2-VL, random weights)")
    w.add_description(f"tiny random Qwen2-VL vision projector for tests, seed {seed}; paired with SmolLM2-135M")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_clip_has_vision_encoder(True)
    w.add_clip_projector_type(gguf.VisionProjectorType.QWEN2VL)
    w.add_vision_image_size(QWEN_PATCH_SIZE * 28)
    w.add_vision_patch_size(QWEN_PATCH_SIZE)
    w.add_vision_embedding_length(QWEN_N_EMBD)
    w.add_vision_feed_forward_length(QWEN_N_FF)
    w.add_vision_block_count(QWEN_N_LAYER)
    w.add_vision_head_count(QWEN_N_HEAD)
    w.add_vision_attention_layernorm_eps(EPS)
    w.add_vision_projection_dim(PROJECTION_DIM)
    w.add_vision_image_mean([0.48145466, 0.4578275, 0.40821073])  # Qwen2-VL's (CLIP's)
    w.add_vision_image_std([0.26862954, 0.26130258, 0.27577711])
    for name, data in qwen2vl_projector_tensors(seed).items():
        w.add_tensor(name, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _unpermute_rows(data: np.ndarray, n_head: int) -> np.ndarray:
    """Rows of a query or key matrix (quantized rows, as bytes) back in the Hugging Face order.

    llama.cpp's converter interleaves each head's two halves for llama's RoPE
    (rows h*d + 2j + k come from h*d + k*d/2 + j); this is its inverse. A row
    is one output value and holds whole quantization blocks, so rows move as bytes.
    """
    rows = data.shape[0]
    return data.reshape(n_head, rows // n_head // 2, 2, *data.shape[1:]).swapaxes(1, 2).reshape(data.shape)


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


def write_text_model(
    src: Path, dst: Path, seed: int, image_tokens: tuple[str, ...] = IMAGE_TOKENS, qwen2vl: bool = False
) -> Path:
    """Write ``dst``: ``src`` (SmolLM2, tied embeddings) with ``image_tokens`` appended to its vocabulary.

    ``qwen2vl``: as a ``qwen2vl`` model (see the module's docstring), its
    ``llama.*`` keys renamed and the query and key rows unpermuted.
    """
    reader = gguf.GGUFReader(src)
    src_arch = reader.get_field(gguf.Keys.General.ARCHITECTURE).contents()
    arch = "qwen2vl" if qwen2vl else src_arch
    tokens = reader.get_field(gguf.Keys.Tokenizer.LIST).contents()
    present = sorted(set(image_tokens) & set(tokens))
    if present:
        raise SystemExit(f"{src} already has image tokens {present}")
    n_vocab = len(tokens) + len(image_tokens)
    new_fields = {
        gguf.Keys.Tokenizer.LIST: [*tokens, *image_tokens],
        gguf.Keys.Tokenizer.TOKEN_TYPE: [
            *reader.get_field(gguf.Keys.Tokenizer.TOKEN_TYPE).contents(),
            *[int(gguf.TokenType.CONTROL)] * len(image_tokens),
        ],
        gguf.Keys.LLM.VOCAB_SIZE.format(arch=src_arch): n_vocab,
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
        name = field.name
        if qwen2vl and name.startswith(f"{src_arch}."):
            name = f"{arch}.{name[len(src_arch) + 1 :]}"
        writer.add_key_value(name, new_fields.get(field.name, field.contents()), kind, sub_type=sub)
    if qwen2vl:
        writer.add_rope_dimension_sections(QWEN_ROPE_SECTIONS)
    n_head = int(reader.get_field(f"{src_arch}.attention.head_count").contents())
    n_head_kv = int(reader.get_field(f"{src_arch}.attention.head_count_kv").contents())
    data = {}
    for t in reader.tensors:
        data[t.name] = t.data
        if t.name in ("token_embd.weight", "output.weight"):
            if t.tensor_type != gguf.GGMLQuantizationType.Q8_0:
                raise SystemExit(f"{src}: {t.name} is {t.tensor_type.name}, this script appends Q8_0 rows")
            n_embd = int(t.shape[0])
            data[t.name] = np.concatenate([t.data, _q8_0_rows(seed, len(image_tokens), n_embd)])
        elif qwen2vl and t.name.endswith(".attn_q.weight"):
            data[t.name] = _unpermute_rows(t.data, n_head)
        elif qwen2vl and t.name.endswith(".attn_k.weight"):
            data[t.name] = _unpermute_rows(t.data, n_head_kv)
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
    parser.add_argument(
        "--kind",
        choices=(*KINDS, "qwen2vl"),
        default="vision",
        help="the projector's encoders: vision (default), audio or both; qwen2vl: a Qwen2-VL pair (M-RoPE)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    args = parser.parse_args(argv)
    args.outdir.mkdir(parents=True, exist_ok=True)
    if args.kind == "qwen2vl":
        model = write_text_model(
            fetch_model(TEXT_MODEL), args.outdir / QWEN_MODEL_FILE, args.seed, QWEN_IMAGE_TOKENS, qwen2vl=True
        )
        projector = write_qwen2vl_projector(args.outdir / QWEN_PROJECTOR_FILE, args.seed)
    else:
        model = write_text_model(fetch_model(TEXT_MODEL), args.outdir / MODEL_FILE, args.seed)
        projector = write_projector(args.outdir / PROJECTOR_FILES[args.kind], args.seed, args.kind)
    print(f"model={model} projector={projector}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
