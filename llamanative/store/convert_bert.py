"""Convert a sentence-transformers BERT checkpoint to an F16 GGUF.

The input is a folder as sentence-transformers saves it: ``config.json``
(``BertModel``), ``model.safetensors``, ``tokenizer.json`` and
``tokenizer_config.json`` (a WordPiece tokenizer), and ``modules.json`` with
its pooling module's ``config.json``. The output is what llama.cpp's
``convert_hf_to_gguf.py --outtype f16`` writes for ``BertModel``: the same
tensor names (from the ``gguf`` package's tensor-name map for
``MODEL_ARCH.BERT``), order, types, shapes and bytes; the same hyperparameter
and tokenizer keys; ``general.*`` holds only the model card fields passed in.
The output depends only on the input files: converting twice gives the same
bytes.

Every key is written explicitly with ``gguf.GGUFWriter`` rather than through
the ``gguf`` package's model-card and special-vocab readers, whose output
differs between ``gguf`` releases. Configurations this module does not know
how to convert exactly raise :class:`ConversionError`.

``gguf`` is needed only here and is imported when a conversion starts.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ConversionError", "convert"]

# What llama.cpp's converter names this tokenizer: the sha256 of the token ids
# it gives for a fixed check text matches the entry llama.cpp lists as
# "jina-v2-en" (BERT's lower-casing WordPiece). llama.cpp's WordPiece
# tokenizer does not depend on this name.
_BERT_UNCASED_PRE = "jina-v2-en"
# Keys of llama.cpp (LLM_KV_TOKENIZER_*) that not every ``gguf`` release names.
_KEY_ADD_SEP = "tokenizer.ggml.add_sep_token"
_KEY_LOWERCASE = "tokenizer.ggml.normalizer.lowercase"
_KEY_STRIP_ACCENTS = "tokenizer.ggml.normalizer.strip_accents"
# Tensors of the checkpoint that an embedding model does not use (llama.cpp drops them too).
_DROPPED = ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias")
_DROPPED_PREFIXES = ("cls.predictions", "cls.seq_relationship")
_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "I64": np.int64}


class ConversionError(ValueError):
    """The checkpoint is not one this converter turns into a GGUF exactly."""


def _gguf() -> Any:
    try:
        import gguf
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ModuleNotFoundError(
            "converting a checkpoint to GGUF needs the 'gguf' package: pip install gguf (or llamanative[test])"
        ) from exc
    return gguf


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ConversionError(f"{path.name} is missing from {path.parent}") from None


def _safetensors(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    """The tensors of a ``.safetensors`` file, in the order of its header, as float32/float16 arrays.

    The format is an 8-byte little-endian header length, a JSON header (name to
    dtype, shape and byte offsets) and the raw little-endian data. numpy
    memory-maps it directly: no further dependency, and no copy of the tensors
    that stay F32.
    """
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(info["dtype"])
        if dtype is None:
            raise ConversionError(f"{name}: tensor type {info['dtype']} is not supported")
        begin, end = info["data_offsets"]
        if not 0 <= begin <= end <= data.size:
            raise ConversionError(f"{name}: data offsets {begin}..{end} lie outside the file")
        arr = data[begin:end].view(np.dtype(dtype).newbyteorder("<")).reshape(info["shape"])
        if info["dtype"] == "BF16":  # the upper half of a float32
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        yield name, arr


def _tensor_name(name: str) -> str | None:
    """The checkpoint's name as llama.cpp's BertModel converter sees it, or None for a dropped tensor."""
    name = name.removeprefix("bert.")
    if name.endswith(".gamma"):
        name = name[: -len(".gamma")] + ".weight"
    elif name.endswith(".beta"):
        name = name[: -len(".beta")] + ".bias"
    if name in _DROPPED or name.startswith(_DROPPED_PREFIXES):
        return None
    return name


def _pooling_type(gguf: Any, model_dir: Path) -> int | None:
    modules = model_dir / "modules.json"
    if not modules.is_file():
        return None
    path = next((m["path"] for m in _read_json(modules) if m["type"].endswith("Pooling")), None)
    if path is None:
        return None
    pooling = _read_json(model_dir / path / "config.json")
    if pooling.get("pooling_mode_mean_tokens"):
        return gguf.PoolingType.MEAN
    if pooling.get("pooling_mode_cls_token"):
        return gguf.PoolingType.CLS
    if pooling.get("pooling_mode_lasttoken"):
        return gguf.PoolingType.LAST
    raise ConversionError(f"pooling {pooling} is not supported (mean, cls or last token only)")


def _check_config(config: Mapping[str, Any]) -> None:
    expected = {
        "architectures": ["BertModel"],
        "hidden_act": "gelu",
        "position_embedding_type": "absolute",
    }
    for key, value in expected.items():
        if config.get(key, value) != value:
            raise ConversionError(f"config.json: {key} = {config.get(key)!r}; only {value!r} is supported")


def _tokenizer(gguf: Any, model_dir: Path, vocab_size: int) -> dict[str, Any]:
    """The tokenizer keys llama.cpp's converter writes for a BERT WordPiece tokenizer."""
    tok = _read_json(model_dir / "tokenizer.json")
    tok_config = _read_json(model_dir / "tokenizer_config.json")
    model, normalizer = tok.get("model", {}), tok.get("normalizer") or {}
    if model.get("type") != "WordPiece" or model.get("continuing_subword_prefix", "##") != "##":
        raise ConversionError(f"tokenizer.json: model {model.get('type')!r}; only a '##' WordPiece is supported")
    if normalizer.get("type") != "BertNormalizer" or (tok.get("pre_tokenizer") or {}).get("type") != "BertPreTokenizer":
        raise ConversionError("tokenizer.json: only BERT's normalizer and pre-tokenizer are supported")

    reverse = {i: t for t, i in model["vocab"].items()}
    added = {a["id"]: a for a in tok.get("added_tokens", [])}
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            if not added[i].get("special"):
                raise ConversionError(f"added token {reverse[i]!r} is not special; only special ones are supported")
            tokens.append(reverse[i])  # a control token keeps its text
            types.append(gguf.TokenType.CONTROL)
        else:
            # The "phantom space" vocabulary: a word start gets U+2581, a continuation loses its '##'.
            t = reverse[i]
            tokens.append(t[2:] if t.startswith("##") else "\u2581" + t)
            types.append(gguf.TokenType.NORMAL)

    # Special tokens: their texts from tokenizer_config.json (BOS falls back on CLS, EOS on SEP), their
    # ids from tokenizer.json's added tokens, then config.json's *_token_id.
    def text(kind: str) -> str | None:
        entry = tok_config.get(f"{kind}_token")
        return entry.get("content") if isinstance(entry, dict) else entry

    texts = {k: text(k) for k in ("bos", "eos", "unk", "sep", "pad", "mask")}
    texts["bos"] = texts["bos"] or text("cls")
    texts["eos"] = texts["eos"] or texts["sep"]
    ids_by_text = {a["content"]: a["id"] for a in reversed(tok.get("added_tokens", []))}
    config = _read_json(model_dir / "config.json")
    special = {}
    for kind, t in texts.items():
        tid = ids_by_text.get(t) if t is not None else None
        tid = tid if tid is not None else config.get(f"{kind}_token_id")
        if isinstance(tid, int) and 0 <= tid < vocab_size:
            special[kind] = tid

    # Which special tokens tokenizing adds: BERT's template "[CLS] A [SEP]" (pair "[CLS] A [SEP] B [SEP]")
    # is BOS and EOS with no separate separator, as llama.cpp's converter reads it.
    post = tok.get("post_processor") or {}

    def template(key: str) -> list[str]:
        return [p["SpecialToken"]["id"] if "SpecialToken" in p else p["Sequence"]["id"] for p in post.get(key, [])]

    cls, sep = texts["bos"], texts["eos"]
    if (
        post.get("type") != "TemplateProcessing"
        or template("single") != [cls, "A", sep]
        or template("pair") != [cls, "A", sep, "B", sep]
    ):
        raise ConversionError("tokenizer.json: only BERT's post-processor template is supported")

    return {
        "tokens": tokens,
        "types": types,
        "special": special,
        "lowercase": normalizer.get("lowercase"),
        "strip_accents": normalizer.get("strip_accents"),
    }


