"""Load test of ``llamanative serve`` on loopback: concurrent connections, a fixed mix of requests, the server's memory.

    python benchmarks/serve_load.py [--connections 16] [--requests 400] [--warmup 40]
        [--chat smollm2] [--embed minilm] [--num-thread 1] [--json FILE]

The script starts ``python -m llamanative serve`` on 127.0.0.1 (a free port,
a store of its own in a temporary directory holding the two models with
``num_thread`` and ``num_ctx`` as parameters; its log goes to
``benchmarks/.cache/serve-load.log``) and drives it with httpx's async
client: ``--connections`` coroutines, each with its own connection, take the
next of ``--requests`` requests (after ``--warmup`` of the same mix) until
none is left, so the run ends by itself. Each request is drawn from a fixed
mix (``KINDS``), the same for a given ``--seed``: streamed chats on Ollama's
API (NDJSON) and OpenAI's (server-sent events, with the usage chunk), a
non-streamed OpenAI chat, embeddings on both APIs (float and base64
vectors), streams abandoned after 0-3 chunks (the connection closed) or cut
before their answer began (a client-side timeout), and requests built to
fail (an unknown model: 404; an empty embedding input: 400).

An answer is complete when the whole of it arrived as its API promises: a
stream's last line is ``done`` (and no other is) or its events end with a
``finish_reason``, the usage and ``[DONE]``; no error line; the tokens
generated are at most the limit asked for, and exactly it when the answer
stopped for its length; an embedding answer has one vector per input, all of
the same dimension and of norm 1. A missing piece is an incomplete answer;
any other failure (a status that was not asked for, a timeout, a connection
reset) an unexpected error.

The server process's RSS, open file descriptors and threads are read from
``/proc/PID`` after the warm-up ("start") and after the run ("end"), each time
once its thread count has held still for 1.5 s (the engine's workers end when
idle): the models stay loaded at both points, so both are in the same state.
Targets (the server issue's): no unexpected error, no incomplete answer, RSS
at "end" within 20 MB of "start". The exit status is 1 when a target is
missed. File descriptors and threads are reported, with no target. The
server is stopped with SIGINT (its Ctrl-C), and its exit status reported.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
MB = 1e6  # decimal megabytes, as the target
TARGET_GROWTH_MB = 20.0
SETTLE_S = 10.0  # most seconds to wait for the server's threads to hold still
REQUEST_TIMEOUT_S = 300.0  # a request that takes longer is an unexpected error (a stall)

TOPICS = ["a colour", "a city", "an animal", "a number", "a fruit", "a planet", "a tool", "a sport"]
WORDS = "river lamp orange seven quiet engine garden silver cloud paper window music stone north".split()


# -- outcomes ---------------------------------------------------------------------------------
class Incomplete(Exception):
    """An answer that arrived with a piece missing (no done line, no [DONE], too many tokens ...)."""


class ExpectedFailure(Exception):
    """A request failed as it was built to fail (its status, or the client's own cut)."""


class UnexpectedStatus(Exception):
    """An HTTP status the request did not ask for."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}: {text[:300]}")
        self.status = status


def complete(cond: object, what: str) -> None:
    if not cond:
        raise Incomplete(what)


async def expect_status(r: httpx.Response, want: int) -> None:
    if r.status_code != want:
        raise UnexpectedStatus(r.status_code, (await r.aread()).decode(errors="replace"))


# -- the requests -----------------------------------------------------------------------------
class Mix:
    """The request kinds, each a coroutine method ``kind_<name>(rng) -> str`` returning a short outcome label."""

    def __init__(self, http: httpx.AsyncClient, chat: str, embed: str) -> None:
        self.http, self.chat, self.embed = http, chat, embed

    @staticmethod
    def messages(rng: random.Random) -> list[dict]:
        ask = f"Name {rng.choice(TOPICS)} ({rng.randrange(10**6)})."
        if rng.random() < 0.3:
            return [
                {"role": "system", "content": f"You answer in {rng.randint(1, 5)} words."},
                {"role": "user", "content": "Hello."},
                {"role": "assistant", "content": "Hello! How can I help?"},
                {"role": "user", "content": ask},
            ]
        return [{"role": "user", "content": ask}]

    @staticmethod
    def texts(rng: random.Random, n: int) -> list[str]:
        return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 24))) for _ in range(n)]

    @staticmethod
    def sampling(rng: random.Random) -> dict:
        return {"temperature": rng.choice([0.0, 0.7, 1.0]), "seed": rng.randrange(2**31)}

    # streamed chats
    async def kind_ollama_chat_stream(self, rng: random.Random) -> str:
        n = rng.randint(4, 24)
        body = {"model": self.chat, "messages": self.messages(rng), "options": {"num_predict": n, **self.sampling(rng)}}
        async with self.http.stream("POST", "/api/chat", json=body) as r:
            await expect_status(r, 200)
            lines = [json.loads(line) async for line in r.aiter_lines() if line.strip()]
        complete(lines, "no line")
        complete(not [x for x in lines if "error" in x], f"an error line: {[x for x in lines if 'error' in x]}")
        complete(lines[-1].get("done") and not any(x.get("done") for x in lines[:-1]), "done is not the last line")
        last = lines[-1]
        return check_count(last.get("done_reason"), last.get("eval_count"), n)

    async def kind_openai_chat_stream(self, rng: random.Random) -> str:
        n = rng.randint(4, 24)
        body = {
            "model": self.chat,
            "messages": self.messages(rng),
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": n,
            **self.sampling(rng),
        }
        async with self.http.stream("POST", "/v1/chat/completions", json=body) as r:
            await expect_status(r, 200)
            events, done = await read_events(r)
        complete(done, "no [DONE]")
        complete(not [e for e in events if "error" in e], "an error event")
        finish = [c["finish_reason"] for e in events for c in e.get("choices", []) if c.get("finish_reason")]
        complete(len(finish) == 1, f"finish_reason in {len(finish)} chunks")
        complete(events[-1].get("choices") == [] and events[-1].get("usage"), "no usage chunk last")
        return check_count(finish[0], events[-1]["usage"]["completion_tokens"], n)

    async def kind_openai_chat(self, rng: random.Random) -> str:
        n = rng.randint(4, 24)
        body = {"model": self.chat, "messages": self.messages(rng), "max_tokens": n, **self.sampling(rng)}
        r = await self.http.post("/v1/chat/completions", json=body)
        await expect_status(r, 200)
        data = r.json()
        choice = data["choices"][0]
        complete(choice["message"]["role"] == "assistant", "no assistant message")
        return check_count(choice["finish_reason"], data["usage"]["completion_tokens"], n)

    # embeddings
    async def kind_ollama_embed(self, rng: random.Random) -> str:
        texts = self.texts(rng, rng.randint(1, 8))
        r = await self.http.post("/api/embed", json={"model": self.embed, "input": texts})
        await expect_status(r, 200)
        check_vectors(r.json()["embeddings"], len(texts))
        return "ok"

    async def kind_openai_embed(self, rng: random.Random) -> str:
        texts = self.texts(rng, rng.randint(1, 8))
        fmt = rng.choice(["float", "base64"])
        body = {"model": self.embed, "input": texts if len(texts) > 1 else texts[0], "encoding_format": fmt}
        r = await self.http.post("/v1/embeddings", json=body)
        await expect_status(r, 200)
        data = r.json()["data"]
        complete([d["index"] for d in data] == list(range(len(data))), "vectors out of order")
        vectors = [decode_b64(d["embedding"]) if fmt == "base64" else d["embedding"] for d in data]
        check_vectors(vectors, len(texts))
        return fmt

    # abandoned
    async def kind_abandon(self, rng: random.Random) -> str:
        """A long stream read for 0-3 chunks, then closed (the connection goes); or cut before its answer."""
        body: dict[str, Any] = {"model": self.chat, "messages": self.messages(rng)}
        n = rng.randint(64, 200)
        if rng.random() < 0.5:
            path, body = "/api/chat", {**body, "options": {"num_predict": n, **self.sampling(rng)}}
        else:
            path, body = "/v1/chat/completions", {**body, "stream": True, "max_tokens": n, **self.sampling(rng)}
        if rng.random() < 0.2:  # cut before (or just after) the answer began: the client's own timeout
            try:
                await asyncio.wait_for(self._read_all(path, body), timeout=rng.uniform(0.01, 0.2))
            except TimeoutError as exc:
                raise ExpectedFailure("cut by the client") from exc
            return "finished before the cut"
        keep = rng.randint(0, 3)
        async with self.http.stream("POST", path, json=body) as r:
            await expect_status(r, 200)
            seen = 0
            async for line in r.aiter_lines():
                if seen >= keep:
                    break
                seen += bool(line.strip())
        return f"closed after {keep}"

    async def _read_all(self, path: str, body: dict) -> None:
        async with self.http.stream("POST", path, json=body) as r:
            await expect_status(r, 200)
            await r.aread()

    # built to fail
    async def kind_misuse(self, rng: random.Random) -> str:
        which = rng.randrange(3)
        if which == 0:
            want, path, body = 404, "/api/chat", {"model": f"no-such-model-{rng.randrange(1000)}", "messages": []}
        elif which == 1:
            want, path = 404, "/v1/chat/completions"
            body = {"model": f"no-such-model-{rng.randrange(1000)}", "messages": self.messages(rng), "stream": True}
        else:
            want, path, body = 400, "/v1/embeddings", {"model": self.embed, "input": ""}
        r = await self.http.post(path, json=body)
        if r.status_code == want:
            raise ExpectedFailure(f"HTTP {want}")
        raise UnexpectedStatus(r.status_code, f"(wanted {want}) {r.text}")


def check_count(reason: object, tokens: object, limit: int) -> str:
    """A finished answer's reason and token count against the limit asked for; the reason."""
    complete(reason in ("stop", "length"), f"finish/done reason {reason!r}")
    complete(isinstance(tokens, int) and 0 <= tokens <= limit, f"{tokens} tokens for a limit of {limit}")
    complete(reason != "length" or tokens == limit, f"stopped for its length after {tokens} of {limit} tokens")
    return str(reason)


def check_vectors(vectors: list, n: int) -> None:
    complete(len(vectors) == n, f"{len(vectors)} vectors for {n} inputs")
    complete(len({len(v) for v in vectors}) == 1 and len(vectors[0]) > 0, "vectors of different dimensions")
    for v in vectors:
        norm = math.sqrt(sum(x * x for x in v))
        complete(abs(norm - 1.0) < 1e-3, f"a vector of norm {norm}")


def decode_b64(s: str) -> list[float]:
    raw = base64.b64decode(s)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


async def read_events(r: httpx.Response) -> tuple[list[dict], bool]:
    """The JSON events of a server-sent event stream, and whether ``[DONE]`` ended it."""
    events, done = [], False
    async for line in r.aiter_lines():
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            done = True
            continue
        complete(not done, "an event after [DONE]")
        events.append(json.loads(payload))
    return events, done


# (kind, weight in percent)
KINDS: list[tuple[str, int]] = [
    ("ollama_chat_stream", 22),
    ("openai_chat_stream", 22),
    ("openai_chat", 6),
    ("ollama_embed", 12),
    ("openai_embed", 12),
    ("abandon", 20),
    ("misuse", 6),
]


# -- running ----------------------------------------------------------------------------------
@dataclass
class Tally:
    """What the requests of a run came to."""

    outcomes: Counter = field(default_factory=Counter)  # (kind, outcome)
    expected: Counter = field(default_factory=Counter)  # (kind, what)
    incomplete: Counter = field(default_factory=Counter)  # (kind, what was missing)
    unexpected: Counter = field(default_factory=Counter)  # (kind, error type)
    examples: list[str] = field(default_factory=list)  # the first tracebacks of failures
    seconds: dict[str, list[float]] = field(default_factory=dict)  # per kind
    wall_s: float = 0.0
    done: int = 0

    @property
    def n_incomplete(self) -> int:
        return sum(self.incomplete.values())

    @property
    def n_unexpected(self) -> int:
        return sum(self.unexpected.values())


async def run_load(
    base_url: str,
    chat: str,
    embed: str,
    connections: int,
    requests: int,
    seed: int = 0,
    first: int = 0,
    on_progress: Callable[[int, float], None] | None = None,
) -> Tally:
    """Requests ``first .. first + requests - 1`` of the mix against the server at ``base_url``, on
    ``connections`` connections at once (one coroutine each); returns the tally. Request ``i`` is the same
    request in every run with the same ``seed``."""
    tally = Tally()
    names, weights = zip(*KINDS)
    todo = iter(range(first, first + requests))  # shared by the coroutines of one event loop
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=REQUEST_TIMEOUT_S) as http:
        mix = Mix(http, chat, embed)

        async def one(i: int) -> None:
            rng = random.Random(seed * 1_000_003 + i)
            kind = rng.choices(names, weights)[0]
            started = time.perf_counter()
            try:
                tally.outcomes[kind, await getattr(mix, "kind_" + kind)(rng)] += 1
            except ExpectedFailure as exc:
                tally.expected[kind, str(exc)] += 1
            except Incomplete as exc:
                tally.incomplete[kind, str(exc)] += 1
                if len(tally.examples) < 10:
                    tally.examples.append(f"request {i} ({kind}): incomplete: {exc}")
            except Exception as exc:  # noqa: BLE001 - every other failure is counted as unexpected
                status = f" {exc.status}" if isinstance(exc, UnexpectedStatus) else ""
                tally.unexpected[kind, type(exc).__name__ + status] += 1
                if len(tally.examples) < 10:
                    tally.examples.append(f"request {i} ({kind}):\n{traceback.format_exc()}")
            tally.seconds.setdefault(kind, []).append(time.perf_counter() - started)
            tally.done += 1
            if on_progress is not None:
                on_progress(tally.done, time.perf_counter() - t0)

        async def connection() -> None:
            for i in todo:
                await one(i)

        await asyncio.gather(*(connection() for _ in range(connections)))
    tally.wall_s = time.perf_counter() - t0
    return tally


