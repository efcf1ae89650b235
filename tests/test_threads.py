"""CPU threads: the ceiling at the CPUs the process may run on (affinity, cgroup quota) and no busy polling
when the process's contexts hold more threads than that.

Each case runs in a fresh interpreter: the affinity and cgroup of the test
process stay as they are, and no context of another test counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

_needs_affinity = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs os.sched_setaffinity")

# Prints one JSON line: the logged warnings of the "llamanative" logger and what the code put in `out`.
_HEAD = r"""
import json, logging, os, sys
records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append(record.getMessage())
logging.getLogger("llamanative").addHandler(Keep())
out = {}
"""
_TAIL = r"""
out["records"] = records
print(json.dumps(out))
"""


def _run(body: str, *args: str, timeout: float = 300) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLAMANATIVE_")}
    proc = subprocess.run(
        [sys.executable, "-c", _HEAD + body + _TAIL, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=Path(__file__).parent,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


# Greedy tokens from a _core context with the given threads (argv: model, threads or "none").
_GREEDY = r"""
from llamanative import _core
def greedy(model, n_threads, n=8):
    ctx = _core.Context(model, n_ctx=256, n_threads=n_threads)
    sampler = _core.Sampler(model).greedy()
    toks = model.vocab.tokenize("The capital of France is")
    batch = _core.Batch(64)
    batch.add_sequence(toks, pos0=0, seq_id=0)
    ctx.decode(batch)
    got, pos = [], len(toks)
    for _ in range(n):
        tok = sampler.sample(ctx, -1)
        got.append(tok)
        batch.clear()
        batch.add(tok, pos, 0, True)
        ctx.decode(batch)
        pos += 1
    used = (ctx.n_threads, ctx.n_threads_batch, ctx.poll)
    ctx.close()
    return got, used
"""


@_needs_affinity
def test_one_cpu_affinity_caps_a_request_for_four_threads(smollm2_path):
    """Affinity to one CPU: 4 threads asked for, 1 used (logged once), greedy tokens as with 1; the Client too."""
    body = (
        r"""
os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
"""
        + _GREEDY
        + r"""
model = _core.Model(sys.argv[1])
out["default"] = _core.default_n_threads()
out["one"], out["one_used"] = greedy(model, 1)
out["four"], out["four_used"] = greedy(model, 4)
greedy(model, 4)  # the same request again: not logged again
out["auto"], out["auto_used"] = greedy(model, None)
model.close()
import llamanative
with llamanative.Client() as client:
    opts = {"num_thread": 4, "temperature": 0, "num_predict": 8}
    r = client.generate(sys.argv[1], "The capital of France is", raw=True, options=opts)
    out["client_done"] = r.done and r.eval_count
"""
    )
    out = _run(body, str(smollm2_path))
    assert out["default"] == 1
    assert out["four_used"] == [1, 1, 0]  # capped, and the pool does not poll
    assert out["auto_used"][:2] == [1, 1]
    assert out["four"] == out["one"] == out["auto"]
    assert out["client_done"] == 8
    capped = [r for r in out["records"] if "threads were asked for" in r]
    assert len(capped) == 1 and "4 threads" in capped[0] and "using 1" in capped[0] and "affinity" in capped[0]


def test_set_n_threads_is_capped_too(smollm2_path):
    body = (
        _GREEDY
        + r"""
model = _core.Model(sys.argv[1])
ctx = _core.Context(model, n_ctx=128, n_threads=1)
cpus = _core.default_n_threads()
ctx.set_n_threads(cpus + 7, cpus + 9)
out["cpus"], out["used"] = cpus, [ctx.n_threads, ctx.n_threads_batch]
"""
    )
    out = _run(body, str(smollm2_path))
    assert out["used"] == [out["cpus"], out["cpus"]]
    assert any(f"{out['cpus'] + 9} threads were asked for" in r for r in out["records"])


def test_pools_past_the_cpus_do_not_poll(smollm2_path):
    """A pool that takes the process's contexts past its CPUs is made with poll 0; within them, the poll asked for."""
    body = r"""
from llamanative import _core
model = _core.Model(sys.argv[1])
cpus = _core.default_n_threads()
first = _core.Context(model, n_ctx=128, n_threads=cpus, poll=5)
second = _core.Context(model, n_ctx=128, n_threads=1, poll=5)
out["first"], out["second"] = first.poll, second.poll
first.close()
third = _core.Context(model, n_ctx=128, n_threads=1, poll=5)  # beside `second` only
out["third"] = third.poll
out["cpus"] = cpus
"""
    out = _run(body, str(smollm2_path))
    assert out["first"] == 5
    assert out["second"] == 0
    assert out["third"] == (5 if out["cpus"] >= 2 else 0)
    assert not [r for r in out["records"] if "threads were asked for" in r]


def _writable_cpu_cgroup() -> tuple[str, Path] | None:
    """A cgroup hierarchy with the CPU controller where this process may create a child:
    ("v2", dir) or ("v1", dir), else None."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in mounts:
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        fstype, opts, root, mount_point = fields[sep + 1], fields[sep + 3], fields[3], Path(fields[4])
        for cg in lines:
            hier, _, rest = cg.partition(":")
            controllers, _, path = rest.partition(":")
            if root != "/" or not path.startswith("/"):
                continue
            here = mount_point / path.lstrip("/")
            if fstype == "cgroup2" and hier == "0":
                enabled = (here / "cgroup.subtree_control").read_text().split() if here.is_dir() else []
                if "cpu" in enabled and os.access(here, os.W_OK):
                    return ("v2", here)
            elif fstype == "cgroup" and "cpu" in opts.split(",") and "cpu" in controllers.split(","):
                if (here / "cpu.cfs_quota_us").exists() and os.access(here, os.W_OK):
                    return ("v1", here)
    return None


def test_cgroup_cpu_quota_caps_threads(tmp_path, smollm2_path):
    """A cgroup with a quota of one CPU (cpu.max / cfs_quota_us) on a machine with more: 1 thread."""
    if (os.cpu_count() or 1) < 2 or (hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) < 2):
        pytest.skip("the quota can only show below the affinity on a process with 2 CPUs or more")
    found = _writable_cpu_cgroup()
    if found is None:
        pytest.skip("no cgroup hierarchy with the cpu controller where this process may create a cgroup")
    version, parent = found
    group = parent / f"llamanative-test-{uuid.uuid4().hex[:8]}"
    try:
        group.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot create a cgroup under {parent}: {exc}")
    try:
        try:
            if version == "v2":
                (group / "cpu.max").write_text("100000 100000")
            else:
                (group / "cpu.cfs_period_us").write_text("100000")
                (group / "cpu.cfs_quota_us").write_text("100000")
        except OSError as exc:
            pytest.skip(f"cannot set a CPU quota on {group}: {exc}")
        body = (
            r"""
(__import__("pathlib").Path(sys.argv[2]) / "cgroup.procs").write_text(str(os.getpid()))
"""
            + _GREEDY
            + r"""
model = _core.Model(sys.argv[1])
out["affinity"] = len(os.sched_getaffinity(0))
out["default"] = _core.default_n_threads()
out["tokens"], out["used"] = greedy(model, 4)
"""
        )
        out = _run(body, str(smollm2_path), str(group))
    finally:
        group.rmdir()  # the child has exited: the cgroup is empty
    assert out["affinity"] >= 2
    assert out["default"] == 1
    assert out["used"] == [1, 1, 0] and len(out["tokens"]) == 8
    assert any("cgroup CPU quota 1 CPU(s)" in r and "using 1" in r for r in out["records"])
