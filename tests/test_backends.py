"""Backend plugins: which files are loaded on first use, from where, and why.

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
    """A plugin in the working directory is never loaded, even a working one.

    llama_backend_init() and llama_supports_gpu_offload() would load one
    (ggml_backend_load_all searches the current directory) while no backend
    is registered; neither is called.
    """
    (tmp_path / "libggml-cpu-evil.so").write_bytes(b"not an ELF file")
    out = _probe(tmp_path, {}, cwd=tmp_path)
    assert all("evil" not in a["path"] for a in out["log"])
    assert any(a["outcome"] == "loaded" and a["backend"] == "cpu" for a in out["log"])

    # A real plugin under a name ggml's own search matches, next to the library it needs.
    shutil.copy(_cpu_plugins()[0], tmp_path / "libggml-cpu-evil.so")
    shutil.copy(PKG_DIR / "libggml-base.so", tmp_path / "libggml-base.so")
    empty = tmp_path / "empty"
    empty.mkdir()
    code = r"""
import json, llamanative
from llamanative import _core
out = {"gpu": _core.supports_gpu_offload(), "backends": [b["path"] for b in llamanative.backends()]}
out["mapped"] = sorted({line.split()[-1] for line in open("/proc/self/maps") if "evil" in line})
print(json.dumps(out))
"""
    for env in ({}, {"LLAMANATIVE_LIBRARY_PATH": str(empty)}):
        out = _run(code, env, tmp_path)
        assert out["mapped"] == [], env
        if env:
            assert out["backends"] == [], env
        else:  # the package's own plugins only (the CPU one, and RPC where built)
            assert str(_cpu_plugins()[0]) in out["backends"]
            assert all(Path(p).parent == PKG_DIR for p in out["backends"]), out["backends"]


def _run(code: str, env: dict[str, str], cwd: Path) -> dict:
    """Run ``code`` in a fresh interpreter (no LLAMANATIVE_* variables but ``env``); its stdout as JSON."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("LLAMANATIVE_")}
    full.update(env)
    proc = subprocess.run([sys.executable, "-c", code], env=full, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


# Records every message of the llamanative.backends logger, then imports.
_LOGGED_IMPORT = r"""
import json, logging, sys
records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append(record.getMessage())
logging.getLogger("llamanative.backends").addHandler(Keep())
logging.getLogger("llamanative.backends").setLevel(logging.DEBUG)
import llamanative
from llamanative import _core
def mapped():
    return sorted({line.split()[-1] for line in open("/proc/self/maps") if "libggml-cpu" in line})
at_import = {"records": list(records), "mapped": mapped()}
"""

_needs_proc_maps = pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/self/maps (Linux)")


@_needs_proc_maps
def test_import_loads_no_plugin(tmp_path):
    """``import llamanative`` neither probes nor maps a plugin; the first devices() loads the CPU one."""
    code = (
        _LOGGED_IMPORT
        + r"""
client = llamanative.Client()  # a client that has not run a model needs no backend either
before = {"records": at_import["records"], "mapped": mapped()}
devices = llamanative.devices()
print(json.dumps({"before": before, "types": [d["type"] for d in devices], "after": mapped(), "records": records}))
"""
    )
    out = _run(code, {}, tmp_path)
    assert out["before"] == {"records": [], "mapped": []}
    assert "cpu" in out["types"]
    assert [Path(p).parent for p in out["after"]] == [PKG_DIR]
    assert any("loaded" in r for r in out["records"])


@_needs_proc_maps
def test_a_broken_plugin_fails_at_first_use_not_at_import(tmp_path, smollm2_path):
    """A plugin file that is not a loadable library: the import succeeds and says nothing; the first use reports it."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "libggml-cpu.so").write_bytes(b"not an ELF file")
    code = (
        _LOGGED_IMPORT
        + r"""
try:
    _core.Model(sys.argv[1])
    load = "ok"
except llamanative.ModelLoadError as e:
    load = f"ModelLoadError: {e}"
print(json.dumps({"at_import": at_import, "load": load, "records": records,
                  "log": [a.__dict__ for a in llamanative.backend_load_log()]}))
"""
    )
    code = code.replace("sys.argv[1]", repr(str(smollm2_path)))
    out = _run(code, {"LLAMANATIVE_LIBRARY_PATH": str(plugins)}, tmp_path)
    assert out["at_import"] == {"records": [], "mapped": []}
    assert out["load"].startswith("ModelLoadError: ") and "no ggml backend is loaded" in out["load"]
    assert any("libggml-cpu.so: failed" in r for r in out["records"])
    (attempt,) = [a for a in out["log"] if a["path"].endswith("libggml-cpu.so")]
    assert attempt["outcome"] == "failed" and "cannot be loaded" in attempt["reason"]


def test_an_unreadable_plugin_directory_does_not_break_the_import(tmp_path, smollm2_path):
    """A LLAMANATIVE_LIBRARY_PATH entry the OS refuses to stat (name too long) is logged, not raised at import."""
    code = r"""
import json, sys
import llamanative
out = {"backends": llamanative.backends(), "log": [a.__dict__ for a in llamanative.backend_load_log()]}
try:
    llamanative._core.Model(sys.argv[1])
except llamanative.ModelLoadError as e:
    out["load"] = "ModelLoadError"
print(json.dumps(out))
""".replace("sys.argv[1]", repr(str(smollm2_path)))
    out = _run(code, {"LLAMANATIVE_LIBRARY_PATH": "x" * 300}, tmp_path)
    assert out["backends"] == [] and out["load"] == "ModelLoadError"
    (attempt,) = out["log"]
    assert attempt["outcome"] == "failed" and "cannot be listed" in attempt["reason"]


def test_a_failing_loader_is_a_typed_error_at_every_use(tmp_path, smollm2_path):
    """Whatever the loader raises comes back as BackendLoadError (cause chained) from every use, never at import."""
    code = r"""
import json, sys
import llamanative
from llamanative import _core
from llamanative.errors import BackendLoadError
def broken():
    raise OSError("driver exploded")
_core._set_backend_loader(broken)
seen = []
for use in (llamanative.backends, llamanative.devices, _core.supports_gpu_offload, llamanative.system_info,
            lambda: _core.Model(sys.argv[1])):
    try:
        use()
        seen.append("no error")
    except BackendLoadError as e:
        seen.append(f"{isinstance(e, RuntimeError)} {type(e.__cause__).__name__} {e}")
print(json.dumps({"seen": seen, "log": [a.__dict__ for a in llamanative.backend_load_log()]}))
""".replace("sys.argv[1]", repr(str(smollm2_path)))
    out = _run(code, {}, tmp_path)
    assert len(out["seen"]) == 5
    for seen in out["seen"]:
        assert seen.startswith("True OSError ") and "driver exploded" in seen
    assert out["log"] == []


def test_concurrent_first_uses_load_the_plugins_once(tmp_path):
    """Eight threads that need the backends at the same moment: one load, and every thread sees its result."""
    code = r"""
import json, threading
import llamanative
barrier = threading.Barrier(8)
results = []
def use():
    barrier.wait()
    results.append(sorted(d["type"] for d in llamanative.devices()))
threads = [threading.Thread(target=use) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
loaded = [a.path for a in llamanative.backend_load_log() if a.outcome == "loaded"]
print(json.dumps({"results": results, "loaded": loaded}))
"""
    out = _run(code, {}, tmp_path)
    assert len(out["results"]) == 8 and all("cpu" in r and r == out["results"][0] for r in out["results"])
    # Each plugin once (the CPU one, and RPC where it is built).
    assert len(out["loaded"]) == len(set(out["loaded"])) == len({Path(p).name.split("-")[1] for p in out["loaded"]})
    assert any(Path(p).name.startswith("libggml-cpu") for p in out["loaded"])


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
