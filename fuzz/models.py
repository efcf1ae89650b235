"""The test models the harnesses read, found as the test suite finds them (``tests/conftest.py``)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
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


@cache
def projector_pair(kind: str = "both") -> tuple[Path, Path]:
    """``(model, projector)``: the tests' projector pair (``scripts/make_test_projector.py --kind kind``,
    as the ``vision_pair``/``omni_pair`` fixtures write it), written once into ``fuzz/.work/pairs/``.

    The files depend only on the script and the fetched text model, so a folder named by the script's
    digest is reused by later processes (the text model is a 100 MB copy: one a process would fill the disk).
    """
    script = REPO / "scripts" / "make_test_projector.py"
    digest = hashlib.sha256(script.read_bytes()).hexdigest()[:16]
    folder = REPO / "fuzz" / ".work" / "pairs" / f"{kind}-{digest}"
    done = folder / "pair.txt"
    if not done.is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{kind}-", dir=folder.parent))
        proc = subprocess.run(
            [sys.executable, str(script), str(tmp), "--kind", kind], capture_output=True, text=True, check=True
        )
        m = re.fullmatch(r"model=(.+) projector=(.+)", proc.stdout.splitlines()[-1])
        if m is None:
            raise RuntimeError(f"{script.name}: unexpected last line {proc.stdout[-200:]!r}")
        (tmp / "pair.txt").write_text(f"{Path(m[1]).name}\n{Path(m[2]).name}\n")
        try:
            os.replace(tmp, folder)
        except OSError:  # another process wrote it first
            shutil.rmtree(tmp, ignore_errors=True)
    model, projector = done.read_text().split()
    return folder / model, folder / projector
