"""The interactive chat of ``llamanative run MODEL`` (Ollama's ``>>>`` prompt and slash commands)."""

from __future__ import annotations

import sys
from pathlib import Path

from ..client import Client
from ..errors import LlamaError, StatusError
from ..store.store import MEDIA_PARAMS
from ..types import format_params
from ._common import CliError
from ._images import extract_images, file_argument, read_images, starts_with_image_path
from .models import render_show
from .run import Settings, stream_chat

_HELP = """Available Commands:
  /set            Set session variables
  /show           Show model information
  /save <model>   Save your current session
  /image <path>   Attach an image to the next message
  /clear          Clear session context
  /bye            Exit
  /?, /help       Help for a command
  /? shortcuts    Help for keyboard shortcuts

Use \"\"\" to begin a multi-line message.
Use ./path/to/file to include .jpg, .png, or .webp images.
"""
_HELP_SET = """Available Commands:
  /set parameter ...     Set a parameter
  /set system <string>   Set system message
  /set format json       Enable JSON mode
  /set noformat          Disable formatting
  /set verbose           Show LLM stats
  /set quiet             Disable LLM stats
  /set think             Enable thinking
  /set nothink           Disable thinking
"""
_HELP_SHOW = """Available Commands:
  /show info         Show details for this model
  /show license      Show model license
  /show modelfile    Show Modelfile for this model
  /show parameters   Show parameters for this model
  /show system       Show system message
  /show template     Show prompt template
"""
_HELP_PARAMETERS = """Available Parameters:
  /set parameter seed <int>             Random number seed
  /set parameter num_predict <int>      Max number of tokens to predict
  /set parameter top_k <int>            Pick from top k num of tokens
  /set parameter top_p <float>          Pick token based on sum of probabilities
  /set parameter min_p <float>          Pick token based on top token probability * min_p
  /set parameter num_ctx <int>          Set the context size
  /set parameter temperature <float>    Set creativity level
  /set parameter repeat_penalty <float> How strongly to penalize repetitions
  /set parameter repeat_last_n <int>    Set how far back to look for repetitions
  /set parameter stop <string> <string> ...   Set the stop parameters
"""
_HELP_SHORTCUTS = """Available keyboard shortcuts:
  Ctrl + c            Stop the model from responding; at an empty prompt, exit
  Ctrl + d            Exit (/bye)
  Up / Down           Previous / next line (when Python has readline)
"""


