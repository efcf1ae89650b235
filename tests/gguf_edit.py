"""Test helper: a copy of a GGUF with another chat template (through llama.cpp's own ``gguf`` package).

The test models' templates have neither tool syntax nor thinking; a copy of
SmolLM2 carrying a Qwen3-style template exercises both paths of ``common``
end to end with real weights.
"""

from __future__ import annotations

from pathlib import Path

import gguf

_TEMPLATE_KEY = "tokenizer.chat_template"


def with_chat_template(src: Path, dst: Path, template: str) -> Path:
    """Write ``dst``: ``src`` with ``tokenizer.chat_template`` replaced by ``template``."""
    return with_fields(src, dst, {_TEMPLATE_KEY: (template, gguf.GGUFValueType.STRING)})


def with_fim_tokens(src: Path, dst: Path, prefix: int, suffix: int, middle: int) -> Path:
    """Write ``dst``: ``src`` whose vocabulary names the tokens ``prefix``, ``suffix`` and ``middle`` as its
    fill-in-the-middle tokens (``tokenizer.ggml.fim_{pre,suf,mid}_token_id``, read by llama.cpp's vocab)."""
    u32 = gguf.GGUFValueType.UINT32
    ids = {"pre": prefix, "suf": suffix, "mid": middle}
    return with_fields(src, dst, {f"tokenizer.ggml.fim_{k}_token_id": (v, u32) for k, v in ids.items()})


def with_fields(src: Path, dst: Path, fields: dict[str, tuple[object, gguf.GGUFValueType]]) -> Path:
    """Write ``dst``: ``src`` (tensors byte for byte) with the metadata ``fields`` (key: (value, scalar type))
    set, replacing those ``src`` has."""
    reader = gguf.GGUFReader(src)
    arch = reader.get_field("general.architecture").contents()
    writer = gguf.GGUFWriter(dst, arch=arch, endianess=reader.endianess)
    alignment = reader.get_field("general.alignment")
    if alignment is not None:
        writer.data_alignment = alignment.contents()
    for field in reader.fields.values():
        # GGUF.* are the header's own fields; the architecture is written by GGUFWriter.
        if field.name.startswith("GGUF.") or field.name == "general.architecture" or field.name in fields:
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
    for key, (value, kind) in fields.items():
        writer.add_key_value(key, value, kind)
    for t in reader.tensors:
        writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for t in reader.tensors:
        writer.write_tensor_data(t.data)
    writer.close()
    return dst


def dequantized_f32(src: Path, dst: Path) -> Path:
    """Write ``dst``: ``src`` with every tensor stored as float32 (the same weights, dequantized).

    With float32 weights a backend's matrix products have nothing lossy left
    to do differently (no quantized activations, no fp16), so two backends
    must agree to float rounding.
    """
    reader = gguf.GGUFReader(src)
    arch = reader.get_field("general.architecture").contents()
    writer = gguf.GGUFWriter(dst, arch=arch, endianess=reader.endianess)
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name in (
            "general.architecture",
            "general.alignment",
            "general.file_type",
        ):
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    for t in reader.tensors:
        data = gguf.quants.dequantize(t.data, t.tensor_type).astype("float32")
        writer.add_tensor(t.name, data, raw_dtype=gguf.GGMLQuantizationType.F32)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dst
