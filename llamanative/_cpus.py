"""How many CPUs this process may actually compute on.

``os.cpu_count()`` counts the machine's CPUs; a process may be allowed fewer:
its CPU affinity (``taskset``, ``docker --cpuset-cpus``) and its cgroup's CPU
quota (``docker --cpus``, Kubernetes CPU limits: cgroup v2 ``cpu.max``, v1
``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``). A compute thread beyond them
does no extra work: it waits for a CPU while ggml's other threads spin at a
barrier for it, and generation slows a hundredfold (docs/design/cpu-threads.md).

The native core uses :func:`cpu_limit` for the default thread count of a
context and as the ceiling of a request.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CpuLimit", "cpu_limit"]


@dataclass(frozen=True)
class CpuLimit:
    """The CPUs the calling thread may run on, and what limits them.

    Attributes:
        cpus: the usable CPUs, >= 1: the least of the affinity and the quota,
            else ``os.cpu_count()``.
        cpu_count: ``os.cpu_count()`` (None when unknown).
        affinity: CPUs in the affinity mask (None where the OS has no
            ``sched_getaffinity``).
        quota: the tightest cgroup CPU quota on the process's cgroup and its
            ancestors, in CPUs (``1.5`` for ``cpu.max`` = ``150000 100000``);
            None when there is none.
    """

    cpus: int
    cpu_count: int | None
    affinity: int | None
    quota: float | None

    def reason(self) -> str:
        """What sets :attr:`cpus`, in words (for a log message)."""
        parts = []
        if self.affinity is not None and self.affinity != self.cpu_count:
            parts.append(f"CPU affinity allows {self.affinity} of {self.cpu_count}")
        if self.quota is not None:
            parts.append(f"cgroup CPU quota {self.quota:g} CPU(s)")
        return "; ".join(parts) or f"the machine has {self.cpus}"


def cpu_limit() -> CpuLimit:
    """The CPUs the calling thread may run on now (affinity and cgroup quota read each call)."""
    count = os.cpu_count()
    try:
        affinity: int | None = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    quota = cgroup_cpu_quota()
    cpus = affinity if affinity else count or 1
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return CpuLimit(max(1, cpus), count, affinity, quota)


def cgroup_cpu_quota(proc: Path = Path("/proc/self")) -> float | None:
    """The tightest CPU quota, in CPUs, over the process's cgroups (v2 and v1) and their ancestors.

    None where there is no cgroup file system, no quota, or nothing readable:
    a limit that cannot be read is no limit.
    """
    try:
        cgroups = (proc / "cgroup").read_text().splitlines()
        mounts = (proc / "mountinfo").read_text().splitlines()
    except OSError:
        return None
    found: list[float] = []
    for line in cgroups:
        hier, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hier == "0" and controllers == "":
            found += _walk(_mount_dirs(mounts, "cgroup2", None), path, _v2_quota)
        elif "cpu" in controllers.split(","):
            found += _walk(_mount_dirs(mounts, "cgroup", "cpu"), path, _v1_quota)
    return min(found) if found else None


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes.
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def _mount_dirs(mounts: list[str], fstype: str, controller: str | None) -> list[tuple[str, str]]:
    """(root within the hierarchy, mount point) of each mount of that cgroup hierarchy."""
    out = []
    for line in mounts:
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if len(fields) < sep + 4 or fields[sep + 1] != fstype:
            continue
        if controller is not None and controller not in fields[sep + 3].split(","):
            continue
        out.append((_unescape(fields[3]), _unescape(fields[4])))
    return out


def _walk(mounts: list[tuple[str, str]], path: str, read) -> list[float]:
    """The quotas from the cgroup directory of ``path`` up to the mount point (a parent's quota binds too)."""
    for root, mount_point in mounts:
        if root != "/" and not (path == root or path.startswith(root.rstrip("/") + "/")):
            continue
        rel = path[len(root) :] if root != "/" else path
        top = Path(mount_point)
        here = top / rel.lstrip("/")
        if not here.is_dir():
            continue
        quotas = []
        while True:
            quota = read(here)
            if quota is not None:
                quotas.append(quota)
            if here == top or top not in here.parents:
                break
            here = here.parent
        return quotas
    return []


def _v2_quota(directory: Path) -> float | None:
    try:
        quota, _, period = (directory / "cpu.max").read_text().strip().partition(" ")
        if quota == "max":
            return None
        return int(quota) / int(period or 100000)
    except (OSError, ValueError, ZeroDivisionError):
        return None


def _v1_quota(directory: Path) -> float | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    if quota <= 0 or period <= 0:
        return None  # -1: no quota
    return quota / period
