"""Generation over llama.cpp's RPC backend (``llamanative rpc-server`` on 127.0.0.1) against a local run.

    python benchmarks/compare_rpc.py [--tokens 64] [--reps 3] [--threads 2]

SmolLM2-135M-Instruct (the test suite's model) generates ``--tokens``
greedy tokens from the same prompt, the sides taking turns within every
repetition after one warm-up each:

- **local**: every layer on this process's CPU (``--threads`` threads);
- **1 server**: every layer on one ``llamanative rpc-server`` process
  (``--threads`` threads), this process holding only the input embeddings;
- **2 servers**: the layers split over two servers (``--threads`` // 2 each).

Printed per side: decode tokens/s (``eval_count / eval_duration``), prompt
tokens/s, and the extra time per generated token against local: what the
network hops cost (ggml's client makes several round trips a token: the
graph, then reading the logits back). The handshake time of one fresh
connection is printed as the floor of one round trip on this network
stack. On one machine the servers compete with the client for the same
cores, so the figures are the cost of the protocol, not a claim about a
cluster (``docs/scaling.md``).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _report import fmt, mean_sd  # noqa: E402

from llamanative import Client, _core  # noqa: E402
from llamanative.errors import RpcConnectError  # noqa: E402
from llamanative.fetch import fetch_model  # noqa: E402

PROMPT = "Write a short story about a lighthouse keeper and a storm."


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(threads: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    argv = [sys.executable, "-m", "llamanative", "rpc-server", "--port", str(port), "--threads", str(threads)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tempfile.gettempdir())
    endpoint = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"rpc-server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            _core.rpc_probe(endpoint, 2.0)
            return proc, endpoint
        except RpcConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def handshake_ms(endpoint: str, n: int = 20) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        _core.rpc_probe(endpoint, 2.0)
    return (time.perf_counter() - t0) / n * 1e3


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=64, help="greedy tokens generated per run")
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions")
    ap.add_argument("--threads", type=int, default=2, help="compute threads of each side in all")
    args = ap.parse_args(argv)

    model = str(fetch_model("smollm2", quiet=True))
    half = max(1, args.threads // 2)
    one, one_endpoint = start_server(args.threads)
    pair = [start_server(half) for _ in range(2)]
    servers = [one, *(p for p, _ in pair)]
    sides = {
        "local": [],
        "1 server": [one_endpoint],
        "2 servers": [e for _, e in pair],
    }
    floor = handshake_ms(one_endpoint)
    decode: dict[str, list[float]] = {k: [] for k in sides}
    prompt: dict[str, list[float]] = {k: [] for k in sides}
    try:
        with tempfile.TemporaryDirectory() as store, Client(models_dir=store) as client:
            client.create("smol", from_=model)
            names = list(sides)
            for rep in range(args.reps + 1):
                order = names[rep % len(names) :] + names[: rep % len(names)]
                for name in order:
                    threads = args.threads if name != "2 servers" else half
                    options = {
                        "temperature": 0,
                        "seed": 0,
                        "num_predict": args.tokens,
                        "num_thread": threads,
                        "rpc_servers": sides[name],
                    }
                    r = client.generate("smol", PROMPT, options=options, keep_alive=0)
                    if rep == 0:
                        continue  # the warm-up (and the load)
                    decode[name].append(r.eval_count / (r.eval_duration / 1e9))
                    prompt[name].append(r.prompt_eval_count / (r.prompt_eval_duration / 1e9))
    finally:
        for proc in servers:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

    print(f"python benchmarks/compare_rpc.py --tokens {args.tokens} --reps {args.reps} --threads {args.threads}")
    print(f"SmolLM2-135M-Instruct Q4_1, {args.tokens} greedy tokens, servers on 127.0.0.1, {os.cpu_count()} CPUs")
    print(f"one handshake (connect, HELLO, close) on 127.0.0.1: {floor:.2f} ms\n")
    local_ms = 1e3 / mean_sd(decode["local"])[0]
    print(f"{'side':<10}  {'decode tokens/s':>16}  {'vs local':>8}  {'prompt tokens/s':>16}  {'extra ms/token':>14}")
    for name in sides:
        tps = mean_sd(decode[name])[0]
        extra = 1e3 / tps - local_ms
        print(
            f"{name:<10}  {fmt(decode[name]):>16}  {tps / mean_sd(decode['local'])[0]:>7.2f}x  "
            f"{fmt(prompt[name]):>16}  {extra if name != 'local' else 0.0:>14.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
