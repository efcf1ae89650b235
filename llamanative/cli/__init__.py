"""The ``llamanative`` command: Ollama's command line, with the models running in this process.

    llamanative create mymodel -f Modelfile
    llamanative run mymodel "Why is the sky blue?"
    llamanative list

There is no server: each command opens the model store
(``LLAMANATIVE_MODELS``) and runs what it needs itself. Errors print one
``Error: ...`` line on stderr and exit with status 1 (2 for bad arguments,
130 after Ctrl-C).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .. import __version__
from ..errors import LlamaError, ResponseError
from ..fetch import ModelFetchError
from ..store.modelfile import ModelfileError
from . import backends, chat, embed, models, rerank, rpc_server, run, running, serve
from ._common import CliError

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llamanative",
        description="Run GGUF models in-process, with Ollama's commands.",
        epilog="Models are store names (see `list`) or paths to .gguf files. The store is LLAMANATIVE_MODELS "
        "(it may be an Ollama models directory).",
    )
    parser.add_argument("-v", "--version", action="store_true", help="show the version")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run.register(sub)
    models.register(sub)
    running.register(sub)
    embed.register(sub)
    rerank.register(sub)
    p = sub.add_parser("version", help="show the version (and the llama.cpp commit)")
    p.set_defaults(func=version)
    chat.register(sub)
    backends.register(sub)
    serve.register(sub)
    rpc_server.register(sub)
    sub.add_parser("bench", help="measure speed over a grid of settings (llamanative bench --help)")
    return parser


def version(_args: argparse.Namespace | None = None) -> int:
    from .. import LLAMA_CPP_COMMIT

    print(f"llamanative version is {__version__} (llama.cpp {LLAMA_CPP_COMMIT[:8]})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # its own argument parser: see llamanative.bench
        from .. import bench

        return bench.main(argv[1:])
    parser = build_parser()
    args, extras = parser.parse_known_args(run.normalize_think_flag(argv))
    if extras:
        # argparse stops filling a '*' positional at the first option, so `run MODEL --verbose "hi"`
        # leaves "hi" over: give such words to the command's word list (in order), as ollama's CLI does.
        words = getattr(args, "more_words", None)
        unknown = [e for e in extras if e.startswith("-") and not _is_number(e)]
        if words is None or unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown or extras)}")
        getattr(args, words).extend(extras)
    if args.version:
        return version()
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    _log_warnings()
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `llamanative list | head -1`
        _silence_stdout()
        return 0
    except (ResponseError, ModelfileError, CliError, ModelFetchError, LlamaError, OSError) as exc:
        return _error(_message(exc))
    except Exception as exc:  # a bug: one line, unless the traceback is asked for
        if os.environ.get("LLAMANATIVE_DEBUG"):
            raise
        return _error(f"{type(exc).__name__}: {exc} (set LLAMANATIVE_DEBUG=1 to see the traceback)")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _message(exc: BaseException) -> str:
    if isinstance(exc, ResponseError):
        return exc.error  # without the "(status code: 404)" suffix
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        return f"{exc.strerror}: {exc.filename}"
    return str(exc)


def _error(message: str) -> int:
    sys.stdout.flush()
    print(f"Error: {message}", file=sys.stderr)
    return 1


def _log_warnings() -> None:
    """Library warnings (an ignored option, ...) as ``warning: ...`` lines on stderr.

    llama.cpp's own warnings (``llamanative.native``) are left out: they are
    about the model file's metadata and say nothing a user can act on; its
    errors are kept, as they explain a failed load.
    """
    log = logging.getLogger("llamanative")
    if not any(getattr(h, "_llamanative_cli", False) for h in log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_LowerLevelFormatter())
        handler.setLevel(logging.WARNING)
        handler.addFilter(lambda r: r.levelno >= logging.ERROR or not r.name.startswith("llamanative.native"))
        handler._llamanative_cli = True  # type: ignore[attr-defined]
        log.addHandler(handler)


class _LowerLevelFormatter(logging.Formatter):
    """``warning: ...`` rather than ``WARNING: ...``, like the command's other messages."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def _silence_stdout() -> None:
    # Python flushes stdout at exit; with the reader gone that would raise again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
