"""Speculative decoding on against off, and against llama-server's, measured in one run.

    python benchmarks/compare_speculative.py [--spec-type ngram-map-k] [--tokens 256] [--reps 2]
                                             [--server PATH/llama-server] [--no-server] [--threads N]
                                             [--json FILE]

SmolLM2-135M-Instruct, greedy, the same prompts, threads and settings on every
side; llamanative's Client runs in this process, llama-server (built from the
vendored tree by ``reference_tools.py`` unless ``--server`` is given) in its
own, started with ``--spec-type`` and the same draft settings
(``--spec-ngram-map-k-size-m`` = llamanative's ``spec_draft_max``). Tokens/s
are generated tokens over the generation time each side reports
(``eval_duration``; llama-server's ``timings.predicted_ms``), so the prompt's
evaluation is left out of both. Within every repetition the sides alternate.

Workloads (targets from the speculative decoding issue, printed beside each):

- **copy**: rewriting a 150-line Python file with a variable renamed,
  repeating a paragraph with its spelling corrected, and quoting from a pasted
  document. Speculation over none: target >= 2.0x; over llama-server's
  speculation on the same prompts: target >= 1.0x.
- **prose**: a story. ``auto`` over none: target >= 0.97x (auto must not make
  text that does not copy slower).
- **4 streams**: two copy prompts and two stories at once; aggregate generated
  tokens over the wall time, speculation (``auto``) over none: target >= 1.3x.

The acceptance rate (accepted / drafted tokens) is printed for each, and a
profile of what verification costs: the time of one decode of 1, 2, 4, 8 and
16 tokens of one sequence after 1,500 tokens of context (``_core`` alone, no
engine), which bounds the gain: a step that verifies ``k`` draft tokens costs
the decode of ``k + 1`` tokens and yields ``1 +`` the accepted ones.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _report import fmt, mean_sd, print_table  # noqa: E402
from compare_llama_server import SETTLE_S, Server, post  # noqa: E402

from llamanative import Client, _core  # noqa: E402
from llamanative.fetch import fetch_model  # noqa: E402

TARGET_COPY = 2.0
TARGET_VS_SERVER = 1.0
TARGET_PROSE = 0.97
TARGET_STREAMS = 1.3


def python_file() -> str:
    """A 150-line Python module in which ``x`` is used throughout."""
    blocks = []
    for i in range(15):
        blocks.append(
            f"def step_{i}(x):\n"
            f"    # stage {i} of the pipeline\n"
            f"    if x is None:\n"
            f"        return {i}\n"
            f"    total = 0\n"
            f"    for item in x:\n"
            f"        total += item * {i + 1}\n"
            f"    return total + len(x)\n"
            f"\n"
        )
    return "".join(blocks)[:-1] + "\n"


PARAGRAPH = (
    "The comittee met on tuesday to discus the new libary. Every member agreed that the bulding was to small "
    "for the growing numbr of vistors, and that the chidren's section needed more shelfs. The chairman "
    "proposed a new wing, wich would be paid for by the town and by a grant from the goverment."
)
DOCUMENT = (
    "Section 1. The lease runs from 1 March 2024 to 28 February 2027. Section 2. The monthly rent is 1,450 euros, "
    "payable on the first working day of each month. Section 3. The tenant may end the lease with three months' "
    "notice after the first year. Section 4. Pets are allowed with the landlord's written consent. Section 5. "
    "The deposit of 2,900 euros is returned within thirty days of the end of the lease."
)
COPY_PROMPTS = [
    f"Rewrite this Python file with the variable `x` renamed to `count`. Output only the code.\n\n{python_file()}",
    f"Repeat the following paragraph, correcting its spelling:\n\n{PARAGRAPH}",
    f"Here is a lease:\n\n{DOCUMENT}\n\nQuote sections 2, 3 and 5 of the lease word for word.",
]
PROSE_PROMPTS = ["Write a story about a lighthouse keeper who finds a message in a bottle."]


def chat(client: Client, prompt: str, options: dict) -> tuple[int, float, int, int]:
    r = client.chat("smol", [{"role": "user", "content": prompt}], options=options)
    return r.eval_count or 0, (r.eval_duration or 1) / 1e9, r.draft_count or 0, r.draft_accepted_count or 0


def server_chat(port: int, prompt: str, n_tokens: int) -> tuple[int, float, int, int]:
    body = {"messages": [{"role": "user", "content": prompt}], "temperature": 0, "max_tokens": n_tokens}
    t = post(port, "/v1/chat/completions", body)["timings"]
    return t["predicted_n"], t["predicted_ms"] / 1e3, t.get("draft_n", 0), t.get("draft_n_accepted", 0)


def rate(runs: list[tuple[int, float, int, int]]) -> float:
    """Generated tokens/s over a set of runs (all tokens over all generation time)."""
    return sum(r[0] for r in runs) / sum(r[1] for r in runs)


def acceptance(runs: list[tuple[int, float, int, int]]) -> str:
    drafted, accepted = sum(r[2] for r in runs), sum(r[3] for r in runs)
    return f"{accepted}/{drafted} ({accepted / drafted:.0%})" if drafted else "no drafts"


def streams(client: Client, prompts: list[str], options: dict) -> tuple[float, list]:
    """All ``prompts`` at once, one thread each: aggregate generated tokens/s over the wall time."""
    results: list = [None] * len(prompts)

    def go(i: int) -> None:
        results[i] = chat(client, prompts[i], options)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(prompts))]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(r[0] for r in results) / (time.perf_counter() - t0), results


def decode_cost(model: Path, threads: int, n_context: int = 1500, reps: int = 5) -> dict[int, float]:
    """Milliseconds of one decode of k tokens (k = 1, 2, 4, 8, 16) of one sequence after ``n_context`` tokens:
    the best of ``reps`` runs of 5 decodes each, the k cells removed after each."""
    m = _core.Model(str(model))
    ctx = _core.Context(m, n_ctx=4096, n_batch=512, n_ubatch=512, n_threads=threads, flash_attn="off")
    batch = _core.Batch(512)
    vocab = m.vocab
    toks = [(i * 7919) % (vocab.n_vocab - 200) + 100 for i in range(n_context)]
    for start in range(0, n_context, 512):
        batch.clear()
        for j, t in enumerate(toks[start : start + 512]):
            batch.add(t, start + j, 0, False)
        ctx.decode(batch)
    best: dict[int, float] = {}
    for _ in range(reps):
        for k in (1, 2, 4, 8, 16):
            batch.clear()
            for j in range(k):
                batch.add(toks[j], n_context + j, 0, True)
            t0 = time.perf_counter()
            for _ in range(5):
                ctx.seq_rm(0, n_context, -1)
                ctx.decode(batch)
            ms = (time.perf_counter() - t0) / 5 * 1e3
            best[k] = min(best.get(k, ms), ms)
    ctx.close()
    m.close()
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec-type", default="ngram-map-k", help="the type measured on the copy workload")
    ap.add_argument("--draft-max", type=int, default=32, help="spec_draft_max (the package default)")
    ap.add_argument("--ngram-n", type=int, default=0, help="spec_ngram_size_n (0: llama.cpp's default)")
    ap.add_argument("--tokens", type=int, default=256, help="most tokens generated per request")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--server", type=Path, help="a llama-server binary (default: built from the vendored tree)")
    ap.add_argument("--no-server", action="store_true", help="leave llama-server out")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    model = fetch_model("smollm2", quiet=True)
    base = {"temperature": 0, "num_predict": args.tokens, "num_thread": args.threads, "num_ctx": 4096}
    off = {**base, "spec_type": "none"}
    on = {**base, "spec_type": args.spec_type, "spec_draft_max": args.draft_max, "spec_ngram_size_n": args.ngram_n}
    auto = {**base, "spec_type": "auto"}
    res: dict[str, list] = {k: [] for k in ("off", "on", "server", "prose_off", "prose_auto")}
    agg: dict[str, list[float]] = {"off": [], "auto": []}
    server = None
    if not args.no_server:
        from reference_tools import build_reference_tools

        path = args.server or build_reference_tools(names=("llama-server",))["llama-server"]
        server_args = ["-m", str(model), "-t", str(args.threads), "-c", "16384", "-np", "4", "-fa", "off"]
        server_args += ["--spec-type", args.spec_type, "--no-warmup"]
        if args.spec_type.startswith("ngram-map-k") or args.spec_type == "ngram-simple":
            flag = {"ngram-map-k": "map-k", "ngram-map-k4v": "map-k4v", "ngram-simple": "simple"}[args.spec_type]
            n = args.ngram_n or 12
            server_args += [f"--spec-ngram-{flag}-size-m", str(max(args.draft_max, n))]
            server_args += [f"--spec-ngram-{flag}-size-n", str(n)]
        server = Server(path, server_args, HERE / ".cache" / "llama-server-speculative.log")
    try:
        with Client(models_dir=HERE / ".cache" / "spec-store") as client:
            client.create("smol", from_=str(model))
            chat(client, "Hi", {**base, "num_predict": 4})  # load
            for rep in range(-1, args.reps):  # rep -1: warm-up, not counted
                keep = rep >= 0
                for prompt in COPY_PROMPTS:
                    sides = [
                        ("off", lambda p=prompt: chat(client, p, off)),
                        ("on", lambda p=prompt: chat(client, p, on)),
                    ]
                    if server is not None:
                        sides.append(("server", lambda p=prompt: server_chat(server.port, p, args.tokens)))
                    if rep % 2:
                        sides.reverse()
                    for key, fn in sides:
                        time.sleep(SETTLE_S)
                        r = fn()
                        if keep:
                            res[key].append(r)
                for prompt in PROSE_PROMPTS:
                    for key, opts in [("prose_off", off), ("prose_auto", auto)][:: 1 if rep % 2 == 0 else -1]:
                        time.sleep(SETTLE_S)
                        r = chat(client, prompt, opts)
                        if keep:
                            res[key].append(r)
                mixed = COPY_PROMPTS[:2] + PROSE_PROMPTS * 2
                for key, opts in [("off", off), ("auto", auto)][:: 1 if rep % 2 == 0 else -1]:
                    time.sleep(SETTLE_S)
                    tps, _ = streams(client, mixed, opts)
                    if keep:
                        agg[key].append(tps)
    finally:
        if server is not None:
            server.stop()

    copy_ratio = rate(res["on"]) / rate(res["off"])
    prose_ratio = rate(res["prose_auto"]) / rate(res["prose_off"])
    streams_ratio = mean_sd(agg["auto"])[0] / mean_sd(agg["off"])[0]
    rows = [
        (
            f"copy, {args.spec_type} vs none (tok/s)",
            f"{rate(res['on']):.1f}",
            f"{rate(res['off']):.1f}",
            f"{copy_ratio:.2f}x",
            f">= {TARGET_COPY}x",
            copy_ratio >= TARGET_COPY,
        ),
        (
            "prose, auto vs none (tok/s)",
            f"{rate(res['prose_auto']):.1f}",
            f"{rate(res['prose_off']):.1f}",
            f"{prose_ratio:.2f}x",
            f">= {TARGET_PROSE}x",
            prose_ratio >= TARGET_PROSE,
        ),
        (
            "4 streams (2 copy, 2 prose), auto vs none (aggregate tok/s)",
            fmt(agg["auto"]),
            fmt(agg["off"]),
            f"{streams_ratio:.2f}x",
            f">= {TARGET_STREAMS}x",
            streams_ratio >= TARGET_STREAMS,
        ),
    ]
    server_ratio = None
    if res["server"]:
        server_ratio = rate(res["on"]) / rate(res["server"])
        rows.insert(
            1,
            (
                f"copy, {args.spec_type}: llamanative vs llama-server (tok/s)",
                f"{rate(res['on']):.1f}",
                f"{rate(res['server']):.1f}",
                f"{server_ratio:.2f}x",
                f">= {TARGET_VS_SERVER}x",
                server_ratio >= TARGET_VS_SERVER,
            ),
        )
    print(f"SmolLM2-135M-Instruct, greedy, {args.tokens} tokens, {args.threads} threads, {args.reps} repetitions")
    print_table(rows, reference="none / llama-server")
    print(f"acceptance: llamanative {args.spec_type} {acceptance(res['on'])}", end="")
    if res["server"]:
        print(f", llama-server {acceptance(res['server'])}", end="")
    print(f"; prose auto {acceptance(res['prose_auto'])}")
    cost = decode_cost(model, args.threads)
    print(
        "decode of k tokens after 1,500 of context (ms): "
        + ", ".join(f"k={k}: {ms:.1f} ({ms / cost[1]:.2f}x k=1)" for k, ms in cost.items())
    )
    if args.json:
        out = {
            "copy_ratio": copy_ratio,
            "server_ratio": server_ratio,
            "prose_ratio": prose_ratio,
            "streams_ratio": streams_ratio,
            "runs": res,
            "streams": agg,
            "decode_cost_ms": cost,
        }
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
