"""pull over real HTTP: an Ollama-style registry, a Hugging Face-style API and plain URLs.

Every test starts a small HTTP server on 127.0.0.1 that implements the same
protocol as the real services (which a test machine may not reach):
registry v2 manifests and blobs, the Hub's tree listing and resolve URLs,
Range requests. The full pull serves the real SmolLM2 GGUF and runs it; the
other tests use small blobs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from llamanative import Client
from llamanative.errors import AuthorizationError, StatusError
from llamanative.store import ModelStore, download
from llamanative.store.pull import pull
from llamanative.types import PullRequest

MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MODEL = "application/vnd.ollama.image.model"
TEMPLATE = "application/vnd.ollama.image.template"
PARAMS = "application/vnd.ollama.image.params"
CONFIG = "application/vnd.docker.container.image.v1+json"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


# -- the local server ------------------------------------------------------------------------


@dataclass
class Seen:
    path: str
    headers: object  # email.message.Message: case-insensitive .get()


class Server:
    """A threaded HTTP/1.1 server; ``routes`` maps a path to ``fn(handler)``, ``seen`` records requests."""

    def __init__(self) -> None:
        self.routes: dict = {}
        self.seen: list[Seen] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                outer.seen.append(Seen(self.path, self.headers))
                fn = outer.routes.get(unquote(urlsplit(self.path).path))
                if fn is None:
                    send_json(self, {"errors": [{"code": "NOT_FOUND", "message": "not here"}]}, 404)
                else:
                    fn(self)

            def log_message(self, *args) -> None:
                pass

        class Quiet(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address) -> None:
                pass  # clients that stop reading (cancelled pulls) are expected here

        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.url = f"http://{self.host}"

    def requests_to(self, prefix: str) -> list[Seen]:
        return [s for s in self.seen if urlsplit(s.path).path.startswith(prefix)]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def send_json(h, obj, status: int = 200, headers: dict | None = None) -> None:
    body = json.dumps(obj).encode()
    h.send_response(status)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(body)))
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(body)


def send_blob(
    h,
    src: bytes | Path,
    *,
    ranges: bool = True,
    drop_after: int | None = None,
    chunk: int = 1 << 20,
    delay: float = 0.0,
    headers: dict | None = None,
) -> None:
    """Send ``src`` (bytes, or a file read from disk in chunks), honouring ``Range`` unless told not to.

    ``drop_after``: close the socket after that many body bytes. ``delay``: sleep between chunks.
    """
    size = len(src) if isinstance(src, bytes) else src.stat().st_size
    start = 0
    m = re.fullmatch(r"bytes=(\d+)-", h.headers.get("Range") or "")
    if ranges and m:
        start = int(m[1])
        h.send_response(206)
        h.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
    else:
        h.send_response(200)
    h.send_header("Content-Length", str(size - start))
    h.send_header("Content-Type", "application/octet-stream")
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    f = None if isinstance(src, bytes) else open(src, "rb")
    try:
        if f:
            f.seek(start)
        pos, sent = start, 0
        while pos < size:
            piece = src[pos : pos + chunk] if f is None else f.read(chunk)
            if drop_after is not None and sent + len(piece) >= drop_after:
                h.wfile.write(piece[: drop_after - sent])
                h.wfile.flush()
                h.close_connection = True
                h.connection.shutdown(socket.SHUT_RDWR)  # mid-body: the client sees a cut connection
                return
            h.wfile.write(piece)
            pos += len(piece)
            sent += len(piece)
            if delay:
                h.wfile.flush()
                time.sleep(delay)
    finally:
        if f:
            f.close()


def digest_of(src: bytes | Path) -> str:
    if isinstance(src, bytes):
        return "sha256:" + hashlib.sha256(src).hexdigest()
    h = hashlib.sha256()
    with open(src, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


@dataclass
class Published:
    manifest: bytes
    layers: list[tuple[str, str, int]]  # (media type, digest, size), config last
    blob_paths: dict[str, str]  # digest -> URL path

    def digest(self, media: str) -> str:
        return next(d for m, d, _ in self.layers if m == media)


def publish(
    server: Server,
    name: str,
    tag: str,
    layers: list[tuple[str, bytes | Path]],
    *,
    config: dict | None = None,
    blob_opts: dict | None = None,
    digests: dict | None = None,
) -> Published:
    """Serve a model on ``server`` as a registry does; ``blob_opts`` (by media type) go to :func:`send_blob`."""
    ns, model = name.split("/")
    entries, paths = [], {}
    cfg = json.dumps(config or {"model_format": "gguf", "model_family": "llama"}).encode()
    for media, src in [*layers, (CONFIG, cfg)]:
        d = (digests or {}).get(media) or digest_of(src)
        size = len(src) if isinstance(src, bytes) else src.stat().st_size
        entries.append((media, d, size))
        path = f"/v2/{ns}/{model}/blobs/{d}"
        paths[d] = path
        opts = (blob_opts or {}).get(media, {})
        server.routes[path] = lambda h, src=src, opts=opts: send_blob(h, src, **opts)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {"mediaType": CONFIG, "digest": entries[-1][1], "size": entries[-1][2]},
            "layers": [{"mediaType": m, "digest": d, "size": s} for m, d, s in entries[:-1]],
        }
    ).encode()

    def send_manifest(h):
        h.send_response(200)
        h.send_header("Content-Type", MANIFEST)
        h.send_header("Docker-Content-Digest", digest_of(manifest))
        h.send_header("Content-Length", str(len(manifest)))
        h.end_headers()
        h.wfile.write(manifest)

    server.routes[f"/v2/{ns}/{model}/manifests/{tag}"] = send_manifest
    return Published(manifest, entries, paths)


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _local_only(monkeypatch, server):
    """Nothing leaves the machine; retries are quick."""
    monkeypatch.setenv("LLAMANATIVE_REGISTRY", server.url)
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    for var in ("LLAMANATIVE_REGISTRY_TOKEN", "HF_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(
        download,
        "POLICY",
        download.RetryPolicy(attempts=3, first_delay=0.01, max_delay=0.05, connect_timeout=5, read_timeout=5),
    )


@pytest.fixture
def store(tmp_path) -> ModelStore:
    return ModelStore(tmp_path / "models")


BLOB = os.urandom(3 << 20)  # a stand-in "GGUF" for the tests that do not run the model


def small_model(server: Server, name: str = "library/tiny", tag: str = "v1", **kw) -> Published:
    return publish(server, name, tag, [(MODEL, BLOB), (TEMPLATE, b"{{ .Prompt }}")], **kw)


def blob_files(store: ModelStore) -> list[str]:
    return sorted(p.name for p in (store.root / "blobs").iterdir())


def pulling(steps, digest):
    return [p for p in steps if p.digest == digest]


def assert_stored(store: ModelStore, pub: Published, name: str) -> None:
    m = store.resolve(name)
    assert m.digest == digest_of(pub.manifest)
    assert blob_files(store) == sorted(f"sha256-{d[7:]}" for _, d, _ in pub.layers)  # no partial, no lock
    for _, d, size in pub.layers:
        assert digest_of(store.blob_path(d)) == d and store.blob_path(d).stat().st_size == size


# -- the registry ---------------------------------------------------------------------------


def test_full_registry_pull_of_the_real_gguf_then_list_show_generate(tmp_path, server, smollm2_path):
    template = "{{ if .System }}{{ .System }}\n{{ end }}{{ .Prompt }}"
    params = json.dumps({"temperature": 0.2, "top_k": 20}).encode()
    pub = publish(
        server,
        "library/smol",
        "135m",
        [(MODEL, smollm2_path), (TEMPLATE, template.encode()), (PARAMS, params)],
        digests={MODEL: "sha256:" + SMOLLM2_SHA256},
    )
    c = Client(models_dir=str(tmp_path / "models"))
    steps = list(c.pull("smol:135m", stream=True))

    statuses = [s.status for s in steps]
    order = [statuses[0]] + [s for i, s in enumerate(statuses[1:], 1) if s != statuses[i - 1]]
    assert order == [
        "pulling manifest",
        *(f"pulling {d[7:19]}" for _, d, _ in pub.layers),
        "verifying sha256 digest",
        "writing manifest",
        "success",
    ]
    for _media, digest, size in pub.layers:  # model, template, params, then config, as Ollama
        mine = pulling(steps, digest)
        assert mine and all(p.total == size and 0 <= p.completed <= size for p in mine)
        assert [p.completed for p in mine] == sorted(p.completed for p in mine)
        assert mine[-1].completed == size
    assert all(p.digest is None for p in steps if not p.status.startswith("pulling ") or p.status == "pulling manifest")

    manifest = tmp_path / "models/manifests/registry.ollama.ai/library/smol/135m"
    assert manifest.read_bytes() == pub.manifest  # byte for byte: the digest is the registry's
    assert_stored(c.store, pub, "smol:135m")
    listed = {m.model: m for m in c.list().models}
    assert listed["smol:135m"].digest == digest_of(pub.manifest)[7:]
    assert listed["smol:135m"].size == sum(s for _, _, s in pub.layers)
    shown = c.show("smol:135m")
    assert shown.template == template and "temperature" in shown.parameters
    r = c.generate("smol:135m", "The capital of France is", options={"num_predict": 3})
    assert r.done and r.eval_count <= 3
    c.close()


def test_existing_blobs_are_reused(store, server):
    pub = small_model(server)
    list(pull(store, "tiny:v1"))
    blob_requests = len(server.requests_to("/v2/library/tiny/blobs/"))
    steps = list(pull(store, "tiny:v1"))
    assert len(server.requests_to("/v2/library/tiny/blobs/")) == blob_requests  # nothing downloaded again
    for _, d, size in pub.layers:
        assert [(p.completed, p.total) for p in pulling(steps, d)] == [(size, size)]  # done at once
    assert steps[-1].status == "success"
    assert_stored(store, pub, "tiny:v1")


def test_resume_after_a_dropped_connection(store, server):
    pub = small_model(server)
    d = pub.digest(MODEL)
    calls = []

    def flaky(h):
        calls.append(h.headers.get("Range"))
        send_blob(h, BLOB, drop_after=1_000_000 if len(calls) == 1 else None, chunk=1 << 16)

    server.routes[pub.blob_paths[d]] = flaky
    steps = list(pull(store, "tiny:v1"))
    assert calls == [None, "bytes=1000000-"]
    assert steps[-1].status == "success" and pulling(steps, d)[-1].completed == len(BLOB)
    assert_stored(store, pub, "tiny:v1")


def test_a_server_that_ignores_range_restarts_from_zero(store, server):
    pub = small_model(server)
    d = pub.digest(MODEL)
    calls = []

    def no_ranges(h):
        calls.append(h.headers.get("Range"))
        send_blob(h, BLOB, ranges=False, drop_after=500_000 if len(calls) == 1 else None, chunk=1 << 16)

    server.routes[pub.blob_paths[d]] = no_ranges
    list(pull(store, "tiny:v1"))
    assert calls == [None, "bytes=500000-"]  # asked to resume, got a 200 with the whole blob
    assert_stored(store, pub, "tiny:v1")


def test_transient_errors_are_retried_and_then_reported(store, server):
    pub = small_model(server)
    d = pub.digest(MODEL)
    answers = iter([503, 502])

    def unwell(h):
        code = next(answers, None)
        if code:
            send_json(h, {"errors": [{"message": "busy"}]}, code)
        else:
            send_blob(h, BLOB)

    server.routes[pub.blob_paths[d]] = unwell
    list(pull(store, "tiny:v1"))
    assert_stored(store, pub, "tiny:v1")

    server.routes[pub.blob_paths[d]] = lambda h: send_json(h, {"errors": [{"message": "down"}]}, 500)
    store2 = ModelStore(store.root.parent / "other")
    with pytest.raises(StatusError) as e:
        list(pull(store2, "tiny:v1"))
    assert e.value.status_code == 500 and "gave up after 3 attempts" in e.value.error


def test_a_corrupted_blob_is_refused_and_deleted(store, server):
    good = small_model(server)
    bad = bytes(b ^ 0xFF for b in BLOB[:10]) + BLOB[10:]  # same size, other content
    d = good.digest(MODEL)
    server.routes[good.blob_paths[d]] = lambda h: send_blob(h, bad)
    with pytest.raises(StatusError) as e:
        list(pull(store, "tiny:v1"))
    assert e.value.status_code == 500
    assert d in e.value.error and digest_of(bad) in e.value.error and "digest mismatch" in e.value.error
    assert not any(n.startswith(f"sha256-{d[7:]}") for n in blob_files(store))  # no blob, no partial
    assert store.list() == []


def test_unknown_model_is_404(store, server):
    with pytest.raises(StatusError) as e:
        list(pull(store, "nothing-here:v9"))
    assert e.value.status_code == 404
    assert "pull model manifest: file does not exist" in e.value.error and "nothing-here:v9" in e.value.error


def test_401_is_an_authorization_error_and_the_token_does_not_leak(store, server, monkeypatch, caplog):
    secret = "sekrit-token-0123456789"
    monkeypatch.setenv("LLAMANATIVE_REGISTRY_TOKEN", secret)
    realm = f"{server.url}/token"

    def refuse(h):
        send_json(
            h,
            {"errors": [{"code": "UNAUTHORIZED", "message": f"bad token {secret}"}]},
            401,
            {"WWW-Authenticate": f'Bearer realm="{realm}",service="test"'},
        )

    server.routes["/v2/library/private/manifests/latest"] = refuse
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthorizationError) as e:
        list(pull(store, "private"))
    assert e.value.status_code == 401 and e.value.signin_url == realm
    assert secret not in str(e.value) and secret not in caplog.text
    assert server.seen[-1].headers.get("Authorization") == f"Bearer {secret}"  # it was sent

    server.routes["/v2/library/private/manifests/latest"] = lambda h: send_json(h, {}, 403)
    with pytest.raises(AuthorizationError) as e:
        list(pull(store, "private"))
    assert e.value.status_code == 403 and e.value.signin_url == "https://ollama.com/connect"
    # A name that names another host never gets the token.
    publish(server, "library/tiny", "v1", [(MODEL, BLOB)])
    list(pull(store, f"{server.host}/library/tiny:v1", insecure=True))
    assert server.seen[-1].headers.get("Authorization") is None


def test_plain_http_needs_insecure_unless_the_registry_variable_says_so(store, server):
    pub = small_model(server)
    with pytest.raises(StatusError) as e:
        list(pull(store, f"http://{server.host}/library/tiny:v1"))
    assert e.value.status_code == 400 and "insecure" in e.value.error
    list(pull(store, f"http://{server.host}/library/tiny:v1", insecure=True))
    list(pull(store, f"{server.host}/library/tiny:v1", insecure=True))  # host from the name, http
    assert_stored(store, pub, f"{server.host}/library/tiny:v1")
    list(pull(store, "tiny:v1"))  # LLAMANATIVE_REGISTRY=http://... is explicit enough
    assert {m.name for m in store.list()} == {"tiny:v1", f"{server.host}/library/tiny:v1"}


def test_a_slow_download_reports_progress_along_the_way(store, server):
    pub = small_model(server, blob_opts={MODEL: {"chunk": 256 << 10, "delay": 0.06}})
    d = pub.digest(MODEL)
    mine = pulling(list(pull(store, "tiny:v1")), d)
    assert len(mine) >= 5
    done = [p.completed for p in mine]
    assert done == sorted(done) and 0 < done[len(done) // 2] < len(BLOB) and done[-1] == mine[-1].total == len(BLOB)


def test_two_concurrent_pulls_of_one_model(store, server):
    pub = small_model(server, blob_opts={MODEL: {"chunk": 512 << 10, "delay": 0.03}})
    results, errors = [], []

    def run():
        try:
            results.append(list(pull(ModelStore(store.root), "tiny:v1")))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and len(results) == 2 and all(r[-1].status == "success" for r in results)
    for _, d, _ in pub.layers:  # every blob crossed the network once: the second pull waited for it
        assert len(server.requests_to(pub.blob_paths[d])) == 1
    assert_stored(store, pub, "tiny:v1")


def test_a_raising_callback_keeps_the_partial_file_and_the_next_pull_resumes(tmp_path, server):
    pub = small_model(server, blob_opts={MODEL: {"chunk": 256 << 10, "delay": 0.02}})
    d = pub.digest(MODEL)
    c = Client(models_dir=str(tmp_path / "models"))

    def stop_midway(p):
        if p.digest == d and 0 < (p.completed or 0) < len(BLOB):
            raise KeyboardInterrupt("enough")  # not an Exception: it must still stop the pull cleanly

    with pytest.raises(KeyboardInterrupt):
        c.pull(PullRequest(model="tiny:v1"), stop_midway)
    partial = c.store.root / "blobs" / f"sha256-{d[7:]}-partial"
    kept = partial.stat().st_size
    assert 0 < kept < len(BLOB)
    assert not list(c.store.root.glob("blobs/*.lock")) and c.store.list() == []

    # A stream abandoned mid-download keeps it too.
    it = c.pull("tiny:v1", stream=True)
    for p in it:
        if p.digest == d and (p.completed or 0) > kept:
            break
    it.close()
    kept = partial.stat().st_size

    assert c.pull("tiny:v1").status == "success"
    ranges = [s.headers.get("Range") for s in server.requests_to(pub.blob_paths[d])]
    assert ranges[-1] == f"bytes={kept}-"
    assert_stored(c.store, pub, "tiny:v1")
    c.close()


def test_delete_leaves_a_pull_in_progress_alone(store, server):
    small_model(server)
    list(pull(store, "tiny:v1"))
    partial = store.root / "blobs" / f"sha256-{'0' * 64}-partial"
    partial.write_bytes(b"half")
    store.delete("tiny:v1")
    assert blob_files(store) == [partial.name]


# -- Hugging Face ---------------------------------------------------------------------------

Q4 = b"GGUF" + os.urandom(600_000)
Q8 = b"GGUF" + os.urandom(900_000)


def hf_repo(server: Server, repo: str = "org/tiny-GGUF", *, tree: bool = True, q4_sha: str | None = None) -> None:
    files = {"tiny-Q4_K_M.gguf": Q4, "tiny-Q8_0.gguf": Q8, "mmproj-tiny-F16.gguf": b"GGUFproj"}
    for path, data in files.items():
        server.routes[f"/{repo}/resolve/main/{path}"] = lambda h, data=data: send_blob(h, data)
    sha = {p: hashlib.sha256(d).hexdigest() for p, d in files.items()}
    if q4_sha:
        sha["tiny-Q4_K_M.gguf"] = q4_sha
    if tree:
        listing = [{"type": "file", "path": "README.md", "size": 10, "oid": "a" * 40}] + [
            {
                "type": "file",
                "path": p,
                "size": len(d),
                "oid": "b" * 40,
                "lfs": {"oid": sha[p], "size": len(d), "pointerSize": 134},
            }
            for p, d in files.items()
        ]
        server.routes[f"/api/models/{repo}/tree/main"] = lambda h: send_json(h, listing)
    info = {
        "id": repo,
        "siblings": [{"rfilename": "README.md"}]
        + [{"rfilename": p, "size": len(d), "lfs": {"sha256": sha[p], "size": len(d)}} for p, d in files.items()],
    }
    server.routes[f"/api/models/{repo}"] = lambda h: send_json(h, info)


def test_hugging_face_default_quant_explicit_quant_and_missing_quant(store, server):
    hf_repo(server)
    steps = list(pull(store, "hf.co/org/tiny-GGUF"))
    q4 = digest_of(Q4)
    assert [s.status for s in steps][0] == "pulling manifest" and steps[-1].status == "success"
    assert pulling(steps, q4)[-1].completed == len(Q4) and pulling(steps, q4)[0].status == f"pulling {q4[7:19]}"
    m = store.resolve("hf.co/org/tiny-GGUF:latest")  # as written, like Ollama: Q4_K_M
    assert m.name == "hf.co/org/tiny-GGUF:latest" and Path(m.path) == store.blob_path(q4)
    assert server.seen[0].path.startswith("/api/models/org/tiny-GGUF/tree/main")

    list(pull(store, "hf.co/org/tiny-GGUF:q8_0"))  # case-insensitive
    assert Path(store.resolve("hf.co/org/tiny-GGUF:q8_0").path) == store.blob_path(digest_of(Q8))
    list(pull(store, "huggingface.co/org/tiny-GGUF:Q4_K_M"))
    assert store.resolve("huggingface.co/org/tiny-GGUF:Q4_K_M").layers[0]["digest"] == q4

    for quant in ("Q5_K_M", "Q4_K"):  # Q4_K is not Q4_K_M
        with pytest.raises(StatusError) as e:
            list(pull(store, f"hf.co/org/tiny-GGUF:{quant}"))
        assert e.value.status_code == 404 and "available: Q4_K_M, Q8_0" in e.value.error and quant in e.value.error
    assert "F16" not in e.value.error  # the projector is not a quantisation of the model


def test_hugging_face_siblings_listing_digest_check_and_errors(store, server, monkeypatch):
    hf_repo(server, tree=False, q4_sha="0" * 64)
    with pytest.raises(StatusError) as e:
        list(pull(store, "hf.co/org/tiny-GGUF"))
    assert e.value.status_code == 500 and "digest mismatch" in e.value.error and "0" * 64 in e.value.error
    assert blob_files(store) == [] and store.list() == []
    list(pull(store, "hf.co/org/tiny-GGUF:Q8_0"))  # from the siblings of /api/models/<repo>
    assert store.resolve("hf.co/org/tiny-GGUF:Q8_0").layers[0]["digest"] == digest_of(Q8)

    secret = "hf_sekrit0123456789"
    monkeypatch.setenv("HF_TOKEN", secret)
    server.routes["/api/models/org/gated/tree/main"] = lambda h: send_json(
        h, {"error": "Access to model org/gated is restricted"}, 403, {"X-Error-Code": "GatedRepo"}
    )
    with pytest.raises(AuthorizationError) as e:
        list(pull(store, "hf.co/org/gated:Q4_K_M"))
    assert e.value.status_code == 403 and e.value.signin_url == "https://huggingface.co/login"
    assert "gated" in str(e.value) and secret not in str(e.value)
    assert server.seen[-1].headers.get("Authorization") == f"Bearer {secret}"
    server.routes["/api/models/org/gone/tree/main"] = lambda h: send_json(
        h, {"error": "Repository not found"}, 401, {"X-Error-Code": "RepoNotFound"}
    )
    with pytest.raises(StatusError) as e:
        list(pull(store, "hf.co/org/gone"))
    assert e.value.status_code == 404 and "org/gone" in e.value.error


# -- plain URLs -----------------------------------------------------------------------------


def test_direct_url_download_with_resume(store, server):
    calls = []

    def file(h):
        calls.append((h.headers.get("Range"), h.headers.get("If-Range")))
        send_blob(h, Q8, drop_after=300_000 if len(calls) == 1 else None, chunk=1 << 16, headers={"ETag": '"v1"'})

    server.routes["/files/My Tiny Model.Q8_0.gguf"] = file
    url = f"{server.url}/files/My%20Tiny%20Model.Q8_0.gguf"
    with pytest.raises(StatusError) as e:
        list(pull(store, url))
    assert e.value.status_code == 400 and "insecure" in e.value.error
    steps = list(pull(store, url, insecure=True))
    assert calls == [(None, None), ("bytes=300000-", '"v1"')]  # resumed, guarded by the ETag
    downloading = [p for p in steps if p.status.startswith("pulling ") and p.status != "pulling manifest"]
    assert {p.status for p in downloading} == {"pulling My Tiny Model.Q8_0.gguf"}  # no digest known yet
    assert all(p.digest is None for p in downloading)
    assert downloading[-1].completed == downloading[-1].total == len(Q8) and steps[-1].status == "success"
    m = store.resolve("my-tiny-model.q8_0:latest")  # named after the file
    assert Path(m.path) == store.blob_path(digest_of(Q8))
    assert all(re.fullmatch(r"sha256-[0-9a-f]{64}", n) for n in blob_files(store))  # no partial, no validator
