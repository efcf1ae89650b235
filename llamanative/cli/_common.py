"""Pieces shared by the commands."""

from __future__ import annotations

import atexit
import sys
from typing import Any

from ..client import Client
from ..store import default_root
from ..types import format_params

_client: Client | None = None


class CliError(Exception):
    """A usage problem the command reports as ``Error: <message>`` (exit status 1)."""


def client() -> Client:
    """The commands' Client, shared by every command run in this process and closed at exit.

    Sharing it is what lets ``ps`` and ``stop`` see the models that ``run``
    loaded earlier in the same process (a program calling
    :func:`llamanative.cli.main` several times). A changed
    ``LLAMANATIVE_MODELS`` gets a new Client for the new store.
    """
    global _client
    if _client is not None and _client.store.root != default_root():
        _client.close()
        _client = None
    if _client is None:
        _client = Client()
        atexit.register(_client.close)  # unload before the interpreter tears the native objects down
    return _client


def stdin_text() -> str | None:
    """What was piped into the command, or ``None`` when stdin is a terminal (or closed)."""
    if sys.stdin is None or sys.stdin.isatty():
        return None
    return sys.stdin.read()


def parameters(pairs: list[list[str]] | None) -> dict[str, Any]:
    """``--parameter NAME VALUE`` pairs as typed options (``stop`` may repeat).

    Raises:
        StatusError: an unknown parameter or a bad value (400).
    """
    raw: dict[str, list[str]] = {}
    for name, value in pairs or ():
        raw.setdefault(name, []).append(value)
    out: dict[str, Any] = {}
    for name, values in raw.items():
        # format_params keeps the first value of a non-list option; on a command line the last one wins.
        out.update(format_params({name: values if name == "stop" else values[-1:]}))
    return out


def add_parameter_flag(parser: Any) -> None:
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        help="a model parameter for this run, as in a Modelfile (e.g. -p num_predict 64); repeatable",
    )
