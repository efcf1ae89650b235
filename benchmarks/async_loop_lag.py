"""How long AsyncClient streams keep the event loop from running other tasks.

    python benchmarks/async_loop_lag.py [--streams 4] [--tokens 200] [--reps 3] [--template smollm2|qwen3-style|both]

A task on the loop sleeps 1 ms at a time and records how late each wake-up is
(the loop's *lag*), while ``--streams`` AsyncClient chat streams run side by side
(greedy, ``num_predict=--tokens``, a few-turn conversation so that rendering and
tokenization cost what they cost in use). Two templates:

- ``smollm2``: SmolLM2-135M-Instruct's own (ChatML) template; its output is the
  content as it is (no parsing);
- ``qwen3-style``: the same weights with the Qwen3-style template of the tests
  (``tests/data/qwen3_style.jinja``) and one tool, so every token goes through
  ``common``'s output parser (thinking and tool-call markup).

Each configuration runs in two modes: with the request's steps (rendering, tokenization,
dropping old messages, output parsing, building the responses) on the loop's
default executor (what AsyncClient does), and with them on the loop thread
itself (``adrive(..., inline=True)``, what it did before). Printed per run:
the worst, 99th-percentile and median lag in milliseconds; the worst and
99th-percentile CPU time the loop thread itself spent between two ticks (``cpu``:
the work done on the loop, apart from the time the machine's other processes or
threads holding the GIL kept it waiting); and the tokens per second of all
streams together. Before them, an ``idle`` row: the same ticker for two
seconds with nothing else running, the machine's own noise floor. Target: worst
lag under 2 ms on a quiet machine (an idle worst lag well under that). On a
shared machine the figures move with the other load: compare the modes of the
same repetition.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # gguf_edit: a copy of a GGUF with another chat template

from gguf_edit import with_chat_template  # noqa: E402

from llamanative import AsyncClient, Client  # noqa: E402
from llamanative.client import _stream, async_client  # noqa: E402
from llamanative.fetch import fetch_model  # noqa: E402
from llamanative.types import tool_from_function  # noqa: E402

TICK_S = 0.001
HISTORY = [
    {"role": "system", "content": "You are a helpful assistant who answers in a few sentences."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "The capital of France is Paris, on the Seine."},
    {"role": "user", "content": "And what is it known for?"},
    {"role": "assistant", "content": "Paris is known for the Eiffel Tower, the Louvre, its cafés and its food."},
]
QUESTIONS = [
    "Tell me a story about a lighthouse keeper.",
    "Explain how a bicycle stays upright.",
    "Describe a walk through a forest in autumn.",
    "Why is the sky blue? Explain step by step.",
    "Write a letter to a friend about your holiday.",
    "What should I pack for a week in the mountains?",
    "Describe how bread is made, from flour to loaf.",
    "Tell me about the history of the printing press.",
]


def get_weather(city: str, days: int) -> str:
    """Get the weather forecast for a city.

    Args:
        city: The city name.
        days: How many days ahead.
    """
    return "sunny"


async def ticker(lags: list[float], busy: list[float], stop: asyncio.Event) -> None:
    """Sleep TICK_S at a time; record how late each wake-up is and the loop thread's CPU time meanwhile (s)."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        t0, c0 = loop.time(), time.thread_time()
        await asyncio.sleep(TICK_S)
        lags.append(loop.time() - t0 - TICK_S)
        busy.append(time.thread_time() - c0)


async def one_stream(client: AsyncClient, model: str, question: str, tokens: int, tools: list | None) -> int:
    msgs = [*HISTORY, {"role": "user", "content": question}]
    opts = {"temperature": 0, "num_predict": tokens, "num_ctx": 2048}
    last = None
    async for chunk in await client.chat(model, msgs, tools=tools, stream=True, options=opts):
        last = chunk
    assert last is not None and last.done
    return last.eval_count or 0