# -- the server process -----------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def make_store(root: Path, models: dict[str, tuple[Path, dict]]) -> None:
    """Store each ``name: (gguf, parameters)`` of ``models`` in a store at ``root``."""
    from llamanative import Client

    with Client(models_dir=root) as c:
        for name, (path, params) in models.items():
            c.create(name, from_=str(path), parameters=params)


class ServeProcess:
    """``python -m llamanative serve`` on 127.0.0.1 over the store ``models_dir``; a context manager that stops it
    with SIGINT (its Ctrl-C) and keeps its exit status."""

    def __init__(self, models_dir: Path, log: Path, extra: list[str] | None = None, timeout_s: float = 120) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log, "w")
        cmd = [sys.executable, "-m", "llamanative", "serve", "--host", HOST, "--port", str(self.port)]
        cmd += ["--models-dir", str(models_dir), "--log-level", "warning", *(extra or [])]
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        self.returncode: int | None = None
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llamanative serve exited ({self.proc.returncode}); see {log}")
            try:
                if httpx.get(self.url + "/", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"llamanative serve not ready after {timeout_s} s; see {log}")
            time.sleep(0.2)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        self.returncode = self.proc.returncode
        return self.returncode

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def proc_snapshot(pid: int) -> dict:
    """RSS (MB, with its anonymous and file-backed parts), open file descriptors and threads of process ``pid``."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "Threads"):
                fields[key] = int(value.split()[0])
    return {
        "rss_mb": fields["VmRSS"] * 1024 / MB,
        "rss_anon_mb": fields.get("RssAnon", 0) * 1024 / MB,
        "rss_file_mb": fields.get("RssFile", 0) * 1024 / MB,
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": fields["Threads"],
    }


def settle(pid: int) -> float:
    """Wait until process ``pid``'s thread count has held still for 1.5 s (at most ``SETTLE_S``); seconds waited."""
    t0 = time.perf_counter()
    stable_since, last = t0, None
    while time.perf_counter() - t0 < SETTLE_S:
        now = proc_snapshot(pid)["threads"]
        if now != last:
            stable_since, last = time.perf_counter(), now
        elif time.perf_counter() - stable_since >= 1.5:
            break
        time.sleep(0.05)
    return time.perf_counter() - t0


