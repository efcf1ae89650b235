"""``serve``: Ollama's HTTP API (and OpenAI's) on a local port, over one in-process AsyncClient.

Needs the ``serve`` extra (``pip install 'llamanative[serve]'``: Starlette,
Uvicorn and orjson). Every option has an environment variable, in Ollama's syntax where
Ollama has one; an option given on the command line wins.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from ._common import CliError

_EXTRA = "the serve command needs the serve extra: pip install 'llamanative[serve]'"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve Ollama's HTTP API (and OpenAI's /v1) for the models of the store",
        description="Serve Ollama's HTTP API (/api/*, with / answering 'Ollama is running') and OpenAI's (/v1/*) "
        "over the models of the store, all requests of all clients batched by one engine. Binds 127.0.0.1 unless "
        "told otherwise; binding another address without an API key prints a warning.",
        epilog="Environment: LLAMANATIVE_HOST (host[:port], http://host:port, as OLLAMA_HOST), LLAMANATIVE_ORIGINS "
        "(comma-separated, as OLLAMA_ORIGINS), LLAMANATIVE_API_KEY, LLAMANATIVE_MODELS.",
    )
    p.add_argument(
        "--host",
        default=None,
        help="address to listen on, also host:port or http://host:port (default: LLAMANATIVE_HOST, else 127.0.0.1)",
    )
    p.add_argument(
        "--port", type=int, default=None, help="port (default: the port in LLAMANATIVE_HOST or --host, else 11434)"
    )
    p.add_argument(
        "--api-key",
        default=None,
        metavar="KEY",
        help="require 'Authorization: Bearer KEY' on every route but / (default: LLAMANATIVE_API_KEY)",
    )
    p.add_argument("--models-dir", default=None, metavar="DIR", help="the model store (default: LLAMANATIVE_MODELS)")
    p.add_argument(
        "--origins",
        nargs="+",
        default=None,
        metavar="ORIGIN",
        help="origins allowed by CORS, '*' matching any text (http://localhost:*); "
        "default LLAMANATIVE_ORIGINS, else none",
    )
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=None,
        metavar="N",
        help="largest request body; blob uploads are exempt (default 104857600, 100 MiB)",
    )
    p.add_argument(
        "--max-queued",
        type=int,
        default=None,
        metavar="N",
        help="model requests admitted at once, running or waiting; more get 503 with Retry-After (default 512)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="seconds a model request may run before it is cancelled, 0 for no limit (default 600)",
    )
    p.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="Uvicorn's log level (default info: one line a request)",
    )
    p.set_defaults(func=serve)


def settings(args: argparse.Namespace) -> dict:
    """The server's settings from the options and the environment (an option wins)."""
    from ..server.config import parse_host, parse_origins
    from ..server.limits import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_QUEUED, DEFAULT_TIMEOUT_S

    try:
        address = parse_host(args.host if args.host is not None else os.environ.get("LLAMANATIVE_HOST"))
    except ValueError as exc:
        raise CliError(str(exc)) from None
    port = args.port if args.port is not None else address.port
    if not 0 <= port <= 65535:
        raise CliError(f"invalid port {port}")
    origins = args.origins if args.origins is not None else os.environ.get("LLAMANATIVE_ORIGINS")
    return {
        "host": address.host,
        "port": port,
        "loopback": address.is_loopback,
        "api_key": args.api_key if args.api_key is not None else (os.environ.get("LLAMANATIVE_API_KEY") or None),
        "models_dir": args.models_dir,
        "origins": parse_origins(origins),
        "max_body_bytes": args.max_body_bytes if args.max_body_bytes is not None else DEFAULT_MAX_BODY_BYTES,
        "max_queued": args.max_queued if args.max_queued is not None else DEFAULT_MAX_QUEUED,
        "timeout": args.timeout if args.timeout is not None else DEFAULT_TIMEOUT_S,
    }


def serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..client import AsyncClient
        from ..server import create_app
    except ImportError as exc:
        raise CliError(f"{_EXTRA} ({exc})") from None
    s = settings(args)
    if not s["loopback"] and not s["api_key"]:
        print(
            f"warning: listening on {s['host']}:{s['port']} without an API key: anyone who can reach this "
            "address can run, pull and delete models (set --api-key or LLAMANATIVE_API_KEY)",
            file=sys.stderr,
        )
    client = AsyncClient(models_dir=s["models_dir"])
    app = create_app(
        client,
        api_key=s["api_key"],
        origins=s["origins"],
        max_body_bytes=s["max_body_bytes"],
        max_queued=s["max_queued"],
        request_timeout_s=s["timeout"],
    )
    config = uvicorn.Config(app, host=s["host"], port=s["port"], log_level=args.log_level, lifespan="on")
    try:
        uvicorn.Server(config).run()
    except KeyboardInterrupt:  # Uvicorn has shut down gracefully, then re-raises the signal: a normal stop
        pass
    finally:
        asyncio.run(client.close())  # unload every model before the interpreter tears native objects down
    return 0
