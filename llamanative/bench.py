"""``llamanative bench``: which threads / batch / KV type / offload is fastest here?

    llamanative bench MODEL.gguf --threads 1,2 --ubatch 128,512 --flash-attn on,off --reps 3
    python -m llamanative.bench MODEL.gguf --type-k f16,q8_0 --output csv
    llamanative bench MODEL.gguf --device all --cpu-variant all    # every backend

For every combination of the settings given (comma-separated lists), measures
with llama-bench's protocol (random tokens, one warm-up run, KV cleared
between repetitions): prompt processing tokens/s (``--pp`` tokens in batches
of ``--batch``), generation tokens/s (``--tg`` tokens, one at a time, an
output on each), time to first token (the prompt plus one sampled token) and,
with ``--embed N``, embeddings/s for N short inputs packed into shared
batches. Repetitions give mean ± stdev. Output: a table, JSON or CSV.

``--spec-type none,ngram-map-k,...`` adds speculative decoding as an axis and
a copying workload (``copy_tps``): ``--tg`` tokens generated greedily, through
the engine's stepper, from a prompt that asks to repeat a passage (the work
n-gram drafts are for); the other measures do not depend on it.

``--device`` places the model on the named devices (``CPU``, ``Vulkan0``,
``CUDA0``...; ``all`` = each loaded device in turn). ``--cpu-variant`` runs
the grid once per CPU plugin of a portable build (``haswell``, ``sse42``...;
``all`` = every variant this CPU can run), each in its own process since a
process loads one CPU plugin.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from . import _backends, _core


@dataclass(frozen=True)
class Setting:
    threads: int
    batch: int
    ubatch: int
    flash_attn: str
    type_k: str
    type_v: str
    n_gpu_layers: int
    device: str = ""  # "" = llama.cpp's default placement
    spec_type: str = ""  # "" = no copy workload; "none" or n-gram type names: see copy_rate()


# The copying workload of --spec-type: a passage, then the start of its repetition.
COPY_PASSAGE = (
    "The committee met on Tuesday to discuss the new library. Every member agreed that the building was too "
    "small for the growing number of visitors, and that the children's section needed more shelves. The chairman "
    "proposed a new wing, which would be paid for by the town and by a grant from the government. "
)
COPY_PROMPT = f"Text: {COPY_PASSAGE * 3}\nThe same text, repeated exactly:\nText: The committee"


def _random_tokens(vocab: _core.Vocab, n: int, rng: random.Random) -> np.ndarray:
    toks = np.fromiter((rng.randrange(vocab.n_vocab) for _ in range(n)), np.int32, n)
    if vocab.add_bos and vocab.bos >= 0:
        toks[0] = vocab.bos
    return toks


def prompt_rate(ctx: _core.Context, n: int, reps: int) -> list[float]:
    """Prompt processing tokens/s over ``reps`` runs (after one warm-up), KV cleared between runs."""
    vocab, rng = ctx.model.vocab, random.Random(0)
    batch = _core.Batch(min(n, ctx.n_batch))

    def run() -> float:
        done, t0 = 0, time.perf_counter_ns()
        while done < n:
            k = min(n - done, ctx.n_batch)
            batch.clear()
            batch.add_sequence(_random_tokens(vocab, k, rng), done, 0)
            ctx.decode(batch)
            done += k
        ctx.logits(-1)
        return n / ((time.perf_counter_ns() - t0) / 1e9)

    run()
    out = []
    for _ in range(reps):
        ctx.clear(False)
        out.append(run())
    return out


def generation_rate(ctx: _core.Context, n: int, reps: int) -> list[float]:
    """Generation tokens/s: ``n`` single-token decodes with an output each, after one warm-up."""
    vocab, rng = ctx.model.vocab, random.Random(0)
    batch = _core.Batch(1)

    def run(count: int) -> float:
        token, pos = (vocab.bos if vocab.add_bos else 1), ctx.seq_pos_max(0) + 1
        t0 = time.perf_counter_ns()
        for _ in range(count):
            batch.clear()
            batch.add(token, pos, 0, True)
            ctx.decode(batch)
            ctx.logits(-1)
            pos += 1
            token = rng.randrange(vocab.n_vocab)
        return count / ((time.perf_counter_ns() - t0) / 1e9)

    run(1)
    out = []
    for _ in range(reps):
        ctx.clear(False)
        out.append(run(n))
    return out


def copy_rate(model: _core.Model, s: Setting, n: int, reps: int) -> list[float]:
    """Generated tokens/s of a copying completion (``COPY_PROMPT``), greedy, ``n`` tokens, through the stepper
    with speculative decoding ``s.spec_type`` (32 draft tokens at most); the prompt's step is not timed."""
    toks = model.vocab.tokenize(COPY_PROMPT)
    params = dict(n_batch=s.batch, n_ubatch=s.ubatch, n_threads=s.threads, flash_attn=s.flash_attn)
    with _core.Context(model, n_ctx=len(toks) + n + 32, type_k=s.type_k, type_v=s.type_v, **params) as ctx:
        stepper = _core.Stepper(ctx, 1)

        def run() -> float:
            ctx.clear(False)
            sampler = _core.Sampler(model)
            sampler.greedy()
            stepper.start(0, toks, 0, sampler, max_tokens=n)
            if s.spec_type != "none":
                stepper.speculate(0, s.spec_type)
            stepper.step()  # the prompt, and the first token
            t0, count = time.perf_counter_ns(), 0
            while stepper.active(0):
                count += len(stepper.step())
            stepper.release(0)
            sampler.close()
            return count / ((time.perf_counter_ns() - t0) / 1e9)

        run()
        out = [run() for _ in range(reps)]
        stepper.close()
    return out


