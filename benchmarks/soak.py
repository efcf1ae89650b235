"""Soak: threads of mixed requests over several models; memory, file descriptors and threads before and after.

    nice -n 19 python benchmarks/soak.py [--requests 10000] [--threads 8] [--warmup 200]
        [--chat smollm2] [--embed minilm] [--malloc-trim] [--json FILE]

``--threads`` caller threads share one Client and issue ``--requests``
requests in all, each drawn from a fixed mix (``KINDS``): chat, generate,
streamed chat read to the end, embed (on the embedding model and, now and
then, on a chat model), a stream abandoned after a few chunks (closed, or
dropped for the garbage collector), a cancel (a streaming callback that
raises, or a ``break`` out of the stream), requests with ``keep_alive=0``
(the model unloads when its last request ends and the next one reloads it),
``format="json"``, deliberate misuse (an unknown model: 404; generate on the
embedding model: 400) and tokenize/detokenize. Options vary per request
(``num_predict`` 1-12, temperature, seed, top_k/top_p, stop strings,
logprobs); the load-time ones (``num_ctx``, ``num_thread``) stay fixed, so
that only ``keep_alive=0`` reloads.

Figures are taken at four points: before the Client, after ``--warmup``
requests of the same mix ("start"), after the run ("end"), and after
``Client.close()`` ("closed"). Before "start" and "end" every model is
unloaded and the engine's threads are waited for, so that the two points are
in the same state: a model's mapped weights count in RSS only while it is
loaded, and only the pages its decodes touched. At each point: RSS
(``VmRSS``, with its anonymous and file-backed parts), open file descriptors
(``/proc/self/fd``), threads (``threading.active_count()`` and the kernel's
count, ``Threads`` in ``/proc/self/status``). With glibc, also malloc's own
count (``mallinfo2``): the bytes it has handed out and not had back ("in
use") and the bytes free but kept in its arenas; growth of the first is a
leak, growth of the second is the allocator keeping freed memory (glibc
makes an arena per thread, up to 8 per CPU, and keeps what is freed in each:
``MALLOC_ARENA_MAX``, set by the caller and reported with the figures, bounds
them). ``--malloc-trim`` also calls ``malloc_trim(0)`` at each point and
reports RSS after it.

Targets: RSS growth from "start" to "end" < 20 MB; file descriptors and both
thread counts at "end" equal to "start" (and at "closed" to before the
Client); no unexpected error (an error is expected only where the request
was built to fail: the callback's own exception, the misuse statuses). The
exit status is 1 when a target is missed, 3 when the run stalls (no request
finished for ``--stall-timeout`` seconds: every thread's stack is printed).
The stacks are also printed once for each request that runs longer than
``--slow`` seconds, and the five slowest requests are reported.
"""

from __future__ import annotations

import argparse
import ctypes
import faulthandler
import gc
import json
import os
import random
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from pathlib import Path

from llamanative import ChatRequest, Client, StatusError
from llamanative.fetch import KNOWN_MODELS, fetch_model

TARGET_GROWTH_MB = 20.0
MB = 1e6  # decimal megabytes, as the target
SETTLE_S = 10.0  # most seconds to wait for the engine's threads to end at a measuring point

WORDS = "river lamp orange seven quiet engine garden silver cloud paper window music stone north".split()
TOPICS = ["a colour", "a city", "an animal", "a number", "a fruit", "a planet", "a tool", "a sport"]


class Cancelled(Exception):
    """Raised by a streaming callback to stop its request: the expected outcome of a cancel."""


# -- reading the process ----------------------------------------------------------------------
def _status_fields() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "Threads"):
                out[key] = int(value.split()[0])
    return out


def _fd_targets() -> list[str]:
    """What each open file descriptor points at (the listing's own descriptor excluded)."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:  # the descriptor os.listdir itself used, closed by now
            continue
    return sorted(out)


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return None


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()
    ]


def _malloc_figures() -> dict[str, float]:
    """glibc's own count (``mallinfo2``, glibc >= 2.33), MB: bytes in use, free but kept in its arenas, mmapped."""
    libc = _libc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        return {}
    libc.mallinfo2.restype = _Mallinfo2
    m = libc.mallinfo2()
    return {"malloc_used_mb": m.uordblks / MB, "malloc_free_mb": m.fordblks / MB, "malloc_mmap_mb": m.hblkhd / MB}


