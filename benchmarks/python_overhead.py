"""How much each generated token costs outside llama.cpp's decode and sampling.

    python benchmarks/python_overhead.py [--model PATH] [--tokens 128] [--reps 5]

For one stream of greedy generation through the Client (``generate`` with
``stream=True``, read by the caller) it measures, per token:
- the wall time between the first and the last streamed token, as the caller sees it;
- the time llama.cpp books for the decodes (``llama_perf_context`` t_eval) and
  for sampling (the sampler chain's own counter);
- the rest: the compiled step loop (batch building, detokenisation, stop
  strings) plus the Python that hands each token to the caller (engine
  event, Client response object, the iterator).
The rest per token, in microseconds and as a share of the token time, is the
"Python overhead per token" of the performance issue. Figures are mean ±
stdev over repetitions; the machine is shared, so read them as ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from llamanative import Client  # noqa: E402
from llamanative.fetch import fetch_model  # noqa: E402


def one_run(client: Client, model: str, n_tokens: int, threads: int) -> dict:
    opts = {"temperature": 0, "num_predict": n_tokens, "num_thread": threads, "num_ctx": 1024}
    client.generate(model, "Hi", raw=True, options={**opts, "num_predict": 1})  # load, warm up
    entry = client._scheduler.loaded()[0]
    ctx = entry.runner.ctx
    ctx.perf_reset()
    stamps = []
    last = None
    # A prompt that does not end early; raw, so the template adds nothing.
    for chunk in client.generate(
        model, "Count from one to one thousand: one, two, three,", raw=True, options={**opts, "seed": 1}, stream=True
    ):
        stamps.append(time.perf_counter_ns())
        last = chunk
    perf = ctx.perf()
    n = last.eval_count
    wall_ms = (stamps[-1] - stamps[0]) / 1e6  # first to last token: n - 1 token intervals
    per_token_ms = wall_ms / max(1, n - 1)
    decode_ms = perf["t_eval_ms"] / max(1, perf["n_eval"])
    sample_ms = last.eval_duration / 1e6 / n - decode_ms  # the engine's own per-token time minus decode
    return {
        "tokens": n,
        "per_token_ms": per_token_ms,
        "decode_ms": decode_ms,
        "rest_us": (per_token_ms - decode_ms) * 1000,
        "engine_rest_us": sample_ms * 1000,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="GGUF path (default: the SmolLM2 test model)")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    model = args.model or str(fetch_model("smollm2", quiet=True))
    with Client() as client:
        runs = [one_run(client, model, args.tokens, args.threads) for _ in range(args.reps)]

    def stat(key: str) -> str:
        vals = [r[key] for r in runs]
        return f"{statistics.mean(vals):8.3f} ± {statistics.stdev(vals) if len(vals) > 1 else 0.0:6.3f}"

    print(f"model {Path(model).name}, {runs[0]['tokens']} tokens, {args.threads} threads, {args.reps} runs")
    print(f"token interval seen by the caller  {stat('per_token_ms')} ms")
    print(f"llama_decode per token             {stat('decode_ms')} ms")
    print(
        f"everything else per token          {stat('rest_us')} us "
        "(sampling, the compiled step loop, Python hand-over, Client response, iterator)"
    )
    print(f"  of which inside the engine       {stat('engine_rest_us')} us (sampling + step loop + event)")
    share = statistics.mean(r["rest_us"] / 1000 / r["per_token_ms"] for r in runs)
    print(f"share of the token time outside llama_decode: {share:.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