# -- report -----------------------------------------------------------------------------------
def verdicts(start: dict, end: dict, warm: Tally, run: Tally) -> list[tuple[str, str, str, str, bool | None]]:
    """(measure, warm-up or start, run or end, target, met) rows; met None: no target."""
    growth = end["rss_mb"] - start["rss_mb"]
    return [
        ("unexpected errors", str(warm.n_unexpected), str(run.n_unexpected), "0",
         warm.n_unexpected + run.n_unexpected == 0),
        ("incomplete answers", str(warm.n_incomplete), str(run.n_incomplete), "0",
         warm.n_incomplete + run.n_incomplete == 0),
        ("server RSS, MB", f"{start['rss_mb']:.1f}", f"{end['rss_mb']:.1f}",
         f"growth < {TARGET_GROWTH_MB:.0f} (was {growth:+.1f})", growth < TARGET_GROWTH_MB),
        ("server open fds", str(start["fds"]), str(end["fds"]), "-", None),
        ("server threads", str(start["threads"]), str(end["threads"]), "-", None),
    ]  # fmt: skip


def print_rows(rows: list[tuple]) -> None:
    head = ("measure", "warm-up / start", "run / end", "target")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    for r in [head, *rows]:
        verdict = "" if r is head else {True: "met", False: "MISSED", None: ""}[r[4]]
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + verdict)