def convert(model_dir: str | Path, out: str | Path, *, card: Mapping[str, str] | None = None) -> Path:
    """Write the F16 GGUF of the sentence-transformers BERT checkpoint in ``model_dir`` to ``out``.

    Args:
        model_dir: the checkpoint's folder.
        out: the GGUF file to write (replaced if it exists).
        card: model card fields written as ``general.<key>`` strings, in
            order (for example ``name``, ``organization``, ``license``).

    Raises:
        ConversionError: a file is missing, or the checkpoint has a feature
            this converter does not convert exactly.
        ModuleNotFoundError: the ``gguf`` package is not installed.
    """
    gguf = _gguf()
    model_dir, out = Path(model_dir), Path(out)
    config = _read_json(model_dir / "config.json")
    _check_config(config)
    n_layer = config["num_hidden_layers"]
    vocab = _tokenizer(gguf, model_dir, config["vocab_size"])
    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, n_layer)
    arch = gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT]
    kept_f32 = (gguf.MODEL_TENSOR.POS_EMBD, gguf.MODEL_TENSOR.TOKEN_TYPES)
    f32_matrices = {gguf.TENSOR_NAMES[t] + ".weight" for t in kept_f32}

    w = gguf.GGUFWriter(path=None, arch=arch)
    n_params = 0
    for hf_name, data in _safetensors(model_dir / "model.safetensors"):
        name = _tensor_name(hf_name)
        if name is None:
            continue
        new_name = name_map.get_name(name, try_suffixes=(".weight", ".bias"))
        if new_name is None:
            raise ConversionError(f"tensor {hf_name!r} has no GGUF name for BERT")
        # llama.cpp's type rules for --outtype f16: 1-D tensors, norms, biases and the position and
        # token-type embeddings stay F32; the other matrices become F16 (numpy rounds to nearest even).
        keep_f32 = data.ndim <= 1 or new_name.endswith("_norm.weight") or new_name in f32_matrices
        keep_f32 = keep_f32 or not new_name.endswith(".weight")
        qtype = gguf.GGMLQuantizationType.F32 if keep_f32 else gguf.GGMLQuantizationType.F16
        arr = np.ascontiguousarray(data, dtype=np.float32 if keep_f32 else np.float16)
        w.add_tensor(new_name, arr, raw_dtype=qtype)
        n_params += arr.size

    w.add_type(gguf.GGUFType.MODEL)
    # The model card, in llama.cpp's order: the size label comes before the licence.
    card = dict(card or {})
    license_ = card.pop("license", None)
    for key, value in card.items():
        w.add_string(f"general.{key}", value)
    w.add_string(gguf.Keys.General.SIZE_LABEL, gguf.size_label(n_params, 0, 0, 0))
    if license_ is not None:
        w.add_string(gguf.Keys.General.LICENSE, license_)

    w.add_block_count(n_layer)
    w.add_context_length(config["max_position_embeddings"])
    w.add_embedding_length(config["hidden_size"])
    w.add_feed_forward_length(config["intermediate_size"])
    w.add_head_count(config["num_attention_heads"])
    w.add_layer_norm_eps(config["layer_norm_eps"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_causal_attention(False)
    if (pooling := _pooling_type(gguf, model_dir)) is not None:
        w.add_pooling_type(pooling)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    w.add_token_type_count(config.get("type_vocab_size", 1))
    w.add_tokenizer_model("bert")
    w.add_tokenizer_pre(_BERT_UNCASED_PRE)
    w.add_token_list(vocab["tokens"])
    w.add_token_types(vocab["types"])
    for kind in ("bos", "eos", "unk", "sep", "pad", "mask"):
        if kind in vocab["special"]:
            getattr(w, f"add_{kind}_token_id")(vocab["special"][kind])
    w.add_add_bos_token(True)
    w.add_add_eos_token(True)
    w.add_bool(_KEY_ADD_SEP, False)
    if vocab["lowercase"] is not None:
        w.add_bool(_KEY_LOWERCASE, vocab["lowercase"])
    if vocab["strip_accents"] is not None:
        w.add_bool(_KEY_STRIP_ACCENTS, vocab["strip_accents"])

    out.parent.mkdir(parents=True, exist_ok=True)
    w.write_header_to_file(path=out)
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out
