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
    reader = gguf.GGUFReader(src)
    arch = reader.get_field("general.architecture").contents()
    writer = gguf.GGUFWriter(dst, arch=arch, endianess=reader.endianess)
    alignment = reader.get_field("general.alignment")
    if alignment is not None:
        writer.data_alignment = alignment.contents()
    for field in reader.fields.values():
        # GGUF.* are the header's own fields; the architecture is written by GGUFWriter.
        if field.name.startswith("GGUF.") or field.name in ("general.architecture", _TEMPLATE_KEY):
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
    writer.add_chat_template(template)
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
