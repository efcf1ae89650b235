"""llamanative's Client against llama-server (the same llama.cpp commit), measured in one run.

    python benchmarks/compare_llama_server.py [--server PATH/llama-server] [--threads N] [--reps 3] [--json FILE]

Without ``--server`` it builds llama-server from the vendored tree
(``reference_tools.py``, incremental, no Web UI). The script starts
llama-server itself on 127.0.0.1 (a free port; its log goes to
``benchmarks/.cache/``), talks to it with the standard library's HTTP
client from Python threads, and stops it at the end. The Client runs in this
process. The two sides alternate within every repetition (the first of the
two swapping every repetition), with the same model, thread count and total
context; llama-server keeps its own defaults otherwise (continuous batching,
prompt cache, flash attention ``auto``). The two ``auto`` differ on the CPU:
llama.cpp's turns flash attention on, llamanative's off (it slows generation
as the context fills: ``llamanative/engine/attention.py``). So the chats are
measured once more against a llama-server given llamanative's setting
(``-fa off``), to show what of the difference is the setting.

Measured (targets from the performance issue, printed beside each figure):

- **4 concurrent chats** of up to ``--tokens`` (128) generated tokens, greedy,
  SmolLM2: aggregate generated tokens/s (all tokens over the wall time from
  the first request to the last answer). llama-server runs with ``-np 4`` and
  4 concurrent HTTP clients (``/v1/chat/completions``), llamanative with 4
  Python threads calling ``Client.chat``. Target: llamanative >= 1.1x.
  A single stream is measured too on both sides: llamanative's 4-stream
  aggregate over its own single stream (target >= 1.3x), and llama-server's
  for reference. Beside them, the bound: ``_core`` decoding 4 sequences (and
  1) one token per step with nothing else, and each side's share of it.
- **1,000-sentence embedding** with all-MiniLM-L6-v2: sentences/s of one
  batched ``/embedding`` request (``content`` a list, L2-normalised, a server
  started with ``--embeddings -np 32``) against one ``Client.embed`` call.
  Target: llamanative >= 1.2x.
- **Second-turn time to first token** of a conversation of about 1,500
  tokens: the first turn (conversation + a question, a few tokens answered)
  fills each side's cache, then the second turn (the same plus the answer and
  a new question) is streamed and timed to its first content token. Each
  repetition uses a new conversation. llama-server uses its prompt cache
  (``cache_prompt``, slot selection by similarity), llamanative its prefix
  cache. Target: llamanative <= 1.0x llama-server's time. The tokens each
  side actually evaluated in the second turn are shown.

Use ``--json FILE`` to keep the figures, ``--plot FILE.png`` to draw them.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _report import fmt, mean_sd, print_table  # noqa: E402
from compare_llama_bench import in_own_thread  # noqa: E402
from compare_llama_cpp_python import minilm_path, sentences  # noqa: E402
from plots import plot_file, plot_results  # noqa: E402

from llamanative import Client, _core  # noqa: E402
from llamanative.engine.attention import generation_flash_attn  # noqa: E402
from llamanative.fetch import fetch_model  # noqa: E402

TARGET_CONCURRENT = 1.1  # llamanative's 4-stream tokens/s over llama-server's
TARGET_SELF_SCALING = 1.3  # llamanative's 4-stream aggregate over its own single stream
TARGET_EMBED = 1.2  # llamanative's sentences/s over llama-server's
TARGET_TTFT = 1.0  # llamanative's second-turn time to first token over llama-server's (lower is better)

N_STREAMS = 4
HOST = "127.0.0.1"


# -- the server process -----------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    """A llama-server process on 127.0.0.1, started with ``args``; a context manager that stops it."""

    def __init__(self, path: Path, args: list[str], log: Path, timeout_s: float = 300) -> None:
        self.port = free_port()
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log, "w")
        self.proc = subprocess.Popen(
            [str(path), "--host", HOST, "--port", str(self.port), *args], stdout=self._log, stderr=subprocess.STDOUT
        )
        self._wait_ready(timeout_s, log)

    def _wait_ready(self, timeout_s: float, log: Path) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama-server exited ({self.proc.returncode}); see {log}")
            try:
                status, _ = request(self.port, "GET", "/health")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"llama-server not ready after {timeout_s} s; see {log}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def request(port: int, method: str, path: str, body: dict | None = None, timeout: float = 600) -> tuple[int, dict]:
    """One HTTP request; returns the status and the decoded JSON answer."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(
            method,
            path,
            body=json.dumps(body) if body is not None else None,
            headers={"Content-Type": "application/json"},
        )
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, (json.loads(data) if data else {})
    finally:
        conn.close()


