"""GGUF parsing: ``read_gguf_metadata``, ``read_gguf_tensors`` and ``Model(path, vocab_only=True)``.

Each input is a small program that edits the header of one of the test
models (SmolLM2: BPE, Gemma 3: SPM with 262k tokens, MiniLM: WPM) and writes
the result, with the tensor data as a sparse hole of the original size, to a
temporary file: structural edits (a value, a type, an array's element type
or declared length, a string's declared length, a key, the header's counts
and version, a tensor's dimensions, type and offset, a vocabulary cut to a
few tokens, removed and repeated keys), then raw byte overwrites and a cut
of the file anywhere. The file is read by all three; a model that loads is
then used as a user would (its properties, metadata, tokenizing, pieces,
chat template).

Contract: every call gives a result or a typed error (``ModelLoadError``,
``ValueError``, ...); a model that loads has a readable header; nothing
aborts, hangs or raises anything else.
"""

from __future__ import annotations

import logging
import math
import os
import struct
import tempfile
from pathlib import Path

import atheris
from contract import call, check
from gguf_header import (
    ARRAY,
    BOOL,
    F32,
    F64,
    I32,
    INT_TYPES,
    KV,
    STRING,
    U32,
    Header,
    TensorInfo,
    read_header,
    write_file,
)
from models import model_path

from llamanative import _core

TARGETS = ["llamanative/store/gguf.py"]
MODELS = ["smollm2", "gemma3", "minilm"]

_INTS = [
    0,
    1,
    2,
    3,
    7,
    8,
    31,
    32,
    33,
    64,
    127,
    128,
    255,
    256,
    1024,
    4096,
    32767,
    65535,
    65536,
    2**31 - 1,
    2**31,
    2**32 - 1,
    2**32,
    2**62,
    2**63 - 1,
    2**64 - 1,
    -1,
    -2,
]
_FLOATS = [0.0, -0.0, 1.0, -1.0, 1e-30, 1e38, math.inf, -math.inf, math.nan]
_KEYS = [
    b"general.architecture",
    b"general.alignment",
    b"general.name",
    b"general.file_type",
    b"tokenizer.ggml.model",
    b"tokenizer.ggml.pre",
    b"tokenizer.ggml.tokens",
    b"tokenizer.ggml.scores",
    b"tokenizer.ggml.token_type",
    b"tokenizer.ggml.merges",
    b"tokenizer.ggml.bos_token_id",
    b"tokenizer.ggml.eos_token_id",
    b"tokenizer.ggml.eot_token_id",
    b"tokenizer.ggml.eom_token_id",
    b"tokenizer.ggml.unknown_token_id",
    b"tokenizer.ggml.seperator_token_id",
    b"tokenizer.ggml.padding_token_id",
    b"tokenizer.ggml.cls_token_id",
    b"tokenizer.ggml.mask_token_id",
    b"tokenizer.ggml.fim_pre_token_id",
    b"tokenizer.ggml.fim_suf_token_id",
    b"tokenizer.ggml.fim_mid_token_id",
    b"tokenizer.ggml.fim_pad_token_id",
    b"tokenizer.ggml.add_bos_token",
    b"tokenizer.ggml.add_eos_token",
    b"tokenizer.ggml.add_sep_token",
    b"tokenizer.ggml.add_space_prefix",
    b"tokenizer.ggml.remove_extra_whitespaces",
    b"tokenizer.ggml.precompiled_charsmap",
    b"tokenizer.ggml.token_type_count",
    b"tokenizer.ggml.suppress_tokens",
    b"tokenizer.ggml.normalizer.lowercase",
    b"tokenizer.chat_template",
    b"tokenizer.chat_template.tool_use",
    b"tokenizer.rwkv.world",
    b"tokenizer.huggingface.json",
    b"%s.context_length",
    b"%s.embedding_length",
    b"%s.block_count",
    b"%s.vocab_size",
    b"%s.attention.head_count",
    b"%s.attention.head_count_kv",
    b"%s.pooling_type",
    b"%s.attention.causal",
]
_STRINGS = [
    b"",
    b"llama",
    b"gpt2",
    b"bert",
    b"t5",
    b"rwkv",
    b"plamo2",
    b"gemma4",
    b"none",
    b"no_vocab",
    b"test",
    b"whitespace",
    b"hybriddna",
    b"default",
    b"smollm",
    b"llama-bpe",
    b"qwen2",
    b"gemma3",
    b"bert-bge",
    b"<0x0A>",
    b"\n",
    b"\xff\xfe",
    b"\xc3",
    b"\x00",
    b"a b",
    b"a  b",
    b" ",
    b"{{ messages }}",
    b"{% for m in messages %}{{ m.content }}{% endfor %}",
    b"A" * 300,
]

