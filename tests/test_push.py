"""push over real HTTP, to a loopback registry that stores what it receives.

The registry (:class:`Registry`) implements the Docker registry v2 upload
protocol as registries answer it: ``HEAD`` of a blob, ``POST .../blobs/uploads/``
(202 with a Location), ``PATCH`` parts checked against ``Content-Range``,
``GET`` of an upload (204 with ``Range``), ``PUT ...?digest=`` checked against
the sha256 of what arrived, ``PUT .../manifests/<tag>``, and ``GET`` of
manifests and blobs, so a pushed model is pulled back by the same code as
any registry model. Faults are injected per request.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from test_pull import digest_of, send_blob
from test_pull import send_json as _send_json

from llamanative import Client
from llamanative.errors import AuthorizationError, StatusError
from llamanative.store import download, upload

MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
PROJECTOR = "application/vnd.ollama.image.projector"
MODEL = "application/vnd.ollama.image.model"


def send_json(h, obj, status: int = 200, headers: dict | None = None) -> None:
    """An error answer; to a HEAD, without its body (a body there would be read as the next answer)."""
    if h.command != "HEAD":
        _send_json(h, obj, status, headers)
        return
    h.send_response(status)
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.send_header("Content-Length", "0")
    h.end_headers()


@dataclass
class Seen:
    method: str
    path: str
    headers: object  # email.message.Message
    length: int = 0


@dataclass
class Registry:
    """A registry on 127.0.0.1 that keeps blobs in ``root`` and manifests in memory."""

    root: Path
    token: str | None = None
    seen: list[Seen] = field(default_factory=list)
    manifests: dict[str, bytes] = field(default_factory=dict)
    faults: list[Callable] = field(default_factory=list)
    "Each ``fn(handler, seen) -> bool`` may answer a request itself (True) instead of the registry."

    def __post_init__(self) -> None:
        (self.root / "blobs").mkdir(parents=True)
        (self.root / "uploads").mkdir()
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_one(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                s = Seen(self.command, self.path, self.headers, length)
                outer.seen.append(s)
                for fault in list(outer.faults):
                    if fault(self, s):
                        return
                if outer.token and self.headers.get("Authorization") != f"Bearer {outer.token}":
                    self.rfile.read(length)
                    send_json(
                        self,
                        {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                        401,
                        {"WWW-Authenticate": f'Bearer realm="{outer.url}/token",service="test"'},
                    )
                    return
                outer.answer(self, length)

            do_GET = do_HEAD = do_POST = do_PATCH = do_PUT = handle_one

            def log_message(self, *args) -> None:
                pass

        class Quiet(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address) -> None:
                pass

        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.url = f"http://{self.host}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def blob(self, digest: str) -> Path:
        return self.root / "blobs" / digest.replace(":", "-")

    def requests(self, method: str, part: str = "") -> list[Seen]:
        return [s for s in self.seen if s.method == method and part in s.path]

    def answer(self, h: BaseHTTPRequestHandler, length: int) -> None:
        url = urlsplit(h.path)
        parts = url.path.strip("/").split("/")  # v2 ns model kind ...
        if len(parts) < 5 or parts[0] != "v2":
            send_json(h, {"errors": [{"code": "NOT_FOUND"}]}, 404)
            return
        repo, kind, rest = "/".join(parts[1:3]), parts[3], parts[4:]
        m = h.command
        if kind == "manifests":
            key = f"{repo}:{rest[0]}"
            if m == "PUT":
                body = h.rfile.read(length)
                names = json.loads(body)
                missing = [
                    b["digest"] for b in [*names["layers"], names["config"]] if not self.blob(b["digest"]).exists()
                ]
                if missing:
                    send_json(h, {"errors": [{"code": "MANIFEST_BLOB_UNKNOWN", "message": missing[0]}]}, 400)
                    return
                self.manifests[key] = body
                h.send_response(201)
                h.send_header("Docker-Content-Digest", digest_of(body))
                h.send_header("Content-Length", "0")
                h.end_headers()
            elif key in self.manifests:
                body = self.manifests[key]
                h.send_response(200)
                h.send_header("Content-Type", MANIFEST)
                h.send_header("Docker-Content-Digest", digest_of(body))
                h.send_header("Content-Length", str(len(body)))
                h.end_headers()
                h.wfile.write(body)
            else:
                send_json(h, {"errors": [{"code": "MANIFEST_UNKNOWN"}]}, 404)
            return
        if kind == "blobs" and rest[0] == "uploads":
            self.upload(h, repo, rest[1] if len(rest) > 1 else "", parse_qs(url.query), length)
            return
        path = self.blob(rest[0])
        if not path.exists():
            send_json(h, {"errors": [{"code": "BLOB_UNKNOWN"}]}, 404)
        elif m == "HEAD":
            h.send_response(200)
            h.send_header("Content-Length", str(path.stat().st_size))
            h.end_headers()
        else:
            send_blob(h, path)

    def upload(self, h, repo: str, uid: str, query: dict, length: int) -> None:
        m = h.command
        if m == "POST":
            uid = uuid.uuid4().hex
            (self.root / "uploads" / uid).write_bytes(b"")
            self._at(h, 202, repo, uid)
            return
        part = self.root / "uploads" / uid
        if not part.exists():
            send_json(h, {"errors": [{"code": "BLOB_UPLOAD_UNKNOWN"}]}, 404)
            return
        have = part.stat().st_size
        if m == "GET":
            self._at(h, 204, repo, uid)
            return
        if m == "PATCH":
            first = int(h.headers["Content-Range"].split("-")[0])
            if first != have:
                h.rfile.read(length)
                self._at(h, 416, repo, uid)
                return
            self._receive(h, part, length)
            self._at(h, 202, repo, uid)
            return
        # PUT ?digest=: the last bytes (if any) and the check
        self._receive(h, part, length)
        digest = query["digest"][0]
        got = digest_of(part)
        if got != digest:
            send_json(h, {"errors": [{"code": "DIGEST_INVALID", "message": f"got {got}"}]}, 400)
            return
        part.replace(self.blob(digest))
        h.send_response(201)
        h.send_header("Location", f"/v2/{repo}/blobs/{digest}")
        h.send_header("Content-Length", "0")
        h.end_headers()

    def _receive(self, h, part: Path, length: int) -> None:
        with open(part, "ab") as f:
            left = length
            while left:
                piece = h.rfile.read(min(left, 1 << 20))
                if not piece:
                    break
                f.write(piece)
                left -= len(piece)

    def _at(self, h, code: int, repo: str, uid: str) -> None:
        have = (self.root / "uploads" / uid).stat().st_size
        h.send_response(code)
        h.send_header("Location", f"/v2/{repo}/blobs/uploads/{uid}?_state=abc")
        h.send_header("Docker-Upload-UUID", uid)
        h.send_header("Range", f"0-{max(have - 1, 0)}")
        h.send_header("Content-Length", "0")
        h.end_headers()


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def reg(tmp_path):
    r = Registry(tmp_path / "registry")
    yield r
    r.close()


@pytest.fixture(autouse=True)
def _local_only(monkeypatch, reg):
    """The registry is the loopback one; retries are quick; parts are small, so a blob takes several."""
    monkeypatch.setenv("LLAMANATIVE_REGISTRY", reg.url)
    monkeypatch.delenv("LLAMANATIVE_REGISTRY_TOKEN", raising=False)
    monkeypatch.setattr(
        download,
        "POLICY",
        download.RetryPolicy(attempts=3, first_delay=0.01, max_delay=0.05, connect_timeout=5, read_timeout=10),
    )
    monkeypatch.setattr(upload, "MIN_PART", 1 << 20)


@pytest.fixture
def client(tmp_path) -> Client:
    c = Client(models_dir=str(tmp_path / "models"))
    yield c
    c.close()


BLOB = b"GGUF" + bytes(range(256)) * 12_000  # ~3 MB: three parts of 1 MiB


def small_model(tmp_path: Path, client: Client, name: str = "alice/tiny:v1") -> Path:
    """A stored model whose GGUF is BLOB (create checks only the magic), with a template layer."""
    path = tmp_path / "tiny.gguf"
    path.write_bytes(BLOB)
    client.create(name, from_=str(path), template="{{ .Prompt }}")
    return path


def blobs_of(raw: bytes) -> list[dict]:
    m = json.loads(raw)
    return [*m["layers"], m["config"]]


def stored_manifest(c: Client, name: str) -> bytes:
    from llamanative.store.names import parse_name

    return c.store.manifest_path(parse_name(name)).read_bytes()


# -- tests -------------------------------------------------------------------------------------


def test_push_with_a_projector_then_pull_back_byte_identical(tmp_path, monkeypatch, reg, client, vision_pair):
    model, projector = vision_pair
    secret = "push-token-0123456789"
    monkeypatch.setenv("LLAMANATIVE_REGISTRY_TOKEN", secret)
    reg.token = secret
    client.create("alice/vision:v1", from_=str(model), projector=str(projector), system="Describe.")
    raw = stored_manifest(client, "alice/vision:v1")
    layers = blobs_of(raw)
    assert PROJECTOR in {b["mediaType"] for b in layers}

    steps = list(client.push("alice/vision:v1", stream=True))
    statuses = [s.status for s in steps]
    assert statuses[0] == "retrieving manifest" and statuses[-2:] == ["pushing manifest", "success"]
    for b in layers:  # every blob, the projector and the config included, in the manifest's order
        mine = [s for s in steps if s.digest == b["digest"]]
        assert mine and {s.status for s in mine} == {f"pushing {b['digest'][7:19]}"}
        assert all(s.total == b["size"] for s in mine) and mine[0].completed == 0 and mine[-1].completed == b["size"]
    order = [s.digest for s in steps if s.digest]
    assert sorted(set(order), key=order.index) == [b["digest"] for b in layers]
    assert all(s.headers.get("Authorization") == f"Bearer {secret}" for s in reg.seen)
    big = max(layers, key=lambda b: b["size"])
    assert len(reg.requests("PATCH")) > 1 and big["size"] > (1 << 20)  # the model went in parts

    assert reg.manifests["alice/vision:v1"] == raw  # byte for byte
    other = Client(models_dir=str(tmp_path / "elsewhere"))
    try:
        assert other.pull("alice/vision:v1").status == "success"
        assert stored_manifest(other, "alice/vision:v1") == raw
        for b in layers:
            a, p = client.store.blob_path(b["digest"]), other.store.blob_path(b["digest"])
            assert p.read_bytes() == a.read_bytes()
        pulled = other.store.resolve("alice/vision:v1")
        assert pulled.projector and Path(pulled.projector).read_bytes() == projector.read_bytes()
    finally:
        other.close()


def test_blobs_the_registry_has_are_not_sent_again(tmp_path, reg, client):
    gguf = small_model(tmp_path, client)
    assert client.push("alice/tiny:v1").status == "success"
    uploads = len(reg.requests("POST"))
    assert uploads == len(blobs_of(stored_manifest(client, "alice/tiny:v1")))

    steps = list(client.push("alice/tiny:v1", stream=True))
    assert len(reg.requests("POST")) == uploads  # HEAD said present: nothing uploaded
    for b in blobs_of(stored_manifest(client, "alice/tiny:v1")):
        assert [(s.completed, s.total) for s in steps if s.digest == b["digest"]] == [(b["size"], b["size"])]
    assert steps[-1].status == "success"

    # Another model sharing the GGUF: only its new layers go up.
    client.create("alice/tiny:v2", from_=str(gguf), system="Be brief.")
    client.push("alice/tiny:v2")
    old = {b["digest"] for b in blobs_of(stored_manifest(client, "alice/tiny:v1"))}
    new = [b for b in blobs_of(stored_manifest(client, "alice/tiny:v2")) if b["digest"] not in old]
    assert [b["mediaType"] for b in new] == ["application/vnd.ollama.image.system"]
    assert len(reg.requests("POST")) == uploads + 1
    assert json.loads(reg.manifests["alice/tiny:v2"])["layers"][0]["digest"] == digest_of(BLOB)


def test_a_failed_part_resumes_from_what_the_registry_holds(tmp_path, reg, client):
    small_model(tmp_path, client)
    cut = []

    def keep_half_then_fail(h, seen) -> bool:
        if seen.method != "PATCH" or cut or not (h.headers.get("Content-Range") or "").startswith(f"{1 << 20}-"):
            return False
        uid = urlsplit(h.path).path.rsplit("/", 1)[-1]
        body = h.rfile.read(seen.length)
        with open(reg.root / "uploads" / uid, "ab") as f:
            f.write(body[: len(body) // 2])  # the registry kept half of the part, then failed
        cut.append(len(body) // 2)
        send_json(h, {"errors": [{"message": "storage hiccup"}]}, 500)
        return True

    reg.faults.append(keep_half_then_fail)
    assert client.push("alice/tiny:v1").status == "success"
    ranges = [s.headers["Content-Range"] for s in reg.requests("PATCH") if s.headers.get("Content-Range")]
    first, n = 1 << 20, cut[0]
    assert f"{first}-{2 * first - 1}" in ranges and f"{first + n}-" in "".join(ranges)  # resumed mid-part
    assert reg.requests("GET", "/blobs/uploads/")  # asked where it stood
    assert reg.blob(digest_of(BLOB)).read_bytes() == BLOB


def test_5xx_are_retried_then_reported(tmp_path, reg, client):
    gguf = small_model(tmp_path, client)
    answers = iter([503, 502])

    def unwell(h, seen) -> bool:
        if seen.method != "POST":
            return False
        code = next(answers, None)
        if code is None:
            return False
        send_json(h, {"errors": [{"message": "busy"}]}, code)
        return True

    reg.faults.append(unwell)
    assert client.push("alice/tiny:v1").status == "success"

    reg.faults[:] = [lambda h, s: s.method == "HEAD" and (send_json(h, {"errors": [{"message": "down"}]}, 500) or True)]
    client.create("alice/tiny:v3", from_=str(gguf), system="other")
    with pytest.raises(StatusError) as e:
        client.push("alice/tiny:v3")
    assert e.value.status_code == 500 and "gave up after 3 attempts" in e.value.error
    assert "500" in e.value.error


def test_registry_401_is_an_authorization_error_without_the_token(tmp_path, monkeypatch, reg, client):
    small_model(tmp_path, client)
    reg.token = "the-right-one"
    monkeypatch.setenv("LLAMANATIVE_REGISTRY_TOKEN", "wrong-token-0123456789")
    with pytest.raises(AuthorizationError) as e:
        client.push("alice/tiny:v1")
    assert e.value.status_code == 401 and e.value.signin_url == f"{reg.url}/token"
    assert "you are not authorized to push to this namespace" in str(e.value)
    assert "wrong-token-0123456789" not in str(e.value)
    assert reg.seen[-1].headers.get("Authorization") == "Bearer wrong-token-0123456789"


def test_refusals_before_anything_is_sent(tmp_path, reg, client):
    small_model(tmp_path, client, "tiny:v1")
    with pytest.raises(StatusError) as e:
        client.push("tiny:v1")  # no namespace: Ollama's library
    assert e.value.status_code == 400 and "namespace" in e.value.error
    with pytest.raises(StatusError) as e:
        client.push("alice/nothing:v1")
    assert e.value.status_code == 404 and "not found" in e.value.error
    with pytest.raises(StatusError) as e:
        client.push(f"http://{reg.host}/alice/tiny:v1")
    assert e.value.status_code == 400 and "insecure" in e.value.error
    assert reg.seen == []


def test_a_host_in_the_name_with_insecure(tmp_path, reg, client, monkeypatch):
    monkeypatch.setenv("LLAMANATIVE_REGISTRY_TOKEN", "never-sent-0123456789")
    name = f"{reg.host}/library/tiny:v1"  # another host's "library" is that host's business
    small_model(tmp_path, client, name)
    assert client.push(name, insecure=True).status == "success"
    assert reg.manifests["library/tiny:v1"] == stored_manifest(client, name)
    assert all(s.headers.get("Authorization") is None for s in reg.seen)  # the token is the default registry's


def test_a_stopped_push_stores_no_manifest_and_the_next_one_completes(tmp_path, reg, client):
    small_model(tmp_path, client)
    seen = []

    def stop(p):
        seen.append(p)
        if p.digest == digest_of(BLOB) and p.completed == 0:
            raise KeyboardInterrupt("enough")

    with pytest.raises(KeyboardInterrupt):
        client.push(upload_request("alice/tiny:v1"), stop)
    assert reg.manifests == {}
    assert client.push("alice/tiny:v1").status == "success"
    assert reg.blob(digest_of(BLOB)).read_bytes() == BLOB


def upload_request(name: str):
    from llamanative.types import PushRequest

    return PushRequest(model=name)


def test_cli_push(tmp_path, reg, client):
    import os
    import subprocess
    import sys

    small_model(tmp_path, client)
    env = {**os.environ, "LLAMANATIVE_MODELS": str(tmp_path / "models"), "LLAMANATIVE_REGISTRY": reg.url}
    # Outside the checkout: there `-m llamanative` would import its source tree, which has no _core.
    run = {"env": env, "capture_output": True, "text": True, "cwd": tmp_path}
    r = subprocess.run([sys.executable, "-m", "llamanative", "push", "alice/tiny:v1"], **run)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines()[0] == "retrieving manifest" and "success" in r.stderr
    assert f"pushing {digest_of(BLOB)[7:19]}: 100% " in r.stderr
    assert "You can find your model at:" in r.stdout and "alice/tiny:v1" in r.stdout
    assert "alice/tiny:v1" in reg.manifests
    r = subprocess.run([sys.executable, "-m", "llamanative", "push", "tiny"], **run)
    assert r.returncode == 1 and "Error: " in r.stderr and "namespace" in r.stderr and "Traceback" not in r.stderr


def test_server_push_through_the_ollama_package(tmp_path, reg, client):
    ollama = pytest.importorskip("ollama")
    pytest.importorskip("starlette")
    import asyncio

    from http_server import running

    from llamanative import AsyncClient
    from llamanative.server import create_app

    small_model(tmp_path, client)
    served = AsyncClient(models_dir=str(tmp_path / "models"))
    try:
        with running(create_app(served)) as base, ollama.Client(host=base) as oc:
            steps = list(oc.push("alice/tiny:v1", stream=True))
            assert steps[0].status == "retrieving manifest" and steps[-1].status == "success"
            mine = [s for s in steps if s.digest == digest_of(BLOB)]
            assert mine and mine[-1].completed == mine[-1].total == len(BLOB)
            assert oc.push("alice/tiny:v1").status == "success"  # not streamed: the last object
            with pytest.raises(ollama.ResponseError) as e:
                oc.push("alice/nothing:v1")
            assert e.value.status_code == 404
            with pytest.raises(ollama.ResponseError) as e:
                oc.push("tiny")
            assert e.value.status_code == 400 and "namespace" in e.value.error
    finally:
        asyncio.run(served.close())
    assert reg.manifests["alice/tiny:v1"] == stored_manifest(client, "alice/tiny:v1")
