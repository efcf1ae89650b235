"""Tokenize / detokenize, zero copy, special tokens and the streaming detokenizer."""

from __future__ import annotations

import numpy as np
import pytest

from llamanative import _core


def test_tokenize_returns_owned_int32_array(smollm2):
    v = smollm2.vocab
    toks = v.tokenize("Hello world")
    assert isinstance(toks, np.ndarray) and toks.dtype == np.int32 and toks.ndim == 1
    assert toks.flags.owndata and toks.flags.c_contiguous and toks.base is None
    assert v.detokenize(toks) == "Hello world"
    assert v.tokenize(b"Hello world").tolist() == toks.tolist()


def test_tokenize_no_copy_on_resize(smollm2):
    # The array is filled in place by llama_tokenize and shrunk in place:
    # its capacity equals its length (no hidden tail buffer).
    toks = smollm2.vocab.tokenize("a " * 5000)
    assert toks.flags.owndata and toks.nbytes == toks.size * 4


def test_parse_special(smollm2):
    v = smollm2.vocab
    t = v.tokenize("<|im_start|>user", add_special=False, parse_special=True)
    assert t[0] == v.tokenize("<|im_start|>", add_special=False, parse_special=True)[0]
    assert len(t) < len(v.tokenize("<|im_start|>user", add_special=False, parse_special=False))


def test_detokenize_accepts_lists_and_arrays(smollm2):
    v = smollm2.vocab
    toks = v.tokenize("ünïcödé ✓ 日本語")
    assert v.detokenize(toks.tolist()) == v.detokenize(toks) == "ünïcödé ✓ 日本語"
    assert b"".join(v.token_to_piece(int(t)) for t in toks) == "ünïcödé ✓ 日本語".encode()


def test_special_tokens(smollm2, gemma3):
    v = smollm2.vocab
    assert v.token_text(v.eos) == "<|im_end|>"
    assert v.is_eog(v.eos)
    assert not v.is_eog(v.tokenize("hi", add_special=False)[0])
    assert v.token_attr(v.eos) & _core.TokenAttr.CONTROL
    assert v.token_to_piece(v.eos) == b""
    assert v.token_to_piece(v.eos, special=True) == b"<|im_end|>"
    assert v.nl == v.tokenize("\n", add_special=False)[0]
    g = gemma3.vocab
    assert g.bos >= 0 and g.add_bos
    assert g.tokenize("hi")[0] == g.bos
    for name in ("bos", "eos", "eot", "sep", "nl", "pad", "fim_pre", "fim_suf", "fim_mid"):
        assert isinstance(getattr(v, name), int)


@pytest.mark.parametrize(
    "text",
    [
        "こんにちは世界、日本語のテキスト",
        "emoji 😀🎉👍🏽 and 🇫🇷 flags",
        "math ∑∫√∞ ≠ ≤",
        "a ,b",
        "\n",
        "Ünïcödé façade naïve",
    ],
)
def test_streaming_detokenizer_never_splits_a_character(smollm2, text):
    v = smollm2.vocab
    toks = v.tokenize(text, add_special=False)
    d = _core.Detokenizer(v)
    chunks = [d.add(int(t)) for t in toks] + [d.flush()]
    assert "".join(chunks) == text
    assert all("\ufffd" not in c for c in chunks)


def test_streaming_detokenizer_holds_partial_utf8(smollm2):
    v = smollm2.vocab
    toks = v.tokenize("😀", add_special=False)
    assert len(toks) > 1  # byte-level BPE splits the emoji
    d = _core.Detokenizer(v)
    out = [d.add(int(t)) for t in toks]
    assert out[:-1] == [""] * (len(toks) - 1) and out[-1] == "😀"


def test_tokenize_long_text_releases_gil_and_is_exact(smollm2):
    text = "The quick brown fox jumps over the lazy dog. " * 20000  # ~900 KB
    toks = smollm2.vocab.tokenize(text, add_special=False)
    assert smollm2.vocab.detokenize(toks) == text


@pytest.mark.parametrize("bad", [-1, 49152, 10**6])
def test_out_of_range_token_ids_raise(smollm2, bad):
    v = smollm2.vocab
    with pytest.raises(ValueError, match="out of range"):
        v.token_to_piece(bad)
    with pytest.raises(ValueError, match="out of range"):
        v.detokenize([1, 2, bad])
    with pytest.raises(ValueError, match="out of range"):
        v.is_eog(bad)
    with pytest.raises(ValueError, match="out of range"):
        _core.Detokenizer(v).add(bad)


def test_tokenize_rejects_other_types(smollm2):
    with pytest.raises(TypeError):
        smollm2.vocab.tokenize(123)
    with pytest.raises(ValueError, match="one-dimensional"):
        smollm2.vocab.detokenize([[1, 2]])
