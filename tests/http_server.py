"""A llamanative server under Uvicorn in a thread of the test process, on a free loopback port."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

START_TIMEOUT_S = 60


@contextmanager
def running(app, sock: socket.socket | None = None) -> Iterator[str]:
    """Serve ``app`` on ``sock`` (default: a new socket on 127.0.0.1, port 0); yield its base URL."""
    if sock is None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:  # noqa: BLE001 (reported by the waiting thread)
            errors.append(exc)

    thread = threading.Thread(target=run, name="test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if errors or not thread.is_alive():
            raise RuntimeError(f"the server did not start: {errors}")
        if time.monotonic() > deadline:
            raise RuntimeError("the server did not start in time")
        time.sleep(0.01)
    host, port = sock.getsockname()[:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
