"""``llamanative serve``: its options and environment, and a real server process started the way users start it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("uvicorn")

import httpx  # noqa: E402

from llamanative.cli import build_parser, main  # noqa: E402
from llamanative.cli.serve import settings  # noqa: E402

OPTIONS = ("--host", "--port", "--api-key", "--models-dir", "--origins", "--max-body-bytes", "--max-queued")
OPTIONS += ("--timeout", "--log-level")


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as e:
        main(["serve", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for option in OPTIONS:
        assert option in text
    for variable in ("LLAMANATIVE_HOST", "LLAMANATIVE_ORIGINS", "LLAMANATIVE_API_KEY", "LLAMANATIVE_MODELS"):
        assert variable in text


def parsed(*argv: str) -> dict:
    return settings(build_parser().parse_args(["serve", *argv]))


def test_settings_from_the_environment_and_the_options(monkeypatch):
    for var in ("LLAMANATIVE_HOST", "LLAMANATIVE_ORIGINS", "LLAMANATIVE_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    s = parsed()
    assert (s["host"], s["port"], s["loopback"], s["api_key"], s["origins"]) == ("127.0.0.1", 11434, True, None, ())
    assert (s["max_body_bytes"], s["max_queued"], s["timeout"]) == (100 * 1024 * 1024, 512, 600.0)
    monkeypatch.setenv("LLAMANATIVE_HOST", "http://0.0.0.0:9000")
    monkeypatch.setenv("LLAMANATIVE_ORIGINS", "http://localhost:*, https://app.example.com")
    monkeypatch.setenv("LLAMANATIVE_API_KEY", "k")
    s = parsed()
    assert (s["host"], s["port"], s["loopback"], s["api_key"]) == ("0.0.0.0", 9000, False, "k")
    assert s["origins"] == ("http://localhost:*", "https://app.example.com")
    s = parsed("--host", "[::1]:8080", "--origins", "http://a.example", "--api-key", "other", "--timeout", "0")
    assert (s["host"], s["port"], s["loopback"], s["api_key"], s["origins"]) == (
        "::1",
        8080,
        True,
        "other",
        ("http://a.example",),
    )
    assert s["timeout"] == 0
    assert parsed("--host", ":8081")["host"] == "127.0.0.1"  # as ollama-python reads it: not every interface
    assert parsed("--port", "7000")["port"] == 7000  # the option wins over the variable's port
    assert main(["serve", "--host", "localhost:99999"]) == 1  # an invalid port is an error line


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_server_process_warns_on_a_non_loopback_address_without_a_key(model_store, tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLAMANATIVE_")}
    argv = [sys.executable, "-m", "llamanative", "serve", "--host", "0.0.0.0", "--port", str(port)]
    proc = subprocess.Popen(
        [*argv, "--models-dir", str(model_store), "--log-level", "warning"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,  # not the checkout: there `-m llamanative` would import its source tree, which has no _core
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the server did not start: {proc.stderr.read() if proc.stderr else ''}")
                time.sleep(0.1)
        assert r.text == "Ollama is running"
        assert "smol:latest" in {m["model"] for m in httpx.get(f"http://127.0.0.1:{port}/api/tags").json()["models"]}
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "warning: listening on 0.0.0.0" in err and "without an API key" in err
