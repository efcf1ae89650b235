"""The test models the harnesses read, found as the test suite finds them (``tests/conftest.py``)."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from llamanative.fetch import KNOWN_MODELS, fetch_model

REPO = Path(__file__).resolve().parents[1]


def model_path(name: str) -> Path:
    """The cached GGUF of a known test model (``smollm2``, ``gemma3``, ``minilm``), fetched when missing.

    MiniLM is also looked for where the tests look (``$LLAMANATIVE_MINILM``, ``shared/models`` beside
    the checkout) before it is converted.
    """
    if name == "minilm":
        if env := os.environ.get("LLAMANATIVE_MINILM"):
            return Path(env)
        shared = REPO.parent / "shared" / "models" / KNOWN_MODELS["minilm"].filename
        if shared.is_file():
            return shared
    return fetch_model(name, quiet=True)


@cache
def vocab_model(name: str):
    """A vocab-only ``_core.Model`` of a test model (loaded once a process)."""
    from llamanative import _core

    return _core.Model(model_path(name), vocab_only=True)


def qwen3_style_template() -> str:
    """The Qwen3-style template (tools and thinking) the tests put on SmolLM2's weights."""
    return (REPO / "tests" / "data" / "qwen3_style.jinja").read_text()
