"""Build llama.cpp's own tools (llama-bench, llama-tokenize, llama-completion)
from the vendored tree, once, into ``build/reference``.

They are the reference the benchmarks and the parity tests compare against:
same source, same compiler flags (``GGML_NATIVE``), same machine.

    python benchmarks/reference_tools.py        # build (or reuse) and print the paths
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUILD_DIR = REPO / "build" / "reference"
TOOLS = {
    "llama-bench": "reference-tools/llama-bench/llama-bench",
    "llama-tokenize": "reference-tools/tokenize/llama-tokenize",
    "llama-completion": "reference-tools/completion/llama-completion",
}


def build_reference_tools(build_dir: Path = BUILD_DIR) -> dict[str, Path]:
    """Configure and build the tools if needed; return ``{name: path}``.

    Incremental: a second call only re-runs ninja/make, which finds nothing to do.
    Uses ccache when it is installed.

    Raises:
        subprocess.CalledProcessError: cmake failed (its output is shown).
    """
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time (tests may run in parallel)
        if not (build_dir / "CMakeCache.txt").exists():
            cmd = ["cmake", "-S", str(REPO), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
                   "-DLLAMANATIVE_REFERENCE_TOOLS=ON"]
            if shutil.which("ninja"):
                cmd += ["-G", "Ninja"]
            if shutil.which("ccache"):
                cmd += ["-DCMAKE_C_COMPILER_LAUNCHER=ccache", "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", str(build_dir), "--parallel", str(os.cpu_count() or 2),
                        "--target", *TOOLS], check=True, stdout=subprocess.DEVNULL)
    return {name: build_dir / rel for name, rel in TOOLS.items()}


if __name__ == "__main__":
    for name, path in build_reference_tools().items():
        print(f"{name}: {path}")
    sys.exit(0)