def post(port: int, path: str, body: dict) -> dict:
    status, data = request(port, "POST", path, body)
    if status != 200:
        raise RuntimeError(f"llama-server {path}: HTTP {status}: {data}")
    return data


def stream_chat(port: int, body: dict):
    """POST a streamed ``/v1/chat/completions``; yields each server-sent event's JSON."""
    conn = http.client.HTTPConnection(HOST, port, timeout=600)
    try:
        conn.request(
            "POST",
            "/v1/chat/completions",
            body=json.dumps({**body, "stream": True}),
            headers={"Content-Type": "application/json"},
        )
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"llama-server chat stream: HTTP {resp.status}: {resp.read()[:500]!r}")
        for raw in resp:
            line = raw.strip()
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                return
            yield json.loads(payload)
    finally:
        conn.close()


# -- helpers ----------------------------------------------------------------------------------
# Seconds between two measured calls. ggml's worker threads spin for a while
# after their last decode before they sleep (llama-server's, with llama.cpp's
# default --poll 50, kept a core busy for ~100 ms here): without a pause, a
# side would start on a machine still busy with the other.
SETTLE_S = 0.5


def alternate(reps: int, ours, theirs) -> tuple[list, list]:
    """``ours(rep)`` and ``theirs(rep)`` once per repetition, the first of the two swapping
    every repetition, after one warm-up call of each (rep = -1)."""
    ours(-1), theirs(-1)
    a, b = [], []
    for rep in range(reps):
        for fn, out in [(ours, a), (theirs, b)] if rep % 2 == 0 else [(theirs, b), (ours, a)]:
            time.sleep(SETTLE_S)
            out.append(fn(rep))
    return a, b


def in_threads(fns) -> tuple[float, list]:
    """Run every callable of ``fns`` in its own thread at once; wall seconds and their results."""
    results: list = [None] * len(fns)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = fns[i]()
        except BaseException as exc:  # reported below, in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return seconds, results


def story_prompt(rep: int, i: int) -> list[dict]:
    """A chat request, distinct per repetition and stream, that SmolLM2 answers at length: greedy, it
    wrote 128 tokens or more for all 28 of (-1..5) x (0..3), where a request to count to two hundred
    ended after 9-87 tokens for 12 of them (and so measured fewer streams than it claimed)."""
    return [
        {
            "role": "user",
            "content": f"({rep}.{i}) Write a long story about a lighthouse keeper and a storm. "
            "Use at least five paragraphs.",
        }
    ]


# -- 1. concurrent chats ----------------------------------------------------------------------
def bench_concurrent(client: Client, port: int, model: Path, args, n_streams: int) -> dict:
    """Aggregate generated tokens/s of ``n_streams`` concurrent chats on each side."""
    opts = {
        "temperature": 0,
        "repeat_penalty": 1.0,
        "seed": 0,
        "num_predict": args.tokens,
        "num_thread": args.threads,
        "num_ctx": args.ctx,
    }
    body = {"temperature": 0, "repeat_penalty": 1.0, "seed": 0, "max_tokens": args.tokens}

    generated: dict[str, list] = {"llamanative": [], "llama-server": []}  # tokens of each chat, per rep

    def ours(rep: int) -> float:
        calls = [
            lambda i=i: client.chat(str(model), story_prompt(rep, i), options=opts).eval_count for i in range(n_streams)
        ]
        seconds, counts = in_threads(calls)
        generated["llamanative"].append(counts)
        return sum(counts) / seconds

    def theirs(rep: int) -> float:
        calls = [
            lambda i=i: post(port, "/v1/chat/completions", {**body, "messages": story_prompt(rep, i)})["usage"][
                "completion_tokens"
            ]
            for i in range(n_streams)
        ]
        seconds, counts = in_threads(calls)
        generated["llama-server"].append(counts)
        return sum(counts) / seconds

    a, b = alternate(args.reps, ours, theirs)
    return {"llamanative_tps": a, "llama_server_tps": b, "generated": generated}


