"""``llamanative serve`` against llama-server (the same llama.cpp commit), both over HTTP, measured in one run.

    python benchmarks/compare_serve.py [--server PATH/llama-server] [--threads N] [--runs 3] [--json FILE]

Without ``--server`` it builds llama-server from the vendored tree
(``reference_tools.py``, incremental, no Web UI). The script starts both
servers on 127.0.0.1 (free ports; their logs go to ``benchmarks/.cache/``):
``python -m llamanative serve`` over a store of its own in a temporary
directory (the chat model and the embedding model, each stored with
``num_thread`` = ``--threads`` and the chat model with ``num_ctx`` =
``--ctx`` and ``repeat_penalty`` 1, llama-server's default) and llama-server
with the same model, threads (``-t``/``-tb``) and total context, 4 slots
(``-np 4``) for the chats, and a second llama-server for the embeddings
(``--embeddings -np 32``, as ``compare_llama_server.py`` starts it). Both are
driven by the same load generator in this process: httpx's async client, one
connection per concurrent request, through their OpenAI-compatible endpoints
(``/v1/chat/completions`` streamed, with ``stream_options.include_usage``;
``/v1/embeddings``), with the same request bodies. A third side, the
in-process client on the same store, takes the same requests as Python
calls: the server's HTTP cost is ``serve`` over it, and its figures against
llama-server's show what of a difference is the engine and what is the HTTP
layer. For the chats that is the ``AsyncClient`` the server itself wraps (4
streamed chats as 4 tasks of one event loop, as the server runs them) and,
for information, the ``Client`` called from 4 threads; for the embeddings and
the time to first token the ``Client``.

The sides take turns within every run (the order rotating each run), after a
warm-up call of each; figures are medians over ``--runs`` runs (with the
spread, min-max), ratios are ratios of the medians. Targets (the server
issue's), printed beside each figure:

- **4 concurrent streamed chats** of up to ``--tokens`` (128) tokens, greedy,
  SmolLM2: aggregate generated tokens/s (all tokens over the wall time from the
  first request to the last ``[DONE]``): ``serve`` >= 1.1x llama-server
  ``-np 4``. The HTTP cost: ``serve`` >= 0.95x the in-process AsyncClient.
- **1,000-sentence ``/v1/embeddings``** (all-MiniLM-L6-v2, one request, the
  vectors as JSON numbers): sentences/s, ``serve`` >= 1.0x llama-server's.
- **Second-turn time to first token** of a conversation of about 1,500 tokens
  (a first turn fills each server's cache, the second turn adds the answer and
  a question and is timed to its first content delta; a new conversation
  every run): ``serve`` <= 1.0x llama-server's. The tokens each side evaluated
  in the second turn are shown.

For the chats, the CPU time of each run is read too (``/proc/PID/stat`` of the
server, ``os.times`` of this process) and printed per generated token: the
server's process against the load generator's, and the in-process sides'
whole: where the time of a missed target goes.

The machine's CPU count and the thread count are printed with the table: on a
machine shared with other work the figures move from run to run, which the
spread shows; the 1-minute load average before and after the run is printed
too. Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _report import print_table  # noqa: E402
from compare_llama_cpp_python import minilm_path, sentences  # noqa: E402
from compare_llama_server import Server, conversation, in_threads, story_prompt  # noqa: E402
from serve_load import ServeProcess, make_store  # noqa: E402

from llamanative import AsyncClient, Client, _core  # noqa: E402
from llamanative.fetch import fetch_model  # noqa: E402

TARGET_CHATS = 1.1  # serve's 4-chat tokens/s over llama-server's
TARGET_HTTP_COST = 0.95  # serve's 4-chat tokens/s over the in-process Client's
TARGET_EMBED = 1.0  # serve's sentences/s over llama-server's
TARGET_TTFT = 1.0  # serve's second-turn time to first token over llama-server's (lower is better)

N_STREAMS = 4
SETTLE_S = 0.5  # seconds between two measured calls (ggml's threads spin a while after their last decode)
SERVE, LLAMA, ASYNC, CLIENT = "serve", "llama-server", "AsyncClient", "Client"


# -- the load generator -----------------------------------------------------------------------
async def stream_chat(http: httpx.AsyncClient, url: str, body: dict) -> dict:
    """One streamed ``/v1/chat/completions`` read to ``[DONE]``: its completion tokens, the seconds to its
    first content delta, and the usage and (llama-server's) timings of its last chunks."""
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    ttft, deltas, usage, timings, done = None, 0, None, None, False
    async with http.stream("POST", url + "/v1/chat/completions", json=body) as r:
        if r.status_code != 200:
            raise RuntimeError(f"{url}: HTTP {r.status_code}: {(await r.aread())[:500]!r}")
        async for line in r.aiter_lines():
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                done = True
                break
            ev = json.loads(payload)
            if "error" in ev:
                raise RuntimeError(f"{url}: an error event: {ev['error']}")
            for choice in ev.get("choices") or []:
                if (choice.get("delta") or {}).get("content"):
                    deltas += 1
                    if ttft is None:
                        ttft = time.perf_counter() - t0
            usage = ev.get("usage") or usage
            timings = ev.get("timings") or timings
    if not done:
        raise RuntimeError(f"{url}: the stream ended without [DONE]")
    tokens = usage["completion_tokens"] if usage else deltas
    return {"tokens": tokens, "ttft": ttft, "usage": usage, "timings": timings}


def cpu_seconds(pid: int | None = None) -> float:
    """CPU seconds (user + system, every thread) of process ``pid`` so far; of this process without one."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def over_http(fn: Callable) -> object:
    """``fn(http)``, a coroutine function, run to its end with a new httpx client (one connection per
    concurrent request, no timeout)."""

    async def run() -> object:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(limits=limits, timeout=None) as http:
            return await fn(http)

    return asyncio.run(run())


def interleave(runs: int, sides: dict[str, Callable[[int], object]]) -> dict[str, list]:
    """Each side's ``fn(run)`` once per run, the order rotating every run, after a warm-up call of each
    (run -1, not kept); every side's results."""
    names = list(sides)
    for name in names:
        sides[name](-1)
    out: dict[str, list] = {n: [] for n in names}
    for run in range(runs):
        k = run % len(names)
        for name in names[k:] + names[:k]:
            time.sleep(SETTLE_S)
            out[name].append(sides[name](run))
    return out


# -- 1. concurrent streamed chats -------------------------------------------------------------
def bench_chats(client: Client, aclient: AsyncClient, urls: dict[str, str], pids: dict[str, int], args) -> dict:
    """Aggregate generated tokens/s of 4 concurrent streamed chats on each side; the tokens of each chat; the
    CPU seconds each run took in the server's process and in this one (the load generator, or the whole of an
    in-process side)."""
    cpu: dict[str, list] = {n: [] for n in (SERVE, LLAMA, ASYNC, CLIENT)}  # (server, this process) per run
    body = {"model": "chat", "max_tokens": args.tokens, "temperature": 0, "seed": 0}
    # What the server's OpenAI mapping makes of that body (temperature and top_p default to 1 there).
    options = {"num_predict": args.tokens, "temperature": 0.0, "top_p": 1.0, "seed": 0}
    tokens: dict[str, list] = {n: [] for n in (SERVE, LLAMA, ASYNC, CLIENT)}

    def http_side(name: str) -> Callable[[int], float]:
        def side(run: int) -> float:
            async def chats(http: httpx.AsyncClient) -> float:
                c0, s0 = cpu_seconds(), cpu_seconds(pids[name])
                t0 = time.perf_counter()
                got = await asyncio.gather(
                    *(
                        stream_chat(http, urls[name], {**body, "messages": story_prompt(run, i)})
                        for i in range(N_STREAMS)
                    )
                )
                seconds = time.perf_counter() - t0
                counts = [g["tokens"] for g in got]
                if run >= 0:
                    tokens[name].append(counts)
                    cpu[name].append((cpu_seconds(pids[name]) - s0, cpu_seconds() - c0))
                return sum(counts) / seconds

            return over_http(chats)  # type: ignore[return-value]

        return side

    def client_side(run: int) -> float:
        def one(i: int) -> int:
            last = None
            for chunk in client.chat("chat", story_prompt(run, i), stream=True, options=options):
                last = chunk
            assert last is not None and last.done
            return last.eval_count or 0

        c0 = cpu_seconds()
        seconds, counts = in_threads([lambda i=i: one(i) for i in range(N_STREAMS)])
        if run >= 0:
            tokens[CLIENT].append(counts)
            cpu[CLIENT].append((0.0, cpu_seconds() - c0))
        return sum(counts) / seconds

    def async_side(run: int) -> float:
        async def one(i: int) -> int:
            last = None
            async for chunk in await aclient.chat("chat", story_prompt(run, i), stream=True, options=options):
                last = chunk
            assert last is not None and last.done
            return last.eval_count or 0

        async def chats() -> tuple[float, list[int]]:
            t0 = time.perf_counter()
            counts = await asyncio.gather(*(one(i) for i in range(N_STREAMS)))
            return time.perf_counter() - t0, list(counts)

        c0 = cpu_seconds()
        seconds, counts = asyncio.run(chats())
        if run >= 0:
            tokens[ASYNC].append(counts)
            cpu[ASYNC].append((0.0, cpu_seconds() - c0))
        return sum(counts) / seconds

    sides = {SERVE: http_side(SERVE), LLAMA: http_side(LLAMA), ASYNC: async_side, CLIENT: client_side}
    tps = interleave(args.runs, sides)
    return {"tps": tps, "tokens": tokens, "cpu": cpu}


# -- 2. embeddings ----------------------------------------------------------------------------
def bench_embed(client: Client, urls: dict[str, str], args) -> dict:
    """Sentences/s of one ``/v1/embeddings`` request of ``args.sentences`` sentences on each side."""
    inputs = sentences(args.sentences)

    def http_side(name: str) -> Callable[[int], float]:
        def side(run: int) -> float:
            async def embed(http: httpx.AsyncClient) -> float:
                body = {"model": "embed", "input": inputs, "encoding_format": "float"}
                t0 = time.perf_counter()
                r = await http.post(urls[name] + "/v1/embeddings", json=body)
                data = r.json()
                seconds = time.perf_counter() - t0
                if r.status_code != 200 or len(data["data"]) != len(inputs):
                    raise RuntimeError(f"{name} /v1/embeddings: HTTP {r.status_code}: {str(data)[:300]}")
                return len(inputs) / seconds

            return over_http(embed)  # type: ignore[return-value]

        return side

    def client_side(run: int) -> float:
        t0 = time.perf_counter()
        r = client.embed("embed", inputs)
        assert len(r.embeddings) == len(inputs)
        return len(inputs) / (time.perf_counter() - t0)

    return {"sps": interleave(args.runs, {SERVE: http_side(SERVE), LLAMA: http_side(LLAMA), CLIENT: client_side})}


# -- 3. second-turn time to first token -------------------------------------------------------
def bench_ttft(client: Client, urls: dict[str, str], vocab: _core.Vocab, args) -> dict:
    """Seconds to the first content delta of the second turn on each side, and what each side evaluated."""
    body = {"model": "chat", "temperature": 0, "seed": 0}
    options = {"temperature": 0.0, "top_p": 1.0, "seed": 0}
    q1, q2 = "Summarise the conversation in one sentence.", "Now name one colour."
    evaluated: dict[str, list] = {n: [] for n in (SERVE, LLAMA, CLIENT)}

    def http_side(name: str) -> Callable[[int], float]:
        def side(run: int) -> float:
            async def turns(http: httpx.AsyncClient) -> float:
                conv = conversation(run, vocab, args.conversation) + [{"role": "user", "content": q1}]
                r = await http.post(
                    urls[name] + "/v1/chat/completions", json={**body, "messages": conv, "max_tokens": 16}
                )
                first = r.json()
                reply = first["choices"][0]["message"]["content"]
                turn2 = conv + [{"role": "assistant", "content": reply}, {"role": "user", "content": q2}]
                got = await stream_chat(http, urls[name], {**body, "messages": turn2, "max_tokens": 4})
                if run >= 0:
                    timings = got["timings"] or {}
                    evaluated[name].append(
                        {
                            "first_turn_prompt": first["usage"]["prompt_tokens"],
                            "prompt_tokens": got["usage"]["prompt_tokens"] if got["usage"] else None,
                            "prompt_n": timings.get("prompt_n"),  # llama-server's: evaluated, and from its cache
                            "cache_n": timings.get("cache_n"),
                        }
                    )
                return got["ttft"]

            return over_http(turns)  # type: ignore[return-value]

        return side

    def client_side(run: int) -> float:
        conv = conversation(run, vocab, args.conversation) + [{"role": "user", "content": q1}]
        first = client.chat("chat", conv, options={**options, "num_predict": 16})
        turn2 = conv + [{"role": "assistant", "content": first.message.content}, {"role": "user", "content": q2}]
        t0 = time.perf_counter()
        ttft, last = None, None
        for chunk in client.chat("chat", turn2, options={**options, "num_predict": 4}, stream=True):
            if ttft is None and chunk.message.content:
                ttft = time.perf_counter() - t0
            last = chunk
        if run >= 0 and last is not None:
            evaluated[CLIENT].append(
                {"first_turn_prompt": first.prompt_eval_count, "prompt_tokens": last.prompt_eval_count}
            )
        return ttft  # type: ignore[return-value]

    s = interleave(args.runs, {SERVE: http_side(SERVE), LLAMA: http_side(LLAMA), CLIENT: client_side})
    return {"seconds": s, "evaluated": evaluated}


# -- report -----------------------------------------------------------------------------------
def med(xs: list[float]) -> float:
    return statistics.median(xs)


def figure(xs: list[float], digits: int = 1) -> str:
    """The median and the spread, ``median [min-max]``."""
    return f"{med(xs):.{digits}f} [{min(xs):.{digits}f}-{max(xs):.{digits}f}]"


def rows_of(res: dict, args) -> list[tuple]:
    """Rows: measure, serve, reference, ratio, target, met (None: no target)."""
    tps, sps = res["chats"]["tps"], res["embed"]["sps"]
    ms = {k: [x * 1e3 for x in v] for k, v in res["ttft"]["seconds"].items()}
    out = []

    def row(measure: str, a: list, b: list, ref: str, target: float | None, higher: bool = True) -> None:
        r = med(a) / med(b)
        met = None if target is None else (r >= target if higher else r <= target)
        tgt = "-" if target is None else (f">= {target}x" if higher else f"<= {target}x")
        out.append((measure, figure(a), f"{ref}: {figure(b)}", f"{r:.3f}x", tgt, met))

    chats = f"{N_STREAMS} streamed chats of {args.tokens} tokens, tok/s"
    row(chats, tps[SERVE], tps[LLAMA], f"llama-server -np {N_STREAMS}", TARGET_CHATS)
    row("  HTTP cost: same load, serve / AsyncClient", tps[SERVE], tps[ASYNC], "AsyncClient", TARGET_HTTP_COST)
    row("  the engine alone: AsyncClient / llama-server", tps[ASYNC], tps[LLAMA], "llama-server", None)
    row("  serve / Client in 4 threads", tps[SERVE], tps[CLIENT], "Client", None)
    row(f"/v1/embeddings, {args.sentences} sentences, sent/s", sps[SERVE], sps[LLAMA], "llama-server", TARGET_EMBED)
    row("  HTTP cost: serve / Client.embed", sps[SERVE], sps[CLIENT], "Client", None)
    row("  the engine alone: Client / llama-server", sps[CLIENT], sps[LLAMA], "llama-server", None)
    row(f"2nd-turn TTFT (~{args.conversation} tok), ms", ms[SERVE], ms[LLAMA], "llama-server", TARGET_TTFT, False)
    row("  HTTP cost: serve / Client", ms[SERVE], ms[CLIENT], "Client", None, False)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--server", type=Path, default=None, help="the llama-server executable (default: built from the vendored tree)"
    )
    ap.add_argument("--model", type=Path, default=None, help="chat GGUF (default: SmolLM2-135M Q4_1)")
    ap.add_argument("--minilm", type=Path, default=None, help="embedding GGUF (default: the test suite's MiniLM)")
    ap.add_argument("--threads", type=int, default=_core.default_n_threads(), help="threads of both servers")
    ap.add_argument("--runs", type=int, default=3, help="timed runs of each measurement (default 3)")
    ap.add_argument("--tokens", type=int, default=128, help="tokens generated per chat (default 128)")
    ap.add_argument("--ctx", type=int, default=8192, help="total context of the chat model, both sides (default 8192)")
    ap.add_argument("--sentences", type=int, default=1000, help="sentences per embedding request (default 1000)")
    ap.add_argument("--embed-parallel", type=int, default=32, help="llama-server -np for the embedding server")
    ap.add_argument("--conversation", type=int, default=1500, help="tokens of the conversation before turn 2")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)

    if args.server is None:
        from reference_tools import build_reference_tools

        args.server = build_reference_tools(names=("llama-server",))["llama-server"]
    model = args.model or fetch_model("smollm2", quiet=True)
    minilm = args.minilm or minilm_path()
    threads = ["-t", str(args.threads), "-tb", str(args.threads)]
    logs = HERE / ".cache"
    res: dict = {
        "model": model.name,
        "embedding_model": minilm.name,
        "threads": args.threads,
        "cpus": os.cpu_count(),
        "runs": args.runs,
        "load_before": os.getloadavg()[0],
    }
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as store:
        make_store(
            Path(store),
            {
                "chat": (model, {"num_thread": args.threads, "num_ctx": args.ctx, "repeat_penalty": 1.0}),
                "embed": (minilm, {"num_thread": args.threads}),
            },
        )
        aclient = AsyncClient(models_dir=store)
        with Client(models_dir=store) as client, ServeProcess(Path(store), logs / "serve-compare.log") as serve:
            chat_args = ["-m", str(model), *threads, "-c", str(args.ctx), "-np", str(N_STREAMS), "--no-webui"]
            with Server(args.server, chat_args, logs / "llama-server-compare-chat.log") as srv:
                urls = {SERVE: serve.url, LLAMA: f"http://127.0.0.1:{srv.port}"}
                pids = {SERVE: serve.pid, LLAMA: srv.proc.pid}
                res["chats"] = bench_chats(client, aclient, urls, pids, args)
                with _core.Model(model) as m:
                    res["ttft"] = bench_ttft(client, urls, m.vocab, args)
            n = args.embed_parallel
            embed_args = ["-m", str(minilm), *threads, "--embeddings", "-np", str(n), "-c", str(512 * n)]
            embed_args += ["-b", "512", "-ub", "512", "--no-webui"]
            with Server(args.server, embed_args, logs / "llama-server-compare-embed.log") as srv:
                urls = {SERVE: serve.url, LLAMA: f"http://127.0.0.1:{srv.port}"}
                res["embed"] = bench_embed(client, urls, args)
        asyncio.run(aclient.close())
    res["seconds"] = time.perf_counter() - t_start
    res["load_after"] = os.getloadavg()[0]

    rows = rows_of(res, args)
    print(
        f"llamanative serve vs llama-server (llama.cpp {_core.LLAMA_CPP_COMMIT[:8]}) over HTTP on 127.0.0.1; "
        f"{model.name} / {minilm.name}; {args.threads} threads each (of {os.cpu_count()} CPUs; the load generator "
        f"and the in-process Client share them); median [min-max] of {args.runs} runs, "
        f"{res['seconds']:.0f} s in all; load average {res['load_before']:.1f} before, {res['load_after']:.1f} after"
    )
    print_table(rows, reference="reference")
    for name, counts in res["chats"]["tokens"].items():
        print(f"tokens per chat, {name}: {counts}")
    print("CPU ms per generated token, 4 streamed chats (median of the runs; ggml's threads spin while they wait):")
    for name, runs in res["chats"]["cpu"].items():
        per_run = [sum(c) for c in res["chats"]["tokens"][name]]
        server = med([c[0] / n * 1e3 for c, n in zip(runs, per_run)])
        here = med([c[1] / n * 1e3 for c, n in zip(runs, per_run)])
        if name in (SERVE, LLAMA):
            print(f"  {name}: the server's process {server:.2f}, the load generator {here:.2f}")
        else:
            print(f"  {name}: this process (engine and caller) {here:.2f}")
    for name, ev in res["ttft"]["evaluated"].items():
        print(f"2nd turn, {name}: {ev}")
    if args.json:
        args.json.write_text(json.dumps({**res, "rows": rows}, indent=2))
    ok = all(r[5] is not False for r in rows)
    print("all targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
