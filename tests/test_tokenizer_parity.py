"""Tokenizer parity with llama.cpp's own golden files.

llama.cpp ships vocab-only GGUFs with inputs (``.inp``, cases separated by
``\\n__ggml_vocab_test__\\n``) and the expected token ids (``.out``, one line
per case); its ``test-tokenizer-0`` tokenizes with ``add_special=false,
parse_special=false``. We check every vocab that has a golden pair; the files
come from the pinned llama-cpp-python sdist (the ``vocab_dir`` fixture).
"""

from __future__ import annotations

import numpy as np
import pytest

from llamanative import _core
from llamanative.fetch_vocab import VOCABS

SEP = "\n__ggml_vocab_test__\n"


def read_cases(vocab_path):
    raw = vocab_path.with_suffix(".gguf.inp").read_bytes().decode("utf-8")
    inputs, pos = [], 0
    # Same splitting as test-tokenizer-0.cpp: a trailing separator adds no case.
    while pos < len(raw):
        nxt = raw.find(SEP, pos)
        if nxt == -1:
            inputs.append(raw[pos:])
            break
        inputs.append(raw[pos:nxt])
        pos = nxt + len(SEP)
    outputs = vocab_path.with_suffix(".gguf.out").read_text("utf-8").split("\n")
    outputs = outputs[: len(inputs)]
    return [(i, [int(t) for t in o.split()]) for i, o in zip(inputs, outputs)]


def test_vocab_files_present(vocab_dir):
    assert len(VOCABS) >= 15, VOCABS
    for name in VOCABS:
        for suffix in ("", ".inp", ".out"):
            assert (vocab_dir / (name + suffix)).is_file(), name + suffix


@pytest.mark.parametrize("vocab", VOCABS)
def test_tokenizer_matches_llama_cpp_golden_output(vocab_dir, vocab):
    vocab_path = vocab_dir / vocab
    model = _core.Model(vocab_path, vocab_only=True)
    cases = read_cases(vocab_path)
    assert cases
    for text, expected in cases:
        got = model.vocab.tokenize(text, add_special=False, parse_special=False)
        assert got.dtype == np.int32
        assert got.tolist() == expected, f"{vocab_path.name}: {text!r}"
    model.close()