def decode_ceiling(model: Path, args, n_seqs: int) -> list[float]:
    """Tokens/s of the decodes alone for ``n_seqs`` streams: ``_core`` decoding one token per
    sequence per step (``args.tokens`` steps after a short prompt each), no sampling, no
    detokenising, nothing handed to a caller. Neither side can generate faster than this on
    this machine: it is the bound that the concurrent-chat figures are read against."""
    with (
        _core.Model(model) as m,
        _core.Context(
            m,
            n_ctx=args.ctx,
            n_batch=512,
            n_ubatch=512,
            n_seq_max=N_STREAMS,
            n_threads=args.threads,
            flash_attn=client_flash_attn(m, args),
        ) as ctx,
    ):
        prompt = m.vocab.tokenize(story_prompt(0, 0)[0]["content"])
        batch = _core.Batch(512)

        def run() -> float:
            ctx.clear(False)
            batch.clear()
            for s in range(n_seqs):
                batch.add_sequence(prompt, 0, s, output="last")
            ctx.decode(batch)
            pos, token = len(prompt), int(prompt[-1])
            t0 = time.perf_counter()
            for _ in range(args.tokens):
                batch.clear()
                for s in range(n_seqs):
                    batch.add(token, pos, s, True)
                ctx.decode(batch)
                pos += 1
            return n_seqs * args.tokens / (time.perf_counter() - t0)

        run()
        return [run() for _ in range(args.reps)]


def client_flash_attn(m: _core.Model, args) -> str:
    """The flash-attention setting the Client's runner creates this model's context with."""
    return generation_flash_attn(m, n_ctx=args.ctx, n_ubatch=512)


# -- 2. embeddings ----------------------------------------------------------------------------
def bench_embed(client: Client, port: int, model: Path, args) -> dict:
    """Sentences/s of one call embedding ``args.sentences`` sentences (L2-normalised) on each side."""
    inputs = sentences(args.sentences)

    def ours(rep: int) -> float:
        t0 = time.perf_counter()
        r = client.embed(str(model), inputs, options={"num_thread": args.threads})
        assert len(r.embeddings) == len(inputs)
        return len(inputs) / (time.perf_counter() - t0)

    def theirs(rep: int) -> float:
        t0 = time.perf_counter()
        rows = post(port, "/embedding", {"content": inputs, "embd_normalize": 2})
        assert len(rows) == len(inputs)
        return len(inputs) / (time.perf_counter() - t0)

    a, b = alternate(args.reps, ours, theirs)
    return {"llamanative_sps": a, "llama_server_sps": b}


