"""Run one fuzz harness for a fixed time or number of executions, then print what it did.

Usage::

    python fuzz/run.py --list
    python fuzz/run.py <harness> [--seconds 600] [--runs N] [--coverage] [-- <libFuzzer flags>]
    python fuzz/run.py <harness> --replay FILE...     # run inputs once, outside libFuzzer
    python fuzz/run.py <harness> --minimize FILE      # the smallest input with the same finding

The corpus grows in ``fuzz/.work/<harness>/corpus`` (the committed seeds of
``fuzz/corpus/<harness>`` are read too, never written); findings are written
to ``fuzz/.work/<harness>/findings``. After a finding the fuzzer starts again
with the rest of the time, so one run reports every finding it met. At the
end it prints the executions, the time, libFuzzer's coverage (``cov``: edges
of the instrumented Python code; ``ft``: features) and, with
``--coverage``, the line coverage of the harness's target modules reached
by the corpus; ``last-run.json`` in the work folder keeps the same numbers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
HARNESSES = ("gguf", "tokenize", "chat_template", "json_schema", "modelfile", "names", "media")
_STATUS = re.compile(r"^#(\d+)\s+(\w+)\s+cov: (\d+) ft: (\d+) corp: (\d+)/")
_EXECS = re.compile(r"^stat::number_of_executed_units: (\d+)")
_ARTIFACT = re.compile(r"Test unit written to (\S+)")
_SLOW = re.compile(r"Slowest unit: (\d+) s:\n.*?Test unit written to (\S+)")
_DONE = re.compile(r"^Done (\d+) runs in (\d+) second")
MAX_RESTARTS = 100  # after that many findings in one run, stop: the rest is noise until they are fixed


def _signal_name(rc: int) -> str:
    if rc < 0:
        try:
            return signal.Signals(-rc).name
        except ValueError:
            pass
    return f"exit status {rc}"


def watch(proc: subprocess.Popen, current: Path, limit_s: float) -> tuple[int, bool]:
    """Wait for ``proc``; kill it when ``current`` (rewritten before each input) has not changed for
    ``limit_s``: libFuzzer's own timeout can deadlock when the input is stuck in native code.
    Returns (exit status, whether it was killed for hanging)."""
    while True:
        try:
            return proc.wait(timeout=5), False
        except subprocess.TimeoutExpired:
            pass
        if current.is_file() and time.time() - current.stat().st_mtime > limit_s:
            proc.kill()
            return proc.wait(), True


def worker_cmd(name: str, *args: str) -> list[str]:
    return [sys.executable, str(HERE / "worker.py"), name, *args]


def signature(log: str) -> str:
    """A short name for a finding: the Python exception and where it was raised, or libFuzzer's verdict."""
    m = re.search(r"=== Uncaught Python exception: ===\n(.*?)(?:\n==\d+==|\Z)", log, re.S)
    if m:
        lines = [ln for ln in m.group(1).strip().splitlines() if ln.strip()]
        frames = [ln.strip() for ln in lines if ln.strip().startswith("File ")]
        where = frames[-1] if frames else ""
        # atheris prints the exception first, then the traceback (whose last line can be its own wrapper's);
        # numbers and quoted values are left out, so that one bug met with other bytes reads the same
        what = re.sub(r"'[^']*'|\"[^\"]*\"|\b\d+\b|0x[0-9a-fA-F]+", "_", lines[0])
        return f"{what[:200]} @ {where}"
    for verdict in ("deadly signal", "timeout", "out-of-memory", "fuzz target exited"):
        if f"libFuzzer: {verdict}" in log:
            abort = re.search(r"(GGML_ASSERT\([^\n]*|terminate called[^\n]*|what\(\):[^\n]*)", log)
            return f"{verdict}" + (f": {abort.group(1)[:200]}" if abort else "")
    return "unknown"


