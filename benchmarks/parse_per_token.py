"""What parsing a streamed answer costs per token, against the answer's length.

    python benchmarks/parse_per_token.py [--tokens 1000 4000 16000] [--reps 3]

The answer is SmolLM2's tokenization of a long made-up reply in the shape of
the Qwen3-style template of the tests (``tests/data/qwen3_style.jinja``, with
one tool): thinking, ``</think>``, content with some ``<`` in it, a tool call.
Its tokens' texts are fed one at a time, as a stream delivers them, to

- ``OutputParser`` (``llamanative.prompting``): a full parse only where markup
  may matter and on a bounded schedule, pieces appended in between;
- the former way: ``common``'s parser run on the whole text at every token
  (``_core.ChatParser.parse(text, partial=True)``), the cost that grows with
  the answer.

Printed: the mean parse time per token over the whole answer and over its last
tenth, the worst token, and the total, in microseconds / milliseconds (per
token, the least of the repetitions: the machine may be shared; the garbage
collector is off while they run).
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from gguf_edit import with_chat_template  # noqa: E402

from llamanative import _core  # noqa: E402
from llamanative.fetch import fetch_model  # noqa: E402
from llamanative.prompting import OutputParser  # noqa: E402

TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather forecast for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
}
WORDS = (
    "the forecast for Paris says rain in the morning and sun after noon so a walk along the river "
    "could wait until later while the museums stay open and x < y holds for most <b>bold</b> claims"
).split()


def answer(vocab: _core.Vocab, n_tokens: int, seed: int = 0) -> list[str]:
    """The texts of about ``n_tokens`` tokens of a thinking + content + tool-call answer."""
    rnd = random.Random(seed)

    def prose(n: int) -> str:
        chunks, got = [], 0
        while got < n:  # in chunks of words, each tokenized on its own: about additive
            words = [rnd.choice(WORDS) + ("\n" if rnd.random() < 0.05 else "") for _ in range(64)]
            chunks.append(" ".join(words))
            got += len(vocab.tokenize(chunks[-1] + " ", add_special=False))
        return " ".join(chunks)

    text = (
        prose(n_tokens // 2)
        + "\n</think>\n\n"
        + prose(n_tokens // 2)
        + '\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}\n</tool_call>'
    )
    tokens = vocab.tokenize(text, add_special=False, parse_special=True)
    return [vocab.token_to_piece(int(t), special=True).decode("utf-8", "replace") for t in tokens]


def time_new(params: dict, pieces: list[str]) -> list[float]:
    parser = OutputParser(params)
    out = []
    for p in pieces:
        t0 = time.perf_counter()
        parser.feed(p)
        out.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    parser.feed("", final=True)
    out.append(time.perf_counter() - t0)
    return out


def time_old(params: dict, pieces: list[str]) -> list[float]:
    parser = _core.ChatParser(params)
    text, out = "", []
    for p in pieces:
        t0 = time.perf_counter()
        text += p
        parser.parse(text, partial=True)
        out.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    parser.parse(text, partial=False)
    out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, nargs="+", default=[1000, 4000, 16000])
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    smol = fetch_model("smollm2", quiet=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = with_chat_template(smol, Path(tmp) / "q.gguf", (ROOT / "tests/data/qwen3_style.jinja").read_text())
        model = _core.Model(str(path), vocab_only=True)
        msgs = [{"role": "user", "content": "Weather in Paris?"}]
        params = _core.ChatTemplates(model).apply({"messages": msgs, "tools": [TOOL]})
        print(
            f"{'tokens':>6} {'chars':>7}  {'parser':<22} {'mean us/tok':>11} {'last 10% us/tok':>15}"
            f" {'worst us':>9} {'total ms':>9}"
        )
        for n in args.tokens:
            pieces = answer(model.vocab, n)
            chars = sum(map(len, pieces))
            for name, fn in (("OutputParser", time_new), ("whole text every token", time_old)):
                gc.disable()  # its pauses depend on the whole process: not the parser's cost
                try:
                    runs = [fn(params, pieces) for _ in range(args.reps)]
                finally:
                    gc.enable()
                best = [min(ts) for ts in zip(*runs)]  # per token, the least disturbed repetition
                tenth = best[-(len(best) // 10) :]
                print(
                    f"{len(pieces):>6} {chars:>7}  {name:<22} {statistics.fmean(best) * 1e6:>11.1f}"
                    f" {statistics.fmean(tenth) * 1e6:>15.1f} {max(best) * 1e6:>9.0f} {sum(best) * 1e3:>9.1f}"
                )


if __name__ == "__main__":
    main()
