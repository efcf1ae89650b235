"""Backend plugins: which files are loaded at import, from where, and why.

Each case that changes the environment runs in a fresh interpreter, since the
plugins are loaded once per process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import llamanative
from llamanative import _core

PKG_DIR = Path(_core.__file__).resolve().parent

# What a child interpreter reports: the load log, the backends, and what
# happens when it loads a model (argv[1], optional).
_PROBE = r"""
import json, sys
import llamanative
out = {
    "log": [a.__dict__ for a in llamanative.backend_load_log()],
    "backends": llamanative.backends(),
}
if len(sys.argv) > 1:
    try:
        llamanative._core.Model(sys.argv[1])
        out["load"] = "ok"
    except Exception as e:
        out["load"] = f"{type(e).__name__}: {e}"
print(json.dumps(out))
"""


def _probe(tmp_path: Path, env: dict[str, str], *args: str, cwd: Path | None = None) -> dict:
    full = {k: v for k, v in os.environ.items() if not k.startswith("LLAMANATIVE_")}
    full.update(env)
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, *map(str, args)],
        env=full,
        cwd=cwd or tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _cpu_plugins() -> list[Path]:
    return sorted(PKG_DIR.glob("libggml-cpu*.so"))


def _host_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def test_cpu_plugin_loaded_from_package_dir():
    loaded = [a for a in llamanative.backend_load_log() if a.outcome == "loaded"]
    assert [a.backend for a in loaded].count("cpu") == 1
    cpu = next(a for a in loaded if a.backend == "cpu")
    assert Path(cpu.path).parent == PKG_DIR
    assert cpu.reason
    backend = next(b for b in llamanative.backends() if b["name"] == "CPU")
    assert backend["path"] == cpu.path
    assert any(d["type"] == "cpu" for d in llamanative.devices())


@pytest.mark.skipif(not _host_flags(), reason="no /proc/cpuinfo to compare the CPU features with")
def test_chosen_cpu_plugin_uses_this_cpus_simd():
    """The plugin that was chosen runs the widest SIMD the host has (AVX2 here), and nothing it lacks."""
    features = next(b for b in llamanative.backends() if b["name"] == "CPU")["features"]
    flags = _host_flags()
    for feature, flag in [("AVX", "avx"), ("AVX2", "avx2"), ("FMA", "fma"), ("F16C", "f16c"), ("AVX512", "avx512f")]:
        if features.get(feature) == "1":
            assert flag in flags, f"the plugin uses {feature} but this CPU lacks it"
    if "avx2" in flags and "avx512f" not in flags:
        assert features.get("AVX2") == "1"


def test_every_plugin_file_is_accounted_for():
    """Each libggml-<backend>*.so in the package directory has a log entry saying what became of it."""
    logged = {a.path for a in llamanative.backend_load_log()}
    for plugin in _cpu_plugins():
        assert str(plugin) in logged


def test_library_path_override_and_broken_files(tmp_path, smollm2_path):
    """LLAMANATIVE_LIBRARY_PATH replaces the package directory; unreadable or foreign files are reported, not fatal."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    for plugin in _cpu_plugins():
        shutil.copy(plugin, plugins / plugin.name)
    # libggml-base.so is found through the plugin's RPATH ($ORIGIN): copy it too.
    shutil.copy(PKG_DIR / "libggml-base.so", plugins / "libggml-base.so")
    (plugins / "libggml-cpu-broken.so").write_bytes(b"not an ELF file")
    (plugins / "libggml-frobnicator.so").write_bytes(b"")
    out = _probe(tmp_path, {"LLAMANATIVE_LIBRARY_PATH": str(plugins)}, smollm2_path)
    by_name = {Path(a["path"]).name: a for a in out["log"]}
    assert by_name["libggml-cpu-broken.so"]["outcome"] == "failed"
    assert "cannot be loaded" in by_name["libggml-cpu-broken.so"]["reason"]
    assert by_name["libggml-frobnicator.so"]["outcome"] == "skipped"
    loaded = [a for a in out["log"] if a["outcome"] == "loaded"]
    assert len(loaded) == 1 and Path(loaded[0]["path"]).parent == plugins
    assert out["load"] == "ok"


def test_no_plugin_gives_a_typed_error(tmp_path, smollm2_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = _probe(tmp_path, {"LLAMANATIVE_LIBRARY_PATH": str(empty)}, smollm2_path)
    assert out["backends"] == []
    assert out["load"].startswith("ModelLoadError: ")
    assert "no ggml backend is loaded" in out["load"] and "backend_load_log" in out["load"]


def test_current_directory_is_never_searched(tmp_path):
    """A plugin-looking file in the working directory is not even looked at."""
    (tmp_path / "libggml-cpu-evil.so").write_bytes(b"not an ELF file")
    out = _probe(tmp_path, {}, cwd=tmp_path)
    assert all("evil" not in a["path"] for a in out["log"])
    assert any(a["outcome"] == "loaded" and a["backend"] == "cpu" for a in out["log"])


def test_main_gpu_out_of_range_on_cpu_only_is_not_a_crash(smollm2_path):
    """main_gpu names a GPU; on a machine without one it is ignored, never passed on to crash."""
    gpus = [d for d in llamanative.devices() if d["type"] != "cpu"]
    if gpus:
        with pytest.raises(ValueError, match="main_gpu"):
            _core.Model(smollm2_path, main_gpu=len(gpus))
    else:
        _core.Model(smollm2_path, main_gpu=3).close()


def test_backends_command(capsys):
    from llamanative.cli import main

    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert "CPU" in out and "loaded" in out and "searched: " in out
    cpu = next(a for a in llamanative.backend_load_log() if a.outcome == "loaded" and a.backend == "cpu")
    assert Path(cpu.path).name in out
