"""llamanative._core against llama.cpp's own tools, measured in one run.

    python benchmarks/compare_llama_bench.py [--model PATH] [--threads N] [--reps 5]

Prints, for the same model, thread count and machine:
- prompt processing (pp, default 512 tokens) and generation (tg, default 128)
  tokens/s from ``llama-bench`` (built from the vendored tree) and from
  ``_core`` driven from Python with llama-bench's own protocol (random tokens,
  one warm-up run, KV cleared between repetitions, a fresh context per test
  of n_ctx = pp or tg, batch 2048 / ubatch 512, an output on every generated
  token), both with the flash-attention setting the Client resolves for the
  model (llama-bench at its own default is shown too), and their ratio
  (targets: >= 0.98); and through the Client, what
  a user gets: ``Client.generate`` streamed (tg: caller-side time from the
  first chunk to the last) and a ~pp-token prompt with one token generated (pp:
  the tokens evaluated over the whole call); targets >= 0.97. The three sides
  take turns, one repetition each, the first of them rotating;
- tokenize throughput on ~1 MB of text: ``Vocab.tokenize`` against the bare
  ``llama_tokenize`` call timed in C, and against the ``llama-tokenize`` tool
  (its wall time on the text minus its wall time on an empty text); target >= 0.95;
- the per-call overhead of ``Vocab.tokenize`` on a short string over the C
  call itself (target < 5 us), and on an empty string.

Use ``--json FILE`` to keep the figures, ``--plot FILE.png`` to draw them.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import mean_sd  # noqa: E402
from plots import plot_file, plot_results  # noqa: E402
from reference_tools import REPO, build_reference_tools  # noqa: E402

from llamanative import Client, _core  # noqa: E402
from llamanative.bench import generation_rate, prompt_rate  # noqa: E402
from llamanative.engine.attention import generation_flash_attn  # noqa: E402
from llamanative.engine.runner import IDLE_EXIT_S  # noqa: E402
from llamanative.fetch import fetch_model  # noqa: E402
from llamanative.fetch_vocab import fetch_vocab_files  # noqa: E402

# llama-bench's arguments for a flash-attention setting ("auto": its default, no argument).
LLAMA_BENCH_FA = {"on": ["-fa", "1"], "off": ["-fa", "0"], "auto": []}


# -- decode --------------------------------------------------------------------
def llama_bench(
    tool: Path, model: Path, threads: int, pp: int, tg: int, reps: int, depth: int = 0, flash_attn: str = "auto"
) -> dict[str, list[float]]:
    """llama-bench's samples (tokens/s) for ppN and tgN; ``depth`` tokens already in the KV cache;
    ``flash_attn`` "on", "off" or "auto" (llama-bench's default)."""
    out = subprocess.run(
        [
            str(tool),
            "-m",
            str(model),
            "-t",
            str(threads),
            "-p",
            str(pp),
            "-n",
            str(tg),
            "-d",
            str(depth),
            "-r",
            str(reps),
            *LLAMA_BENCH_FA[flash_attn],
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    res = {}
    for row in json.loads(out):
        key = "pp" if row["n_prompt"] > 0 else "tg"
        res[key] = [float(x) for x in row["samples_ts"]]
        res[key + "_params"] = {
            k: row[k] for k in ("n_batch", "n_ubatch", "type_k", "type_v", "flash_attn", "n_threads") if k in row
        }
    return res


def in_own_thread(fn, *args):
    """``fn(*args)`` on a thread that ends when it returns, and its result (or its exception).

    ggml computes with OpenMP, and a thread that has run a decode keeps an
    OpenMP team until it ends. The Client decodes on its own worker threads;
    if this script's main thread also kept a team, the process would hold more
    OpenMP threads than CPUs and libgomp would stop spin-waiting everywhere,
    slowing the Client's figures by half or more. (The Client's workers end
    when idle for the same reason: see ``llamanative/engine/runner.py``.)
    """
    box: dict = {}

    def run() -> None:
        try:
            box["result"] = fn(*args)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    # The Client's worker ends (and frees its team) IDLE_EXIT_S after its last job: let it, so
    # that the two teams never overlap in a measurement.
    time.sleep(3 * IDLE_EXIT_S)
    th = threading.Thread(target=run)
    th.start()
    th.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


def core_pp(model: _core.Model, threads: int, n: int, reps: int, flash_attn: str) -> list[float]:
    with _core.Context(model, n_ctx=n, n_batch=2048, n_ubatch=512, n_threads=threads, flash_attn=flash_attn) as ctx:
        return prompt_rate(ctx, n, reps)


def core_tg(model: _core.Model, threads: int, n: int, reps: int, flash_attn: str) -> list[float]:
    with _core.Context(model, n_ctx=n, n_batch=2048, n_ubatch=512, n_threads=threads, flash_attn=flash_attn) as ctx:
        return generation_rate(ctx, n, reps)


# -- the same through the Client ------------------------------------------------
# A raw prompt that SmolLM2 continues greedily well past 128 tokens (no early stop).
GEN_PROMPT = "Count from one to one thousand: one, two, three,"


def client_tg(client: Client, model: Path, threads: int, n: int, reps: int, num_ctx: int | None = None) -> list[float]:
    """Generation tokens/s through ``Client.generate(stream=True)``, timed by the caller.

    The rate is (tokens - 1) over the wall time from the first streamed chunk
    to the last, so it includes everything per token: sampling, stop checks,
    detokenising, and handing each piece to this thread. ``num_ctx``: the
    Client's default context unless given.
    """
    opts = {"temperature": 0, "repeat_penalty": 1.0, "seed": 0, "num_predict": n, "num_thread": threads}
    if num_ctx:
        opts["num_ctx"] = num_ctx

    def run() -> float:
        first = last = None
        count = 0
        for chunk in client.generate(str(model), GEN_PROMPT, raw=True, stream=True, options=opts):
            now = time.perf_counter_ns()
            if chunk.response:
                first = first or now
                last = now
            if chunk.done:
                count = chunk.eval_count
        return (count - 1) / ((last - first) / 1e9)

    run()
    return [run() for _ in range(reps)]


def client_pp(
    client: Client, model: Path, vocab: _core.Vocab, threads: int, n: int, reps: int, seed: int = 0
) -> tuple[list[float], list[int]]:
    """Prompt-processing tokens/s through ``Client.generate``: a new ~``n``-token prompt per run
    (so the prefix cache has nothing to reuse), one token generated; the rate is the tokens the
    Client reports evaluated over the call's whole wall time. Also returns those token counts."""
    rng = random.Random(seed)  # a new seed per call: prompts of earlier calls are in the cache
    opts = {"temperature": 0, "seed": 0, "num_predict": 1, "num_thread": threads, "num_batch": 512}

    def prompt() -> str:
        # Random tokens, as llama-bench uses, turned into text. It re-tokenizes to a few more
        # tokens than n; trim it to at most n, so that it is one decode as llama-bench's pp is.
        text = vocab.detokenize([rng.randrange(vocab.n_vocab) for _ in range(n)])
        for k in range(10):
            ids = vocab.tokenize(text, add_special=False)
            if len(ids) + int(vocab.add_bos) <= n:
                break
            text = vocab.detokenize(ids[: n - int(vocab.add_bos) - k])
        return text

    def run() -> tuple[float, int]:
        text = prompt()
        t0 = time.perf_counter_ns()
        r = client.generate(str(model), text, raw=True, options=opts)
        return r.prompt_eval_count / ((time.perf_counter_ns() - t0) / 1e9), r.prompt_eval_count

    run()
    runs = [run() for _ in range(reps)]
    return [r for r, _ in runs], [k for _, k in runs]


# -- tokenize ------------------------------------------------------------------
def corpus(n_bytes: int = 1 << 20) -> str:
    """~1 MB of mixed text: the tokenizer test inputs (llama.cpp's golden files) and llama.cpp's sources."""
    parts = [p.read_text("utf-8", "replace") for p in sorted(fetch_vocab_files().glob("*.inp"))]
    parts += [p.read_text("utf-8", "replace") for p in sorted((REPO / "vendor/llama.cpp/src").glob("*.cpp"))]
    text = "\n".join(parts)
    while len(text.encode()) < n_bytes:
        text += text
    return text.encode()[:n_bytes].decode("utf-8", "ignore")


def best_of(fn, repeat: int) -> float:
    return min(fn() for _ in range(repeat))


def tokenize_figures(model_path: Path, tool: Path, reps: int) -> dict[str, float]:
    vocab_model = _core.Model(model_path, vocab_only=True)
    vocab = vocab_model.vocab
    text = corpus()
    n_tokens = len(vocab.tokenize(text))

    def py_long() -> float:
        t0 = time.perf_counter_ns()
        vocab.tokenize(text)
        return time.perf_counter_ns() - t0

    # Alternated, best of each: the two calls do the same work, so only load can tell them apart.
    c_runs, p_runs = [], []
    for _ in range(reps):
        c_runs.append(_core._bench_tokenize_c(vocab, text, 1))
        p_runs.append(py_long())
    c_long, p_long = min(c_runs), min(p_runs)

    with tempfile.TemporaryDirectory() as tmp:
        big, tiny = Path(tmp, "big.txt"), Path(tmp, "tiny.txt")
        big.write_text(text, "utf-8")
        tiny.write_text("", "utf-8")

        def tool_time(path: Path) -> float:
            t0 = time.perf_counter_ns()
            subprocess.run(
                [str(tool), "-m", str(model_path), "-f", str(path), "--ids", "--log-disable"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=True,
            )
            return time.perf_counter_ns() - t0

        tool_long = best_of(lambda: tool_time(big), reps) - best_of(lambda: tool_time(tiny), reps)

    short = "Hello, how are you doing today?"
    calls = 20000

    def per_call(fn) -> float:
        t0 = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        return (time.perf_counter_ns() - t0) / calls

    c_short = best_of(lambda: _core._bench_tokenize_c(vocab, short, calls), reps)
    p_short = best_of(lambda: per_call(lambda: vocab.tokenize(short)), reps)
    c_empty = best_of(lambda: _core._bench_tokenize_c(vocab, "", calls), reps)
    p_empty = best_of(lambda: per_call(lambda: vocab.tokenize("")), reps)
    return {
        "text_bytes": len(text.encode()),
        "n_tokens": n_tokens,
        "c_long_s": c_long / 1e9,
        "py_long_s": p_long / 1e9,
        "tool_long_s": tool_long / 1e9,
        "ratio_vs_c": c_long / p_long,
        "ratio_vs_tool": tool_long / p_long,
        "c_short_us": c_short / 1e3,
        "py_short_us": p_short / 1e3,
        "overhead_short_us": (p_short - c_short) / 1e3,
        "c_empty_us": c_empty / 1e3,
        "py_empty_us": p_empty / 1e3,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="GGUF model (default: SmolLM2-135M Q4_1)")
    ap.add_argument("--threads", type=int, default=_core.default_n_threads())
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--pp", type=int, default=512)
    ap.add_argument("--tg", type=int, default=128)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--plot", type=plot_file, default=None, help="also draw the figures as a PNG here (matplotlib)")
    args = ap.parse_args()
    model_path = args.model or fetch_model("smollm2")
    tools = build_reference_tools()

    print(f"model {model_path.name}, {args.threads} threads, {args.reps} repetitions")
    print(f"llama.cpp {_core.LLAMA_CPP_COMMIT[:10]}; {_core.system_info().strip()}")
    model = _core.Model(model_path)
    # llama-bench and _core run with the flash-attention setting the Client resolves for this model
    # (off on the CPU: llamanative/engine/attention.py), so that the ratios compare the bindings and
    # not the setting; llama-bench at its own default (auto: on) is shown beside them.
    fa = generation_flash_attn(model, n_ctx=4096, n_ubatch=512)
    print(f"flash attention: {fa} (the Client's setting for this model; llama-bench's default: auto)")
    # One repetition of each side in turn, the first of the three rotating, so that load from
    # elsewhere on this shared machine slows all three alike (each call does its own warm-up).
    ref: dict = {"pp": [], "tg": [], "tg_depth": []}
    ref_default: dict = {"pp": [], "tg": []}
    # The Client generates after its prompt, so each of its tokens attends to
    # the prompt too; llama-bench's tg128 starts from an empty cache. The same
    # depth on llama-bench's side tells that attention apart from the binding.
    depth = len(model.vocab.tokenize(GEN_PROMPT, add_special=True, parse_special=False))
    ours: dict = {"pp": [], "tg": []}
    via_client: dict = {"pp": [], "tg": [], "tg_small_ctx": []}
    # llama-bench's tg context holds just its tokens (padded to 256 cells); the Client's
    # default holds 4096. Without flash attention V is stored transposed, one row per
    # dimension as long as the context, and a decode reads a strided slice of each: the
    # Client is also timed with llama-bench's context size to tell that apart.
    small_ctx = 256
    pp_counts: list[int] = []
    with Client() as client:

        def run_llama_bench() -> None:
            r = llama_bench(tools["llama-bench"], model_path, args.threads, args.pp, args.tg, 1, flash_attn=fa)
            ref["pp"] += r["pp"]
            ref["tg"] += r["tg"]
            ref.update({k: v for k, v in r.items() if k.endswith("_params")})
            ref["tg_depth"] += llama_bench(
                tools["llama-bench"], model_path, args.threads, 0, args.tg, 1, depth=depth, flash_attn=fa
            )["tg"]
            if fa != "auto":
                r = llama_bench(tools["llama-bench"], model_path, args.threads, args.pp, args.tg, 1)
                ref_default["pp"] += r["pp"]
                ref_default["tg"] += r["tg"]

        def run_core() -> None:
            ours["pp"] += in_own_thread(core_pp, model, args.threads, args.pp, 1, fa)
            ours["tg"] += in_own_thread(core_tg, model, args.threads, args.tg, 1, fa)

        def run_client() -> None:
            rates, counts = client_pp(
                client, model_path, model.vocab, args.threads, args.pp, 1, seed=len(pp_counts) + 1
            )
            via_client["pp"] += rates
            pp_counts.extend(counts)
            via_client["tg"] += client_tg(client, model_path, args.threads, args.tg, 1)
            via_client["tg_small_ctx"] += client_tg(client, model_path, args.threads, args.tg, 1, num_ctx=small_ctx)

        sides = [run_llama_bench, run_core, run_client]
        for rep in range(args.reps):
            for k in range(len(sides)):
                sides[(rep + k) % len(sides)]()
    results: dict = {
        "model": str(model_path.name),
        "threads": args.threads,
        "llama_bench_params": {},
        "client_pp_prompt_tokens": pp_counts,
        "flash_attn": fa,
    }
    print(
        f"\n{'test':<8}{'llama-bench t/s':>20}{'_core t/s':>20}{'ratio':>8}{'Client t/s':>20}{'ratio':>8}"
        "  (target for the Client: >= 0.97)"
    )
    for key, n in (("pp", args.pp), ("tg", args.tg)):
        (rm, rs), (om, os_), (cm, cs) = mean_sd(ref[key]), mean_sd(ours[key]), mean_sd(via_client[key])
        results[key] = {
            "llama_bench": ref[key],
            "core": ours[key],
            "ratio": om / rm,
            "client": via_client[key],
            "client_ratio": cm / rm,
        }
        results["llama_bench_params"][key] = ref.get(key + "_params")
        print(
            f"{key}{n:<6}{rm:>12.1f} ± {rs:<6.1f}{om:>12.1f} ± {os_:<6.1f}{om / rm:>8.3f}"
            f"{cm:>12.1f} ± {cs:<6.1f}{cm / rm:>8.3f}"
        )
    (dm, ds), (cm, _) = mean_sd(ref["tg_depth"]), mean_sd(via_client["tg"])
    results["tg_depth"] = {"depth": depth, "llama_bench": ref["tg_depth"], "client_ratio": cm / dm}
    print(
        f"tg{args.tg} @ depth {depth} (llama-bench -d {depth}, the Client prompt's tokens in the cache): "
        f"{dm:.1f} ± {ds:.1f} t/s; Client / that: {cm / dm:.3f}"
    )
    (sm, ss), (rm, _) = mean_sd(via_client["tg_small_ctx"]), mean_sd(ref["tg"])
    results["tg_small_ctx"] = {
        "num_ctx": small_ctx,
        "client": via_client["tg_small_ctx"],
        "client_ratio": sm / rm,
        "client_ratio_same_depth": sm / dm,
    }
    print(
        f"tg{args.tg}, Client with num_ctx={small_ctx} (llama-bench's context size): {sm:.1f} ± {ss:.1f} t/s; "
        f"Client / llama-bench: {sm / rm:.3f}; at the same depth (-d {depth}): {sm / dm:.3f}"
    )
    if ref_default["pp"]:
        results["llama_bench_default"] = ref_default
        line = []
        for key, n in (("pp", args.pp), ("tg", args.tg)):
            (dm, ds), (cm, _) = mean_sd(ref_default[key]), mean_sd(via_client[key])
            line.append(f"{key}{n} {dm:.1f} ± {ds:.1f} t/s, Client / that {cm / dm:.3f}")
        print(f"llama-bench at its default flash attention (auto): {'; '.join(line)}")
    print(
        f"Client pp: prompts of {pp_counts} tokens (random ids, re-tokenized), rate over the whole call; "
        "Client tg: Client.generate streamed, first chunk to last"
    )

    tok = tokenize_figures(model_path, tools["llama-tokenize"], args.reps)
    results["tokenize"] = tok
    mb = tok["text_bytes"] / 1e6
    print(f"\ntokenize {mb:.2f} MB ({tok['n_tokens']} tokens), best of {args.reps}:")
    print(f"  Vocab.tokenize          {tok['py_long_s'] * 1e3:8.1f} ms  ({mb / tok['py_long_s']:.2f} MB/s)")
    print(f"  bare llama_tokenize (C) {tok['c_long_s'] * 1e3:8.1f} ms  ratio {tok['ratio_vs_c']:.3f}")
    print(
        f"  llama-tokenize tool     {tok['tool_long_s'] * 1e3:8.1f} ms  ratio {tok['ratio_vs_tool']:.3f}"
        "  (tool time on the text minus on an empty file; includes printing the ids)"
    )
    print(
        f"short string: Vocab.tokenize {tok['py_short_us']:.2f} us, C call {tok['c_short_us']:.2f} us, "
        f"overhead {tok['overhead_short_us']:.2f} us"
    )
    print(
        f"empty string: Vocab.tokenize {tok['py_empty_us']:.3f} us, C call {tok['c_empty_us']:.3f} us "
        f"(wrapper cost alone: {tok['py_empty_us'] - tok['c_empty_us']:.3f} us)"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.plot:
        plot_results(results, args.plot, "llamanative vs llama-bench")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
