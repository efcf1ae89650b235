"""``run``: answer one prompt, or chat interactively; and the streaming printer both use."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

from ..client import Client
from ._common import CliError, add_parameter_flag, client, parameters, stdin_text
from ._format import json_vector
from ._images import read_images, take_images

THINK_VALUES = ("true", "false", "high", "medium", "low", "max")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a model: answer a prompt, or chat",
        description="Answer PROMPT (or what is piped on stdin) and exit; with neither, chat interactively "
        '(/? for help, """ for a multi-line message, /bye or Ctrl-D to exit). Ctrl-C stops an answer. '
        "Image paths among the words (./photo.jpg; .jpg, .jpeg, .png, .webp) are sent as images. "
        "Embedding models print the prompt's embedding as JSON.",
    )
    p.add_argument("model", help="a stored model name or a .gguf path")
    p.add_argument("prompt", nargs="*", help="the message (words are joined with spaces; image paths become images)")
    p.add_argument("--verbose", action="store_true", help="print timings and token rates after each answer (stderr)")
    p.add_argument("--format", default=None, help='"json", or a JSON schema, to constrain the answer')
    p.add_argument(
        "--think",
        default=None,
        metavar="[=true|false|high|medium|low|max]",
        help="thinking models: think before answering (--think alone = true; a level: --think=high)",
    )
    p.add_argument("--hidethinking", action="store_true", help="do not print the thinking")
    p.add_argument(
        "--keepalive",
        default=None,
        help="how long the model stays loaded after an answer (e.g. 5m, 0); within this process only",
    )
    add_parameter_flag(p)
    p.set_defaults(func=run, more_words="prompt")


def normalize_think_flag(argv: list[str]) -> list[str]:
    """A bare ``--think`` means true and never takes the next word (a level is ``--think=high``), as in ollama."""
    return ["--think=true" if arg == "--think" else arg for arg in argv]


@dataclass
class Settings:
    """What a chat request needs besides the messages (``/set`` changes them in a session)."""

    model: str
    options: dict[str, Any] = field(default_factory=dict)
    format: Any = None
    think: bool | str | None = None
    keep_alive: str | None = None
    verbose: bool = False
    hide_thinking: bool = False

    def request(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"options": self.options or None, "format": self.format, "think": self.think}
        if self.keep_alive is not None:
            kw["keep_alive"] = self.keep_alive
        return kw


def settings_from(args: argparse.Namespace) -> Settings:
    fmt = args.format
    if fmt and fmt.lstrip().startswith("{"):
        try:
            fmt = json.loads(fmt)
        except ValueError as exc:
            raise CliError(f"--format: not valid JSON: {exc}") from None
    think: bool | str | None = None
    if args.think is not None:
        if args.think not in THINK_VALUES:
            raise CliError(f"invalid value for --think: {args.think!r} (one of {', '.join(THINK_VALUES)})")
        think = {"true": True, "false": False}.get(args.think, args.think)
    return Settings(args.model, parameters(args.parameter), fmt, think, args.keepalive, args.verbose, args.hidethinking)


class AnswerPrinter:
    """Writes a streamed answer: the thinking framed as Ollama frames it (unless hidden), then the content."""

    def __init__(self, out: TextIO, hide_thinking: bool = False) -> None:
        self.out, self.hide = out, hide_thinking
        self.content: list[str] = []
        self.thinking: list[str] = []
        self._in_thinking = False

    def feed(self, thinking: str | None, content: str | None) -> None:
        if thinking:
            self.thinking.append(thinking)
            if not self.hide:
                if not self._in_thinking:
                    self.out.write("Thinking...\n")
                    self._in_thinking = True
                self.out.write(thinking)
        if content:
            self.finish()
            self.content.append(content)
            self.out.write(content)
        self.out.flush()

    def finish(self) -> None:
        """Close an open thinking block (an answer may end while still thinking)."""
        if self._in_thinking:
            if not "".join(self.thinking).endswith("\n"):
                self.out.write("\n")
            self.out.write("...done thinking.\n\n")
            self._in_thinking = False


def stream_chat(client: Client, settings: Settings, messages: list[dict], out: TextIO) -> tuple[str, str, Any, bool]:
    """Stream one answer to ``out``: (content, thinking, last chunk or None, interrupted by Ctrl-C)."""
    printer = AnswerPrinter(out, settings.hide_thinking)
    last = None
    stream = client.chat(settings.model, messages, stream=True, **settings.request())
    try:
        for part in stream:
            printer.feed(part.message.thinking, part.message.content)
            last = part
    except KeyboardInterrupt:
        stream.close()  # cancels the job: the engine frees its slot at the next step
        return "".join(printer.content), "".join(printer.thinking), None, True
    printer.finish()
    return "".join(printer.content), "".join(printer.thinking), last, False


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    piped = stdin_text()
    words = ([piped] if piped else []) + list(args.prompt)
    c = client()
    info = c.show(settings.model)  # an unknown model fails here, before anything loads
    if "embedding" in (info.capabilities or []):
        prompt = " ".join(words)
        if not prompt:
            raise CliError(f'embedding models need input text: llamanative run {settings.model} "your text"')
        resp = c.embed(settings.model, prompt, options=settings.options or None, keep_alive=settings.keep_alive)
        print(json_vector(resp.as_array()[0]))
        return 0
    if piped is None and not args.prompt:
        from .repl import Session

        return Session(c, settings).loop()
    # Image paths, as arguments of their own or inside the text, become the message's images. A model
    # without a projector is not asked first: the Client's 400 says it does not support vision.
    prompt, paths = take_images(words)
    images = read_images(paths)
    if not prompt.strip() and not images:
        raise CliError("no prompt: give one as an argument or pipe it on stdin")
    message: dict[str, Any] = {"role": "user", "content": prompt}
    if images:
        message["images"] = images
    _content, _thinking, last, interrupted = stream_chat(c, settings, [message], sys.stdout)
    sys.stdout.write("\n")
    sys.stdout.flush()
    if interrupted:
        return 130
    if settings.verbose and last is not None:
        print(last.summary(), file=sys.stderr)
    return 0