def _malloc_trim() -> None:
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def snapshot(trim: bool) -> dict:
    """RSS (MB), file descriptors and threads of this process now; with ``trim``, RSS after malloc_trim too."""
    if not os.path.exists("/proc/self/status"):
        raise SystemExit("the soak reads /proc/self (Linux)")
    gc.collect()
    st = _status_fields()
    fds = _fd_targets()
    snap = {
        "rss_mb": st["VmRSS"] * 1024 / MB,
        "rss_anon_mb": st.get("RssAnon", 0) * 1024 / MB,
        "rss_file_mb": st.get("RssFile", 0) * 1024 / MB,
        "fds": len(fds),
        "fd_targets": fds,
        "os_threads": st["Threads"],
        "py_threads": threading.active_count(),
        "thread_names": sorted(t.name for t in threading.enumerate()),
        "py_blocks": sys.getallocatedblocks(),  # Python's own allocator (not counted by malloc)
        "gc_objects": len(gc.get_objects()),
        **_malloc_figures(),
    }
    if trim:
        _malloc_trim()
        snap["rss_trimmed_mb"] = _status_fields()["VmRSS"] * 1024 / MB
    return snap


def settle(client: Client | None, models: list[str]) -> float:
    """Unload every model (when a client is given) and wait until the thread count holds still; seconds waited."""
    t0 = time.perf_counter()
    if client is not None:
        for m in models:
            client.unload(m)
    stable_since, last = time.perf_counter(), None
    while time.perf_counter() - t0 < SETTLE_S:
        now = (_status_fields()["Threads"], threading.active_count())
        if now != last:
            stable_since, last = time.perf_counter(), now
        elif time.perf_counter() - stable_since >= 1.5:  # the keep-alive reaper wakes at least once a second
            break
        time.sleep(0.05)
    return time.perf_counter() - t0


