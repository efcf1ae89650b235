"""``backends``: the ggml backend plugins this process loaded, its devices, and every plugin file tried."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import _backends, _core
from ._format import human_bytes, table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "backends",
        help="list the compute backends and devices, and which plugin files were loaded",
        description="List the ggml backends (CPU variant, Vulkan, CUDA...) this process loads, "
        "their devices and features, and why each plugin file was or was not loaded. "
        "LLAMANATIVE_LIBRARY_PATH and LLAMANATIVE_CPU_VARIANT change the choice.",
    )
    p.set_defaults(func=backends)


def backends(_args: argparse.Namespace) -> int:
    rows = [
        [
            b["name"],
            str(b["n_devices"]),
            Path(b["path"]).name if b["path"] else "(linked)",
            " ".join(k for k, v in b["features"].items() if v == "1") or "-",
        ]
        for b in _core.backends()
    ]
    print(table(rows, ["BACKEND", "DEVICES", "PLUGIN", "FEATURES"]))
    print()
    rows = [
        [d["name"], d["type"], d["description"], human_bytes(d["memory_free"]), human_bytes(d["memory_total"])]
        for d in _core.devices()
    ]
    print(table(rows, ["DEVICE", "TYPE", "DESCRIPTION", "FREE", "TOTAL"]))
    print()
    rows = [
        [Path(a.path).name, a.outcome, "-" if a.score is None else str(a.score), a.reason]
        for a in _backends.backend_load_log()
    ]
    print(table(rows, ["PLUGIN FILE", "OUTCOME", "SCORE", "WHY"]))
    print(f"\nsearched: {', '.join(str(d) for d in _backends.search_dirs())}")
    return 0
