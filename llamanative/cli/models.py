"""The store commands: ``list``, ``show``, ``create``, ``cp``, ``rm``, ``pull``, ``push``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ..store.modelfile import read_modelfile
from ..store.names import DEFAULT_HOST, parse_name
from ..types import ShowResponse
from ._common import CliError, client
from ._format import human_bytes, human_time, short_id, table
from ._progress import ProgressPrinter

_SHOW_ONLY = ("license", "modelfile", "parameters", "system", "template")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "list",
        aliases=["ls"],
        help="list the models in the store",
        description="List the models in the store (LLAMANATIVE_MODELS), newest first.",
    )
    p.add_argument("prefix", nargs="?", help="only names starting with this")
    p.set_defaults(func=list_models)

    p = sub.add_parser(
        "show",
        help="show information about a model",
        description="Show a model's architecture, capabilities, parameters, system prompt and "
        "license; or only one part of it with a flag.",
    )
    p.add_argument("model", help="a stored model name or a .gguf path")
    only = p.add_mutually_exclusive_group()
    for what in _SHOW_ONLY:
        only.add_argument(f"--{what}", action="store_true", help=f"show only the {what}")
    p.add_argument("-v", "--verbose", action="store_true", help="also show every GGUF metadata key")
    p.set_defaults(func=show)

    p = sub.add_parser(
        "create",
        help="create a model from a Modelfile",
        description="Store a model under NAME from a Modelfile (FROM a .gguf path, relative to the "
        "Modelfile, or a stored model; PARAMETER, SYSTEM, TEMPLATE, LICENSE, MESSAGE).",
    )
    p.add_argument("model", metavar="NAME", help="the new model's name, e.g. mymodel or mymodel:v1")
    p.add_argument("-f", "--file", default="Modelfile", help='the Modelfile (default "Modelfile")')
    p.add_argument(
        "-q",
        "--quantize",
        metavar="TYPE",
        help="quantize an F16, BF16 or F32 model: q4_K_M, q4_K_S, q8_0, q4_0, q5_K_M, q6_K, f16, bf16, f32",
    )
    p.set_defaults(func=create)

    p = sub.add_parser("cp", aliases=["copy"], help="copy a model", description="Give a stored model a second name.")
    p.add_argument("source")
    p.add_argument("destination")
    p.set_defaults(func=copy)

    p = sub.add_parser(
        "rm", help="remove models", description="Remove models from the store (blobs no other model uses are deleted)."
    )
    p.add_argument("models", nargs="+", metavar="MODEL")
    p.set_defaults(func=remove)

    p = sub.add_parser(
        "pull",
        help="pull a model into the store",
        description="Pull a model into the store, with a progress bar per layer.",
    )
    p.add_argument("model")
    p.set_defaults(func=pull)

    p = sub.add_parser(
        "push",
        help="push a model to a registry",
        description="Upload a stored model (NAMESPACE/MODEL[:TAG], or HOST/NAMESPACE/MODEL[:TAG]) to its registry, "
        "with a progress bar per layer; layers the registry already has are skipped. The token for "
        "registry.ollama.ai (or LLAMANATIVE_REGISTRY) is LLAMANATIVE_REGISTRY_TOKEN.",
    )
    p.add_argument("model")
    p.add_argument("--insecure", action="store_true", help="use plain http for the registry")
    p.set_defaults(func=push)


def list_models(args: argparse.Namespace) -> int:
    models = client().list().models
    prefix = (args.prefix or "").lower()
    rows = [
        [m.name or "", short_id(m.digest), human_bytes(m.size), human_time(m.modified_at)]
        for m in models
        if (m.name or "").lower().startswith(prefix)
    ]
    print(table(rows, ["NAME", "ID", "SIZE", "MODIFIED"]))
    return 0


def show(args: argparse.Namespace) -> int:
    resp = client().show(args.model, verbose=args.verbose)
    for what in _SHOW_ONLY:
        if getattr(args, what):
            text = getattr(resp, what) or ""
            if text:
                print(text.rstrip("\n"))
            return 0
    sys.stdout.write(render_show(resp, args.verbose))
    return 0


def render_show(resp: ShowResponse, verbose: bool = False) -> str:
    """The ``show`` summary: Model, Capabilities, Parameters, (Metadata,) System, License sections."""
    info: dict[str, Any] = resp.model_info or {}
    details = resp.details
    arch = info.get("general.architecture") or (details.family if details else "") or ""
    model = []
    if arch:
        model.append(["", "architecture", arch])
    if details and details.parameter_size:
        model.append(["", "parameters", details.parameter_size])
    for key, label in (("context_length", "context length"), ("embedding_length", "embedding length")):
        if f"{arch}.{key}" in info:
            model.append(["", label, str(info[f"{arch}.{key}"])])
    model.append(["", "quantization", (details.quantization_level if details else "") or ""])
    sections = [("Model", model)]
    if resp.capabilities:
        sections.append(("Capabilities", [["", c] for c in resp.capabilities]))
    if resp.parameters:
        rows = [["", *line.strip().split(None, 1)] for line in resp.parameters.splitlines() if line.strip()]
        sections.append(("Parameters", rows))
    if verbose and info:
        sections.append(("Metadata", [["", k, _metadata_value(info[k])] for k in sorted(info)]))
    if resp.system:
        sections.append(("System", _head(resp.system, 2)))
    if resp.license:
        sections.append(("License", _head(resp.license, 2)))
    return "".join(f"  {title}\n{table(rows)}\n\n" for title, rows in sections)


def _head(text: str, n: int) -> list[list[str]]:
    """The first ``n`` non-blank lines, then ``...`` if there are more."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return [["", line] for line in lines[:n]] + ([["", "..."]] if len(lines) > n else [])


