"""The server over raw HTTP: framing, status codes, auth, CORS, limits, disconnects, and what a path may name.

Uvicorn in a thread (``tests/http_server.py``) over an AsyncClient on a
store of this module's own; requests go through httpx or a plain socket (the
disconnect and slow-reader tests need to hold or drop the connection
themselves). Slots are read from the server's AsyncClient, as
tests/test_backpressure.py reads them; waits only bound how long a failing
test takes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("starlette")

import httpx  # noqa: E402
from http_server import running  # noqa: E402

from llamanative import AsyncClient, Client  # noqa: E402
from llamanative.server import create_app  # noqa: E402
from llamanative.server.limits import RETRY_AFTER_S  # noqa: E402

KEY = "s3cret-key"
LONG = {"temperature": 0, "num_predict": 4000}
GIVE_UP_S = 300


@pytest.fixture(scope="module")
def store(tmp_path_factory, smollm2_path) -> Path:
    root = tmp_path_factory.mktemp("http-store")
    with Client(models_dir=root) as c:
        c.create("smol", from_=str(smollm2_path))
    return root


@pytest.fixture(scope="module")
def client(store) -> Iterator[AsyncClient]:
    c = AsyncClient(models_dir=store)
    yield c
    asyncio.run(c.close())


@pytest.fixture(scope="module")
def url(client) -> Iterator[str]:
    with running(create_app(client)) as base:
        yield base


def wait_for(what: str, found: Callable[[], object]) -> object:
    deadline = time.monotonic() + GIVE_UP_S
    while not (value := found()):
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting until {what}")
        time.sleep(0.01)
    return value


def slots(client: AsyncClient):
    sync = client._client
    entry = sync._scheduler.get(sync.store.resolve("smol").path)
    return entry.runner.slot_states() if entry is not None else []


def raw_request(url: str, path: str, body: dict, sock: socket.socket | None = None) -> socket.socket:
    """Send a POST with a socket of our own and return the socket, its answer unread."""
    host, port = url.removeprefix("http://").split(":")
    if sock is None:
        sock = socket.socket()
    sock.connect((host, int(port)))
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    sock.sendall(head.encode() + data)
    return sock


# -- framing and status codes --------------------------------------------------------------------


def test_root_answers_as_ollama_does(url):
    r = httpx.get(url + "/")
    assert r.status_code == 200 and r.text == "Ollama is running"
    assert httpx.head(url + "/").status_code == 200
    assert httpx.get(url + "/api/version").json()["version"]


def test_ndjson_framing(url):
    body = {"model": "smol", "prompt": "Hi", "options": {"temperature": 0, "num_predict": 5}}
    with httpx.stream("POST", url + "/api/generate", json=body) as r:
        assert r.status_code == 200 and r.headers["content-type"] == "application/x-ndjson"
        raw = r.read()
    assert raw.endswith(b"\n")
    lines = raw.split(b"\n")[:-1]
    objects = [json.loads(line) for line in lines]  # one complete JSON object a line
    assert all(not o["done"] for o in objects[:-1]) and objects[-1]["done"]
    assert objects[-1]["eval_count"] == 5 and objects[-1]["done_reason"] == "length"
    assert all(b"\n" not in line for line in lines)
    plain = httpx.post(url + "/api/generate", json={**body, "stream": False})
    assert plain.headers["content-type"].startswith("application/json")
    assert plain.json()["response"] == "".join(o["response"] for o in objects)
    assert "thinking" not in plain.json()  # unset fields are omitted, as Ollama omits them


@pytest.mark.parametrize(
    "path,content,status,message",
    [
        ("/api/chat", b"", 400, "missing request body"),
        ("/api/chat", b"{not json", 400, "invalid JSON"),
        ("/api/chat", b"[1, 2]", 400, "expected an object"),
        ("/api/chat", b'{"messages": []}', 400, "model is required"),
        ("/api/chat", b'{"model": "nope", "messages": []}', 404, "not found"),
        ("/api/generate", b'{"model": "smol", "options": {"temperature": "hot"}}', 400, "temperature"),
        ("/api/show", b'{"model": "nope"}', 404, "not found"),
        ("/api/copy", b'{"source": "nope", "destination": "x"}', 404, "not found"),
        ("/api/nothing-here", b"{}", 404, "not found"),
        ("/api/push", b'{"model": "smol"}', 400, "namespace"),
        ("/api/push", b'{"model": "someone/nope"}', 404, "not found"),
    ],
)
def test_errors_are_ollama_shaped_with_its_status_codes(url, path, content, status, message):
    r = httpx.post(url + path, content=content)
    assert r.status_code == status
    assert set(r.json()) == {"error"} and message in r.json()["error"]


def test_wrong_method_and_delete_of_an_unknown_model(url):
    r = httpx.get(url + "/api/chat")
    assert r.status_code == 405 and "error" in r.json()
    r = httpx.request("DELETE", url + "/api/delete", json={"model": "nope"})
    assert r.status_code == 404 and "not found" in r.json()["error"]


# -- auth and CORS -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded_url(client) -> Iterator[str]:
    app = create_app(client, api_key=KEY, origins=["http://allowed.example", "http://localhost:*"])
    with running(app) as base:
        yield base


def test_api_key_missing_wrong_and_right(guarded_url):
    assert httpx.get(guarded_url + "/").text == "Ollama is running"  # open: clients probe it
    missing = httpx.get(guarded_url + "/api/tags")
    assert missing.status_code == 401 and "missing API key" in missing.json()["error"]
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = httpx.get(guarded_url + "/api/tags", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json() == {"error": "invalid API key"}
    assert httpx.get(guarded_url + "/api/tags", headers={"Authorization": f"Basic {KEY}"}).status_code == 401
    right = httpx.get(guarded_url + "/api/tags", headers={"Authorization": f"Bearer {KEY}"})
    assert right.status_code == 200 and "smol:latest" in {m["model"] for m in right.json()["models"]}
    v1 = httpx.get(guarded_url + "/v1/models")
    assert v1.status_code == 401 and v1.json()["error"]["code"] == "invalid_api_key"  # OpenAI's error shape


def test_cors_preflight_allows_only_the_configured_origins(guarded_url):
    def preflight(origin: str) -> httpx.Response:
        headers = {
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        }
        return httpx.options(guarded_url + "/api/chat", headers=headers)

    for origin in ("http://allowed.example", "http://localhost:5173"):
        r = preflight(origin)  # no key: browsers send preflights without credentials
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == origin
        assert "POST" in r.headers["access-control-allow-methods"]
        assert "authorization" in r.headers["access-control-allow-headers"].lower()
    for origin in ("http://evil.example", "http://allowed.example.evil", "https://localhost:5173"):
        r = preflight(origin)
        assert "access-control-allow-origin" not in r.headers
    ok = httpx.get(
        guarded_url + "/api/tags", headers={"Origin": "http://allowed.example", "Authorization": f"Bearer {KEY}"}
    )
    assert ok.headers["access-control-allow-origin"] == "http://allowed.example"
    evil = {"Origin": "http://evil.example", "Authorization": f"Bearer {KEY}"}
    other = httpx.get(guarded_url + "/api/tags", headers=evil)
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers


def test_no_cors_headers_without_configured_origins(url):
    r = httpx.get(url + "/api/tags", headers={"Origin": "http://localhost:3000"})
    assert "access-control-allow-origin" not in r.headers


# -- limits --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def limited_url(client) -> Iterator[str]:
    with running(create_app(client, max_body_bytes=2000, max_queued=1, request_timeout_s=None)) as base:
        yield base


@pytest.fixture(scope="module")
def timed_url(client) -> Iterator[str]:
    with running(create_app(client, request_timeout_s=1.5)) as base:
        yield base


def test_body_too_large(limited_url):
    big = {"model": "smol", "prompt": "x" * 3000}
    r = httpx.post(limited_url + "/api/generate", json=big)
    assert r.status_code == 413 and "too large" in r.json()["error"]

    def chunks():  # no Content-Length: counted while it is read
        data = json.dumps(big).encode()
        for i in range(0, len(data), 500):
            yield data[i : i + 500]

    r = httpx.post(limited_url + "/api/generate", content=chunks())
    assert r.status_code == 413 and "too large" in r.json()["error"]


COUNTING = {"model": "smol", "prompt": "Count from 1 to 1000: 1, 2,", "raw": True, "options": LONG}


def test_queue_limit_503_with_retry_after(limited_url, client):
    with httpx.stream("POST", limited_url + "/api/generate", json=COUNTING) as held:
        lines = held.iter_lines()  # kept: a dropped line iterator closes the response, and the server cancels
        assert json.loads(next(lines))["done"] is False
        busy = httpx.post(limited_url + "/api/generate", json={**COUNTING, "stream": False})
        assert busy.status_code == 503 and busy.headers["retry-after"] == str(RETRY_AFTER_S)
        assert "server busy" in busy.json()["error"]
        assert httpx.get(limited_url + "/api/tags").status_code == 200  # only model requests count
    wait_for("the dropped stream's slot is free", lambda: not any(s.busy for s in slots(client)))
    again = {**COUNTING, "stream": False, "options": {"num_predict": 2}}
    assert httpx.post(limited_url + "/api/generate", json=again, timeout=GIVE_UP_S).status_code == 200


def test_timeout_ends_a_stream_with_an_error_line_and_answers_504_before_it(timed_url, client):
    with httpx.stream("POST", timed_url + "/api/generate", json=COUNTING, timeout=GIVE_UP_S) as held:
        lines = [json.loads(line) for line in held.iter_lines()]
    assert held.status_code == 200 and lines[0]["done"] is False
    assert "timed out after 1.5 s" in lines[-1]["error"] and not any(x.get("done") for x in lines)
    late = httpx.post(timed_url + "/api/generate", json={**COUNTING, "stream": False}, timeout=GIVE_UP_S)
    assert late.status_code == 504 and "timed out" in late.json()["error"]
    wait_for("the timed-out requests' slots are free", lambda: not any(s.busy for s in slots(client)))


# -- disconnects and slow readers -----------------------------------------------------------------


@pytest.fixture
def one_slot(monkeypatch, client):
    """The model reloaded with a single slot: a request that kept it would hold up every other."""
    monkeypatch.setenv("LLAMANATIVE_NUM_PARALLEL", "1")
    yield
    monkeypatch.delenv("LLAMANATIVE_NUM_PARALLEL")


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "not-streamed"])
def test_a_disconnect_frees_the_slot_and_the_next_request_is_served(url, client, one_slot, stream):
    body = {"model": "smol", "prompt": "Count from 1 to 1000: 1, 2,", "raw": True, "stream": stream, "options": LONG}
    sock = raw_request(url, "/api/generate", body)
    if stream:
        got = b""
        while b'"done":false' not in got:  # the first line has come: the slot is generating
            got += sock.recv(4096)
    else:
        wait_for("the request runs", lambda: any(s.busy for s in slots(client)))
    assert len(slots(client)) == 1
    sock.close()
    wait_for("the slot is free", lambda: not any(s.busy for s in slots(client)))
    r = httpx.post(
        url + "/api/generate",
        json={"model": "smol", "prompt": "Hi", "stream": False, "options": {"num_predict": 3}},
        timeout=GIVE_UP_S,
    )
    assert r.status_code == 200 and r.json()["eval_count"] == 3


def test_a_slow_reader_gets_back_pressure(client, one_slot):
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # inherited by the accepted socket
    listener.bind(("127.0.0.1", 0))
    with running(create_app(client), sock=listener) as base:
        reader = socket.socket()
        reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        body = {"model": "smol", "prompt": "Count from 1 to 1000: 1, 2,", "raw": True, "options": LONG}
        raw_request(base, "/api/generate", body, sock=reader)
        state = wait_for("the unread stream's slot pauses", lambda: next((s for s in slots(client) if s.paused), None))
        assert state.busy and state.paused
        reader.close()
        wait_for("the slot is free", lambda: not any(s.busy for s in slots(client)))


# -- what a request may name ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path,body",
    [
        ("/api/show", {"model": "../../../etc/passwd"}),
        ("/api/show", {"model": "/etc/some.gguf"}),
        ("/api/generate", {"model": "smol", "prompt": "x", "images": ["/etc/passwd"]}),
        ("/api/chat", {"model": "smol", "messages": [{"role": "user", "content": "x", "images": ["../a.png"]}]}),
        ("/api/create", {"model": "x", "from": "/etc/passwd"}),
        ("/api/create", {"model": "x", "files": {"../../x.gguf": "sha256:" + "0" * 64}}),
        ("/api/create", {"model": "x", "files": {"x.gguf": "/etc/passwd"}}),
        ("/api/create", {"model": "../x", "from": "smol"}),
        ("/api/copy", {"source": "smol", "destination": "../../outside"}),
    ],
)
def test_no_path_outside_the_store(url, path, body):
    r = httpx.post(url + path, json=body)
    assert r.status_code == 400, r.text
    assert "error" in r.json()


def test_blobs_head_and_upload_checked_against_the_digest(url, store):
    data = b"GGUF not really, but bytes"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert httpx.head(f"{url}/api/blobs/{digest}").status_code == 404
    wrong = httpx.post(f"{url}/api/blobs/sha256:{'0' * 64}", content=data)
    assert wrong.status_code == 400 and "digest mismatch" in wrong.json()["error"]
    assert not [p for p in (store / "blobs").iterdir() if p.name.startswith(".tmp")]  # nothing left behind
    assert httpx.post(f"{url}/api/blobs/{digest}", content=data).status_code == 201
    assert (store / "blobs" / f"sha256-{digest[7:]}").read_bytes() == data
    assert httpx.post(f"{url}/api/blobs/{digest}", content=data).status_code == 200  # already there
    assert httpx.head(f"{url}/api/blobs/{digest}").status_code == 200
    for bad in ("..%2F..%2Fetc%2Fpasswd", "sha256:..%2F..%2Fx", "md5:abc", f"sha256:{'g' * 64}"):
        r = httpx.post(f"{url}/api/blobs/{bad}", content=data)
        assert r.status_code in (400, 404), (bad, r.status_code)
        assert "error" in r.json()


def test_images_are_base64_on_the_wire(url):
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n not an image").decode()
    r = httpx.post(url + "/api/generate", json={"model": "smol", "prompt": "x", "images": [png]})
    assert r.status_code == 400 and "does not support vision" in r.json()["error"]
    r = httpx.post(url + "/api/generate", json={"model": "smol", "prompt": "x", "images": ["not base64!"]})
    assert r.status_code == 400 and "base64" in r.json()["error"]