def time_to_first_token(ctx: _core.Context, n: int, reps: int) -> list[float]:
    """Seconds from an ``n``-token prompt to the first sampled token (greedy)."""
    vocab, rng = ctx.model.vocab, random.Random(1)
    sampler = _core.Sampler(ctx.model).greedy()
    batch = _core.Batch(min(n, ctx.n_batch))
    out = []
    for _ in range(reps + 1):
        ctx.clear(False)
        t0 = time.perf_counter_ns()
        for start in range(0, n, ctx.n_batch):
            k = min(n - start, ctx.n_batch)
            batch.clear()
            batch.add_sequence(_random_tokens(vocab, k, rng), start, 0, output="last" if start + k == n else "none")
            ctx.decode(batch)
        sampler.sample(ctx, -1)
        out.append((time.perf_counter_ns() - t0) / 1e9)
    sampler.close()
    return out[1:]  # the first run is the warm-up


def embedding_rate(model: _core.Model, s: Setting, n_inputs: int, reps: int) -> list[float]:
    """Inputs/s for ``n_inputs`` 16-token inputs, one sequence each, packed into shared batches."""
    rng = random.Random(2)
    ctx = _core.Context(
        model,
        n_ctx=max(512, s.batch),
        n_batch=max(512, s.batch),
        n_ubatch=max(512, s.batch),
        n_seq_max=min(64, _core.max_parallel_sequences()),
        n_threads=s.threads,
        embeddings=True,
        pooling_type="mean",
        flash_attn=s.flash_attn,
    )
    inputs = [_random_tokens(model.vocab, 16, rng) for _ in range(n_inputs)]
    batch = _core.Batch(ctx.n_batch)
    out_rows = np.empty((n_inputs, ctx.n_embd_out), np.float32)

    def run() -> float:
        t0, i = time.perf_counter_ns(), 0
        while i < n_inputs:
            ctx.clear(False)
            batch.clear()
            seqs = []
            while i < n_inputs and len(seqs) < ctx.n_seq_max and batch.n_tokens + 16 <= ctx.n_batch:
                batch.add_sequence(inputs[i], 0, len(seqs), output="all")
                seqs.append(i)
                i += 1
            ctx.decode(batch)
            for seq, row in enumerate(seqs):
                ctx.embeddings_seq(seq, out=out_rows[row])
        return n_inputs / ((time.perf_counter_ns() - t0) / 1e9)

    run()
    rates = [run() for _ in range(reps)]
    ctx.close()
    return rates


def _mean_sd(xs: list[float]) -> tuple[float, float]:
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def run_grid(path: str, settings: list[Setting], pp: int, tg: int, reps: int, embed: int) -> list[dict]:
    """Measure every setting; one result dict per setting (means and stdevs)."""
    results = []
    models: dict[tuple, _core.Model] = {}
    for s in settings:
        key = (s.n_gpu_layers, s.device)
        if key not in models:
            for m in models.values():
                m.close()
            models = {key: _core.Model(path, n_gpu_layers=s.n_gpu_layers, devices=[s.device] if s.device else None)}
        model = models[key]
        row = {"cpu_variant": loaded_cpu_variant(), **asdict(s)}
        common = dict(
            n_batch=s.batch,
            n_ubatch=s.ubatch,
            n_threads=s.threads,
            flash_attn=s.flash_attn,
            type_k=s.type_k,
            type_v=s.type_v,
        )
        if pp:
            with _core.Context(model, n_ctx=pp, **common) as ctx:
                row["pp_tps"], row["pp_tps_sd"] = _mean_sd(prompt_rate(ctx, pp, reps))
                row["ttft_s"], row["ttft_s_sd"] = _mean_sd(time_to_first_token(ctx, pp, reps))
        if tg:
            with _core.Context(model, n_ctx=tg + 1, **common) as ctx:
                row["tg_tps"], row["tg_tps_sd"] = _mean_sd(generation_rate(ctx, tg, reps))
        if tg and s.spec_type:
            row["copy_tps"], row["copy_tps_sd"] = _mean_sd(copy_rate(model, s, tg, reps))
        if embed:
            row["embed_per_s"], row["embed_per_s_sd"] = _mean_sd(embedding_rate(model, s, embed, reps))
        results.append(row)
    for m in models.values():
        m.close()
    return results


def loaded_cpu_variant() -> str:
    """The CPU plugin this process loaded: its variant (``haswell``...), or ``native`` for a one-machine build."""
    for attempt in _backends.backend_load_log():
        if attempt.backend == "cpu" and attempt.outcome == "loaded":
            return attempt.variant or "native"
    return "linked"


