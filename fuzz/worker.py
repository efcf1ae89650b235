"""One fuzzing process: ``python fuzz/worker.py <harness> [libFuzzer flags and corpus dirs]``.

``fuzz/run.py`` starts it (and restarts it after a finding); run it directly
for libFuzzer's own flags. ``--replay FILE...`` runs inputs once without
libFuzzer (a finding then shows its full traceback), ``--coverage OUT DIR...``
replays every input of the corpus dirs under coverage.py and writes the line
coverage of the harness's target modules to the JSON file ``OUT``.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import shlex
import signal
import sys
import traceback
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def load(name: str, instrument: bool):
    """The harness module ``harnesses.<name>``; with ``instrument``, its code and the library's report
    coverage to libFuzzer.

    Every Python function of the library and of this folder is instrumented once loaded
    (``atheris.instrument_func``): ``atheris.instrument_imports`` skips modules loaded by a custom
    loader, which an editable install of the package uses.
    """
    harness = importlib.import_module(f"harnesses.{name}")
    if instrument:
        import atheris

        import llamanative

        roots = (str(HERE), str(Path(llamanative.__file__).resolve().parent))
        for obj in gc.get_objects():
            if isinstance(obj, types.FunctionType) and obj.__code__.co_filename.startswith(roots):
                atheris.instrument_func(obj)
    return harness


def inputs(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        out += sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    return out


def replay(name: str, paths: list[str]) -> None:
    harness = load(name, instrument=False)
    harness.setup()
    for f in inputs(paths):
        print(f"replaying {f}", flush=True)
        harness.test_one_input(f.read_bytes())
    print("no finding", flush=True)


def coverage(name: str, out: str, paths: list[str]) -> None:
    import coverage as cov_mod

    harness_file = HERE / "harnesses" / f"{name}.py"
    cov = cov_mod.Coverage(data_file=None, branch=False)
    cov.start()
    harness = load(name, instrument=False)
    harness.setup()
    files = inputs(paths)
    for f in files:
        try:
            harness.test_one_input(f.read_bytes())
        except Exception as exc:  # a finding in the corpus: count the lines it reached, go on
            print(f"{f}: {type(exc).__name__}: {exc}", file=sys.stderr)
    cov.stop()
    import llamanative

    pkg = Path(llamanative.__file__).resolve().parent.parent
    result = {"inputs": len(files), "modules": {}}
    for rel in harness.TARGETS:
        path = pkg / rel
        _, statements, _, missing, _ = cov.analysis2(str(path))
        result["modules"][rel] = {"statements": len(statements), "missing": len(missing)}
    _, statements, _, missing, _ = cov.analysis2(str(harness_file))
    result["harness"] = {"statements": len(statements), "missing": len(missing)}
    result["outcomes"] = dict(getattr(harness, "STATS", {}))
    Path(out).write_text(json.dumps(result, indent=1))


def outcome(harness, data: bytes) -> str | None:
    """What ``data`` does to the harness, run in a forked child: None, an exception and where it was
    raised, or the signal that ended the child."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running any cleanup of the parent's
        os.close(r)
        what = ""
        try:
            harness.test_one_input(data)
        except BaseException as exc:
            frames = traceback.extract_tb(exc.__traceback__)
            # a broken invariant is raised by contract.check: name the line that called it
            at = frames[-2] if type(exc).__name__ == "Finding" and len(frames) > 1 else frames[-1]
            what = f"{type(exc).__name__} at {Path(at.filename).name}:{at.lineno}"
        os.write(w, what.encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        what = f.read().decode()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return what or None


def minimize(name: str, path: str, out: str, tries: int) -> None:
    """Write to ``out`` the shortest input found (by removing ever smaller runs of bytes) that ends the
    same way as the input at ``path``. libFuzzer's own -minimize_crash reruns argv[0], which for a Python
    fuzzer is a script, not a program."""
    harness = load(name, instrument=False)
    harness.setup()
    best = Path(path).read_bytes()
    target = outcome(harness, best)
    if target is None:
        print(f"{path}: no finding to minimise", flush=True)
        return
    print(f"{path}: {target} ({len(best)} bytes)", flush=True)
    chunk, n = max(len(best) // 2, 1), 0
    while n < tries:
        i, shrunk = 0, False
        while i < len(best) and n < tries:
            candidate = best[:i] + best[i + chunk :]
            n += 1
            if outcome(harness, candidate) == target:
                best, shrunk = candidate, True
            else:
                i += chunk
        if not shrunk:
            if chunk == 1:
                break
            chunk //= 2
    Path(out).write_bytes(best)
    print(f"minimised to {len(best)} bytes in {n} runs: {out}", flush=True)


def main(argv: list[str]) -> None:
    name, rest = argv[1], argv[2:]
    if rest[:1] == ["--minimize"]:
        minimize(name, rest[1], rest[2], int(rest[3]))
        return
    if rest[:1] == ["--replay"]:
        replay(name, rest[1:])
        return
    if rest[:1] == ["--coverage"]:
        coverage(name, rest[1], rest[2:])
        return
    import atheris

    harness = load(name, instrument=True)
    harness.setup()
    target = harness.test_one_input
    if current := os.environ.get("LLAMANATIVE_FUZZ_CURRENT"):
        target = recording(target, current)
    atheris.Setup([launcher(name), *rest], target)
    atheris.Fuzz()


def launcher(name: str) -> str:
    """An executable that runs this worker for ``name``: libFuzzer runs its argv[0] again for -merge and
    -minimize_crash, and a Python script is not a program (``fuzz/.work/<name>/worker.sh``)."""
    path = HERE / ".work" / name / "worker.sh"
    command = " ".join(shlex.quote(a) for a in (sys.executable, str(HERE / "worker.py"), name))
    text = f'#!/bin/sh\nexec {command} "$@"\n'
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".worker-{os.getpid()}.sh")
        tmp.write_text(text)
        tmp.chmod(0o755)
        os.replace(tmp, path)
    return str(path)


def recording(fn, path: str):
    """``fn``, writing each input to ``path`` first: a stack overflow kills the process before libFuzzer
    can save the input that caused it, and the run keeps it from there."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)

    def run(data: bytes) -> None:
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        fn(data)

    return run


if __name__ == "__main__":
    main(sys.argv)
