"""Build llama.cpp's own tools (llama-bench, llama-tokenize, llama-completion,
llama-server, llama-mtmd-cli) from the vendored tree: the reference that the
benchmarks and parity tests compare against (same source, same flags, same
machine).

    python benchmarks/reference_tools.py                # the default three: build (or reuse), print the paths
    python benchmarks/reference_tools.py llama-server   # only the named ones

llama-server is built only when asked for by name (it adds libmtmd and the
server, a few more minutes on two cores); the parity tests do not need it.
llama-mtmd-cli (libmtmd's command-line tool: a prompt with images or audio) is
built only when asked for by name too; it is the reference of the image tests.

The tools are targets of this project's CMake tree, configured on its own in
``build/reference`` (without the Python extension, so it does not depend on
pip's temporary build environment). The first build compiles llama.cpp once
more (ccache, when installed, makes that a cache hit); later calls only check
that everything is up to date.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# In bin/, beside the backend plugins they load (ggml looks in the executable's directory).
TOOLS = {
    "llama-bench": "bin/llama-bench",
    "llama-tokenize": "bin/llama-tokenize",
    "llama-completion": "bin/llama-completion",
    "llama-server": "bin/llama-server",
    "llama-mtmd-cli": "bin/llama-mtmd-cli",
}
DEFAULT_TOOLS = ("llama-bench", "llama-tokenize", "llama-completion")


BUILD_DIR = REPO / "build" / "reference"


def build_reference_tools(build_dir: Path | None = None, names: tuple[str, ...] = DEFAULT_TOOLS) -> dict[str, Path]:
    """Build the tools ``names`` (keys of ``TOOLS``) if needed (incremental) and return ``{name: path}``.

    Raises:
        KeyError: a name that is not in ``TOOLS``.
        subprocess.CalledProcessError: cmake failed (its output is shown).
    """
    unknown = [n for n in names if n not in TOOLS]
    if unknown:
        raise KeyError(f"unknown reference tool(s) {unknown}; known: {sorted(TOOLS)}")
    build_dir = build_dir or BUILD_DIR
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / ".reference-tools.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time
        if not (build_dir / "CMakeCache.txt").exists():
            cmd = ["cmake", "-S", str(REPO), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release"]
            if shutil.which("ninja"):
                cmd += ["-G", "Ninja"]
            if shutil.which("ccache"):
                cmd += ["-DCMAKE_C_COMPILER_LAUNCHER=ccache", "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(
            ["cmake", "--build", str(build_dir), "--parallel", str(os.cpu_count() or 2), "--target", *names],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return {name: build_dir / TOOLS[name] for name in names}


if __name__ == "__main__":
    for name, path in build_reference_tools(names=tuple(sys.argv[1:]) or DEFAULT_TOOLS).items():
        print(f"{name}: {path}")
    sys.exit(0)
