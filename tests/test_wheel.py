"""The portable wheel, installed into a fresh virtual environment with no compiler.

Runs when LLAMANATIVE_TEST_WHEEL names a wheel file: ``scripts/build_wheels.sh``
builds and repairs one and then runs this file. The wheel is too slow to build
in every test run (every CPU variant of ggml's CPU backend), so without that
variable the tests are skipped, with that reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import venv
from pathlib import Path

import numpy as np
import pytest

import llamanative

WHEEL = os.environ.get("LLAMANATIVE_TEST_WHEEL")
pytestmark = pytest.mark.skipif(not WHEEL, reason="set LLAMANATIVE_TEST_WHEEL (scripts/build_wheels.sh does)")

# Run inside the wheel's environment: a chat and an embed with the real test
# models, and what was loaded.
_CHILD = r"""
import json, sys
import llamanative
client = llamanative.Client()
chat = client.chat(model=sys.argv[1], messages=[{"role": "user", "content": "Name three colours."}],
                   options={"temperature": 0, "num_predict": 24, "seed": 1})
emb = client.embed(model=sys.argv[2], input=["a cat sat on the mat", "stock markets fell today"])
print(json.dumps({
    "file": llamanative.__file__,
    "log": [a.__dict__ for a in llamanative.backend_load_log()],
    "cpu": next(b for b in llamanative.backends() if b["name"] == "CPU"),
    "chat": chat.message.content,
    "embeddings": emb.embeddings,
}))
"""


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wheel-venv")
    venv.EnvBuilder(with_pip=True, clear=True).create(root)
    py = root / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", WHEEL], check=True, timeout=600)
    return root


def _run(env_root: Path, *args: str, extra_env: dict[str, str] | None = None) -> dict:
    # Only the environment's own bin directory on PATH: no cc, gcc or c++.
    env = {"PATH": str(env_root / "bin"), "HOME": str(env_root)}
    env.update(extra_env or {})
    for compiler in ("cc", "gcc", "c++", "g++", "clang"):
        assert shutil.which(compiler, path=env["PATH"]) is None, f"{compiler} is reachable"
    proc = subprocess.run(
        [str(env_root / "bin" / "python"), "-c", _CHILD, *args],
        env=env,
        cwd=env_root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_chat_and_embed_from_the_wheel(wheel_env, smollm2_path, minilm_path):
    out = _run(wheel_env, str(smollm2_path), str(minilm_path))
    assert Path(out["file"]).resolve().is_relative_to(wheel_env.resolve()), "imported the source tree, not the wheel"
    loaded = [a for a in out["log"] if a["outcome"] == "loaded" and a["backend"] == "cpu"]
    assert len(loaded) == 1
    chosen = loaded[0]
    assert chosen["variant"], "the portable wheel should hold CPU variants"
    runnable = [a["score"] for a in out["log"] if a["backend"] == "cpu" and a["score"]]
    assert chosen["score"] == max(runnable)
    assert out["chat"].strip()
    # Same embeddings as this checkout's own build, to float rounding.
    here = llamanative.Client().embed(
        model=str(minilm_path), input=["a cat sat on the mat", "stock markets fell today"]
    )
    a, b = np.array(out["embeddings"]), np.array(here.embeddings)
    assert a.shape == (2, 384)
    cos = (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cos.min() >= 0.9999


def test_a_chosen_variant_and_an_unrunnable_one(wheel_env, smollm2_path, minilm_path):
    """LLAMANATIVE_CPU_VARIANT picks a variant; variants this CPU cannot run are skipped with the reason."""
    out = _run(wheel_env, str(smollm2_path), str(minilm_path), extra_env={"LLAMANATIVE_CPU_VARIANT": "sse42"})
    loaded = next(a for a in out["log"] if a["outcome"] == "loaded" and a["backend"] == "cpu")
    assert loaded["variant"] == "sse42"
    assert "LLAMANATIVE_CPU_VARIANT" in loaded["reason"]
    assert out["cpu"]["features"].get("AVX2") is None
    assert out["chat"].strip()
    unrunnable = [a for a in out["log"] if a["backend"] == "cpu" and a["score"] == 0]
    for a in unrunnable:
        assert a["outcome"] == "skipped" and "lacks" in a["reason"]
    if "avx512f" not in Path("/proc/cpuinfo").read_text():
        assert any(a["variant"] == "skylakex" for a in unrunnable)
