"""Generation speed when a request asks for more threads than the process has CPUs.

    python benchmarks/threads_oversubscribed.py [--model PATH] [--tokens 64] [--budget 30] [--reps 3]

Three comparisons, each case in a fresh interpreter (killed after ``--budget``
seconds, so a case that nearly hangs still reports what it managed):

1. unconstrained: ``options={"num_thread": N}`` for N = 1, 2, 3, 16 through
   the Client (greedy ``generate``, ``--tokens`` tokens): tokens/s, the
   thread count the context was given, and the ratio to N = 1;
2. one CPU: the interpreter's affinity restricted to one CPU
   (``os.sched_setaffinity``) before anything starts, then num_thread 4
   against 1;
3. polling on the common case: ``_core.Context`` at as many threads as CPUs,
   the pool's ``poll`` at 1 (the default) against 0 (no busy polling, what
   an oversubscribed process gets), to show that the oversubscribed setting
   would not suit the common case.

Tokens/s is the tokens after the first one over the time from the first to
the last (the prompt is a few tokens). Medians of ``--reps`` runs; the
machine may be shared, so read the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

PROMPT = "Count from one to one thousand: one, two, three,"


def child(args: argparse.Namespace) -> None:
    """One case; prints a JSON line per event: {"threads": n} once, then {"t": seconds} per token."""
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})  # before any thread exists: every later one inherits it
    from llamanative import Client, _core

    if args.raw_poll is not None:
        model = _core.Model(args.model)
        ctx = _core.Context(model, n_ctx=512, n_threads=args.threads, poll=args.raw_poll)
        sampler = _core.Sampler(model).greedy()
        tokens = model.vocab.tokenize(PROMPT)
        batch = _core.Batch(512)
        batch.add_sequence(tokens, pos0=0, seq_id=0)
        ctx.decode(batch)
        print(json.dumps({"threads": ctx.n_threads}), flush=True)
        pos = len(tokens)
        for _ in range(args.tokens):
            tok = sampler.sample(ctx, -1)
            print(json.dumps({"t": time.perf_counter()}), flush=True)
            batch.clear()
            batch.add(tok, pos, 0, True)
            ctx.decode(batch)
            pos += 1
        return
    with Client() as client:
        opts = {"temperature": 0, "seed": 1, "num_predict": args.tokens, "num_thread": args.threads, "num_ctx": 512}
        first = True
        for _chunk in client.generate(args.model, PROMPT, raw=True, options=opts, stream=True):
            if first:
                runner = client._scheduler.loaded()[0].runner  # what the context was given
                print(json.dumps({"threads": runner._ctx.n_threads}), flush=True)
                first = False
            print(json.dumps({"t": time.perf_counter()}), flush=True)


def run_case(args: argparse.Namespace, threads: int, cpu: int | None = None, raw_poll: int | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", "--model", args.model, "--tokens", str(args.tokens)]
    cmd += ["--threads", str(threads)]
    if cpu is not None:
        cmd += ["--cpu", str(cpu)]
    if raw_poll is not None:
        cmd += ["--raw-poll", str(raw_poll)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        proc.wait(timeout=args.budget)
        timed_out = False
    except subprocess.TimeoutExpired:
        proc.kill()  # a case that nearly hangs reports the tokens it made in the budget
        proc.wait()
        timed_out = True
    reader.join()
    stamps: list[float] = []
    used = None
    for line in lines:
        event = json.loads(line)
        if "threads" in event:
            used = event["threads"]
        else:
            stamps.append(event["t"])
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
    return {"tokens": len(stamps), "tok_s": rate, "used": used, "timed_out": timed_out}


def median_case(args: argparse.Namespace, **kw) -> dict:
    runs = [run_case(args, **kw) for _ in range(args.reps)]
    return {
        "tok_s": statistics.median(r["tok_s"] for r in runs),
        "runs": [round(r["tok_s"], 1) for r in runs],
        "tokens": min(r["tokens"] for r in runs),
        "used": runs[0]["used"],
        "timed_out": any(r["timed_out"] for r in runs),
    }


def show(label: str, res: dict, base: float) -> None:
    ratio = res["tok_s"] / base if base else float("nan")
    note = f"  (stopped after the {res['tokens']}th token)" if res["timed_out"] else ""
    print(f"{label:34} used {res['used']!s:>3}  {res['tok_s']:8.1f} tok/s  ×{ratio:5.2f}  runs {res['runs']}{note}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="GGUF path (default: the SmolLM2 test model)")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--budget", type=float, default=30.0, help="seconds before a case is stopped (default 30)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", choices=("unconstrained", "one-cpu", "poll"), action="append")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--cpu", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--raw-poll", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args)
        return 0
    if args.model is None:
        from llamanative.fetch import fetch_model

        args.model = str(fetch_model("smollm2", quiet=True))
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    only = set(args.only or ("unconstrained", "one-cpu", "poll"))
    print(f"{len(cpus)} CPUs, {args.tokens} tokens, {args.reps} runs per case, budget {args.budget:.0f} s")
    if "unconstrained" in only:
        print("\nunconstrained, Client options num_thread (ratio to 1 thread)")
        base = median_case(args, threads=1)
        show("num_thread 1", base, base["tok_s"])
        for n in (2, 3, 16):
            show(f"num_thread {n}", median_case(args, threads=n), base["tok_s"])
    if "one-cpu" in only:
        print(f"\naffinity one CPU ({cpus[-1]}), Client options num_thread (ratio to 1 thread)")
        base = median_case(args, threads=1, cpu=cpus[-1])
        show("num_thread 1", base, base["tok_s"])
        show("num_thread 4", median_case(args, threads=4, cpu=cpus[-1]), base["tok_s"])
    if "poll" in only:
        print(f"\n_core.Context, {len(cpus)} threads, not oversubscribed (ratio to poll 1)")
        base = median_case(args, threads=len(cpus), raw_poll=1)
        show("poll 1 (default)", base, base["tok_s"])
        show("poll 0 (no busy polling)", median_case(args, threads=len(cpus), raw_poll=0), base["tok_s"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