def runnable_cpu_variants() -> list[str]:
    """The CPU variants of this build that this CPU can run (score > 0), best first."""
    scored = [a for a in _backends.backend_load_log() if a.backend == "cpu" and a.variant and a.score]
    return [a.variant for a in sorted(scored, key=lambda a: -(a.score or 0))]


def run_variants(argv: list[str], variants: list[str]) -> list[dict]:
    """Run this benchmark once per CPU variant, each in a child process (one CPU plugin per process)."""
    rows = []
    for variant in variants:
        env = {**os.environ, "LLAMANATIVE_CPU_VARIANT": variant}
        proc = subprocess.run(
            [sys.executable, "-m", "llamanative.bench", *argv, "--output", "json"],
            env=env,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"the {variant} run failed: {proc.stderr.strip()}")
        rows.extend(json.loads(proc.stdout)["results"])
    return rows


def _table(rows: list[dict]) -> str:
    cols = [c for c in rows[0] if not c.endswith("_sd")]
    fmt = []
    for r in rows:
        cells = []
        for c in cols:
            v = r[c]
            sd = r.get(c + "_sd")
            cells.append(f"{v:.2f} ± {sd:.2f}" if sd is not None else str(v))
        fmt.append(cells)
    widths = [max(len(c), *(len(f[i]) for f in fmt)) for i, c in enumerate(cols)]
    line = lambda cells: "  ".join(x.rjust(w) for x, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(cols), line(["-" * w for w in widths])] + [line(f) for f in fmt])


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def _strs(text: str) -> list[str]:
    return text.split(",")


def _child_argv(argv: list[str]) -> list[str]:
    """This command line without the options the parent handles itself."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        name = a.split("=", 1)[0]
        if name in ("--cpu-variant", "--device", "--output"):
            skip = "=" not in a
            continue
        out.append(a)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="llamanative bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="GGUF file")
    ap.add_argument("--threads", type=_ints, default=[_core.default_n_threads()])
    ap.add_argument("--batch", type=_ints, default=[2048])
    ap.add_argument("--ubatch", type=_ints, default=[512])
    ap.add_argument("--flash-attn", type=_strs, default=["auto"], help="auto,on,off")
    ap.add_argument("--type-k", type=_strs, default=["f16"])
    ap.add_argument("--type-v", type=_strs, default=["f16"])
    ap.add_argument("--n-gpu-layers", type=_ints, default=[-1])
    ap.add_argument(
        "--device",
        type=_strs,
        default=[""],
        help="devices to place the model on (CPU, Vulkan0, ...; all = each in turn)",
    )
    ap.add_argument(
        "--cpu-variant",
        type=_strs,
        default=[],
        help="CPU plugins to compare (haswell, sse42, ...; all = every runnable one)",
    )
    ap.add_argument(
        "--spec-type",
        type=_strs,
        default=[""],
        help="speculative decoding types to compare on a copying workload (none, ngram-map-k, ...)",
    )
    ap.add_argument("--pp", type=int, default=512, help="prompt tokens (0 = skip)")
    ap.add_argument("--tg", type=int, default=128, help="generated tokens (0 = skip)")
    ap.add_argument("--embed", type=int, default=0, help="also measure embeddings/s for this many inputs")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--output", choices=("table", "json", "csv"), default="table")
    args = ap.parse_args(argv)
    if args.reps < 1:
        ap.error("--reps must be >= 1")
    if args.device == ["all"]:
        args.device = [d["name"] for d in _core.devices()]
    variants = runnable_cpu_variants() if args.cpu_variant == ["all"] else args.cpu_variant
    runnable = runnable_cpu_variants()
    for v in variants:
        if v not in runnable:
            print(
                f"llamanative bench: no runnable CPU variant {v!r} in this build "
                f"(runnable: {', '.join(runnable) or 'none; this build has one CPU plugin: ' + loaded_cpu_variant()})",
                file=sys.stderr,
            )
            return 2
    settings = [
        Setting(*combo)
        for combo in itertools.product(
            args.threads,
            args.batch,
            args.ubatch,
            args.flash_attn,
            args.type_k,
            args.type_v,
            args.n_gpu_layers,
            args.device,
            args.spec_type,
        )
    ]
    try:
        rows = []
        if variants:
            # Each variant's process measures the CPU; other devices are measured here.
            child_argv = _child_argv(argv if argv is not None else sys.argv[1:])
            rows += run_variants(child_argv + ["--device", "CPU"], variants)
            settings = [s for s in settings if s.device not in ("", "CPU")]
        if settings:
            rows += run_grid(args.model, settings, args.pp, args.tg, args.reps, args.embed)
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"llamanative bench: {exc}", file=sys.stderr)
        return 2
    if args.output == "json":
        print(json.dumps({"model": args.model, "system_info": _core.system_info().strip(), "results": rows}, indent=2))
    elif args.output == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        print(buf.getvalue(), end="")
    else:
        print(f"{args.model}  ({_core.system_info().strip()})")
        print(_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