# What the inputs came to (reported by the corpus replay of run.py --coverage).
STATS = {"inputs": 0, "header read": 0, "model loaded": 0, "model refused": 0}
_tmpdir: Path | None = None
_headers: dict[str, Header] = {}


def setup() -> None:
    global _tmpdir
    _core.set_log_level("CRITICAL")
    logging.getLogger("llamanative.native").addHandler(logging.NullHandler())
    logging.getLogger("llamanative.native").propagate = False
    shm = "/dev/shm"  # tmpfs on Linux: the sparse hole costs no disk
    _tmpdir = Path(tempfile.mkdtemp(prefix="fuzz-gguf-", dir=shm if os.path.isdir(shm) else None))
    for name in MODELS:
        _headers[name] = read_header(model_path(name))


def _int(fdp: atheris.FuzzedDataProvider, n_vocab: int) -> int:
    choice = fdp.ConsumeIntInRange(0, 3)
    if choice == 0:
        return fdp.PickValueInList([n_vocab - 1, n_vocab, n_vocab + 1])
    if choice == 1:
        return fdp.ConsumeIntInRange(-(2**63), 2**64 - 1)
    return fdp.PickValueInList(_INTS)


def _fit(kind: int, value: int) -> int:
    """``value`` wrapped into the range of the integer type ``kind``."""
    bits = {0: 8, 1: 8, 2: 16, 3: 16, 4: 32, 5: 32, 10: 64, 11: 64}[kind]
    value &= (1 << bits) - 1
    if kind in (1, 3, 5, 11) and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value


def _bytes(fdp: atheris.FuzzedDataProvider) -> bytes:
    if fdp.ConsumeBool():
        return fdp.PickValueInList(_STRINGS)
    return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 64))


def _key(fdp: atheris.FuzzedDataProvider, arch: bytes) -> bytes:
    key = fdp.PickValueInList(_KEYS)
    return key.replace(b"%s", arch) if b"%s" in key else key


def _pick_kv(fdp: atheris.FuzzedDataProvider, h: Header, arch: bytes) -> int | None:
    """Index of a key/value: a named one when present, else any."""
    if not h.kvs:
        return None
    if fdp.ConsumeBool():
        key = _key(fdp, arch)
        for i, kv in enumerate(h.kvs):
            if kv.key == key:
                return i
    return fdp.ConsumeIntInRange(0, len(h.kvs) - 1)


def _shrink_vocab(h: Header, n: int, n_merges: int) -> None:
    for i, kv in enumerate(h.kvs):
        if kv.kind != ARRAY:
            continue
        if kv.key in (b"tokenizer.ggml.tokens", b"tokenizer.ggml.scores", b"tokenizer.ggml.token_type"):
            h.kvs[i] = KV(kv.key, ARRAY, (kv.value[0], kv.value[1][:n]))
        elif kv.key == b"tokenizer.ggml.merges":
            h.kvs[i] = KV(kv.key, ARRAY, (kv.value[0], kv.value[1][:n_merges]))


