"""Tokenizing and detokenizing: random bytes and text, random token ids, on vocab-only test models.

The vocabularies: SmolLM2 (byte-level BPE), Gemma 3 (SPM, 262k tokens),
MiniLM (WPM). Each input picks one and runs one operation of ``Vocab``
(``tokenize``, ``tokenize_many``, ``detokenize``, ``detokenize_bytes``,
``token_to_piece``, ``token_text``, ``token_attr``, ...), of
``Detokenizer``, or of the ``PromptPipeline`` the client uses
(``tokenize``, ``detokenize``, ``token_pieces``, ``embedding_inputs``,
``fill_in_middle``). Token ids come as Python ints of any size (negative,
past the vocabulary, past 32 and 64 bits), numpy arrays of every integer
and float dtype, nested and odd sequences.

Contract: a result or a typed error; an id outside the vocabulary is a
``ValueError``, never decoded as another token; ``tokenize`` gives ids
inside the vocabulary; ``tokenize_many`` agrees with ``tokenize``; the
``Detokenizer``'s pieces join to the pieces' bytes decoded as UTF-8;
byte-level BPE gives back the text it tokenized.
"""

from __future__ import annotations

import atheris
import numpy as np
from contract import call, check, has_surrogates
from models import vocab_model

from llamanative import _core
from llamanative.prompting.pipeline import PromptPipeline

TARGETS = ["llamanative/prompting/pipeline.py"]
MODELS = ["smollm2", "gemma3", "minilm"]
SPECIALS = [
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<bos>",
    "<eos>",
    "<start_of_turn>",
    "<end_of_turn>",
    "[CLS]",
    "[SEP]",
    "[UNK]",
    "[MASK]",
    "<0x0A>",
    "<unk>",
    "<pad>",
    "\n",
    " ",
    "\u2581",
    "\x00",
]
DTYPES = [
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.float32,
    np.float64,
    np.bool_,
    object,
]

_NO_TOKEN: set[int] = set()  # bytes without a single-byte token in SmolLM2's vocabulary

_vocabs: dict[str, _core.Vocab] = {}
_pipelines: dict[str, PromptPipeline] = {}


def setup() -> None:
    for name in MODELS:
        model = vocab_model(name)
        _vocabs[name] = model.vocab
        _pipelines[name] = PromptPipeline(model)
    smol = _vocabs["smollm2"]
    pieces = (smol.token_to_piece(t) for t in range(smol.n_vocab))
    _NO_TOKEN.update(set(range(256)) - {p[0] for p in pieces if len(p) == 1})


def _text(fdp: atheris.FuzzedDataProvider) -> str | bytes:
    kind = fdp.ConsumeIntInRange(0, 3)
    if kind == 0:
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 300))
    if kind == 1:
        return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 200))
    parts = []
    for _ in range(fdp.ConsumeIntInRange(0, 8)):
        parts.append(fdp.PickValueInList(SPECIALS) if fdp.ConsumeBool() else fdp.ConsumeUnicodeNoSurrogates(20))
    return "".join(parts)


def _id(fdp: atheris.FuzzedDataProvider, n_vocab: int) -> int:
    kind = fdp.ConsumeIntInRange(0, 4)
    if kind <= 1:
        return fdp.ConsumeIntInRange(0, n_vocab - 1)
    if kind == 2:
        return fdp.PickValueInList(
            [
                -1,
                -2,
                n_vocab,
                n_vocab + 1,
                2**31 - 1,
                2**31,
                -(2**31),
                -(2**31) - 1,
                2**32 + 5,
                2**63,
                2**64 + 1,
                -(2**70),
            ]
        )
    if kind == 3:
        return fdp.ConsumeIntInRange(-(2**40), 2**40)
    return fdp.ConsumeIntInRange(-(2**80), 2**80)


def _ids(fdp: atheris.FuzzedDataProvider, n_vocab: int) -> tuple[object, list[int] | None]:
    """(tokens in some container, the ints they stand for when the container is a sequence of integers)."""
    ints = [_id(fdp, n_vocab) for _ in range(fdp.ConsumeIntInRange(0, 40))]
    kind = fdp.ConsumeIntInRange(0, 6)
    if kind == 0:
        return ints, ints
    if kind == 1:
        return tuple(ints), ints
    if kind == 2:  # a numpy array of some dtype: the values it holds after numpy's own conversion
        dtype = fdp.PickValueInList(DTYPES)
        try:
            arr = np.array(ints, dtype=dtype)
        except (OverflowError, ValueError):
            arr = np.array([i % 128 for i in ints], dtype=dtype)
        exact = arr.dtype.kind in "iu" or dtype is object
        return arr, [int(v) for v in arr] if exact else None
    if kind == 3:
        return np.array(ints, dtype=object).reshape(-1, 1) if ints else [[]], None
    if kind == 4:
        return fdp.PickValueInList([None, "12", b"12", 3, 3.5, [1.5], ["a"], [None], {1: 2}, [[1, 2], [3]]]), None
    if kind == 5:
        return [np.int64(i) if -(2**63) <= i < 2**63 else i for i in ints], ints
    return range(fdp.ConsumeIntInRange(-5, 5), fdp.ConsumeIntInRange(0, 50)), None


