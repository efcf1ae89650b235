"""``ps`` and ``stop``: the models loaded by *this* process.

The command line runs models inside its own process (there is no server), so
a model loaded by ``llamanative run`` in one terminal is not seen by
``llamanative ps`` in another: each command starts with nothing loaded. In a
program that calls :func:`llamanative.cli.main` several times, the commands
share one Client, so ``ps`` lists what an earlier ``run`` left loaded (for
its keep-alive time) and ``stop`` unloads it.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone

from ._common import client
from ._format import human_bytes, human_time, short_id, table

_IN_PROCESS = (
    "ps and stop only see models loaded by this same process: the llamanative command runs models "
    "in-process, so nothing stays loaded between commands"
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ps",
        help="list the models loaded by this process",
        description="List loaded models. Note: " + _IN_PROCESS + ".",
    )
    p.add_argument("prefix", nargs="?", help="only names starting with this")
    p.set_defaults(func=ps)

    p = sub.add_parser(
        "stop", help="unload a model loaded by this process", description="Unload a model. Note: " + _IN_PROCESS + "."
    )
    p.add_argument("model")
    p.set_defaults(func=stop)


def ps(args: argparse.Namespace) -> int:
    models = client().ps().models
    now = datetime.now(timezone.utc)
    rows = []
    for m in models:
        if args.prefix and not (m.name or "").startswith(args.prefix):
            continue
        until = "Stopping..." if m.expires_at and m.expires_at < now else human_time(m.expires_at, now=now)
        rows.append(
            [
                m.name or "",
                short_id(m.digest),
                human_bytes(m.size),
                _processor(m.size, m.size_vram),
                str(m.context_length or ""),
                until,
            ]
        )
    print(table(rows, ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]))
    if not models:
        print(f"({_IN_PROCESS})", file=sys.stderr)
    return 0


def _processor(size: int | None, vram: int | None) -> str:
    size, vram = int(size or 0), int(vram or 0)
    if vram == 0:
        return "100% CPU"
    if vram == size:
        return "100% GPU"
    if vram > size or size == 0:
        return "Unknown"
    cpu = round((size - vram) / size * 100)
    return f"{cpu}%/{100 - cpu}% CPU/GPU"


def stop(args: argparse.Namespace) -> int:
    c = client()
    stored = c.store.resolve(args.model)  # an unknown model is an error (404)
    if not any(m.name == stored.name for m in c.ps().models):
        print(f"model '{stored.name}' is not loaded in this process: nothing to stop ({_IN_PROCESS})", file=sys.stderr)
        return 0
    c.unload(args.model)
    return 0
