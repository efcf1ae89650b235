"""A GGUF header as Python values, and back to bytes: what the GGUF harness mutates.

Only the header is modelled (magic, version, counts, key/values, tensor
infos); the tensor data is not read. Encoded fields are cached, so a header
with a few changed fields is written again without re-encoding the token
arrays of a 262k-token vocabulary.

Layout (little endian, GGUF v2/v3): ``b"GGUF"``, version u32, n_tensors u64,
n_kv u64, then n_kv key/values (key: u64 length + bytes, type u32, value),
then n_tensors tensor infos (name, n_dims u32, n_dims × u64 dims, ggml type
u32, offset u64), padding to ``general.alignment`` (32), then the data.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAGIC = b"GGUF"
# GGUF value types (gguf.h).
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
SCALAR_FORMATS = {
    U8: "<B",
    I8: "<b",
    U16: "<H",
    I16: "<h",
    U32: "<I",
    I32: "<i",
    F32: "<f",
    BOOL: "<?",
    U64: "<Q",
    I64: "<q",
    F64: "<d",
}
INT_TYPES = (U8, I8, U16, I16, U32, I32, U64, I64)
DEFAULT_ALIGNMENT = 32


def _string(data: bytes) -> bytes:
    return struct.pack("<Q", len(data)) + data


def encode_value(kind: int, value: Any) -> bytes:
    """The bytes of one value of GGUF type ``kind`` (an array value is ``(element type, [values])``)."""
    if kind == STRING:
        return _string(value)
    if kind == ARRAY:
        sub, items = value
        if sub in SCALAR_FORMATS:
            fmt = SCALAR_FORMATS[sub]
            body = struct.pack(f"<{len(items)}{fmt[1]}", *items)
        else:
            body = b"".join(encode_value(sub, v) for v in items)
        return struct.pack("<IQ", sub, len(items)) + body
    return struct.pack(SCALAR_FORMATS[kind], value)


@dataclass
class KV:
    """One key/value. ``raw`` (the encoded type + value) replaces the encoding of ``kind``/``value`` when set."""

    key: bytes
    kind: int
    value: Any
    raw: bytes | None = None

    def encode(self) -> bytes:
        if self.raw is None:
            self.raw = struct.pack("<I", self.kind) + encode_value(self.kind, self.value)
        return _string(self.key) + self.raw


@dataclass
class TensorInfo:
    name: bytes
    dims: list[int]
    ggml_type: int
    offset: int

    def encode(self) -> bytes:
        return (
            _string(self.name)
            + struct.pack(f"<I{len(self.dims)}Q", len(self.dims), *self.dims)
            + struct.pack("<IQ", self.ggml_type, self.offset)
        )


@dataclass
class Header:
    version: int
    kvs: list[KV]
    tensors: list[TensorInfo]
    data_size: int  # bytes of tensor data after the header in the original file
    n_kv: int | None = None  # written instead of len(kvs) when set
    n_tensors: int | None = None
    _encoded: dict[int, bytes] = field(default_factory=dict, repr=False)

    def get(self, key: bytes) -> KV | None:
        return next((kv for kv in self.kvs if kv.key == key), None)

    def alignment(self) -> int:
        kv = self.get(b"general.alignment")
        if kv is not None and kv.kind in INT_TYPES and isinstance(kv.value, int) and kv.value > 0:
            return kv.value
        return DEFAULT_ALIGNMENT

    def encode(self) -> bytes:
        """The header, padded to the alignment (the start of the tensor data)."""
        parts = [
            MAGIC,
            struct.pack(
                "<IQQ",
                self.version & 0xFFFFFFFF,
                _u64(self.n_tensors, len(self.tensors)),
                _u64(self.n_kv, len(self.kvs)),
            ),
        ]
        parts += [kv.encode() for kv in self.kvs]
        parts += [t.encode() for t in self.tensors]
        out = b"".join(parts)
        align = min(self.alignment(), 1 << 16)
        return out + b"\0" * (-len(out) % align)

    def copy(self) -> Header:
        """A copy whose lists (not their unchanged items) can be edited."""
        return Header(self.version, list(self.kvs), list(self.tensors), self.data_size, self.n_kv, self.n_tensors)


def _u64(value: int | None, default: int) -> int:
    return (default if value is None else value) & 0xFFFFFFFFFFFFFFFF


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> Any:
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return values[0] if len(values) == 1 else values

    def many(self, n: int, code: str) -> list:
        fmt = f"<{n}{code}"
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return list(values)

    def string(self) -> bytes:
        n = self.take("<Q")
        s = self.data[self.pos : self.pos + n]
        self.pos += n
        return s

    def value(self, kind: int) -> Any:
        if kind == STRING:
            return self.string()
        if kind == ARRAY:
            sub, n = self.take("<IQ")
            if sub in SCALAR_FORMATS:
                return sub, self.many(n, SCALAR_FORMATS[sub][1])
            return sub, [self.value(sub) for _ in range(n)]
        return self.take(SCALAR_FORMATS[kind])


def read_header(path: str | Path) -> Header:
    """The header of a well-formed GGUF file (the test models)."""
    path = Path(path)
    with open(path, "rb") as f:
        data = f.read(64 << 20)  # every test model's header is far smaller
    r = _Reader(data)
    if data[:4] != MAGIC:
        raise ValueError(f"{path} is not a GGUF file")
    r.pos = 4
    version, n_tensors, n_kv = r.take("<IQQ")
    kvs = []
    for _ in range(n_kv):
        key = r.string()
        kind = r.take("<I")
        start = r.pos - 4
        value = r.value(kind)
        kvs.append(KV(key, kind, value, raw=data[start : r.pos]))
    tensors = []
    for _ in range(n_tensors):
        name = r.string()
        n_dims = r.take("<I")
        dims = r.many(n_dims, "Q")
        ggml_type, offset = r.take("<IQ")
        tensors.append(TensorInfo(name, dims, ggml_type, offset))
    header = Header(version, kvs, tensors, 0)
    start = len(header.encode())
    header.data_size = max(0, path.stat().st_size - start)
    return header


def write_file(path: str | Path, header_bytes: bytes, data_size: int, cut: int | None = None) -> None:
    """``header_bytes`` followed by ``data_size`` zero bytes (a sparse hole), or the first ``cut`` bytes of that."""
    total = len(header_bytes) + data_size
    with open(path, "wb") as f:
        f.write(header_bytes[:cut] if cut is not None else header_bytes)
        f.truncate(total if cut is None else min(cut, total))
