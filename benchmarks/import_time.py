"""How long ``import llamanative`` takes, and what the first use of the backends adds.

    python benchmarks/import_time.py [--runs 10]

Each figure is the median wall time of ``--runs`` fresh interpreters (started
from a temporary directory, so the checkout's files are not in the way):
- ``python -c pass``: the interpreter alone, subtracted from the others;
- ``import llamanative``;
- ``import llamanative; llamanative.backends()``: the import and the loading
  of the backend plugins (the first Model, ``backends()`` or ``devices()``
  loads them).
``python -X importtime -c 'import llamanative'`` breaks the import down by module.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

CASES = {
    "interpreter (python -c pass)": "pass",
    "import llamanative": "import llamanative",
    "import + backends()": "import llamanative; llamanative.backends()",
}


def median_ms(code: str, runs: int, cwd: str) -> tuple[float, float, float]:
    """(median, min, max) wall milliseconds of ``runs`` interpreters running ``code``."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=cwd)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), min(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="fresh interpreters per case (default 10)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cwd:
        median_ms("import llamanative", 1, cwd)  # warm the page cache and __pycache__
        results = {name: median_ms(code, args.runs, cwd) for name, code in CASES.items()}
    base = results["interpreter (python -c pass)"][0]
    print(f"{'case':32} {'median ms':>10} {'min':>8} {'max':>8} {'minus interpreter':>18}")
    for name, (med, lo, hi) in results.items():
        print(f"{name:32} {med:10.1f} {lo:8.1f} {hi:8.1f} {med - base:18.1f}")


if __name__ == "__main__":
    main()