# -- the requests -----------------------------------------------------------------------------
class Mix:
    """The request kinds, each a method ``kind_<name>(rng) -> str`` returning a short outcome label.

    A method raises for an outcome that is not the one it built the request for.
    """

    def __init__(self, client: Client, chat: list[str], embed: str, opts: dict) -> None:
        self.client, self.chat_models, self.embed_model, self.base = client, chat, embed, opts

    # helpers
    def options(self, rng: random.Random, num_predict: int | None = None) -> dict:
        o = dict(self.base)
        o["num_predict"] = num_predict if num_predict is not None else rng.randint(1, 12)
        o["temperature"] = rng.choice([0.0, 0.3, 0.8, 1.2])
        o["seed"] = rng.randrange(2**31)
        if rng.random() < 0.3:
            o["top_k"] = rng.choice([1, 20, 40])
        if rng.random() < 0.3:
            o["top_p"] = rng.choice([0.5, 0.9])
        if rng.random() < 0.15:
            o["stop"] = ["\n"]
        if rng.random() < 0.1:
            o["repeat_penalty"] = 1.1
        return o

    def messages(self, rng: random.Random) -> list[dict]:
        ask = f"Name {rng.choice(TOPICS)} ({rng.randrange(10**6)})."
        if rng.random() < 0.3:  # a longer conversation now and then
            return [
                {"role": "system", "content": f"You answer in {rng.randint(1, 5)} words."},
                {"role": "user", "content": "Hello."},
                {"role": "assistant", "content": "Hello! How can I help?"},
                {"role": "user", "content": ask},
            ]
        return [{"role": "user", "content": ask}]

    def text(self, rng: random.Random) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 24)))

    @staticmethod
    def check(cond: bool, what: str) -> None:
        if not cond:
            raise AssertionError(what)

    # kinds
    def kind_chat(self, rng: random.Random) -> str:
        o = self.options(rng)
        logprobs = rng.random() < 0.1
        r = self.client.chat(
            rng.choice(self.chat_models), self.messages(rng), options=o, logprobs=logprobs, top_logprobs=2
        )
        self.check(r.done and r.message.role == "assistant", "chat: not done")
        self.check(r.eval_count <= o["num_predict"], f"chat: {r.eval_count} tokens > num_predict {o['num_predict']}")
        return r.done_reason or ""

    def kind_generate(self, rng: random.Random) -> str:
        raw = rng.random() < 0.3
        r = self.client.generate(rng.choice(self.chat_models), self.text(rng), raw=raw, options=self.options(rng))
        self.check(r.done and bool(r.context), "generate: not done or no context")
        return r.done_reason or ""

    def kind_chat_stream(self, rng: random.Random) -> str:
        chunks = list(
            self.client.chat(rng.choice(self.chat_models), self.messages(rng), stream=True, options=self.options(rng))
        )
        self.check(chunks[-1].done and not any(c.done for c in chunks[:-1]), "stream: done is not the last chunk")
        return chunks[-1].done_reason or ""

    def kind_embed(self, rng: random.Random) -> str:
        texts = [self.text(rng) for _ in range(rng.randint(1, 4))]
        dims = rng.choice([None, None, None, 64])
        r = self.client.embed(self.embed_model, texts, dimensions=dims)
        self.check(len(r.embeddings) == len(texts), "embed: wrong number of vectors")
        self.check(all(len(v) == (dims or len(r.embeddings[0])) for v in r.embeddings), "embed: wrong dimensions")
        return "ok"

    def kind_embed_chat_model(self, rng: random.Random) -> str:
        r = self.client.embed(rng.choice(self.chat_models), self.text(rng), options=self.base)
        self.check(len(r.embeddings) == 1, "embed on a chat model: no vector")
        return "ok"

    def kind_abandon(self, rng: random.Random) -> str:
        """A long stream read for a few chunks, then closed or dropped (the garbage collector closes it)."""
        model, o = rng.choice(self.chat_models), self.options(rng, num_predict=rng.randint(32, 64))
        if rng.random() < 0.5:
            it = self.client.chat(model, self.messages(rng), stream=True, options=o)
        else:
            it = self.client.generate(model, self.text(rng), stream=True, options=o)
        for _ in range(rng.randint(0, 3)):
            if next(it, None) is None:
                break
        if rng.random() < 0.5:
            it.close()
            return "closed"
        del it
        return "dropped"

    def kind_cancel_callback(self, rng: random.Random) -> str:
        """The callback style, ``chat(ChatRequest, fn)``: ``fn`` raises after a few chunks."""
        after = rng.randint(1, 3)
        seen = []

        def fn(chunk) -> None:
            seen.append(chunk)
            if len(seen) >= after:
                raise Cancelled

        req = ChatRequest(
            model=rng.choice(self.chat_models),
            messages=self.messages(rng),
            stream=True,
            options=self.options(rng, num_predict=48),
        )
        r = self.client.chat(req, fn)  # raises Cancelled unless it ended within `after` chunks
        self.check(r is not None and r.done, "cancel: ended without a done chunk")
        return "finished before the cancel"

    def kind_cancel_break(self, rng: random.Random) -> str:
        after = rng.randint(1, 3)
        o = self.options(rng, num_predict=48)
        for n, _chunk in enumerate(
            self.client.generate(rng.choice(self.chat_models), self.text(rng), stream=True, options=o)
        ):
            if n + 1 >= after:
                break
        return "broke out"

    def kind_keep_alive_0(self, rng: random.Random) -> str:
        """A request whose model unloads when its last request ends; the next request reloads it."""
        which = rng.random()
        if which < 0.4:
            r = self.client.chat(
                rng.choice(self.chat_models), self.messages(rng), options=self.options(rng), keep_alive=0
            )
            self.check(r.done, "keep_alive=0 chat: not done")
            return "chat"
        if which < 0.7:
            r = self.client.embed(self.embed_model, self.text(rng), keep_alive=0)
            self.check(len(r.embeddings) == 1, "keep_alive=0 embed: no vector")
            return "embed"
        if which < 0.85:
            self.client.generate(rng.choice(self.chat_models), self.text(rng), options=self.options(rng), keep_alive=0)
            return "generate"
        # Ollama's unload idiom, an empty generate with keep_alive=0, with the same load-time options: without
        # them it asks for other settings, and such a request waits until the model is idle (a reload).
        r = self.client.generate(rng.choice(self.chat_models), options=self.base, keep_alive=0)
        self.check(r.done_reason == "unload", f"unload idiom: done_reason {r.done_reason!r}")
        return "unload idiom"

    def kind_json(self, rng: random.Random) -> str:
        o = self.options(rng, num_predict=rng.randint(4, 16))
        o.pop("stop", None)  # a grammar allows leading whitespace: a "\n" stop would end the answer empty
        r = self.client.chat(rng.choice(self.chat_models), self.messages(rng), format="json", options=o)
        self.check(r.done, "json: not done")
        if r.done_reason == "stop":  # a complete answer must parse (a cut one cannot)
            json.loads(r.message.content)
        return r.done_reason or ""

    def kind_misuse(self, rng: random.Random) -> str:
        """Requests built to fail with a given status; an error is expected, any other outcome is not."""
        if rng.random() < 0.5:
            want, call = 404, lambda: self.client.chat(f"no-such-model-{rng.randrange(1000)}", self.messages(rng))
        else:
            # No options: the embedding model is loaded with the default settings (the embeds give none).
            want, call = 400, lambda: self.client.generate(self.embed_model, self.text(rng))
        try:
            call()
        except StatusError as exc:
            if exc.status_code != want:
                raise
            raise ExpectedStatus(want) from exc
        raise AssertionError(f"misuse: no error (wanted {want})")

    def kind_tokenize(self, rng: random.Random) -> str:
        """On the embedding model: tokenize takes no options, so on a chat model (loaded with the soak's
        ``num_ctx``) it would ask for the default load-time settings and reload it."""
        text = self.text(rng)
        toks = self.client.tokenize(self.embed_model, text, add_special=False)
        back = self.client.detokenize(self.embed_model, toks.tolist())
        self.check(back.split() == text.split(), f"tokenize: {text!r} came back as {back!r}")
        return "ok"