def fuzz(args: argparse.Namespace, extra: list[str]) -> dict:
    name = args.harness
    work = Path(args.work or HERE / ".work" / name)
    corpus, findings = work / "corpus", work / "findings"
    corpus.mkdir(parents=True, exist_ok=True)
    findings.mkdir(parents=True, exist_ok=True)
    seeds = HERE / "corpus" / name
    dict_file = HERE / "corpus" / f"{name}.dict"
    flags = [
        f"-artifact_prefix={findings}/",
        f"-timeout={args.timeout}",
        f"-rss_limit_mb={args.rss_limit_mb}",
        "-print_final_stats=1",
    ]
    if dict_file.is_file():
        flags.append(f"-dict={dict_file}")
    start = time.monotonic()
    total_execs, sessions, found, slow = 0, 0, [], []
    last_status: tuple[int, int, int] = (0, 0, 0)
    while True:
        left_s = args.seconds - (time.monotonic() - start)
        left_runs = args.runs - total_execs if args.runs else None
        if left_s < 1 or (left_runs is not None and left_runs <= 0) or sessions > MAX_RESTARTS:
            break
        budget = [f"-max_total_time={int(left_s)}"] + ([f"-runs={left_runs}"] if left_runs is not None else [])
        cmd = worker_cmd(name, *flags, *budget, *extra, str(corpus), *([str(seeds)] if seeds.is_dir() else []))
        sessions += 1
        log_path = work / f"session-{sessions}.log"
        current = work / "current-input"
        current.unlink(missing_ok=True)  # the last session's: the watch below starts when this one writes it
        with open(log_path, "w") as log:
            env = {**os.environ, "LLAMANATIVE_FUZZ_CURRENT": str(current)}
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            rc, hung = watch(proc, current, args.timeout + 60)
        text = log_path.read_text(errors="replace")
        session_execs = 0
        for line in text.splitlines():
            if m := _STATUS.match(line):
                session_execs = int(m.group(1))
                last_status = (int(m.group(3)), int(m.group(4)), int(m.group(5)))
            elif m := _EXECS.match(line):
                session_execs = int(m.group(1))
        total_execs += session_execs
        written = _ARTIFACT.findall(text)
        # libFuzzer keeps going after an input slower than -report_slow_units (10 s): kept apart, not a finding
        # (on a busy machine it is often just a starved process: --replay times it alone)
        slow += [{"input": p, "seconds": int(t)} for t, p in _SLOW.findall(text)]
        crashes = [p for p in written if not Path(p).name.startswith("slow-unit-")]
        artifact = _ARTIFACT.search("\n".join(f"Test unit written to {p}" for p in crashes))
        if rc == 0 and not artifact:
            break
        sig = signature(text)
        saved = artifact.group(1) if artifact else None
        if saved is None and current.is_file():  # died or hung without a report: the input it was running
            data = current.read_bytes()
            saved = str(findings / f"{'timeout' if hung else 'crash'}-silent-{hashlib.sha1(data).hexdigest()}")
            Path(saved).write_bytes(data)
            sig = (
                f"hang: one input ran past --timeout and libFuzzer did not end it ({args.timeout + 60} s)"
                if hung
                else f"died without a report ({_signal_name(rc)}; a stack overflow leaves libFuzzer no stack)"
            )
        found.append({"artifact": saved, "signature": sig, "log": str(log_path)})
        print(f"[{name}] finding after {total_execs} executions: {sig}", flush=True)
        if not args.keep_going or sum(f["signature"] == sig for f in found) >= 3:
            break  # the same finding again and again: it is met at once (in the corpus); fix it first
    elapsed = time.monotonic() - start
    result = {
        "harness": name,
        "executions": total_execs,
        "seconds": round(elapsed, 1),
        "exec_per_s": round(total_execs / elapsed, 1) if elapsed else 0,
        "cov": last_status[0],
        "ft": last_status[1],
        "corpus": sum(1 for f in corpus.iterdir() if f.is_file()),
        "sessions": sessions,
        "findings": found,
        "slow_inputs": slow,
    }
    if args.coverage:
        result["line_coverage"] = line_coverage(name, work, [corpus, *([seeds] if seeds.is_dir() else [])])
    (work / "last-run.json").write_text(json.dumps(result, indent=1))
    report(result)
    return result


def line_coverage(name: str, work: Path, dirs: list[Path]) -> dict:
    out = work / "coverage.json"
    subprocess.run(worker_cmd(name, "--coverage", str(out), *map(str, dirs)), check=True)
    return json.loads(out.read_text())


def report(r: dict) -> None:
    print(f"\n== fuzz/{r['harness']}: {r['executions']} executions in {r['seconds']} s ({r['exec_per_s']}/s)")
    print(f"   libFuzzer coverage: cov {r['cov']} edges, ft {r['ft']} features, corpus {r['corpus']} inputs")
    if lc := r.get("line_coverage"):
        for mod, c in lc["modules"].items():
            pct = 100 * (c["statements"] - c["missing"]) / c["statements"] if c["statements"] else 100.0
            print(f"   lines reached by the corpus: {mod}: {pct:.0f}% of {c['statements']}")
        if lc.get("outcomes"):
            print(f"   the corpus replayed: {lc['outcomes']}")
    for s in r.get("slow_inputs", []):
        print(f"   slow input (not a finding): {s['seconds']} s, {s['input']}")
    print(f"   findings: {len(r['findings'])}")
    for f in r["findings"]:
        print(f"     {f['signature']}\n       input: {f['artifact']}  log: {f['log']}")


