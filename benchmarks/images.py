"""One image through the Client against llama.cpp's ``llama-mtmd-cli``: encode time, time to first token.

    python benchmarks/images.py [--runs 10] [--threads 2] [--model M.gguf --projector P.gguf] [--image FILE]

Without ``--model``/``--projector`` it runs on the test pair of
``scripts/make_test_projector.py`` (SmolLM2-135M with SmolVLM's image tokens
and a tiny random Idefics3 projector), written into a temporary directory;
the image is llama.cpp's ``tools/mtmd/test-1.jpeg`` (640x488: a 2x2 grid of
tiles and an overview, five chunks of 16 embeddings on the test pair).
``llama-mtmd-cli`` is built from the vendored tree (``reference_tools.py``,
incremental) unless ``--cli`` names one.

Both sides get the same model, projector, image, prompt ("What is in this
image?", one user turn through the model's chat template), thread count,
context size, greedy sampling, one generated token; each keeps its own
defaults otherwise (flash attention ``auto``: llama.cpp turns it on in the
text model on the CPU, llamanative off, see ``llamanative/engine/attention.py``;
the projector's is ``auto`` on both). The two sides alternate, the first of
the two swapping every repetition, after one warm-up run of each; figures
are medians of ``--runs`` repetitions. The model load is left out of both:

- **llama-mtmd-cli** is a fresh process per run (``-n 1 --temp 0 --jinja``),
  logging with timestamps (``--log-jsonl --log-timestamps -lv 4``, every log
  entry with its microsecond, the generated text included). Its *time to
  first token* runs from its warning line after the model and the projector
  are loaded (and warmed up) to the entry that prints the first generated
  token: reading and decoding the image file, the chat template, libmtmd's
  tokenizer and preprocessing, the encode, every decode of the prompt and
  the first sample. Its *encode* is the time between the entries around
  each ``mtmd_batch_encode`` ("encoding mtmd batch" ... "mtmd batch
  encoding done in N ms", whose N are whole milliseconds), summed over the
  image's chunks. Its *prompt eval* is ``llama_perf_context_print``'s.
- **llamanative** is one Client, the model unloaded (``keep_alive=0``) and
  loaded again (an empty chat, then a render-only chat that parses the
  chat template, as the CLI does before its clock starts) before every
  measured call, so that every call starts on a fresh context with nothing
  cached. Its *time to first token* is the caller's wall clock from calling
  ``Client.chat(..., stream=True)`` to the first streamed response. Its
  *encode* is what the native ``Stepper.eval_media`` reports for each chunk
  (the clock around ``mtmd_encode_chunk``), summed over the image's chunks;
  the response's ``prompt_eval_duration`` (the engine's time from taking
  the job to its first token) is shown beside it. Its *prompt eval* is the
  context's llama_perf counter (``Context.perf()``), reset after the load.

llama_perf's prompt eval is not the decode time alone on either side: its
clock runs from a ``llama_decode`` to the context's next synchronisation,
which for the image's batches (no outputs) comes after the next chunk's
encode. The decode of the embeddings is therefore compared as each side's
own clock around it (the CLI's log entries "decoding image batch" ...
"image decoded", ``eval_media``'s decode time), and the rest of the time to
first token (text decodes, the image file, template, preprocessing, glue)
as the time to first token minus encode and embeddings decode.

The **Python overhead per image** is llamanative's time to first token
minus every native call inside it: decoding the image
(``Projector.load_media``), libmtmd's tokenizer and preprocessing
(``Projector.tokenize``), the encodes and embeddings decodes
(``Stepper.eval_media``), and the compiled steps that decode the text and
sample (``Stepper.step``). What is left is the Client's Python (request,
chat template, media runs, job, thread hand-off, the engine's loop, the
response), split into the time before the engine's first native call,
between its calls, and after its last. The same chat without the image,
measured the same way, gives the part of it that is the image's. The
native calls are timed by wrapping the loaded model's projector and stepper
objects for the measured call (``_Tap``), the only instrumentation; an
engine that no longer calls them makes the script fail rather than report
zeros.

Target (the performance issue): llamanative's speed (1 / time) at least
0.95 of llama-mtmd-cli's, for the encode and for the time to first token.
Use ``--json FILE`` to keep the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from _report import print_table  # noqa: E402
from compare_llama_bench import in_own_thread  # noqa: E402
from reference_tools import build_reference_tools  # noqa: E402

from llamanative import Client  # noqa: E402

TARGET = 0.95  # llamanative's speed over llama-mtmd-cli's, encode and time to first token
PROMPT = "What is in this image?"
IMAGE = REPO / "vendor" / "llama.cpp" / "tools" / "mtmd" / "test-1.jpeg"
MODEL_NAME = "vis"
# Seconds between two measured runs, so that one side's spinning ggml threads
# (llama.cpp's --poll) do not share the cores with the other's start.
SETTLE_S = 0.5


# -- llama-mtmd-cli -----------------------------------------------------------------------------
def cli_argv(cli: Path, args: argparse.Namespace, model: Path, projector: Path) -> list[str]:
    argv = [str(cli), "-m", str(model), "--mmproj", str(projector), "--image", str(args.image), "-p", PROMPT]
    argv += ["-n", "1", "--temp", "0", "--seed", "0", "-t", str(args.threads), "-c", str(args.ctx), "--jinja"]
    return argv + ["-lv", "4", "--log-jsonl", "--log-timestamps"]


def parse_cli_log(stdout: str) -> dict:
    """The figures of one ``llama-mtmd-cli`` run from its JSONL log (times in ms).

    Raises:
        RuntimeError: an expected entry is missing (another version of the tool logs differently).
    """
    entries = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    logs = [e for e in entries if e.get("type") == "log"]

    def find(pred, start: int = 0) -> int:
        for i in range(start, len(logs)):
            if pred(logs[i]["msg"]):
                return i
        raise RuntimeError("llama-mtmd-cli's log lacks an expected entry; its log:\n" + stdout[-3000:])

    def us(i: int) -> int:
        return int(logs[i]["time"])

    start = find(lambda m: m.startswith("WARN: This is an experimental CLI"))
    encode_us = embd_us = 0
    per_chunk: list[float] = []
    n_chunks = 0
    i = start
    last_media = start
    while True:
        try:
            b = find(lambda m: m.startswith("encoding mtmd batch"), i)
        except RuntimeError:
            break
        e = find(lambda m: m.startswith("mtmd batch encoding done"), b)
        d0 = find(lambda m: m.startswith("decoding image batch"), e)
        d1 = find(lambda m: m.startswith("image decoded"), d0)
        encode_us += us(e) - us(b)
        per_chunk.append((us(e) - us(b)) / 1e3)
        embd_us += us(d1) - us(d0)
        n_chunks += 1
        i = last_media = d1 + 1
    if n_chunks == 0:
        raise RuntimeError("llama-mtmd-cli encoded no image; its log:\n" + stdout[-3000:])
    # After the prompt, eval_message prints a newline (level "none"), then the first token is printed.
    plain = [j for j in range(last_media, len(logs)) if logs[j].get("level") == "none"]
    if len(plain) < 2:
        raise RuntimeError("llama-mtmd-cli printed no token; its log:\n" + stdout[-3000:])
    first_token = plain[1]
    perf = next(
        (m for e in logs if (m := re.search(r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens", e["msg"]))), None
    )
    ev = next((m for e in logs if (m := re.search(r"\beval time =\s*([\d.]+) ms /\s*(\d+) runs", e["msg"]))), None)
    if perf is None or ev is None:
        raise RuntimeError("llama-mtmd-cli printed no llama_perf summary; its log:\n" + stdout[-3000:])
    return {
        "ttft_ms": (us(first_token) - us(start)) / 1e3,
        "rest_ms": (us(first_token) - us(start) - encode_us - embd_us) / 1e3,
        "encode_ms": encode_us / 1e3,
        "embd_decode_ms": embd_us / 1e3,
        "encode_chunk_ms": per_chunk,
        "chunks": n_chunks,
        "prompt_eval_ms": float(perf[1]),
        "prompt_tokens": int(perf[2]),
        "eval_ms": float(ev[1]),
        "eval_runs": int(ev[2]),
        "token": logs[first_token]["msg"],
    }


def run_cli(argv: list[str]) -> dict:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"llama-mtmd-cli failed ({proc.returncode}):\n{proc.stderr[-3000:]}{proc.stdout[-3000:]}")
    return parse_cli_log(proc.stdout + "\n" + proc.stderr)


# -- llamanative --------------------------------------------------------------------------------
class _Tap:
    """Forwards every attribute to ``inner``; the calls named in ``timed`` are timed (ns summed per name,
    and the span of every call kept).

    ``Stepper.eval_media`` returns its own (encode ns, decode ns): those are kept per call too.
    """

    def __init__(self, inner: object, timed: tuple[str, ...]) -> None:
        self._inner = inner
        self.ns: dict[str, int] = dict.fromkeys(timed, 0)
        self.calls: dict[str, int] = dict.fromkeys(timed, 0)
        self.spans: list[tuple[int, int]] = []  # (start, end) perf_counter_ns of every timed call
        self.encode_ns: list[int] = []  # per eval_media call
        self.embd_decode_ns: list[int] = []
        for name in timed:
            setattr(self, name, self._wrap(name, getattr(inner, name)))

    def _wrap(self, name: str, fn):
        def timed(*a, **k):
            t0 = time.perf_counter_ns()
            try:
                out = fn(*a, **k)
            finally:
                t1 = time.perf_counter_ns()
                self.ns[name] += t1 - t0
                self.calls[name] += 1
                self.spans.append((t0, t1))
            if name == "eval_media":
                self.encode_ns.append(out[0])
                self.embd_decode_ns.append(out[1])
            return out

        return timed

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


def ours_once(c: Client, args: argparse.Namespace, with_image: bool = True) -> dict:
    """One measured chat on a freshly loaded model (times in ms): with the image, or the same text alone."""
    opts = {"temperature": 0, "seed": 0, "num_ctx": args.ctx, "num_thread": args.threads}
    c.chat(model=MODEL_NAME, messages=[], keep_alive=0)  # unload: a fresh context, nothing cached
    c.chat(model=MODEL_NAME, messages=[], options=opts, keep_alive=-1)  # load (and warm up), not measured
    # The chat template is parsed (and its capabilities probed) on its first use after a load;
    # llama-mtmd-cli does that before its clock starts, so a render-only call does it here.
    c.chat(model=MODEL_NAME, messages=[{"role": "user", "content": PROMPT}], options=opts, _debug_render_only=True)
    (entry,) = c._scheduler.loaded()
    runner, prompts = entry.runner, entry.prompts
    # Private attributes, for the timing only: the pipeline's projector and the engine's stepper.
    projector, stepper = prompts.projector, runner._seqs.stepper
    ptap = _Tap(projector, ("load_media", "tokenize"))
    stap = _Tap(stepper, ("eval_media", "step"))
    prompts.projector, runner._seqs.stepper = ptap, stap
    try:
        runner.ctx.perf_reset()
        message = {"role": "user", "content": PROMPT, **({"images": [str(args.image)]} if with_image else {})}
        t0 = time.perf_counter_ns()
        stream = c.chat(
            model=MODEL_NAME, messages=[message], options={**opts, "num_predict": 1}, stream=True, keep_alive=-1
        )
        first = next(stream)
        t_first = time.perf_counter_ns()
        *_, last = [first, *stream]
        perf = runner.ctx.perf()
    finally:
        prompts.projector, runner._seqs.stepper = projector, stepper
    if not last.done:
        raise RuntimeError("the stream ended without a final response")
    if last.load_duration:
        raise RuntimeError(f"the measured call loaded the model ({last.load_duration / 1e6:.1f} ms): options differ")
    if stap.calls["step"] == 0 or with_image and (stap.calls["eval_media"] == 0 or ptap.calls["load_media"] == 0):
        raise RuntimeError("the engine did not go through the tapped projector and stepper: the timing is stale")
    ttft = (t_first - t0) / 1e6
    load_media, tokenize = ptap.ns["load_media"] / 1e6, ptap.ns["tokenize"] / 1e6
    encode, embd = sum(stap.encode_ns) / 1e6, sum(stap.embd_decode_ns) / 1e6
    native = load_media + tokenize + stap.ns["eval_media"] / 1e6 + stap.ns["step"] / 1e6
    # The Python overhead in three parts: before the engine's first native call (the request, the
    # template, the media runs, the job and its hand-off to the worker thread), between its native
    # calls (the generation loop), after its last one (the token back to the caller).
    w0, w1 = stap.spans[0][0], stap.spans[-1][1]
    before = (w0 - t0) / 1e6 - load_media - tokenize
    between = (w1 - w0 - sum(b - a for a, b in stap.spans)) / 1e6
    after = (t_first - w1) / 1e6
    return {
        "ttft_ms": ttft,
        "encode_ms": encode,
        "embd_decode_ms": embd,
        "encode_chunk_ms": [ns / 1e6 for ns in stap.encode_ns],
        "eval_media_ms": stap.ns["eval_media"] / 1e6,
        "step_ms": stap.ns["step"] / 1e6,
        "steps": stap.calls["step"],
        "chunks": stap.calls["eval_media"],
        "load_media_ms": load_media,
        "tokenize_ms": tokenize,
        "prompt_eval_ms": perf["t_p_eval_ms"],
        "prompt_tokens": perf["n_p_eval"],
        "prompt_eval_duration_ms": last.prompt_eval_duration / 1e6,
        "prompt_eval_count": last.prompt_eval_count,
        "python_ms": ttft - native,
        "python_before_ms": before,
        "python_between_ms": between,
        "python_after_ms": after,
        "rest_ms": ttft - encode - embd,
        "token": first.message.content,
    }


# -- the run ------------------------------------------------------------------------------------
def write_test_pair(outdir: Path) -> tuple[Path, Path]:
    """Write the test pair into ``outdir`` (``scripts/make_test_projector.py``); its (model, projector)."""
    script = REPO / "scripts" / "make_test_projector.py"
    proc = subprocess.run([sys.executable, str(script), str(outdir)], capture_output=True, text=True, check=True)
    m = re.fullmatch(r"model=(.+) projector=(.+)", proc.stdout.splitlines()[-1])
    if m is None:
        raise RuntimeError(f"{script.name}: unexpected last line {proc.stdout.splitlines()[-1]!r}")
    return Path(m[1]), Path(m[2])


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def spread(xs: list[float]) -> str:
    return f"{median(xs):.2f} [{min(xs):.2f}-{max(xs):.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="measured repetitions of each side (default 10)")
    parser.add_argument("--threads", type=int, default=2, help="threads of both sides, -t / num_thread (default 2)")
    parser.add_argument("--ctx", type=int, default=1024, help="context size of both sides, -c / num_ctx (default 1024)")
    parser.add_argument("--model", type=Path, help="a vision model's GGUF (with --projector; default: the test pair)")
    parser.add_argument("--projector", type=Path, help="its projector (mmproj) GGUF")
    parser.add_argument("--image", type=Path, default=IMAGE, help="the image (default: llama.cpp's test-1.jpeg)")
    parser.add_argument("--cli", type=Path, help="a llama-mtmd-cli to use (default: built from the vendored tree)")
    parser.add_argument("--json", type=Path, help="write the figures of every run to this file")
    args = parser.parse_args()
    if (args.model is None) != (args.projector is None):
        parser.error("--model and --projector go together")
    cli = args.cli or build_reference_tools(names=("llama-mtmd-cli",))["llama-mtmd-cli"]

    with tempfile.TemporaryDirectory() as tmp:
        if args.model is None:
            model, projector = write_test_pair(Path(tmp) / "pair")
        else:
            model, projector = args.model, args.projector
        argv = cli_argv(cli, args, model, projector)
        load_before = os.getloadavg()[0]
        with Client(models_dir=str(Path(tmp) / "store")) as c:
            c.create(MODEL_NAME, from_=str(model), projector=str(projector))
            # Each of llamanative's runs on a thread of its own, after the Client's worker ended (see in_own_thread).
            ours_fn = lambda: in_own_thread(ours_once, c, args)  # noqa: E731
            text_fn = lambda: in_own_thread(ours_once, c, args, False)  # noqa: E731
            theirs_fn = lambda: run_cli(argv)  # noqa: E731
            ours_fn(), text_fn(), theirs_fn()  # warm-up: the page cache, the first Client load
            ours: list[dict] = []
            text: list[dict] = []
            theirs: list[dict] = []
            for rep in range(args.runs):
                order = [(ours_fn, ours), (theirs_fn, theirs)]
                for fn, out in [*(order if rep % 2 == 0 else order[::-1]), (text_fn, text)]:
                    time.sleep(SETTLE_S)
                    out.append(fn())
            c.chat(model=MODEL_NAME, messages=[], keep_alive=0)
        load = (load_before, os.getloadavg()[0])

    report(args, model, projector, argv, ours, text, theirs, load)
    if args.json:
        figures = {"argv": argv, "llamanative": ours, "llamanative, no image": text, "llama-mtmd-cli": theirs}
        args.json.write_text(json.dumps(figures, indent=1))


def col(rows: list[dict], key: str) -> list[float]:
    return [float(r[key]) for r in rows]


def report(
    args: argparse.Namespace,
    model: Path,
    projector: Path,
    argv: list[str],
    ours: list[dict],
    text: list[dict],
    theirs: list[dict],
    load: tuple[float, float],
) -> None:
    """Print the figures, llamanative's breakdown and the table of targets."""
    print(f"model {model.name}, projector {projector.name}, image {args.image.name}")
    print(f"{args.runs} runs each, {args.threads} threads, context {args.ctx}; medians [min-max], ms")
    print(f"load average (1 min) before and after: {load[0]:.2f}, {load[1]:.2f}")
    print("reference: " + " ".join(a if " " not in a else repr(a) for a in argv))
    print()
    print(f"{'':40}{'llamanative':>26}{'llama-mtmd-cli':>26}")
    for label, key in [
        ("time to first token", "ttft_ms"),
        (f"encode ({ours[0]['chunks']} chunks)", "encode_ms"),
        ("decode of the image embeddings", "embd_decode_ms"),
        ("rest: TTFT - encode - embeddings decode", "rest_ms"),
        ("prompt eval (llama_perf)", "prompt_eval_ms"),
    ]:
        print(f"{label:40}{spread(col(ours, key)):>26}{spread(col(theirs, key)):>26}")
    print(f"{'prompt tokens (llama_perf)':40}{ours[0]['prompt_tokens']:>26}{theirs[0]['prompt_tokens']:>26}")
    print(f"first token: llamanative {ours[0]['token']!r}, llama-mtmd-cli {theirs[0]['token']!r}")
    print()
    print("llamanative's time to first token, broken down:")
    print(f"  {'':52}{'with the image':>24}{'the text alone':>24}")
    for label, key in [
        ("time to first token (wall clock)", "ttft_ms"),
        ("image decode (Projector.load_media)", "load_media_ms"),
        ("tokenize + preprocess (Projector.tokenize)", "tokenize_ms"),
        ("encode + embeddings decode (Stepper.eval_media)", "eval_media_ms"),
        (f"text decodes + first sample ({ours[0]['steps']} / {text[0]['steps']} Stepper.step)", "step_ms"),
        ("Python overhead: the rest", "python_ms"),
        ("  before the engine's first native call", "python_before_ms"),
        ("  the engine's loop between its native calls", "python_between_ms"),
        ("  after its last (the token to the caller)", "python_after_ms"),
        ("prompt_eval_duration (the response's)", "prompt_eval_duration_ms"),
    ]:
        print(f"  {label:52}{spread(col(ours, key)):>24}{spread(col(text, key)):>24}")
    print()
    ttft_o, ttft_t = median(col(ours, "ttft_ms")), median(col(theirs, "ttft_ms"))
    enc_o, enc_t = median(col(ours, "encode_ms")), median(col(theirs, "encode_ms"))
    py, py_text = median(col(ours, "python_ms")), median(col(text, "python_ms"))
    rows = [
        (
            "time to first token, 1 image (ms)",
            f"{ttft_o:.2f}",
            f"{ttft_t:.2f}",
            f"{ttft_t / ttft_o:.3f}x speed",
            f">= {TARGET}x",
            ttft_t / ttft_o >= TARGET,
        ),
        (
            f"image encode, {ours[0]['chunks']} chunks (ms)",
            f"{enc_o:.2f}",
            f"{enc_t:.2f}",
            f"{enc_t / enc_o:.3f}x speed",
            f">= {TARGET}x",
            enc_t / enc_o >= TARGET,
        ),
        ("Python overhead, chat with 1 image (ms)", f"{py:.2f}", "", f"{100 * py / ttft_o:.1f} % of TTFT", "", None),
        ("  of which the image's (ms)", f"{py - py_text:.2f}", "", f"text alone: {py_text:.2f}", "", None),
    ]
    print_table(rows, reference="llama-mtmd-cli")
    # Each repetition ran the two sides back to back: the median of their ratios drifts less with the load.
    paired = [(t["ttft_ms"] / o["ttft_ms"], t["encode_ms"] / o["encode_ms"]) for o, t in zip(ours, theirs, strict=True)]
    print(
        f"median of the per-repetition ratios: time to first token {median([p[0] for p in paired]):.3f}x, "
        f"encode {median([p[1] for p in paired]):.3f}x"
    )


if __name__ == "__main__":
    main()