class ExpectedStatus(Exception):
    """A misuse request failed with the status it was built to get."""


# (kind, weight in percent)
KINDS: list[tuple[str, int]] = [
    ("chat", 20),
    ("generate", 12),
    ("chat_stream", 8),
    ("embed", 17),
    ("embed_chat_model", 2),
    ("abandon", 12),
    ("cancel_callback", 7),
    ("cancel_break", 5),
    ("keep_alive_0", 5),
    ("json", 5),
    ("misuse", 4),
    ("tokenize", 3),
]


class Run:
    """Requests ``first .. first + n - 1`` of the mix on ``threads`` threads; outcomes and errors counted."""

    def __init__(self, mix: Mix, seed: int, first: int, n: int, threads: int, args, on_progress=None) -> None:
        self.mix, self.seed, self.next, self.end = mix, seed, first, first + n
        self.n, self.threads, self.on_progress = n, threads, on_progress
        self.stall_s, self.slow_s = args.stall_timeout, args.slow
        self.in_flight: dict[int, tuple[str, float]] = {}  # request -> (kind, start)
        self.reported: set[int] = set()  # slow requests whose stacks were printed
        self.slowest: list[tuple[float, int, str]] = []  # (seconds, request, kind), the 5 slowest
        self.lock = threading.Lock()
        self.done = 0
        self.outcomes: Counter = Counter()  # (kind, outcome)
        self.expected: Counter = Counter()  # (kind, error type)
        self.unexpected: Counter = Counter()  # (kind, error type)
        self.examples: list[str] = []  # the first tracebacks of unexpected errors
        self.seconds: dict[str, list[float]] = {}  # per kind, every request's
        names, weights = zip(*KINDS)
        self.names, self.weights = names, weights

    def _take(self) -> int | None:
        with self.lock:
            if self.next >= self.end:
                return None
            i, self.next = self.next, self.next + 1
            return i

    def _one(self, i: int) -> None:
        rng = random.Random(self.seed * 1_000_003 + i)  # request i is the same request in every run
        kind = rng.choices(self.names, self.weights)[0]
        t0 = time.perf_counter()
        with self.lock:
            self.in_flight[i] = (kind, t0)
        try:
            outcome, err = getattr(self.mix, "kind_" + kind)(rng), None
        except (Cancelled, ExpectedStatus) as exc:
            outcome, err = None, (True, type(exc).__name__ + (f" {exc}" if isinstance(exc, ExpectedStatus) else ""))
        except Exception as exc:  # noqa: BLE001 - every other error is counted as unexpected
            status = f" {exc.status_code}" if isinstance(exc, StatusError) else ""
            outcome, err = None, (False, type(exc).__name__ + status)
            with self.lock:
                if len(self.examples) < 10:
                    self.examples.append(f"request {i} ({kind}):\n{traceback.format_exc()}")
        with self.lock:
            took = time.perf_counter() - t0
            del self.in_flight[i]
            self.seconds.setdefault(kind, []).append(took)
            self.slowest = sorted([*self.slowest, (took, i, kind)], reverse=True)[:5]
            if err is None:
                self.outcomes[kind, outcome] += 1
            else:
                (self.expected if err[0] else self.unexpected)[kind, err[1]] += 1
            self.done += 1

    def _worker(self) -> None:
        while (i := self._take()) is not None:
            self._one(i)

    def run(self) -> float:
        """Run to the end; seconds taken. Exits the process (status 3) when no request finishes for ``stall_s``."""
        workers = [threading.Thread(target=self._worker, name=f"soak-{k}") for k in range(self.threads)]
        t0 = time.perf_counter()
        for w in workers:
            w.start()
        last_done, last_change = -1, time.perf_counter()
        while any(w.is_alive() for w in workers):
            time.sleep(0.5)
            if self.done != last_done:
                last_done, last_change = self.done, time.perf_counter()
                if self.on_progress:
                    self.on_progress(self.done, time.perf_counter() - t0)
            self._report_slow()
            if time.perf_counter() - last_change > self.stall_s:
                print(f"STALLED: no request finished for {self.stall_s:.0f} s; every thread's stack:", flush=True)
                faulthandler.dump_traceback(all_threads=True)
                os._exit(3)
        return time.perf_counter() - t0

    def _report_slow(self) -> None:
        """Print every thread's stack once for each request running longer than ``slow_s``."""
        now = time.perf_counter()
        with self.lock:
            slow = [(i, k, now - t) for i, (k, t) in self.in_flight.items() if now - t > self.slow_s]
            slow = [s for s in slow if s[0] not in self.reported]
            self.reported.update(i for i, _, _ in slow)
        for i, kind, secs in slow:
            print(f"SLOW: request {i} ({kind}) has run for {secs:.0f} s; every thread's stack:", flush=True)
            faulthandler.dump_traceback(all_threads=True)