def print_kinds(run: Tally) -> None:
    for kind, _ in KINDS:
        secs = sorted(run.seconds.get(kind, [0.0]))
        count = len(run.seconds.get(kind, []))
        parts = [", ".join(f"{o}: {c}" for (k, o), c in sorted(run.outcomes.items()) if k == kind)]
        for label, counter in (("expected", run.expected), ("INCOMPLETE", run.incomplete)):
            got = ", ".join(f"{o}: {c}" for (k, o), c in sorted(counter.items()) if k == kind)
            if got:
                parts.append(f"{label} {got}")
        bad = ", ".join(f"{o}: {c}" for (k, o), c in sorted(run.unexpected.items()) if k == kind)
        if bad:
            parts.append(f"UNEXPECTED {bad}")
        print(
            f"  {kind:>18} {count:5d}  {secs[len(secs) // 2] * 1e3:7.0f} ms median, {secs[-1] * 1e3:7.0f} max  "
            + "; ".join(p for p in parts if p)
        )


def model_path(name: str) -> Path:
    from llamanative.fetch import KNOWN_MODELS, fetch_model

    return fetch_model(name, quiet=True) if name in KNOWN_MODELS else Path(name).expanduser()


def embed_model_path(name: str) -> Path:
    """``minilm``: the test suite's all-MiniLM-L6-v2 (converted and cached as the tests do); else a path."""
    if name != "minilm":
        return model_path(name)
    from compare_llama_cpp_python import minilm_path

    return minilm_path()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=16, help="concurrent connections (default 16)")
    ap.add_argument("--requests", type=int, default=400, help="requests after the warm-up (default 400)")
    ap.add_argument("--warmup", type=int, default=40, help="requests before the start figures (default 40)")
    ap.add_argument("--chat", default="smollm2", help="the chat model: a known name or a GGUF path")
    ap.add_argument("--embed", default="minilm", help="the embedding model: minilm or a GGUF path")
    ap.add_argument("--num-thread", type=int, default=1, help="num_thread of both models (default 1)")
    ap.add_argument("--num-ctx", type=int, default=4096, help="num_ctx of the chat model (default 4096)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the request mix")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    if not os.path.exists("/proc/self/status"):
        raise SystemExit("the load test reads /proc (Linux)")

    chat, embed = model_path(args.chat), embed_model_path(args.embed)
    print(
        f"serve load: {args.warmup} + {args.requests} requests on {args.connections} connections; "
        f"{chat.name} / {embed.name}, num_thread {args.num_thread}, num_ctx {args.num_ctx}; "
        f"{os.cpu_count()} CPUs",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as store:
        make_store(
            Path(store),
            {
                "chat": (chat, {"num_thread": args.num_thread, "num_ctx": args.num_ctx}),
                "embed": (embed, {"num_thread": args.num_thread}),
            },
        )
        with ServeProcess(Path(store), HERE / ".cache" / "serve-load.log") as server:
            warm = asyncio.run(run_load(server.url, "chat", "embed", args.connections, args.warmup, args.seed))
            settle(server.pid)
            start = proc_snapshot(server.pid)
            every = max(1, args.requests // 10)

            def progress(done: int, elapsed: float) -> None:
                if done % every == 0 or done == args.requests:
                    snap = proc_snapshot(server.pid)
                    print(
                        f"  {done}/{args.requests} in {elapsed:.0f} s, server RSS {snap['rss_mb']:.1f} MB, "
                        f"{snap['threads']} threads",
                        flush=True,
                    )

            run = asyncio.run(
                run_load(server.url, "chat", "embed", args.connections, args.requests, args.seed, args.warmup, progress)
            )
            busy = proc_snapshot(server.pid)
            settle(server.pid)
            end = proc_snapshot(server.pid)
        stopped = server.returncode

    rows = verdicts(start, end, warm, run)
    print_rows(rows)
    for name, p in (("start", start), ("busy", busy), ("end", end)):
        print(
            f"{name:>6}: RSS {p['rss_mb']:.1f} MB (anon {p['rss_anon_mb']:.1f}, file {p['rss_file_mb']:.1f}), "
            f"{p['fds']} fds, {p['threads']} threads"
        )
    print(
        f"{run.done} requests in {run.wall_s:.1f} s ({run.done / run.wall_s:.1f} requests/s) on "
        f"{args.connections} connections; the server stopped by SIGINT with exit status {stopped}"
    )
    print_kinds(run)
    for ex in warm.examples + run.examples:
        print(ex)
    ok = all(r[4] is not False for r in rows)
    if args.json:
        figures = {
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "models": [chat.name, embed.name],
            "cpus": os.cpu_count(),
            "points": {"start": start, "busy": busy, "end": end},
            "seconds": run.wall_s,
            "server_exit_status": stopped,
            "targets": [dict(zip(("measure", "start", "end", "target", "met"), r)) for r in rows],
            "outcomes": {f"{k}/{o}": c for (k, o), c in run.outcomes.items()},
            "expected": {f"{k}/{o}": c for (k, o), c in run.expected.items()},
            "incomplete": {f"{k}/{o}": c for (k, o), c in (run.incomplete + warm.incomplete).items()},
            "unexpected": {f"{k}/{o}": c for (k, o), c in (run.unexpected + warm.unexpected).items()},
            "examples": warm.examples + run.examples,
            "latency_s": {k: {"median": sorted(v)[len(v) // 2], "max": max(v)} for k, v in run.seconds.items()},
        }
        args.json.write_text(json.dumps(figures, indent=2))
    print("all targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    raise SystemExit(main())