# -- 3. second-turn time to first token -------------------------------------------------------
def conversation(rep: int, vocab: _core.Vocab, n_tokens: int) -> list[dict]:
    """A system prompt and user/assistant turns of about ``n_tokens`` tokens in all, distinct per ``rep``."""
    msgs = [{"role": "system", "content": f"Conversation {rep}. You are a helpful assistant. Answer briefly."}]
    total, k = 0, 0
    filler = sentences(4 * n_tokens // 10, seed=rep + 1)  # plenty
    while total < n_tokens:
        text = " ".join(filler[4 * k : 4 * k + 4])
        msgs.append({"role": "user" if k % 2 == 0 else "assistant", "content": text})
        total += len(vocab.tokenize(text, add_special=False)) + 5  # + the template's few tokens per turn
        k += 1
    if msgs[-1]["role"] == "user":
        msgs.append({"role": "assistant", "content": "Noted."})
    return msgs


def bench_ttft(client: Client, port: int, model: Path, vocab: _core.Vocab, args) -> dict:
    """Seconds to the first content token of the second turn, and the tokens each side evaluated."""
    opts = {"temperature": 0, "repeat_penalty": 1.0, "seed": 0, "num_thread": args.threads, "num_ctx": args.ctx}
    body = {"temperature": 0, "repeat_penalty": 1.0, "seed": 0}
    q1, q2 = "Summarise the conversation in one sentence.", "Now name one colour."
    evaluated: dict[str, list] = {"llamanative": [], "llama-server": []}

    def ours(rep: int) -> float:
        conv = conversation(rep, vocab, args.conversation) + [{"role": "user", "content": q1}]
        first = client.chat(str(model), conv, options={**opts, "num_predict": 16})
        turn2 = conv + [{"role": "assistant", "content": first.message.content}, {"role": "user", "content": q2}]
        t0 = time.perf_counter()
        ttft, last = None, None
        for chunk in client.chat(str(model), turn2, options={**opts, "num_predict": 4}, stream=True):
            if ttft is None and chunk.message.content:
                ttft = time.perf_counter() - t0
            last = chunk
        if rep >= 0:
            evaluated["llamanative"].append(
                {"prompt_eval_count": last.prompt_eval_count, "first_turn_prompt": first.prompt_eval_count}
            )
        return ttft

    def theirs(rep: int) -> float:
        conv = conversation(rep, vocab, args.conversation) + [{"role": "user", "content": q1}]
        first = post(port, "/v1/chat/completions", {**body, "messages": conv, "max_tokens": 16})
        reply = first["choices"][0]["message"]["content"]
        turn2 = conv + [{"role": "assistant", "content": reply}, {"role": "user", "content": q2}]
        t0 = time.perf_counter()
        ttft, timings = None, {}
        for ev in stream_chat(port, {**body, "messages": turn2, "max_tokens": 4}):
            delta = (ev.get("choices") or [{}])[0].get("delta", {})
            if ttft is None and delta.get("content"):
                ttft = time.perf_counter() - t0
            timings = ev.get("timings", timings)
        if rep >= 0:
            evaluated["llama-server"].append(
                {
                    "prompt_n": timings.get("prompt_n"),
                    "cache_n": timings.get("cache_n"),
                    "first_turn_prompt": first["usage"]["prompt_tokens"],
                }
            )
        return ttft

    a, b = alternate(args.reps, ours, theirs)
    return {"llamanative_s": a, "llama_server_s": b, "evaluated": evaluated}


# -- report -----------------------------------------------------------------------------------
def rows_of(res: dict, args) -> list[tuple]:
    """Rows: measure, llamanative, llama-server, figure, target, met (None: no target)."""
    c4, c1, e, t = res["concurrent"], res["single"], res["embed"], res["ttft"]
    out = []

    def ratio(a: list[float], b: list[float]) -> float:
        return mean_sd(a)[0] / mean_sd(b)[0]

    r = ratio(c4["llamanative_tps"], c4["llama_server_tps"])
    out.append(
        (
            f"{N_STREAMS} concurrent chats, tok/s",
            fmt(c4["llamanative_tps"]),
            fmt(c4["llama_server_tps"]),
            f"{r:.3f}x",
            f">= {TARGET_CONCURRENT}x",
            r >= TARGET_CONCURRENT,
        )
    )
    r = ratio(c1["llamanative_tps"], c1["llama_server_tps"])
    out.append(("1 chat, tok/s", fmt(c1["llamanative_tps"]), fmt(c1["llama_server_tps"]), f"{r:.3f}x", "-", None))
    s_ours = ratio(c4["llamanative_tps"], c1["llamanative_tps"])
    s_theirs = ratio(c4["llama_server_tps"], c1["llama_server_tps"])
    out.append(
        (
            f"{N_STREAMS} streams over 1 stream",
            f"{s_ours:.3f}x",
            f"{s_theirs:.3f}x",
            "",
            f">= {TARGET_SELF_SCALING}x",
            s_ours >= TARGET_SELF_SCALING,
        )
    )
    if "concurrent_same_fa" in res:
        c4s, c1s = res["concurrent_same_fa"], res["single_same_fa"]
        fa = res["flash_attn"]
        r = ratio(c4s["llamanative_tps"], c4s["llama_server_tps"])
        out.append(
            (
                f"{N_STREAMS} chats, llama-server -fa {fa} too, tok/s",
                fmt(c4s["llamanative_tps"]),
                fmt(c4s["llama_server_tps"]),
                f"{r:.3f}x",
                "same settings",
                None,
            )
        )
        r = ratio(c1s["llamanative_tps"], c1s["llama_server_tps"])
        out.append(
            (
                f"1 chat, llama-server -fa {fa} too, tok/s",
                fmt(c1s["llamanative_tps"]),
                fmt(c1s["llama_server_tps"]),
                f"{r:.3f}x",
                "same settings",
                None,
            )
        )
        out.append(
            (
                f"  {N_STREAMS} streams over 1, -fa {fa} both",
                f"{ratio(c4s['llamanative_tps'], c1s['llamanative_tps']):.3f}x",
                f"{ratio(c4s['llama_server_tps'], c1s['llama_server_tps']):.3f}x",
                "",
                "",
                None,
            )
        )
    if "ceiling" in res:
        k1, k4 = res["ceiling"]["1"], res["ceiling"][str(N_STREAMS)]
        out.append(
            (
                f"decodes alone, {N_STREAMS} seqs / 1 seq, tok/s",
                fmt(k4),
                fmt(k1),
                f"{ratio(k4, k1):.3f}x",
                "bound",
                None,
            )
        )
        out.append(
            (
                f"  share of that bound, {N_STREAMS} / 1 streams",
                f"{ratio(c4['llamanative_tps'], k4):.3f} / {ratio(c1['llamanative_tps'], k1):.3f}",
                f"{ratio(c4['llama_server_tps'], k4):.3f} / {ratio(c1['llama_server_tps'], k1):.3f}",
                "",
                "",
                None,
            )
        )
    r = ratio(e["llamanative_sps"], e["llama_server_sps"])
    out.append(
        (
            f"embed {args.sentences} sentences, sent/s",
            fmt(e["llamanative_sps"]),
            fmt(e["llama_server_sps"]),
            f"{r:.3f}x",
            f">= {TARGET_EMBED}x",
            r >= TARGET_EMBED,
        )
    )
    ms_ours = [x * 1e3 for x in t["llamanative_s"]]
    ms_theirs = [x * 1e3 for x in t["llama_server_s"]]
    r = ratio(ms_ours, ms_theirs)
    out.append(
        (
            f"2nd-turn TTFT (~{args.conversation} tok), ms",
            fmt(ms_ours),
            fmt(ms_theirs),
            f"{r:.3f}x",
            f"<= {TARGET_TTFT}x",
            r <= TARGET_TTFT,
        )
    )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--server", type=Path, default=None, help="the llama-server executable (default: built from the vendored tree)"
    )
    ap.add_argument("--model", type=Path, default=None, help="chat GGUF (default: SmolLM2-135M Q4_1)")
    ap.add_argument("--minilm", type=Path, default=None, help="embedding GGUF (default: the test suite's MiniLM)")
    ap.add_argument("--threads", type=int, default=_core.default_n_threads())
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions of each measurement")
    ap.add_argument("--tokens", type=int, default=128, help="tokens generated per chat")
    ap.add_argument(
        "--ctx", type=int, default=8192, help="total context, both sides (llama-server: -c, split over its -np 4 slots)"
    )
    ap.add_argument("--sentences", type=int, default=1000, help="sentences per embed call")
    ap.add_argument("--embed-parallel", type=int, default=32, help="llama-server -np for the embedding server")
    ap.add_argument("--conversation", type=int, default=1500, help="tokens of the conversation before turn 2")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--plot", type=plot_file, default=None, help="also draw the figures as a PNG here (matplotlib)")
    args = ap.parse_args(argv)

    if args.server is None:
        from reference_tools import build_reference_tools

        args.server = build_reference_tools(names=("llama-server",))["llama-server"]
    model = args.model or fetch_model("smollm2", quiet=True)
    minilm = args.minilm or minilm_path()
    threads = ["-t", str(args.threads), "-tb", str(args.threads)]
    logs = HERE / ".cache"
    res: dict = {"model": model.name, "embedding_model": minilm.name, "threads": args.threads, "reps": args.reps}
    with Client() as client:
        chat_args = ["-m", str(model), *threads, "-c", str(args.ctx), "-np", str(N_STREAMS), "--no-webui"]
        with Server(args.server, chat_args, logs / "llama-server-chat.log") as srv:
            res["concurrent"] = bench_concurrent(client, srv.port, model, args, N_STREAMS)
            res["single"] = bench_concurrent(client, srv.port, model, args, 1)
            with _core.Model(model) as m:
                res["ttft"] = bench_ttft(client, srv.port, model, m.vocab, args)
                res["flash_attn"] = client_flash_attn(m, args)
        if res["flash_attn"] in ("on", "off"):
            # The same chats against llama-server with llamanative's flash-attention setting: what of the
            # difference is the setting and what is the engine.
            same = [*chat_args, "-fa", res["flash_attn"]]
            with Server(args.server, same, logs / "llama-server-chat-same-fa.log") as srv:
                res["concurrent_same_fa"] = bench_concurrent(client, srv.port, model, args, N_STREAMS)
                res["single_same_fa"] = bench_concurrent(client, srv.port, model, args, 1)
        # On a thread that ends: the main thread must not keep an OpenMP team (see in_own_thread).
        res["ceiling"] = {str(n): in_own_thread(decode_ceiling, model, args, n) for n in (1, N_STREAMS)}
        n = args.embed_parallel
        embed_args = [
            "-m",
            str(minilm),
            *threads,
            "--embeddings",
            "-np",
            str(n),
            "-c",
            str(512 * n),
            "-b",
            "512",
            "-ub",
            "512",
            "--no-webui",
        ]
        with Server(args.server, embed_args, logs / "llama-server-embed.log") as srv:
            res["embed"] = bench_embed(client, srv.port, minilm, args)

    print(
        f"llamanative vs llama-server (llama.cpp {_core.LLAMA_CPP_COMMIT[:8]}); {model.name} / {minilm.name}, "
        f"{args.threads} threads, {args.reps} repetitions, mean ± stdev"
    )
    print_table(rows_of(res, args), reference="llama-server")
    print(
        f"flash attention: llamanative {res['flash_attn']} (its default on the CPU, or LLAMANATIVE_FLASH_ATTENTION), "
        "llama-server auto (on wherever supported) unless the row says otherwise"
    )
    for key in ("concurrent", "single", "concurrent_same_fa", "single_same_fa"):
        if key in res:
            g = res[key]["generated"]
            print(f"tokens per chat ({key}): llamanative {g['llamanative']}; llama-server {g['llama-server']}")
    ev = res["ttft"]["evaluated"]
    ours, theirs = ev["llamanative"], ev["llama-server"]
    print(
        f"2nd turn, tokens evaluated: llamanative {[e['prompt_eval_count'] for e in ours]} "
        f"(first turn: {[e['first_turn_prompt'] for e in ours]}); "
        f"llama-server {[e['prompt_n'] for e in theirs]} with {[e['cache_n'] for e in theirs]} from its cache "
        f"(first turn: {[e['first_turn_prompt'] for e in theirs]})"
    )
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    if args.plot:
        plot_results(res, args.plot, "llamanative vs llama-server")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
