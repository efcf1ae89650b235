"""Embeddings through Ray Data (``llamanative.ray.embed_dataset``) with 1 and 2 actors against in-process ``embed``.

    python benchmarks/compare_ray.py [--texts 5000] [--reps 3] [--cpus 2] [--actors 1,2] [--batch-size 256]

Needs the ``ray`` extra (``pip install "llamanative[ray]"``). The script
starts a local Ray cluster of ``--cpus`` CPUs in this process (no dashboard,
no usage report) and embeds the same ``--texts`` short sentences with
all-MiniLM-L6-v2 F16 (the test suite's model, on a store of the script's own)
three ways, each with ``--cpus`` compute threads in all:

- **in-process**: one ``Client.embed`` call of every text (``num_thread`` =
  ``--cpus``), the reference;
- **Ray, N actors**, for each N of ``--actors``: ``embed_dataset(...,
  concurrency=N, num_cpus=cpus/N)`` over ``ray.data.from_items`` of the texts
  (blocks in order), consumed with ``take_batch``; each actor embeds with
  ``cpus/N`` threads.

A Ray run is timed end to end: the actors start and load the model in every
run (Ray Data makes a new pool for each execution), which is the cost of a
call on a small corpus. That start-up is measured on its own too (the same
pipeline on a dataset of one text per actor) and printed, with the rate of
the run less it: about what a long corpus sees once the actors are up. The ratios are Ray's embeddings/s over
in-process (below 1: Ray's overhead). The sides take turns within every
repetition (the order rotating), after one warm-up of each; figures are mean
± stdev over ``--reps``.

This machine's cores are all the cluster has: the figures are the cost of
going through Ray, not a claim about scaling, which needs more machines
(``docs/scaling.md`` gives the configuration).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _report import fmt, mean_sd  # noqa: E402
from compare_llama_cpp_python import minilm_path, sentences  # noqa: E402

from llamanative import Client, _core  # noqa: E402

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--texts", type=int, default=5000, help="sentences embedded per run")
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions")
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local cluster = threads of every side")
    ap.add_argument("--actors", default="1,2", help="actor counts to measure, comma-separated")
    ap.add_argument("--batch-size", type=int, default=256, help="rows per embed call of an actor")
    args = ap.parse_args(argv)
    actors = [int(a) for a in args.actors.split(",")]
    try:
        import ray
        import ray.data

        from llamanative.ray import embed_dataset
    except ImportError as exc:
        raise SystemExit(f"this benchmark needs the ray extra ({exc})") from None

    texts = sentences(args.texts)
    store = Path(tempfile.mkdtemp(prefix="compare-ray-store-"))
    model = minilm_path()
    load = os.getloadavg()[0]
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, object_store_memory=256 * 2**20)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.execution_options.preserve_order = True
    with Client(models_dir=store) as client:
        client.create("mini", from_=str(model))
        opts = {"num_thread": args.cpus}
        expected = client.embed("mini", texts, options=opts).as_array()

        def in_process() -> float:
            t0 = time.perf_counter()
            client.embed("mini", texts, options=opts)
            return time.perf_counter() - t0

        def through_ray(n: int, items: list[str]) -> Callable[[], float]:
            def run() -> float:
                ds = ray.data.from_items([{"text": t} for t in items], override_num_blocks=min(len(items), 8))
                t0 = time.perf_counter()
                embedded = embed_dataset(
                    ds, "mini", models_dir=store, concurrency=n, num_cpus=args.cpus / n, batch_size=args.batch_size
                )
                got = embedded.take_batch(len(items), batch_format="numpy")["embedding"]
                elapsed = time.perf_counter() - t0
                if len(items) == len(texts):
                    cos = np.sum(got * expected, axis=1)  # both L2-normalised
                    if got.shape != expected.shape or cos.min() < 0.99999:
                        raise SystemExit(f"Ray's embeddings differ from in-process ones (min cosine {cos.min()})")
                return elapsed

            return run

        sides: list[tuple[str, Callable[[], float]]] = [("in-process", in_process)]
        for n in actors:
            sides += [(f"ray-{n}", through_ray(n, texts)), (f"ray-{n}-start", through_ray(n, texts[:n]))]
        for _, fn in sides:
            fn()  # warm-up: the model in the page cache, Ray's workers started
        times: dict[str, list[float]] = {name: [] for name, _ in sides}
        for rep in range(args.reps):
            for k in range(len(sides)):
                name, fn = sides[(rep + k) % len(sides)]
                times[name].append(fn())
    ray.shutdown()

    n_texts = len(texts)
    base = [n_texts / t for t in times["in-process"]]
    rows = [("in-process Client.embed", f"{args.cpus} threads", fmt(base, 0), "1.000x", "")]
    for n in actors:
        rates = [n_texts / t for t in times[f"ray-{n}"]]
        # The start-up: the same pipeline on n texts (the pool started, the model loaded, one tiny batch each).
        start = statistics.median(times[f"ray-{n}-start"])
        steady = [n_texts / max(t - start, 1e-9) for t in times[f"ray-{n}"]]
        threads = f"{n} x {args.cpus / n:g} threads"
        rows.append((f"Ray Data, {n} actor{'s' if n > 1 else ''}", threads, fmt(rates, 0), ratio(rates, base), ""))
        rows.append(("  less the start-up", threads, fmt(steady, 0), ratio(steady, base), f"{start:.2f}"))
    print(
        f"llamanative embeddings through Ray Data {ray.__version__} vs in-process (llama.cpp "
        f"{_core.LLAMA_CPP_COMMIT[:8]}); all-MiniLM-L6-v2 F16, {n_texts} sentences, a local cluster of "
        f"{args.cpus} CPUs (os.cpu_count {os.cpu_count()}), batch {args.batch_size}, {args.reps} repetitions, "
        f"mean ± stdev; load average {load:.2f} -> {os.getloadavg()[0]:.2f}"
    )
    print_rows(rows)
    return 0


def print_rows(rows: list[tuple[str, ...]]) -> None:
    """The table: side, threads, embeddings/s, the ratio to in-process, the start-up in seconds."""
    head = ("side", "threads", "embeddings/s", "vs in-process", "start-up (s)")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def ratio(a: list[float], b: list[float]) -> str:
    return f"{mean_sd(a)[0] / mean_sd(b)[0]:.3f}x"


if __name__ == "__main__":
    sys.exit(main())