async def one_run(client: AsyncClient, model: str, n: int, tokens: int, tools: list | None, rep: int) -> dict:
    """The ticker's lags while ``n`` streams run; with ``n == 0``, while nothing runs for two seconds (the
    machine's own noise: what no change to the client can remove)."""
    lags: list[float] = []
    busy: list[float] = []
    stop = asyncio.Event()
    tick = asyncio.create_task(ticker(lags, busy, stop))
    await asyncio.sleep(0.05)  # the ticker's own start-up is not counted
    lags.clear()
    busy.clear()
    t0 = time.perf_counter()
    counts = await asyncio.gather(
        *(one_stream(client, model, QUESTIONS[(rep + i) % len(QUESTIONS)], tokens, tools) for i in range(n))
    )
    if not n:
        await asyncio.sleep(2.0)
    wall = time.perf_counter() - t0
    stop.set()
    await tick
    lags_ms = sorted(x * 1000 for x in lags)
    busy_ms = sorted(x * 1000 for x in busy)
    return {
        "worst": lags_ms[-1],
        "p99": lags_ms[int(0.99 * (len(lags_ms) - 1))],
        "p50": statistics.median(lags_ms),
        "busy": busy_ms[-1],
        "busy99": busy_ms[int(0.99 * (len(busy_ms) - 1))],
        "ticks": len(lags_ms),
        "tok_s": sum(counts) / wall,
    }


def set_inline(inline: bool) -> None:
    """Run the request steps on the loop thread (the former behaviour) or off it (AsyncClient's)."""

    def drive(steps):
        return _stream.adrive(steps, inline=inline)

    async_client.adrive = drive


async def main_async(args, models: dict[str, tuple[str, list | None]]) -> None:
    client = AsyncClient(models_dir=args.store)
    try:
        for name, (model, tools) in models.items():
            await one_stream(client, model, QUESTIONS[0], 4, tools)  # load and warm up
            print(f"\n{name}: {args.streams} streams x {args.tokens} tokens (greedy), 1 ms ticker")
            print(
                f"{'rep':>3}  {'mode':<9} {'worst ms':>9} {'p99 ms':>7} {'p50 ms':>7}"
                f" {'cpu worst':>9} {'cpu p99':>7} {'ticks':>6} {'tok/s':>7}"
            )
            for rep in range(args.reps):
                for mode in ("idle", "off-loop", "on-loop"):
                    set_inline(mode == "on-loop")
                    r = await one_run(client, model, 0 if mode == "idle" else args.streams, args.tokens, tools, rep)
                    print(
                        f"{rep:>3}  {mode:<9} {r['worst']:>9.2f} {r['p99']:>7.2f} {r['p50']:>7.2f}"
                        f" {r['busy']:>9.2f} {r['busy99']:>7.2f} {r['ticks']:>6} {r['tok_s']:>7.1f}"
                    )
            set_inline(False)
    finally:
        await client.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--template", choices=("smollm2", "qwen3-style", "both"), default="both")
    args = ap.parse_args()
    smol = fetch_model("smollm2", quiet=True)
    with tempfile.TemporaryDirectory() as tmp:
        args.store = Path(tmp) / "store"
        models: dict[str, tuple[str, list | None]] = {}
        with Client(models_dir=args.store) as c:
            if args.template in ("smollm2", "both"):
                c.create("smol", from_=str(smol))
                models["smollm2 template"] = ("smol", None)
            if args.template in ("qwen3-style", "both"):
                qwen = with_chat_template(
                    smol, Path(tmp) / "qwen3-style.gguf", (ROOT / "tests/data/qwen3_style.jinja").read_text()
                )
                c.create("qwen-style", from_=str(qwen))
                models["qwen3-style template, thinking and one tool"] = (
                    "qwen-style",
                    [tool_from_function(get_weather)],
                )
        asyncio.run(main_async(args, models))


if __name__ == "__main__":
    main()