class Session:
    """One interactive conversation with a model; :meth:`loop` returns the exit status."""

    def __init__(self, client: Client, settings: Settings) -> None:
        self.client, self.settings = client, settings
        self.system: str | None = None  # set by /set system; else the model's own applies
        self.messages: list[dict] = []
        self._multiline: str | None = None  # "prompt" or "system" while reading a """ block
        self._buffer: list[str] = []
        self.images: list[Path] = []  # attached by /image, sent with the next message

    # -- the loop -----------------------------------------------------------------------------
    def loop(self) -> int:
        _enable_line_editing()
        # Load now, so a model that cannot load fails before the first prompt and the first answer is quick.
        self.client.chat(self.settings.model, [], **self.settings.request())
        while True:
            try:
                line = input("... " if self._multiline else ">>> ")
            except EOFError:  # Ctrl-D
                print()
                return 0
            except KeyboardInterrupt:
                print()
                if self._multiline:  # drop the unfinished block, back to the prompt
                    self._multiline, self._buffer = None, []
                    continue
                return 0
            if self.handle(line) == "exit":
                return 0

    def handle(self, line: str) -> str | None:
        """Act on one input line; ``"exit"`` ends the session."""
        if self._multiline:
            done = line.endswith('"""')
            self._buffer.append(line[:-3] if done else line)
            if not done:
                return None
            text, target = "\n".join(self._buffer), self._multiline
            self._multiline, self._buffer = None, []
            if target == "system":
                self._set_system(text)
            else:
                self.send(text)
            return None
        if line.startswith('"""'):
            return self._open_block(line[3:], "prompt")
        stripped = line.strip()
        if stripped.startswith("/") and not starts_with_image_path(stripped):  # "/home/me/cat.png what is it?"
            return self.command(stripped)
        if stripped:
            self.send(line)
        return None

    def _open_block(self, rest: str, target: str) -> None:
        if rest.endswith('"""') and len(rest) >= 3:  # opened and closed on one line
            if target == "system":
                self._set_system(rest[:-3])
            else:
                self.send(rest[:-3])
            return None
        self._multiline, self._buffer = target, [rest]
        return None

    # -- answers ------------------------------------------------------------------------------
    def send(self, text: str) -> None:
        """Ask the model; print the answer as it streams. Ctrl-C stops it and forgets the question.

        The images attached by ``/image`` and those whose paths are in the
        text go with the message (and stay in the conversation); a path that
        names no file is reported and nothing is sent.
        """
        try:
            text, paths = extract_images(text)
            images = read_images(self.images + paths)
        except (CliError, OSError) as exc:
            print(f"Error: {_message(exc)}", file=sys.stderr)
            return
        self.images = []
        message: dict = {"role": "user", "content": text}
        if images:
            message["images"] = images
        self.messages.append(message)
        history = ([{"role": "system", "content": self.system}] if self.system is not None else []) + self.messages
        try:
            content, _thinking, last, interrupted = stream_chat(self.client, self.settings, history, sys.stdout)
        except (StatusError, LlamaError) as exc:  # e.g. a bad /set value: say so and keep the session
            self.messages.pop()
            print(f"\nError: {getattr(exc, 'error', None) or exc}", file=sys.stderr)
            return
        if interrupted:
            self.messages.pop()
            print()
            return
        self.messages.append({"role": "assistant", "content": content})
        print("\n")
        if self.settings.verbose and last is not None:
            print(last.summary() + "\n", file=sys.stderr)

    # -- slash commands -----------------------------------------------------------------------
    def command(self, line: str) -> str | None:
        words = line.split()
        head = words[0]
        if head in ("/bye", "/exit"):
            return "exit"
        if head in ("/?", "/help"):
            topic = words[1].lstrip("/") if len(words) > 1 else ""
            sys.stderr.write(
                {"set": _HELP_SET, "show": _HELP_SHOW, "shortcut": _HELP_SHORTCUTS, "shortcuts": _HELP_SHORTCUTS}.get(
                    topic, _HELP
                )
                + "\n"
            )
        elif head == "/clear":
            self.messages, self.images = [], []
            print("Cleared session context")
        elif head == "/image":
            self._image(line)
        elif head == "/set":
            self._set(line, words)
        elif head == "/show":
            self._show(words)
        elif head == "/save":
            self._save(words)
        else:
            print(f"Unknown command '{head}'. Type /? for help")
        return None

    def _image(self, line: str) -> None:
        """``/image PATH``: attach a file (quoted, or with escaped spaces) to the next message."""
        arg = line[len("/image") :].strip()
        if not arg:
            print("Usage:\n  /image <path>")
            return
        try:
            path = file_argument(arg)
        except CliError as exc:
            print(f"Error: {exc}", file=sys.stderr)
            return
        self.images.append(path)
        n = len(self.images)
        print(f"Attached image '{path}' to the next message" + (f" ({n} images)" if n > 1 else ""))

    def _set(self, line: str, words: list[str]) -> None:
        s = self.settings
        what = words[1] if len(words) > 1 else ""
        if what == "parameter":
            if len(words) < 4:
                sys.stderr.write(_HELP_PARAMETERS + "\n")
                return
            name, values = words[2], words[3:]
            try:
                typed = format_params({name: values})
            except StatusError as exc:
                print(f"Couldn't set parameter: {exc.error_message}")
                return
            s.options.update(typed)
            print(f"Set parameter '{name}' to '{', '.join(values)}'")
        elif what == "system":
            text = line.split(None, 2)[2] if len(words) > 2 else ""
            if not text:
                sys.stderr.write(_HELP_SET + "\n")
            elif text.startswith('"""'):
                self._open_block(text[3:], "system")
            else:
                self._set_system(text)
        elif what == "format":
            if words[2:3] != ["json"]:
                print("Invalid or missing format. For 'json' mode use '/set format json'")
            else:
                s.format = "json"
                print("Set format to 'json' mode.")
        elif what == "noformat":
            s.format = None
            print("Disabled format.")
        elif what in ("verbose", "quiet"):
            s.verbose = what == "verbose"
            print(f"Set '{what}' mode.")
        elif what in ("think", "nothink"):
            level = words[2] if what == "think" and len(words) > 2 else None
            s.think = level or (what == "think")
            print(f"Set 'think' mode to '{level}'." if level else f"Set '{what}' mode.")
        elif what:
            print(f"Unknown command '/set {what}'. Type /? for help")
        else:
            sys.stderr.write(_HELP_SET + "\n")

    def _set_system(self, text: str) -> None:
        self.system = text
        print("Set system message.")

    def _show(self, words: list[str]) -> None:
        what = words[1] if len(words) > 1 else ""
        if not what:
            sys.stderr.write(_HELP_SHOW + "\n")
            return
        info = self.client.show(self.settings.model)
        if what == "info":
            sys.stderr.write(render_show(info))
        elif what == "license":
            print(info.license or "No license was specified for this model.")
        elif what == "modelfile":
            print(info.modelfile or "")
        elif what == "parameters":
            print("Model defined parameters:")
            lines = (info.parameters or "").splitlines()
            print(
                "\n".join(f"  {line}" for line in lines)
                if lines
                else "  No additional parameters were specified for this model."
            )
            print()
            if self.settings.options:
                print("User defined parameters:")
                for key, value in self.settings.options.items():
                    print(f"  {key:<30} {value}")
                print()
        elif what == "system":
            system = self.system if self.system is not None else info.system
            print(system + "\n" if system else "No system message was specified for this model.")
        elif what == "template":
            print(info.template or "No prompt template was specified for this model.")
        else:
            print(f"Unknown command '/show {what}'. Type /? for help")

    def _save(self, words: list[str]) -> None:
        if len(words) != 2:
            print("Usage:\n  /save <modelname>")
            return
        # The saved model keeps its own parameters, with this session's on top (create replaces the layer).
        stored = self.client.store.resolve(self.settings.model).layer_json(MEDIA_PARAMS) or {}
        try:
            self.client.create(
                words[1],
                from_=self.settings.model,
                system=self.system,
                parameters={**stored, **self.settings.options} or None,
                messages=self.messages or None,
            )
        except StatusError as exc:
            print(f"error: {exc.error_message or exc.error}")
            return
        print(f"Created new model '{words[1]}'")


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        return f"{exc.strerror}: {exc.filename}"
    return str(exc)


def _enable_line_editing() -> None:
    """Line editing and history for input(), where Python has readline (not on every platform)."""
    try:
        import readline  # noqa: F401  (importing it is what turns it on)
    except ImportError:
        pass