def _metadata_value(value: Any) -> str:
    """A metadata value in one short cell; long arrays as ``[a b ...+N more]``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        shown, width = [], 1
        for i, item in enumerate(value):
            w = len(str(item)) + (2 if i else 0)
            if width + w > 10 and i:
                break
            shown.append(str(item))
            width += w
        more = f" ...+{len(value) - len(shown)} more" if len(shown) < len(value) else ""
        return "[" + " ".join(shown) + more + "]"
    return str(value)


def create(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"no Modelfile at {path}: write one (FROM <file.gguf>, ...) or give its path with -f FILE")
    mf = read_modelfile(path)
    for warning in mf.warnings:
        print(f"warning: {path}, {warning}", file=sys.stderr)
    print("gathering model components", file=sys.stderr)
    printer = ProgressPrinter()
    try:
        for update in client().create(args.model, quantize=args.quantize, stream=True, **mf.create_kwargs()):
            printer.update(update)
    finally:
        printer.close()
    return 0


def copy(args: argparse.Namespace) -> int:
    client().copy(args.source, args.destination)
    print(f"copied '{args.source}' to '{args.destination}'")
    return 0


def remove(args: argparse.Namespace) -> int:
    for name in args.models:
        client().delete(name)
        print(f"deleted '{name}'")
    return 0


def pull(args: argparse.Namespace) -> int:
    printer = ProgressPrinter()
    try:
        for update in client().pull(args.model, stream=True):
            printer.update(update)
    finally:
        printer.close()
    if printer.last_status != "success":
        print("success", file=sys.stderr)
    return 0


def push(args: argparse.Namespace) -> int:
    from ..store.registry import ENV_BASE  # here: the network clients load only when a push needs them

    printer = ProgressPrinter()
    try:
        for update in client().push(args.model, insecure=args.insecure, stream=True):
            printer.update(update)
    finally:
        printer.close()
    name = parse_name(args.model.split("://", 1)[-1])
    if name.host == DEFAULT_HOST and not os.environ.get(ENV_BASE):
        where = f"https://ollama.com/{name.namespace}/{name.model}" + ("" if name.tag == "latest" else f":{name.tag}")
    else:
        where = f"{name.host}/{name.namespace}/{name.model}:{name.tag}"
    print(f"\nYou can find your model at:\n\n\t{where}")  # as Ollama prints it
    return 0