# -- report -----------------------------------------------------------------------------------
def verdicts(points: dict, run: Run, warm: Run) -> list[tuple[str, str, str, str, bool]]:
    """(measure, start, end, target, met) rows."""
    pre, start, end, closed = points["before_client"], points["start"], points["end"], points["closed"]

    def same(measure: str, key: str) -> tuple[str, str, str, str, bool]:
        return (measure, str(start[key]), str(end[key]), "equal", end[key] == start[key])

    growth = end["rss_mb"] - start["rss_mb"]
    bad_warm, bad_run = sum(warm.unexpected.values()), sum(run.unexpected.values())
    return [
        ("RSS, MB", f"{start['rss_mb']:.1f}", f"{end['rss_mb']:.1f}", f"growth < {TARGET_GROWTH_MB:.0f}",
         growth < TARGET_GROWTH_MB),
        same("open file descriptors", "fds"),
        same("threads (OS)", "os_threads"),
        same("threads (Python)", "py_threads"),
        ("fds / OS threads, before the Client -> closed", f"{pre['fds']} / {pre['os_threads']}",
         f"{closed['fds']} / {closed['os_threads']}", "equal",
         closed["fds"] == pre["fds"] and closed["os_threads"] == pre["os_threads"]),
        ("unexpected errors (warm-up, run)", str(bad_warm), str(bad_run), "0", bad_warm + bad_run == 0),
    ]  # fmt: skip


