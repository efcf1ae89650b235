"""The portable wheel's CPU variant against a build for this machine, in one run.

    python benchmarks/compare_cpu_builds.py --python dist-venv/bin/python [--python other/bin/python ...]
                                            [--model PATH] [--threads N] [--rounds 5]

Each ``--python`` is an interpreter with a llamanative installed (the
portable wheel in a venv, this checkout's default build, a GGML_NATIVE build
with ``GGML_BACKEND_DL=OFF``...). The first one is the reference. Each round
runs ``llamanative bench`` once in every interpreter, in turn, so that the
machine's load drifts over all of them alike; a round measures prompt
processing (512 tokens) and generation (128 tokens) with llama-bench's
protocol. Prints tokens/s as mean ± stdev over the rounds, the CPU plugin each
interpreter loaded, and the ratio of each to the reference (target for the
portable wheel against the native build: generation >= 0.97).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from _report import mean_sd
from plots import plot_file, plot_results

from llamanative import _core
from llamanative.fetch import fetch_model


def bench_once(python: str, model: str, threads: int, pp: int, tg: int) -> dict:
    """One ``llamanative bench`` run (2 repetitions) in that interpreter; its result row."""
    out = subprocess.run(
        [
            python,
            "-m",
            "llamanative.bench",
            model,
            "--threads",
            str(threads),
            "--pp",
            str(pp),
            "--tg",
            str(tg),
            "--reps",
            "2",
            "--device",
            "CPU",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    ).stdout
    return json.loads(out)["results"][0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--python", action="append", required=True, help="an interpreter with llamanative installed")
    ap.add_argument("--label", action="append", help="a name for each --python, in order")
    ap.add_argument("--model", default=None, help="GGUF file (default: SmolLM2-135M Q4_1)")
    ap.add_argument("--threads", type=int, default=_core.default_n_threads())
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--pp", type=int, default=512)
    ap.add_argument("--tg", type=int, default=128)
    ap.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    ap.add_argument("--plot", type=plot_file, metavar="FILE", help="also draw the figures as a PNG in FILE")
    args = ap.parse_args()
    model = args.model or str(fetch_model("smollm2", quiet=True))
    labels = args.label or args.python
    if len(labels) != len(args.python):
        ap.error("give one --label per --python")

    samples: dict[str, dict[str, list[float]]] = {lab: {"pp": [], "tg": []} for lab in labels}
    variant: dict[str, str] = {}
    for r in range(args.rounds):
        for lab, py in zip(labels, args.python):
            row = bench_once(py, model, args.threads, args.pp, args.tg)
            samples[lab]["pp"].append(row["pp_tps"])
            samples[lab]["tg"].append(row["tg_tps"])
            variant[lab] = row["cpu_variant"]
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)

    ref = labels[0]
    results = []
    print(f"{model}, {args.threads} threads, {args.rounds} rounds x 2 repetitions")
    print(
        f"{'build':<28} {'CPU plugin':<12} {'pp' + str(args.pp) + ' t/s':>18} {'tg' + str(args.tg) + ' t/s':>18}"
        f" {'pp ratio':>9} {'tg ratio':>9}"
    )
    for lab in labels:
        pp, pp_sd = mean_sd(samples[lab]["pp"])
        tg, tg_sd = mean_sd(samples[lab]["tg"])
        pp_ratio = pp / statistics.fmean(samples[ref]["pp"])
        tg_ratio = tg / statistics.fmean(samples[ref]["tg"])
        results.append(
            {
                "build": lab,
                "cpu_variant": variant[lab],
                "pp_tps": pp,
                "pp_tps_sd": pp_sd,
                "tg_tps": tg,
                "tg_tps_sd": tg_sd,
                "pp_ratio": pp_ratio,
                "tg_ratio": tg_ratio,
                "samples": samples[lab],
            }
        )
        print(
            f"{lab:<28} {variant[lab]:<12} {pp:>10.1f} ± {pp_sd:<5.1f} {tg:>10.1f} ± {tg_sd:<5.1f}"
            f" {pp_ratio:>9.3f} {tg_ratio:>9.3f}"
        )
    print(f"target: generation of the portable wheel >= 0.97 x {ref}")
    figures = {"model": model, "threads": args.threads, "rounds": args.rounds, "results": results}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)
    if args.plot:
        plot_results(figures, args.plot, "CPU builds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
