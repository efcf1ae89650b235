"""Push to an Ollama registry: the Docker registry v2 upload protocol, as Ollama speaks it.

Every blob of the stored model (its layers, then the config blob, in the
manifest's order, as Ollama pushes them):

1. ``HEAD {repo}/blobs/{digest}``: a 2xx means the registry has the blob;
   nothing is sent (one progress update, ``completed == total``).
2. ``POST {repo}/blobs/uploads/`` starts an upload: 202 with its
   ``Location`` (or ``Docker-Upload-Location``); a 201 means the registry
   mounted the blob itself.
3. ``PATCH {location}`` sends the blob in parts (``Content-Range:
   <first>-<last>``), ``size / 64`` bytes each, at least :data:`MIN_PART` and
   at most :data:`MAX_PART` (Ollama's sizes), read from disk piece by piece as
   the request goes out: a blob is never held in memory. Each answer gives the
   next location. ``X-Redirect-Uploads: 1`` is sent as Ollama sends it: a
   registry that answers ``307`` names where the part goes (object storage),
   and the part is ``PUT`` there without the registry's credentials.
4. ``PUT {location}?digest=<digest>&etag=<md5s>-<parts>`` completes the
   upload (the registry checks the digest; ``etag`` is Ollama's, for
   registries that assemble the parts in object storage).

Then ``PUT {repo}/manifests/{tag}`` sends the stored manifest byte for byte,
so the model pulled back has the same manifest digest.

Retries and resume: connection errors, timeouts, 408, 429 and 5xx are
retried with backoff (:data:`.download.POLICY`). When a part fails, the
registry is asked what it holds (``GET {location}``: ``204`` with ``Range:
0-<last>``) and the upload goes on from there; a registry that cannot say
gets the blob again from its start under a new upload. An upload is not
resumed across pushes: a push that stopped (a callback that raised, a stream
that was closed, a process that ended) sends an unfinished blob from its
start the next time; the blobs it finished are skipped by step 1.

Names, base URL, ``insecure`` and the token (``$LLAMANATIVE_REGISTRY_TOKEN``,
sent only to the default registry) are those of pull (:mod:`.registry`). A
model without a namespace (``library``, written or implied) is not pushed to
the default registry: that namespace is Ollama's own.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import httpx

from ..errors import AuthorizationError, StatusError
from ..types import ProgressResponse
from . import download, registry
from .names import DEFAULT_HOST, DEFAULT_NAMESPACE
from .store import MEDIA_MANIFEST, ModelStore, is_digest

MIN_PART = 100 * 1000 * 1000
"Smallest part of a chunked upload, in bytes (the last one may be shorter)."
MAX_PART = 1000 * 1000 * 1000
"Largest part of a chunked upload, in bytes."
PARTS = 64
"A blob is cut into this many parts when that keeps them between MIN_PART and MAX_PART."
PIECE = 1 << 20
"Bytes read from disk at a time while a part is sent."


def part_size(total: int) -> int:
    """The size of each part of a ``total``-byte blob (Ollama's rule)."""
    return min(max(total // PARTS, MIN_PART), MAX_PART)


def push(store: ModelStore, model: str, *, insecure: bool = False) -> Iterator[ProgressResponse]:
    """Push the stored ``model`` to its registry, yielding Ollama's progress.

    Statuses: "retrieving manifest", "pushing <digest[7:19]>" with
    ``digest``/``total``/``completed`` per blob, "pushing manifest", "success".

    Everything that can be checked here is checked before this returns (so a
    server answers those errors with their status code, not in a stream).

    Raises:
        StatusError: 400 a bad name, http without ``insecure``, a model without
            a namespace for the default registry; 404 no such stored model;
            500 a blob of the manifest missing from the store, network failure
            after the retries, a registry that refused the upload.
        AuthorizationError: the registry answered 401/403.
    """
    t = registry.target(model, insecure, verb="push")
    name = t.name
    if name.host == DEFAULT_HOST and name.namespace == DEFAULT_NAMESPACE:
        raise StatusError.bad_request(
            f"push {name.display}: a model pushed to {DEFAULT_HOST} needs a namespace you own: "
            f"copy it to <your-namespace>/{name.model}:{name.tag} first and push that name"
        )
    key = f"{name.host}/{name.namespace}/{name.model}:{name.tag}"
    store.resolve(key)  # 404 with the store's message
    raw = store.manifest_path(name).read_bytes()
    blobs = []
    for b in _blobs(raw, name.display):
        path = store.blob_path(b["digest"])
        try:
            have = path.stat().st_size
        except FileNotFoundError:
            have = -1
        if have != b["size"]:
            raise StatusError.internal(
                f"push {name.display}: blob {b['digest']} of its manifest is "
                + ("missing from the store" if have < 0 else f"{have} bytes in the store, not {b['size']}")
            )
        blobs.append((b["digest"], b["size"], path))
    return _pushing(t, raw, blobs)


def _blobs(raw: bytes, display: str) -> list[dict]:
    """The layers and then the config blob a stored manifest names."""
    try:
        manifest = json.loads(raw)
        config = manifest.get("config") or {}
        out = [*manifest["layers"], *([config] if config.get("digest") else [])]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise StatusError.internal(f"push {display}: the stored manifest is invalid ({exc})") from exc
    for b in out:
        if not (isinstance(b, dict) and is_digest(b.get("digest")) and isinstance(b.get("size"), int)):
            raise StatusError.internal(f"push {display}: the stored manifest names an invalid layer {str(b)[:120]}")
    return out


def _remote(t: registry.Target) -> download.Remote:
    def auth_error(resp: httpx.Response) -> AuthorizationError:
        code = resp.status_code
        word = "unauthorized" if code == 401 else "forbidden"
        hint = (
            f"the registry refused the token in {registry.ENV_TOKEN}"
            if t.token
            else f"set {registry.ENV_TOKEN} to a token that may push there"
        )
        # The first half is the message Ollama's command line gives for this refusal.
        return AuthorizationError(
            code,
            f"push {t.name.display}: you are not authorized to push to this namespace, create the model under "
            f"a namespace you own ({word}: {t.base} refused access; {hint})",
            registry._signin_url(t, resp),
        )

    headers = {"Authorization": f"Bearer {t.token}"} if t.token else {}
    return download.Remote(headers=headers, auth_error=auth_error)


def _pushing(
    t: registry.Target, raw: bytes, blobs: list[tuple[str, int, Path]]
) -> Generator[ProgressResponse, None, None]:
    yield ProgressResponse(status="retrieving manifest")
    remote = _remote(t)
    repo = f"{t.base}/v2/{t.name.namespace}/{t.name.model}"
    with download.http_client() as client:
        for digest, size, path in blobs:
            yield from _push_blob(client, remote, repo, digest, size, path)
        yield ProgressResponse(status="pushing manifest")
        _request(
            client,
            "PUT",
            f"{repo}/manifests/{t.name.tag}",
            remote,
            what=f"push manifest {t.name.display}",
            headers={"Content-Type": MEDIA_MANIFEST},
            content=raw,
        )
    yield ProgressResponse(status="success")


def _request(
    client: httpx.Client,
    method: str,
    url: str | httpx.URL,
    remote: download.Remote,
    *,
    what: str,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
    accept: frozenset[int] = frozenset(),
) -> httpx.Response:
    """A request without a large body, retried on transient failures; its answer (read).

    Statuses in ``accept`` are returned as they are; other non-2xx answers raise
    (see :func:`.download.check`).
    """
    policy = download.POLICY
    delays, attempt = policy.delays(), 0
    send = {**remote.headers, **(headers or {})}
    if content is None and method in ("POST", "PUT", "PATCH"):
        send.setdefault("Content-Length", "0")
    while True:
        attempt += 1
        try:
            resp = client.request(method, url, headers=send, content=content, follow_redirects=method == "HEAD")
            if resp.status_code not in accept:
                download.check(resp, remote, what, f"{what}: {download.public_url(url)} does not exist")
            return resp
        except (httpx.TransportError, download._Transient) as exc:
            if attempt >= policy.attempts:
                raise download._gave_up(what, str(url), exc, attempt, remote) from exc
        except httpx.HTTPError as exc:  # too many redirects, undecodable body: retrying will not help
            raise StatusError.internal(remote.scrub(f"{what}: {download.public_url(url)}: {exc}")) from exc
        time.sleep(next(delays))


class _Restart(Exception):
    """The registry cannot say what it holds of a failed upload: start it again."""


def _push_blob(
    client: httpx.Client, remote: download.Remote, repo: str, digest: str, size: int, path: Path
) -> Generator[ProgressResponse, None, None]:
    what = f"push blob {digest}"
    status = f"pushing {digest[7:19]}"

    def progress(done: int) -> ProgressResponse:
        return ProgressResponse(status=status, digest=digest, total=size, completed=done)

    head = _request(client, "HEAD", f"{repo}/blobs/{digest}", remote, what=what, accept=frozenset({404}))
    if head.status_code != 404:
        yield progress(size)
        return
    yield progress(0)
    policy, restarts = download.POLICY, 0
    while True:
        start = _request(client, "POST", f"{repo}/blobs/uploads/", remote, what=what)
        if start.status_code == 201:  # mounted from another repository of the registry
            yield progress(size)
            return
        location = _location(start, None)
        if location is None:
            raise StatusError.internal(f"{what}: the registry started an upload without saying where (no Location)")
        try:
            location, etag = yield from _send(client, remote, location, path, size, progress, what)
            break
        except _Restart as exc:
            restarts += 1
            if restarts >= policy.attempts:
                raise download._gave_up(what, location, exc.__cause__ or exc, restarts, remote) from exc
    url = httpx.URL(location).copy_merge_params({"digest": digest, "etag": etag})
    _request(client, "PUT", url, remote, what=what, headers={"Content-Type": "application/octet-stream"})
    yield progress(size)


def _location(resp: httpx.Response, current: str | None) -> str | None:
    """The upload's next URL from an answer (absolute; relative ones are resolved against the request)."""
    loc = resp.headers.get("docker-upload-location") or resp.headers.get("location")
    if not loc:
        return current
    return str(resp.request.url.join(loc))


_RANGE = re.compile(r"^(?:bytes=)?0-(\d+)$")


def _range_end(resp: httpx.Response) -> int | None:
    """How many bytes the registry holds, from its ``Range: 0-<last>`` header; None without one."""
    m = _RANGE.match(resp.headers.get("range", "").strip())
    if not m:
        return None
    # "0-0" is what registries answer for an empty upload as well as for one byte: read it as empty.
    return int(m[1]) + 1 if int(m[1]) else 0


class _Body:
    """``length`` bytes of a file from ``offset``, as a request body read piece by piece.

    ``sent`` counts the bytes handed to the connection (for progress), ``md5``
    hashes them (Ollama's part etag); setting ``cancel`` stops the body at its
    next piece, which ends the request.
    """

    def __init__(self, path: Path, offset: int, length: int) -> None:
        self.path, self.offset, self.length = path, offset, length
        self.sent = 0
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.cancel = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            left = self.length
            while left:
                if self.cancel.is_set():
                    raise StatusError.internal("push stopped")
                piece = f.read(min(PIECE, left))
                if not piece:
                    raise StatusError.internal(f"push: {self.path.name} is shorter than its manifest says")
                left -= len(piece)
                self.md5.update(piece)
                self.sent += len(piece)
                yield piece


def _in_thread(
    client: httpx.Client,
    method: str,
    url: str,
    headers: dict[str, str],
    body: _Body,
    progress: Callable[[int], ProgressResponse],
    base: int,
) -> Generator[ProgressResponse, None, httpx.Response]:
    """Send a request whose body is ``body`` on a worker thread, yielding ``progress(base + sent)`` meanwhile.

    The body is read by httpx on that thread, so the caller's generator can
    report how far it got. Closing the generator stops the body at its next
    piece and waits for the thread.
    """
    answers: list[httpx.Response] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def run() -> None:
        try:
            answers.append(client.request(method, url, headers=headers, content=body, follow_redirects=False))
        except BaseException as exc:  # noqa: BLE001 (raised again on the caller's thread)
            errors.append(exc)
        finally:
            done.set()

    worker = threading.Thread(target=run, name="llamanative-push", daemon=True)
    worker.start()
    try:
        while not done.wait(download.PROGRESS_INTERVAL):
            yield progress(base + body.sent)
    finally:
        if not done.is_set():
            body.cancel.set()
            worker.join()
    if errors:
        raise errors[0]
    return answers[0]


def _send(
    client: httpx.Client,
    remote: download.Remote,
    location: str,
    path: Path,
    size: int,
    progress: Callable[[int], ProgressResponse],
    what: str,
) -> Generator[ProgressResponse, None, tuple[str, str]]:
    """Send the blob's parts with PATCH (or PUT where a 307 points); returns the last location and the etag.

    Raises:
        _Restart: a part failed and the registry cannot say what it holds.
        StatusError: retries exhausted, or the registry refused the upload.
    """
    policy = download.POLICY
    part = part_size(size)
    offset, sums = 0, []
    delays, failures = policy.delays(), 0
    while offset < size:
        n = min(part, size - offset)
        body = _Body(path, offset, n)
        headers = {
            **remote.headers,
            "Content-Type": "application/octet-stream",
            "Content-Length": str(n),
            "Content-Range": f"{offset}-{offset + n - 1}",
            "X-Redirect-Uploads": "1",
        }
        sent_from = offset
        try:
            resp = yield from _in_thread(client, "PATCH", location, headers, body, progress, sent_from)
            if resp.status_code == 307 and resp.headers.get("location"):
                target = str(resp.request.url.join(resp.headers["location"]))
                nxt = resp.headers.get("docker-upload-location")  # where the next part goes
                location = str(resp.request.url.join(nxt)) if nxt else location
                body = _Body(path, offset, n)
                plain = {"Content-Type": "application/octet-stream", "Content-Length": str(n)}
                resp = yield from _in_thread(client, "PUT", target, plain, body, progress, sent_from)
                download.check(resp, download.Remote(), what, f"{what}: the upload URL does not exist")
                offset += n
            else:
                if resp.status_code == 416:  # the registry holds another amount than this part assumed
                    raise download._Transient("416 Requested Range Not Satisfiable")
                download.check(resp, remote, what, f"{what}: the upload {download.public_url(location)} is gone")
                location = _location(resp, location) or location
                end = _range_end(resp)
                # A registry that kept less than the part says so (Range): the rest is sent again.
                offset = end if end is not None and sent_from < end <= sent_from + n else sent_from + n
            sums.append(body.md5.digest())
            delays, failures = policy.delays(), 0
        except (httpx.TransportError, download._Transient) as exc:
            failures += 1
            if failures >= policy.attempts:
                raise download._gave_up(what, location, exc, failures, remote) from exc
            yield progress(sent_from)
            time.sleep(next(delays))
            have = _held(client, remote, location)
            if have is None or have > size:
                raise _Restart(str(exc)) from exc
            offset = have
    etag = f"{hashlib.md5(b''.join(sums), usedforsecurity=False).hexdigest()}-{len(sums)}"
    return location, etag


def _held(client: httpx.Client, remote: download.Remote, location: str) -> int | None:
    """How many bytes of the upload at ``location`` the registry holds (``GET``: 204 with Range); None if unknown."""
    try:
        resp = client.get(location, headers=dict(remote.headers))
    except httpx.HTTPError:
        return None
    if resp.status_code in (401, 403) and remote.auth_error is not None:
        raise remote.auth_error(resp)
    if resp.status_code not in (200, 204):
        return None
    if not resp.headers.get("range"):
        return 0 if resp.status_code == 204 else None
    return _range_end(resp)


__all__ = ["MAX_PART", "MIN_PART", "PARTS", "part_size", "push"]