def _edit(fdp: atheris.FuzzedDataProvider, h: Header, arch: bytes, n_vocab: int) -> None:
    """One structural edit of ``h`` (its lists are copies; items are replaced, never changed in place)."""
    op = fdp.ConsumeIntInRange(0, 16)
    i = _pick_kv(fdp, h, arch)
    kv = h.kvs[i] if i is not None else None
    if op == 0 and kv is not None:  # an integer value, in the field's own type (or a new int field)
        kind = kv.kind if kv.kind in INT_TYPES else fdp.PickValueInList([U32, I32])
        h.kvs[i] = KV(kv.key, kind, _fit(kind, _int(fdp, n_vocab)))
    elif op == 1 and kv is not None:  # the type id, with the old value's bytes
        kind = fdp.PickValueInList([*range(13), 13, 255, 2**32 - 1])
        h.kvs[i] = KV(kv.key, kind, None, raw=struct.pack("<I", kind) + kv.encode()[8 + len(kv.key) + 4 :])
    elif op == 2 and kv is not None:  # a string value
        h.kvs[i] = KV(kv.key, STRING, _bytes(fdp))
    elif op == 3 and kv is not None and kv.kind == ARRAY and kv.value is not None and kv.value[1]:
        sub, items = kv.value
        items = list(items)
        j = fdp.ConsumeIntInRange(0, len(items) - 1)
        if sub == STRING:
            items[j] = _bytes(fdp)
        elif sub in (F32, F64):
            items[j] = fdp.PickValueInList(_FLOATS)
        elif sub == BOOL:
            items[j] = fdp.ConsumeBool()
        elif sub in INT_TYPES:
            items[j] = _fit(sub, _int(fdp, n_vocab))
        h.kvs[i] = KV(kv.key, ARRAY, (sub, items))
    elif op == 4 and kv is not None:
        del h.kvs[i]
    elif op == 5 and kv is not None:
        h.kvs.insert(fdp.ConsumeIntInRange(0, len(h.kvs)), kv)
    elif op == 6:  # a new key/value
        kind = fdp.PickValueInList([U32, I32, F32, BOOL, STRING, ARRAY])
        key = _key(fdp, arch)
        if kind == STRING:
            new = KV(key, kind, _bytes(fdp))
        elif kind == ARRAY:
            new = KV(key, kind, (STRING, [_bytes(fdp) for _ in range(fdp.ConsumeIntInRange(0, 4))]))
        elif kind == F32:
            new = KV(key, kind, fdp.PickValueInList(_FLOATS))
        elif kind == BOOL:
            new = KV(key, kind, fdp.ConsumeBool())
        else:
            new = KV(key, kind, _fit(kind, _int(fdp, n_vocab)))
        h.kvs.insert(fdp.ConsumeIntInRange(0, len(h.kvs)), new)
    elif op == 7 and kv is not None and kv.kind == ARRAY:  # an array's element type, with the old elements' bytes
        sub = fdp.PickValueInList([*range(13), 13, 2**32 - 1])
        body = kv.encode()[8 + len(kv.key) + 4 :]
        h.kvs[i] = KV(kv.key, ARRAY, None, raw=struct.pack("<II", ARRAY, sub) + body[4:])
    elif op == 8 and kv is not None and kv.kind == ARRAY:  # an array's declared length
        body = kv.encode()[8 + len(kv.key) + 4 :]
        n = _fit(10, _int(fdp, n_vocab))
        h.kvs[i] = KV(kv.key, ARRAY, None, raw=struct.pack("<I", ARRAY) + body[:4] + struct.pack("<Q", n) + body[12:])
    elif op == 9 and kv is not None and kv.kind == STRING:  # a string's declared length
        body = kv.encode()[8 + len(kv.key) + 4 :]
        n = _fit(10, _int(fdp, n_vocab))
        h.kvs[i] = KV(kv.key, STRING, None, raw=struct.pack("<IQ", STRING, n) + body[8:])
    elif op == 10 and kv is not None:  # the key's bytes
        raw = kv.encode()[8 + len(kv.key) :]
        h.kvs[i] = KV(_bytes(fdp), kv.kind, kv.value, raw=raw)
    elif op == 11:  # the header's version and counts
        what = fdp.ConsumeIntInRange(0, 2)
        if what == 0:
            h.version = fdp.PickValueInList([0, 1, 2, 3, 4, 2**32 - 1])
        elif what == 1:
            h.n_kv = _fit(10, _int(fdp, len(h.kvs)))
        else:
            h.n_tensors = _fit(10, _int(fdp, len(h.tensors)))
    elif op == 12 and h.tensors:  # a tensor info
        j = fdp.ConsumeIntInRange(0, len(h.tensors) - 1)
        t = h.tensors[j]
        what = fdp.ConsumeIntInRange(0, 4)
        if what == 0:
            dims = [fdp.PickValueInList([0, 1, 2, 3, 32, 2**31, 2**63 - 1, 2**64 - 1]) for _ in range(len(t.dims))]
            h.tensors[j] = TensorInfo(t.name, dims, t.ggml_type, t.offset)
        elif what == 1:
            dims = t.dims[: fdp.ConsumeIntInRange(0, 4)] + [1] * fdp.ConsumeIntInRange(0, 3)
            h.tensors[j] = TensorInfo(t.name, dims, t.ggml_type, t.offset)
        elif what == 2:
            h.tensors[j] = TensorInfo(t.name, t.dims, fdp.PickValueInList([*range(45), 255, 2**32 - 1]), t.offset)
        elif what == 3:
            h.tensors[j] = TensorInfo(t.name, t.dims, t.ggml_type, _fit(10, _int(fdp, 0)))
        else:
            name = fdp.PickValueInList([h.tensors[0].name, b"", b"x" * 100, _bytes(fdp)])
            h.tensors[j] = TensorInfo(name, t.dims, t.ggml_type, t.offset)
    elif op == 13 and h.tensors:
        j = fdp.ConsumeIntInRange(0, len(h.tensors) - 1)
        if fdp.ConsumeBool():
            del h.tensors[j]
        else:
            h.tensors.insert(fdp.ConsumeIntInRange(0, len(h.tensors)), h.tensors[j])
    elif op == 14 and kv is not None and kv.kind == ARRAY and kv.value is not None:  # one array cut alone
        h.kvs[i] = KV(kv.key, ARRAY, (kv.value[0], kv.value[1][: fdp.ConsumeIntInRange(0, 300)]))
    elif op == 15 and len(h.kvs) >= 2:  # two key/values swap places
        j = fdp.ConsumeIntInRange(0, len(h.kvs) - 1)
        h.kvs[i], h.kvs[j] = h.kvs[j], h.kvs[i]
    elif op == 16:
        h.kvs = [kv for kv in h.kvs if not kv.key.startswith(b"tokenizer.")] if fdp.ConsumeBool() else []