def minimize(name: str, path: Path, tries: int) -> Path:
    """The smallest input that ends as ``path`` does (same exception and place, or same signal): ``<path>.min``."""
    out = path.with_name(path.name + ".min")
    subprocess.run(worker_cmd(name, "--minimize", str(path), str(out), str(tries)), check=False)
    return out


def update_seeds(name: str) -> int:
    seeds, corpus = HERE / "corpus" / name, HERE / ".work" / name / "corpus"
    merged = HERE / ".work" / name / "merged"
    shutil.rmtree(merged, ignore_errors=True)
    merged.mkdir(parents=True)
    dirs = [str(d) for d in (corpus, seeds) if d.is_dir()]
    rc = subprocess.run(worker_cmd(name, "-merge=1", str(merged), *dirs)).returncode
    if rc != 0 or not any(merged.iterdir()):
        print(f"merge failed ({rc}); the seeds are unchanged", file=sys.stderr)
        return 1
    shutil.rmtree(seeds, ignore_errors=True)
    shutil.copytree(merged, seeds)
    files = list(seeds.iterdir())
    print(f"fuzz/corpus/{name}: {len(files)} inputs, {sum(f.stat().st_size for f in files)} bytes")
    return 0


def table() -> str:
    """The last run of every harness (``fuzz/.work/*/last-run.json``) as a Markdown table."""
    rows = [
        "| harness | executions | time | exec/s | libFuzzer cov / ft | corpus | lines of the targets reached "
        "| findings |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in HARNESSES:
        path = HERE / ".work" / name / "last-run.json"
        if not path.is_file():
            continue
        r = json.loads(path.read_text())
        lines = []
        for mod, c in r.get("line_coverage", {}).get("modules", {}).items():
            pct = 100 * (c["statements"] - c["missing"]) / c["statements"] if c["statements"] else 100.0
            lines.append(f"`{mod.removeprefix('llamanative/')}` {pct:.0f}%")
        found = "; ".join(f["signature"] for f in r["findings"]) or "0"
        rows.append(
            f"| {name} | {r['executions']:,} | {r['seconds']:.0f} s | {r['exec_per_s']:,.0f} | {r['cov']} / {r['ft']} "
            f"| {r['corpus']} | {', '.join(lines)} | {found} |"
        )
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("harness", nargs="?", choices=HARNESSES)
    ap.add_argument("--list", action="store_true", help="list the harnesses")
    ap.add_argument("--table", action="store_true", help="the last run of every harness, as a Markdown table")
    ap.add_argument("--seconds", type=float, default=600, help="wall time of the whole run (default 600)")
    ap.add_argument("--runs", "-runs", type=int, default=0, help="stop after this many executions (0: no limit)")
    ap.add_argument("--timeout", type=int, default=30, help="seconds one input may take before it is a finding")
    ap.add_argument("--rss-limit-mb", type=int, default=4096)
    ap.add_argument("--work", help="work folder (default fuzz/.work/<harness>)")
    ap.add_argument("--stop-on-finding", dest="keep_going", action="store_false")
    ap.add_argument("--coverage", action="store_true", help="also measure the line coverage of the corpus")
    ap.add_argument("--replay", nargs="+", metavar="FILE", help="run these inputs once, outside libFuzzer")
    ap.add_argument("--minimize", metavar="FILE", help="minimise a finding's input")
    ap.add_argument("--minimize-runs", type=int, default=2000, help="most candidate inputs --minimize tries")
    ap.add_argument(
        "--update-seeds",
        action="store_true",
        help="replace the seeds by the smallest set of the corpus and seeds "
        "that keeps their coverage (libFuzzer's -merge)",
    )
    args, extra = ap.parse_known_args()
    extra = [a for a in extra if a != "--"]
    if args.table:
        print(table())
        return 0
    if args.list or not args.harness:
        print("\n".join(HARNESSES))
        return 0
    if args.replay:
        return subprocess.run(worker_cmd(args.harness, "--replay", *args.replay)).returncode
    if args.minimize:
        minimize(args.harness, Path(args.minimize), args.minimize_runs)
        return 0
    if args.update_seeds:
        return update_seeds(args.harness)
    result = fuzz(args, extra)
    return 1 if result["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())