def report(points: dict, run: Run, warm: Run, seconds: float, args) -> bool:
    rows = verdicts(points, run, warm)
    head = ("measure", "start", "end", "target")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    for r in [head, *rows]:
        verdict = "" if r is head else ("met" if r[4] else "MISSED")
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + verdict)
    for name in ("before_client", "start", "end", "closed"):
        p = points[name]
        trimmed = f", {p['rss_trimmed_mb']:.1f} after malloc_trim" if "rss_trimmed_mb" in p else ""
        print(
            f"{name:>13}: RSS {p['rss_mb']:.1f} MB (anon {p['rss_anon_mb']:.1f}, "
            f"file {p['rss_file_mb']:.1f}{trimmed}), "
            f"{p['fds']} fds, {p['os_threads']} OS / {p['py_threads']} Python threads"
            + (
                f"; malloc: {p['malloc_used_mb']:.1f} MB in use, {p['malloc_free_mb']:.1f} free in its arenas"
                if "malloc_used_mb" in p
                else ""
            )
            + f"; Python: {p['py_blocks']} blocks, {p['gc_objects']} objects"
        )
    for a, b in (("start", "end"), ("before_client", "closed")):
        extra = Counter(points[b]["fd_targets"]) - Counter(points[a]["fd_targets"])
        gone = Counter(points[a]["fd_targets"]) - Counter(points[b]["fd_targets"])
        if extra or gone:
            print(f"fds {a} -> {b}: opened {sorted(extra.elements())}, closed {sorted(gone.elements())}")
        names = Counter(points[b]["thread_names"]) - Counter(points[a]["thread_names"])
        if names:
            print(f"Python threads {a} -> {b}: new {sorted(names.elements())}")
    print(f"RSS during the run (requests done: MB): {', '.join(f'{n}: {mb:.1f}' for n, mb in points['trend'])}")
    print(f"{run.n} requests in {seconds:.0f} s ({run.n / seconds:.1f} requests/s) on {args.threads} threads")
    print("slowest requests: " + ", ".join(f"{secs:.1f} s (request {i}, {kind})" for secs, i, kind in run.slowest))
    by_kind = Counter()
    for (kind, _), c in [*run.outcomes.items(), *run.expected.items(), *run.unexpected.items()]:
        by_kind[kind] += c
    for kind, _ in KINDS:
        outs = ", ".join(f"{o}: {c}" for (k, o), c in sorted(run.outcomes.items()) if k == kind)
        exp = ", ".join(f"{e}: {c}" for (k, e), c in sorted(run.expected.items()) if k == kind)
        bad = ", ".join(f"{e}: {c}" for (k, e), c in sorted(run.unexpected.items()) if k == kind)
        secs = sorted(run.seconds.get(kind, [0.0]))
        median, worst = secs[len(secs) // 2] * 1e3, secs[-1] * 1e3
        print(
            f"  {kind:>16} {by_kind[kind]:6d}  {median:6.0f} ms median, {worst:6.0f} max  {outs}"
            + (f"; expected errors {exp}" if exp else "")
            + (f"; UNEXPECTED {bad}" if bad else "")
        )
    for ex in warm.examples + run.examples:
        print(ex)
    return all(r[4] for r in rows)


def model_path(name: str) -> str:
    return str(fetch_model(name, quiet=True)) if name in KNOWN_MODELS else str(Path(name).expanduser())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=10_000, help="requests after the warm-up (default 10000)")
    ap.add_argument("--warmup", type=int, default=200, help="requests before the start figures (default 200)")
    ap.add_argument("--threads", type=int, default=8, help="caller threads (default 8)")
    ap.add_argument("--chat", default="smollm2", help="chat models, comma-separated: known names or GGUF paths")
    ap.add_argument("--embed", default="minilm", help="the embedding model: a known name or a GGUF path")
    ap.add_argument("--num-thread", type=int, default=1, help="num_thread of every request (default 1)")
    ap.add_argument("--num-ctx", type=int, default=1024, help="num_ctx of every request (default 1024)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the request mix")
    ap.add_argument("--malloc-trim", action="store_true", help="also report RSS after malloc_trim(0) at each point")
    ap.add_argument(
        "--stall-timeout", type=float, default=600.0, help="seconds without a finished request (default 600)"
    )
    ap.add_argument("--slow", type=float, default=120.0, help="print the stacks of a request running this long (s)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)

    chat = [model_path(m) for m in args.chat.split(",") if m]
    embed = model_path(args.embed)
    models = [*chat, embed]
    base = {"num_ctx": args.num_ctx, "num_thread": args.num_thread}
    print(
        f"soak: {args.warmup} + {args.requests} requests on {args.threads} threads over "
        f"{', '.join(Path(m).name for m in models)}; num_thread {args.num_thread}, num_ctx {args.num_ctx}, "
        f"MALLOC_ARENA_MAX={os.environ.get('MALLOC_ARENA_MAX', 'unset')}",
        flush=True,
    )
    points: dict = {}
    settle(None, [])
    points["before_client"] = snapshot(args.malloc_trim)
    with tempfile.TemporaryDirectory() as store:  # requests name models by path: the store stays empty
        client = Client(models_dir=store)
        mix = Mix(client, chat, embed, base)
        warm = Run(mix, args.seed, 0, args.warmup, args.threads, args)
        warm.run()
        settle(client, models)
        points["start"] = snapshot(args.malloc_trim)
        trend: list[tuple[int, float]] = []
        every = max(1, args.requests // 20)

        def progress(done: int, elapsed: float) -> None:
            if done // every > len(trend) or done == args.requests:
                st = _status_fields()
                trend.append((done, st["VmRSS"] * 1024 / MB))
                print(
                    f"  {done}/{args.requests} in {elapsed:.0f} s, RSS {trend[-1][1]:.1f} MB, {st['Threads']} threads",
                    flush=True,
                )

        run = Run(mix, args.seed, args.warmup, args.requests, args.threads, args, progress)
        seconds = run.run()
        points["end_busy"] = snapshot(False)
        points["settle_s"] = settle(client, models)
        points["end"] = snapshot(args.malloc_trim)
        client.close()
    settle(None, [])
    points["closed"] = snapshot(args.malloc_trim)
    points["trend"] = trend
    rows = verdicts(points, run, warm)
    ok = report(points, run, warm, seconds, args)
    if args.json:
        figures = {
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "models": [Path(m).name for m in models],
            "malloc_arena_max": os.environ.get("MALLOC_ARENA_MAX"),
            "seconds": seconds,
            "points": points,
            "targets": [dict(zip(("measure", "start", "end", "target", "met"), r)) for r in rows],
            "outcomes": {f"{k}/{o}": c for (k, o), c in run.outcomes.items()},
            "expected_errors": {f"{k}/{e}": c for (k, e), c in run.expected.items()},
            "unexpected_errors": {f"{k}/{e}": c for (k, e), c in (run.unexpected + warm.unexpected).items()},
            "unexpected_examples": warm.examples + run.examples,
            "slowest": [{"seconds": secs, "request": i, "kind": kind} for secs, i, kind in run.slowest],
            "latency_s": {k: {"median": sorted(v)[len(v) // 2], "max": max(v)} for k, v in run.seconds.items()},
        }
        args.json.write_text(json.dumps(figures, indent=2))
    print("all targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
