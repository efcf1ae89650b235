"""``rpc-server``: this machine's devices for other processes' models, over ggml's RPC protocol.

What llama.cpp's ``rpc-server`` tool does, from the package: a process that
loads a model with ``rpc=["host:port"]`` (or ``LLAMANATIVE_RPC_SERVERS``)
places some of its layers here. The protocol has no authentication and no
encryption: the server listens on 127.0.0.1 unless told otherwise, and any
other address prints a warning.
"""

from __future__ import annotations

import argparse
import sys
import threading

from .. import _core
from ..fetch import cache_dir
from ._common import CliError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rpc-server",
        help="serve this machine's CPU (or GPUs) to models placed on it over ggml's RPC protocol",
        description="Start ggml's RPC server (what llama.cpp's rpc-server runs) on this machine's devices: "
        "a model loaded elsewhere with rpc=['HOST:PORT'] or LLAMANATIVE_RPC_SERVERS puts layers here. "
        "One client at a time. The protocol has no authentication and no encryption: run it on a trusted "
        "network only.",
        epilog="Stop it with Ctrl-C. Every side must run the same llamanative version (the protocol is versioned).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=_core.RPC_DEFAULT_PORT, help="port (default %(default)s)")
    p.add_argument(
        "-t", "--threads", type=int, default=0, metavar="N", help="CPU threads (default: the CPUs available)"
    )
    p.add_argument(
        "-d",
        "--device",
        nargs="+",
        default=None,
        metavar="NAME",
        help="devices to serve, names from `llamanative backends` (default: every GPU, else the CPU)",
    )
    p.add_argument(
        "-c",
        "--cache",
        nargs="?",
        const="",
        default=None,
        metavar="DIR",
        help="keep large tensors clients send in DIR, so that a model's next load sends hashes instead "
        "(default DIR: the rpc folder of the llamanative cache)",
    )
    p.set_defaults(func=rpc_server)


def rpc_server(args: argparse.Namespace) -> int:
    if not 1 <= args.port <= 65535:
        raise CliError(f"--port must be between 1 and 65535, got {args.port}")
    if args.threads < 0:
        raise CliError(f"--threads must be >= 0 (0: the CPUs available), got {args.threads}")
    host = args.host
    try:
        _core.parse_rpc_endpoint(f"{host}:{args.port}")
    except ValueError as exc:
        raise CliError(str(exc)) from None
    endpoint = f"{host}:{args.port}"
    if not _core.rpc_is_loopback(host):
        print(_EXPOSED.format(host=host), file=sys.stderr)
    cache = None
    if args.cache is not None:
        cache = args.cache or str(cache_dir().parent / "rpc")
    if not _core.rpc_supported():
        raise CliError("this build has no RPC backend (built with -DLLAMANATIVE_RPC=OFF?)")
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            _core.rpc_serve(endpoint, cache_dir=cache, n_threads=args.threads, devices=args.device)
        except BaseException as exc:  # handed to the main thread
            failure.append(exc)

    # ggml's server never returns while it runs and holds no Python frame: in a thread of its own,
    # the main thread stays free to take Ctrl-C (and the process ends with it).
    thread = threading.Thread(target=serve, name="llamanative-rpc-server", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.5)
    sys.stdout.flush()
    if failure:
        raise failure[0]
    # ggml prints why (a port in use, an address that is not this machine's) on stderr.
    raise CliError(f"the RPC server could not start on {endpoint}")


_EXPOSED = (
    "\n!!! WARNING: the RPC server listens on {host}, not only on this machine.\n"
    "!!! ggml's RPC protocol has no authentication and no encryption, and a client can make the server\n"
    "!!! allocate memory and run computations: never expose it to an open network. Use a trusted network\n"
    "!!! (or an SSH tunnel to 127.0.0.1).\n"
)
