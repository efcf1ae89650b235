"""Resident memory of llamanative against llama.cpp's own llama-bench, measured in one run.

    python benchmarks/bench_memory.py [--model PATH] [--threads N] [--reps 3] [--requests 1000] [--json FILE]

Two figures of the performance issue:

- **Peak resident memory with SmolLM2 loaded and used**, llamanative vs
  ``llama-bench`` (built from the vendored tree by ``reference_tools.py``).
  llama-bench runs one ``-pg PP,TG`` test (a PP-token prompt then TG generated
  tokens in one context of PP + TG cells, default 512 + 128) and its peak RSS
  is read from the kernel when it exits (``wait4``'s ``ru_maxrss``). The
  llamanative side is a fresh Python process that imports llamanative, loads
  the model through ``Client`` with ``num_ctx`` = PP + TG and the same thread
  count, and runs one raw ``generate`` of a prompt just under PP tokens with
  ``num_predict`` = TG; its peak (``VmHWM``) is read from ``/proc/self/status``.
  Both sides map the GGUF (mmap), so the weights count alike. Target: llamanative
  <= llama-bench + 60 MB. llama-bench gets the flash-attention setting the
  Client resolves (off on the CPU). The child also reports its RSS after the imports alone
  and after the load alone, to show where the difference goes. The two sides
  alternate, ``--reps`` runs each.

- **RSS growth over many sequential short requests** in one Client: after a
  warm-up of ``--warmup`` requests, ``VmRSS`` before and after ``--requests``
  more (short chat turns, each with its own prompt, ``num_predict`` 8),
  sampled every tenth of the way to show the trend. Target: growth < 10 MB.

RSS is read from ``/proc/self/status`` (Linux), or with psutil when that is
installed and ``/proc`` is not there. Use ``--json FILE`` to keep the figures, ``--plot FILE.png`` to draw them.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _report import fmt, mean_sd  # noqa: E402
from plots import plot_file, plot_results  # noqa: E402

TARGET_EXTRA_MB = 60.0  # llamanative's peak minus llama-bench's
TARGET_GROWTH_MB = 10.0  # RSS growth over the sequential requests
MB = 1e6  # bytes: figures are decimal megabytes, as the targets


# -- reading memory ---------------------------------------------------------------------------
def proc_status_kb(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``), in kB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def rss_mb() -> float:
    """This process's resident set size now, MB."""
    if os.path.exists("/proc/self/status"):
        return proc_status_kb("VmRSS") * 1024 / MB
    import psutil  # only where /proc is missing, and only if installed

    return psutil.Process().memory_info().rss / MB


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, MB."""
    if os.path.exists("/proc/self/status"):
        return proc_status_kb("VmHWM") * 1024 / MB
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB  # kB on Linux


# -- llama-bench side -------------------------------------------------------------------------
def llama_bench_peak_mb(tool: Path, model: Path, threads: int, pp: int, tg: int, flash_attn: str) -> float:
    """Peak RSS (MB) of one llama-bench run of a ``pp`` prompt + ``tg`` generated tokens, with
    ``flash_attn`` "on", "off" or "auto" (llama-bench's default)."""
    from compare_llama_bench import LLAMA_BENCH_FA  # here: the child process must not import llamanative early

    cmd = [
        str(tool),
        "-m",
        str(model),
        "-t",
        str(threads),
        "-p",
        "0",
        "-n",
        "0",
        "-pg",
        f"{pp},{tg}",
        "-r",
        "1",
        *LLAMA_BENCH_FA[flash_attn],
        "-o",
        "json",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return usage.ru_maxrss * 1024 / MB  # kB on Linux


# -- llamanative side: a fresh process --------------------------------------------------------
def client_child(model: str, threads: int, n_ctx: int, tg: int, prompt: str) -> dict:
    """In a fresh interpreter: RSS after imports, after the load, and the peak after one request (MB)."""
    out = {"start_mb": rss_mb()}
    from llamanative import Client

    out["imports_mb"] = rss_mb()
    opts = {"num_thread": threads, "num_ctx": n_ctx, "temperature": 0, "num_predict": tg, "seed": 0}
    with Client() as client:
        client.generate(model, "", options=opts)  # the load idiom: loads, generates nothing
        out["loaded_mb"] = rss_mb()
        r = client.generate(model, prompt, raw=True, options=opts)
        out["prompt_tokens"], out["eval_tokens"] = r.prompt_eval_count, r.eval_count
        out["after_request_mb"] = rss_mb()
        out["peak_mb"] = peak_rss_mb()
    return out


def run_client_child(model: Path, threads: int, n_ctx: int, tg: int, prompt: str) -> dict:
    """Run :func:`client_child` in a new Python process and return its figures."""
    args = json.dumps({"model": str(model), "threads": threads, "n_ctx": n_ctx, "tg": tg, "prompt": prompt})
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child"],
        input=args,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def prompt_of(model: Path, n_tokens: int) -> str:
    """A raw prompt of about ``n_tokens`` tokens (BOS included) cut from the tokenizer corpus."""
    from compare_llama_bench import corpus

    from llamanative import _core

    with _core.Model(model, vocab_only=True) as m:
        toks = m.vocab.tokenize(corpus(64 * 1024))
        text = m.vocab.detokenize(toks[1:n_tokens] if m.vocab.add_bos else toks[:n_tokens])
        while len(m.vocab.tokenize(text)) > n_tokens:  # re-tokenising may merge differently
            text = text[:-16]
    return text


def bench_load(model: Path, tool: Path, args) -> dict:
    """Alternating runs of llama-bench and a fresh llamanative process, ``args.reps`` each."""
    n_ctx = args.pp + args.tg
    prompt = prompt_of(model, args.pp - 8)  # leaves room for the TG tokens in n_ctx
    # llama-bench with the flash-attention setting the Client resolves here (off on the CPU):
    # without it, a prompt's attention scores are materialised, which is part of the setting.
    from llamanative import _core
    from llamanative.engine.attention import generation_flash_attn

    with _core.Model(model) as m:
        fa = generation_flash_attn(m, n_ctx=n_ctx, n_ubatch=512)
    bench, ours = [], []
    for rep in range(args.reps):
        steps = [
            lambda: bench.append(llama_bench_peak_mb(tool, model, args.threads, args.pp, args.tg, fa)),
            lambda: ours.append(run_client_child(model, args.threads, n_ctx, args.tg, prompt)),
        ]
        for step in steps if rep % 2 == 0 else steps[::-1]:
            step()
    return {"llama_bench_peak_mb": bench, "client": ours, "flash_attn": fa}


# -- growth over sequential requests ----------------------------------------------------------
def bench_growth(model: Path, args) -> dict:
    """RSS (MB) before, during and after ``args.requests`` short chat requests in one Client."""
    from llamanative import Client

    opts = {"num_thread": args.threads, "num_ctx": 1024, "temperature": 0, "num_predict": 8, "seed": 0}

    def request(client: Client, i: int) -> None:
        client.chat(str(model), [{"role": "user", "content": f"Request {i}: name a colour."}], options=opts)

    samples = []
    every = max(1, args.requests // 10)
    with Client() as client:
        for i in range(args.warmup):
            request(client, -1 - i)
        gc.collect()
        before = rss_mb()
        t0 = time.perf_counter()
        for i in range(args.requests):
            request(client, i)
            if (i + 1) % every == 0:
                gc.collect()
                samples.append((i + 1, rss_mb()))
        seconds = time.perf_counter() - t0
        gc.collect()
        after = rss_mb()
    return {"before_mb": before, "after_mb": after, "growth_mb": after - before, "samples": samples, "seconds": seconds}


# -- report -----------------------------------------------------------------------------------
def report(load: dict, growth: dict, args) -> None:
    """The table (measure, llamanative, llama-bench, figure, target, verdict), then the details."""
    bench = load["llama_bench_peak_mb"]
    peak = [c["peak_mb"] for c in load["client"]]
    extra = mean_sd(peak)[0] - mean_sd(bench)[0]
    g = growth["growth_mb"]
    rows = [
        ("measure", "llamanative", "llama-bench", "figure", "target", ""),
        (
            f"peak RSS, loaded + pp{args.pp}/tg{args.tg} run, MB",
            fmt(peak),
            fmt(bench),
            f"{extra:+.1f} MB",
            f"<= +{TARGET_EXTRA_MB:.0f} MB",
            "met" if extra <= TARGET_EXTRA_MB else "MISSED",
        ),
        (
            f"RSS growth over {args.requests} requests, MB",
            f"{g:+.1f}",
            "",
            "",
            f"< {TARGET_GROWTH_MB:.0f} MB",
            "met" if g < TARGET_GROWTH_MB else "MISSED",
        ),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5])
    c0 = load["client"][0]
    print(f"flash attention, both sides: {load['flash_attn']} (the Client's setting for this model)")
    print(
        f"llamanative process: {fmt([c['start_mb'] for c in load['client']])} MB at start, "
        f"{fmt([c['imports_mb'] for c in load['client']])} after imports, "
        f"{fmt([c['loaded_mb'] for c in load['client']])} after the load, "
        f"{fmt([c['after_request_mb'] for c in load['client']])} after the request "
        f"({c0['prompt_tokens']} prompt + {c0['eval_tokens']} generated tokens)"
    )
    trend = ", ".join(f"{n}: {mb:.1f}" for n, mb in growth["samples"])
    print(
        f"growth: {growth['before_mb']:.1f} MB after {args.warmup} warm-up requests; by request count: {trend}"
        f" ({growth['seconds'] / max(1, args.requests) * 1e3:.0f} ms per request)"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="GGUF model (default: SmolLM2-135M Q4_1)")
    ap.add_argument("--threads", type=int, default=None, help="threads (default: llama.cpp's default)")
    ap.add_argument("--reps", type=int, default=3, help="runs of each side for the peak RSS")
    ap.add_argument("--pp", type=int, default=512, help="prompt tokens of the peak-RSS run")
    ap.add_argument("--tg", type=int, default=128, help="generated tokens of the peak-RSS run")
    ap.add_argument("--requests", type=int, default=1000, help="sequential requests for the growth figure")
    ap.add_argument("--warmup", type=int, default=50, help="requests before the growth baseline")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--plot", type=plot_file, default=None, help="also draw the figures as a PNG here (matplotlib)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:  # the fresh llamanative process of bench_load: JSON in on stdin, out on stdout
        print(json.dumps(client_child(**json.loads(sys.stdin.read()))))
        return 0

    from reference_tools import build_reference_tools

    from llamanative import _core
    from llamanative.fetch import fetch_model

    args.threads = args.threads or _core.default_n_threads()
    model = args.model or fetch_model("smollm2", quiet=True)
    tool = build_reference_tools()["llama-bench"]
    load = bench_load(model, tool, args)
    growth = bench_growth(model, args)
    print(
        f"model {model.name}, {args.threads} threads, llama.cpp {_core.LLAMA_CPP_COMMIT[:8]}, "
        f"{args.reps} runs each side, mean ± stdev"
    )
    report(load, growth, args)
    figures = {"model": model.name, "threads": args.threads, "load": load, "growth": growth}
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    if args.plot:
        plot_results(figures, args.plot, "llamanative vs llama-bench: resident memory")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