def mutated(fdp: atheris.FuzzedDataProvider) -> tuple[bytes, int, int | None]:
    """(header bytes, size of the data hole, where to cut the file or None)."""
    name = fdp.PickValueInList(MODELS)
    h = _headers[name].copy()
    arch_kv = h.get(b"general.architecture")
    arch = arch_kv.value if arch_kv is not None else b"llama"
    tokens = h.get(b"tokenizer.ggml.tokens")
    n_vocab = len(tokens.value[1]) if tokens is not None else 0
    if fdp.ConsumeIntInRange(0, 3):  # most inputs cut the vocabulary: small vocabularies load fast
        n = fdp.PickValueInList([0, 1, 2, 3, 4, 8, 64, 255, 256, 259, 300, 1000, fdp.ConsumeIntInRange(0, 5000)])
        _shrink_vocab(h, n, fdp.ConsumeIntInRange(0, 2000))
        n_vocab = min(n_vocab, n)
    for _ in range(fdp.ConsumeIntInRange(0, 6)):
        _edit(fdp, h, arch, n_vocab)
    data = bytearray(h.encode())
    for _ in range(fdp.ConsumeIntInRange(0, 2) if fdp.ConsumeBool() else 0):  # raw overwrites
        pos = fdp.ConsumeIntInRange(0, len(data) - 1)
        patch = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 8))
        data[pos : pos + len(patch)] = patch
    cut = None
    if fdp.ConsumeIntInRange(0, 7) == 0:
        cut = fdp.ConsumeIntInRange(0, len(data) + 64)
    return bytes(data), h.data_size, cut


def _use(model: _core.Model) -> None:
    """What a user does with a loaded model; every call must give a result or a typed error."""
    for prop in (
        "architecture",
        "description",
        "n_params",
        "size",
        "n_ctx_train",
        "n_embd",
        "n_layer",
        "chat_template",
        "chat_templates",
        "metadata",
    ):
        call(getattr, model, prop)
    vocab = model.vocab
    n = vocab.n_vocab
    call(lambda: vocab.type)
    specials = [getattr(vocab, a) for a in ("bos", "eos", "eot", "sep", "nl", "pad", "mask", "fim_pre", "fim_suf")]
    for text in ("Hello world", " <|im_start|>user\nhi ü 😀\t[CLS] <0x0A>", "", "\x00\xff"):
        for special in (False, True):
            toks, err = call(vocab.tokenize, text, add_special=special, parse_special=special)
            if toks is None:
                continue
            check(all(0 <= t < n for t in toks), f"tokenize gave ids outside 0..{n - 1}: {list(toks)[:20]}")
            call(vocab.detokenize, toks, unparse_special=special)
            det = _core.Detokenizer(vocab, special=special)
            for t in toks[:64]:
                call(det.add, int(t))
            det.flush()
    for t in {0, n - 1, n, *specials}:
        for fn in (vocab.token_text, vocab.token_attr, vocab.token_score, vocab.is_eog):
            call(fn, t)
        call(vocab.token_to_piece, t, special=True)
    tmpl, err = call(_core.ChatTemplates, model)
    if tmpl is not None:
        call(tmpl.caps)
        call(tmpl.apply, {"messages": [{"role": "user", "content": "hi"}]})


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    header, hole, cut = mutated(fdp)
    arrays = fdp.ConsumeBool()
    assert _tmpdir is not None
    path, tmp = _tmpdir / "model.gguf", _tmpdir / "model.gguf.tmp"
    write_file(tmp, header, hole, cut)
    os.replace(tmp, path)  # a new file each time: a mapping of the last one never sees this one change
    STATS["inputs"] += 1
    meta, meta_err = call(_core.read_gguf_metadata, path, arrays=arrays)
    STATS["header read"] += meta_err is None
    call(_core.read_gguf_tensors, path)
    model, err = call(_core.Model, path, vocab_only=True)
    if model is None:
        STATS["model refused"] += 1
        return
    STATS["model loaded"] += 1
    check(meta_err is None, f"the model loaded but its header did not read: {meta_err!r}")
    try:
        _use(model)
    finally:
        model.close()