def _valid(ints: list[int] | None, n_vocab: int) -> bool | None:
    return None if ints is None else all(0 <= i < n_vocab for i in ints)


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    name = fdp.PickValueInList(MODELS)
    vocab, pipe = _vocabs[name], _pipelines[name]
    n = vocab.n_vocab
    op = fdp.ConsumeIntInRange(0, 9)
    add_special, parse_special = fdp.ConsumeBool(), fdp.ConsumeBool()

    if op <= 1:  # tokenize, then detokenize what came out
        text = _text(fdp)
        allow = (UnicodeEncodeError,) if isinstance(text, str) and has_surrogates(text) else ()
        toks, err = call(vocab.tokenize, text, add_special=add_special, parse_special=parse_special, allow=allow)
        if toks is None:
            check(_not_text(text), f"tokenize({text!r}) failed: {err!r}")
            return
        check(toks.dtype == np.int32 and toks.ndim == 1, f"tokenize gave {toks.dtype} {toks.shape}")
        check(bool(np.all((toks >= 0) & (toks < n))), f"tokenize({text!r}) gave ids outside the vocab: {toks}")
        back, err = call(vocab.detokenize_bytes, toks)
        check(err is None, f"detokenize of tokenize({text!r}) failed: {err!r}")
        if name == "smollm2" and not add_special and not parse_special:
            raw = text if isinstance(text, bytes) else text.encode()
            # Byte-level BPE is lossless for UTF-8 text, but for the bytes SmolLM2's vocabulary has no
            # single-byte token for (llama.cpp's BPE tokenizer drops those: 0x04, 0x06, 0xf1, ...)
            if _is_utf8(raw) and not _NO_TOKEN.intersection(raw):
                check(back == raw, f"BPE round trip of {raw!r} gave {back!r}")
    elif op == 2:  # tokenize_many agrees with tokenize
        texts = [_text(fdp) for _ in range(fdp.ConsumeIntInRange(0, 5))]
        bad = any(isinstance(t, str) and has_surrogates(t) for t in texts)
        res, err = call(vocab.tokenize_many, texts, add_special=add_special, allow=(UnicodeEncodeError,) if bad else ())
        if res is None:
            check(any(_not_text(t) for t in texts), f"tokenize_many failed: {err!r}")
            return
        tokens, offsets = res
        check(len(offsets) == len(texts) + 1 and offsets[0] == 0 and offsets[-1] == len(tokens), "bad offsets")
        for i, t in enumerate(texts):
            one = vocab.tokenize(t, add_special=add_special)
            check(np.array_equal(one, tokens[offsets[i] : offsets[i + 1]]), f"tokenize_many differs on {t!r}")
    elif op <= 4:  # detokenize random ids
        tokens, ints = _ids(fdp, n)
        fn = vocab.detokenize if op == 3 else vocab.detokenize_bytes
        out, err = call(fn, tokens, remove_special=add_special, unparse_special=parse_special)
        valid = _valid(ints, n)
        if valid is False:
            check(isinstance(err, ValueError), f"detokenize({ints}) of ids outside 0..{n - 1} gave {out!r} ({err!r})")
        elif valid is True:
            check(err is None, f"detokenize({ints}) failed: {err!r}")
    elif op == 5:  # one id through every per-token accessor
        tid = _id(fdp, n)
        for fn in (
            vocab.token_to_piece,
            vocab.token_text,
            vocab.token_score,
            vocab.token_attr,
            vocab.is_eog,
            vocab.is_control,
        ):
            out, err = call(fn, tid)
            if 0 <= tid < n:
                check(err is None, f"{fn.__name__}({tid}) failed: {err!r}")
            else:
                check(isinstance(err, ValueError), f"{fn.__name__}({tid}) outside 0..{n - 1} gave {out!r} ({err!r})")
    elif op == 6:  # the streaming detokenizer
        det = _core.Detokenizer(vocab, special=parse_special)
        pieces, outs = [], []
        for _ in range(fdp.ConsumeIntInRange(0, 40)):
            tid = _id(fdp, n)
            out, err = call(det.add, tid)
            if 0 <= tid < n:
                check(err is None, f"Detokenizer.add({tid}) failed: {err!r}")
                pieces.append(vocab.token_to_piece(tid, special=parse_special))
                outs.append(out)
            else:
                check(isinstance(err, ValueError), f"Detokenizer.add({tid}) outside the vocab gave {out!r} ({err!r})")
        outs.append(det.flush())
        expect = b"".join(pieces).decode("utf-8", "replace")
        check("".join(outs) == expect, f"Detokenizer gave {''.join(outs)!r}, the pieces {expect!r}")
    elif op == 7:  # the pipeline's token methods, as the client calls them
        tokens, ints = _ids(fdp, n)
        for fn in (pipe.detokenize, pipe.token_pieces):
            out, err = call(fn, tokens)
            if _valid(ints, n) is False:
                check(isinstance(err, ValueError), f"{fn.__name__}({ints}) outside the vocab gave {out!r} ({err!r})")
    elif op == 8:  # embedding inputs, cut or refused at a limit
        texts = [_text(fdp) for _ in range(fdp.ConsumeIntInRange(0, 4))]
        texts = [t.decode("utf-8", "replace") if isinstance(t, bytes) else t for t in texts]
        limit, truncate = fdp.ConsumeIntInRange(1, 200), fdp.ConsumeBool()
        bad = any(has_surrogates(t) for t in texts)
        res, err = call(pipe.embedding_inputs, texts, limit, truncate, allow=(UnicodeEncodeError,) if bad else ())
        if res is not None:
            tokens, offsets = res
            lengths = np.diff(offsets)
            check(len(offsets) == len(texts) + 1 and offsets[-1] == len(tokens), "bad embedding offsets")
            check(not truncate or bool(np.all(lengths <= limit)), f"inputs over the limit {limit}: {lengths}")
    else:  # fill in the middle
        prefix, suffix = (fdp.ConsumeUnicodeNoSurrogates(60) for _ in range(2))
        call(pipe.fill_in_middle, prefix, suffix, {})


def _not_text(text: str | bytes) -> bool:
    """Input that may be refused: a str with lone surrogates, bytes that are not UTF-8."""
    return has_surrogates(text) if isinstance(text, str) else not _is_utf8(text)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
