"""HTTP for pull: small requests with retries, and resumable, verified blob downloads.

A blob is downloaded into ``<store>/blobs/sha256-<hex>-partial`` (or
``url-<key>-partial`` when its digest is not known in advance) and only
renamed to ``blobs/sha256-<hex>`` once its sha256 matches, so the store never
holds an unverified blob. What follows from that:

- **Resume.** A partial file left by a dropped connection, a cancelled pull
  (the progress callback raised, or the generator was closed) or a crash is
  kept; the next attempt asks for the rest with ``Range: bytes=<n>-`` and
  appends. A server that ignores the Range (200 instead of 206) sends the
  whole blob again, so the partial file restarts from zero.
- **Retries.** Connection errors, timeouts, a body cut short, 408, 429 and 5xx
  answers are retried with exponential backoff (:data:`POLICY`), resuming from
  what arrived. Attempts that received bytes do not count against the limit.
- **Digest check.** A mismatch deletes the partial file and raises a 500
  naming both digests.
- **Concurrency.** One lock file per blob (``<partial>.lock``, :mod:`.filelock`): a
  second pull of the same blob, in another thread or process, waits, reporting
  the first one's progress, then finds the blob done.

Credentials go in request headers only; messages never contain them, and
httpx drops ``Authorization`` when a redirect leaves the origin (registries
and Hugging Face redirect blob downloads to a CDN).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ..errors import AuthorizationError, StatusError
from ..types import ProgressResponse
from . import filelock
from .store import ModelStore

PROGRESS_INTERVAL = 0.1
"Seconds between two progress updates of one blob (the last one, completed == total, always comes)."


@dataclass(frozen=True)
class RetryPolicy:
    """How hard pull tries. The module's :data:`POLICY` is the default; tests shorten it."""

    attempts: int = 5
    "Tries of one request in a row that receive nothing before giving up."
    first_delay: float = 0.5
    "Seconds before the first retry; doubled after each failed try."
    max_delay: float = 8.0
    connect_timeout: float = 15.0
    read_timeout: float = 60.0
    "Longest wait for the next bytes (not for the whole body)."

    def delays(self) -> Generator[float, None, None]:
        delay = self.first_delay
        while True:
            yield delay
            delay = min(delay * 2, self.max_delay)


POLICY = RetryPolicy()


@dataclass(frozen=True)
class Remote:
    """One service pull talks to: extra headers (credentials) and how its refusals are worded."""

    headers: Mapping[str, str] = field(default_factory=dict)
    auth_error: Callable[[httpx.Response], AuthorizationError | StatusError] | None = None
    "Builds the error for a 401/403 answer (usually an AuthorizationError); without it they are plain StatusErrors."

    def scrub(self, text: str) -> str:
        """``text`` without any credential this remote sends (a server could echo one)."""
        for value in self.headers.values():
            secret = value.split(" ", 1)[-1]
            if len(secret) >= 4:
                text = text.replace(secret, "***")
        return text


class _Transient(Exception):
    """A failure worth retrying (the message says what happened)."""


def http_client(policy: RetryPolicy | None = None) -> httpx.Client:
    """An httpx client for one pull: redirects followed, timeouts from ``policy``."""
    policy = policy or POLICY
    from .. import __version__

    return httpx.Client(
        follow_redirects=True,
        timeout=httpx.Timeout(policy.read_timeout, connect=policy.connect_timeout),
        headers={"User-Agent": f"llamanative/{__version__}"},
    )


def public_url(url: httpx.URL | str) -> str:
    """``url`` without its query (signed CDN URLs carry credentials there)."""
    return str(httpx.URL(str(url)).copy_with(query=None, fragment=None))


def _server_message(resp: httpx.Response) -> str:
    """The error text of a registry (``{"errors": [{"message"}]}``) or Hugging Face (``{"error"}``) answer."""
    body = b""
    with contextlib.suppress(httpx.HTTPError, httpx.StreamError):
        for chunk in resp.iter_bytes():
            body += chunk
            if len(body) > 65536:
                return ""
    with contextlib.suppress(ValueError, TypeError, KeyError, IndexError, AttributeError):
        parsed = json.loads(body)
        msg = parsed.get("error") or parsed["errors"][0].get("message")
        if isinstance(msg, str):
            return msg[:200]
    return ""


def check(resp: httpx.Response, remote: Remote, what: str, not_found: str) -> None:
    """Raise the error an answer means; return for 2xx.

    Raises:
        _Transient: 408, 429, 5xx (the caller retries).
        AuthorizationError: 401/403 when ``remote`` words them.
        StatusError: 404 with ``not_found``; any other status with the server's reason.
    """
    code = resp.status_code
    if 200 <= code < 300:
        return
    if code in (408, 429) or code >= 500:
        raise _Transient(f"{code} {resp.reason_phrase} from {public_url(resp.url)}")
    if code in (401, 403) and remote.auth_error is not None:
        raise remote.auth_error(resp)
    if code == 404:
        raise StatusError.not_found(remote.scrub(not_found))
    detail = _server_message(resp)
    raise StatusError(
        code,
        error_message=remote.scrub(
            f"{what}: {code} {resp.reason_phrase} from {public_url(resp.url)}" + (f": {detail}" if detail else "")
        ),
    )


def _gave_up(what: str, url: str, err: BaseException, attempts: int, remote: Remote, kept: bool = False) -> StatusError:
    reason = str(err) or type(err).__name__
    tail = "; the partial download is kept and the next pull resumes it" if kept else ""
    return StatusError.internal(
        remote.scrub(f"{what}: {public_url(url)}: {reason} (gave up after {attempts} attempts{tail})")
    )


def get(
    client: httpx.Client,
    url: str,
    remote: Remote,
    *,
    what: str,
    not_found: str,
    accept: str | None = None,
    limit: int = 16 << 20,
    policy: RetryPolicy | None = None,
) -> tuple[httpx.Response, bytes]:
    """GET a small document (manifest, API listing), retrying transient failures.

    Returns the (closed) response, for its headers, and the body: at most
    ``limit`` bytes are read, so a hostile server cannot fill memory.

    Raises:
        StatusError: 404 ``not_found``; 500 after the retries, or for a body over ``limit``;
            another 4xx as the server answered.
        AuthorizationError: 401/403 (see :func:`check`).
    """
    policy = policy or POLICY
    headers = dict(remote.headers)
    if accept:
        headers["Accept"] = accept
    delays, attempt = policy.delays(), 0
    while True:
        attempt += 1
        try:
            with client.stream("GET", url, headers=headers) as resp:
                check(resp, remote, what, not_found)
                body = bytearray()
                for chunk in resp.iter_bytes():
                    body += chunk
                    if len(body) > limit:
                        raise StatusError.internal(f"{what}: answer from {public_url(url)} is over {limit} bytes")
                return resp, bytes(body)
        except (httpx.TransportError, _Transient) as exc:
            if attempt >= policy.attempts:
                raise _gave_up(what, url, exc, attempt, remote) from exc
        except httpx.HTTPError as exc:  # too many redirects, undecodable body: retrying will not help
            raise StatusError.internal(remote.scrub(f"{what}: {public_url(url)}: {exc}")) from exc
        time.sleep(next(delays))


@dataclass(frozen=True)
class Blob:
    """A blob now in the store."""

    digest: str
    size: int


def download(
    client: httpx.Client,
    store: ModelStore,
    url: str,
    remote: Remote,
    *,
    digest: str | None,
    size: int | None,
    label: str | None = None,
    policy: RetryPolicy | None = None,
) -> Generator[ProgressResponse, None, Blob]:
    """Bring the blob at ``url`` into ``store``, yielding progress; returns the stored :class:`Blob`.

    ``digest`` (``sha256:<hex>``) and ``size``, when known, are checked; a blob
    already in the store with that digest (and size) is reused without a
    request. Progress as Ollama's: ``"pulling <digest[7:19]>"`` with
    ``digest``/``total``/``completed``; when the digest is not known in advance
    (a plain URL) the status is ``"pulling <label>"`` without ``digest``.

    Raises:
        StatusError: 500 digest or size mismatch (the partial file is deleted) or
            retries exhausted (kept); 404 no such file; other 4xx as answered.
        AuthorizationError: 401/403.
    """
    policy = policy or POLICY
    status = f"pulling {digest[7:19]}" if digest else f"pulling {label or public_url(url).rsplit('/', 1)[-1]}"

    def progress(done: int, total: int | None) -> ProgressResponse:
        return ProgressResponse(status=status, digest=digest, total=total, completed=done)

    if digest:
        done = _existing(store, digest, size)
        if done is not None:
            yield progress(done, done)
            return Blob(digest, done)
        partial = store.blob_path(digest).with_name(f"sha256-{digest[7:]}-partial")
    else:
        key = hashlib.sha256(public_url(url).encode()).hexdigest()[:32]
        partial = store.root / "blobs" / f"url-{key}-partial"
    partial.parent.mkdir(parents=True, exist_ok=True)
    lock = yield from _lock(partial.with_name(partial.name + ".lock"), partial, lambda n: progress(n, size))
    # From here on this pull owns the partial file; the finally releases it
    # even when the consumer stops iterating (GeneratorExit at a yield).
    try:
        if digest:
            done = _existing(store, digest, size)  # another pull finished it while we waited
            if done is not None:
                yield progress(done, done)
                return Blob(digest, done)
        return (yield from _fetch(client, store, url, remote, partial, digest, size, progress, policy))
    finally:
        _unlock(*lock)


def _existing(store: ModelStore, digest: str, size: int | None) -> int | None:
    """Size of the stored blob ``digest`` if it is there (with the expected size), else None."""
    path = store.blob_path(digest)
    with contextlib.suppress(FileNotFoundError):
        n = path.stat().st_size
        if size is None or n == size:
            return n
    return None


def _lock(
    path: Path, partial: Path, report: Callable[[int], ProgressResponse]
) -> Generator[ProgressResponse, None, tuple[int, Path]]:
    """Take the per-blob lock, yielding progress (the partial file's size) while another pull holds it.

    Polling instead of a blocking lock keeps the generator responsive: two
    pulls driven by one thread (or a consumer that stops iterating) cannot
    deadlock here. The holder deletes the lock file before unlocking; the
    inode check makes a waiter that locked the deleted file try again.
    """
    last = 0.0
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            locked = filelock.try_lock(fd)
        except BaseException:
            os.close(fd)
            raise
        if not locked:
            os.close(fd)
            now = time.monotonic()
            if now - last >= PROGRESS_INTERVAL:
                last = now
                yield report(partial.stat().st_size if partial.exists() else 0)
            time.sleep(0.02)
            continue
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd, path
        os.close(fd)


def _unlock(fd: int, path: Path) -> None:
    if sys.platform == "win32":
        # An open file cannot be deleted there: release and close it first. The
        # delete fails (and the file stays) while a waiter holds it open; that
        # waiter then locks the same file, which is still the lock file.
        filelock.unlock(fd)
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        return
    # Delete before unlocking: a waiter that then locks the deleted file sees
    # that its inode is gone and starts over on a fresh lock file.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    os.close(fd)


_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class _Partial:
    """The partial file and the running sha256 of its content."""

    def __init__(self, path: Path, size: int | None) -> None:
        self.path = path
        self.hash = hashlib.sha256()
        self.n = 0
        if path.exists():
            if size is not None and path.stat().st_size > size:
                path.unlink()  # longer than the blob: cannot be a prefix of it
            else:
                with open(path, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        self.hash.update(chunk)
                        self.n += len(chunk)

    def restart(self) -> None:
        self.path.unlink(missing_ok=True)
        self.hash = hashlib.sha256()
        self.n = 0


def _validator(resp: httpx.Response) -> str | None:
    """What ``If-Range`` can send back: a strong ETag, else Last-Modified."""
    etag = resp.headers.get("etag")
    if etag and not etag.startswith("W/"):
        return etag
    return resp.headers.get("last-modified")


def _fetch(
    client: httpx.Client,
    store: ModelStore,
    url: str,
    remote: Remote,
    path: Path,
    digest: str | None,
    size: int | None,
    progress: Callable[[int, int | None], ProgressResponse],
    policy: RetryPolicy,
) -> Generator[ProgressResponse, None, Blob]:
    """Download into the partial file at ``path`` (resuming it), verify, move into the store."""
    what = f"pull blob {digest}" if digest else f"pull {public_url(url)}"
    # Without a digest nothing proves that a kept partial file and the rest of
    # the file belong together, so a resume sends If-Range with the validator
    # of the first answer (the server then sends everything if the file changed).
    vpath = path.with_name(path.name + ".validator")
    part = _Partial(path, size)
    total = size
    yield progress(part.n, total)
    last = time.monotonic()
    delays, failures = policy.delays(), 0
    while size is None or part.n < size:
        headers = {**remote.headers, "Accept-Encoding": "identity"}  # Range counts raw bytes
        if part.n and not digest and not vpath.is_file():
            part.restart()  # no validator to make resuming safe
        resuming = part.n > 0
        if resuming:
            headers["Range"] = f"bytes={part.n}-"
            if not digest:
                headers["If-Range"] = vpath.read_text()
        received = 0
        try:
            with client.stream("GET", url, headers=headers) as resp:
                if resp.status_code == 416 and resuming:
                    part.restart()
                    raise _Transient("the server refused to resume (416); starting again")
                check(resp, remote, what, f"{what}: file does not exist at {public_url(url)}")
                if resuming and resp.status_code == 206:
                    m = _CONTENT_RANGE.match(resp.headers.get("content-range", ""))
                    if not m or int(m[1]) != part.n:
                        part.restart()
                        raise _Transient("the server sent another range than asked; starting again")
                elif resuming:
                    part.restart()  # 200: Range ignored (or the file changed): the whole body follows
                if not part.n and not digest:
                    v = _validator(resp)
                    if v:
                        vpath.write_text(v)
                    else:
                        vpath.unlink(missing_ok=True)
                length = resp.headers.get("content-length")
                if size is None and length and length.isdigit():
                    total = part.n + int(length)
                with open(part.path, "ab") as f:
                    for chunk in resp.iter_bytes():
                        f.write(chunk)
                        part.hash.update(chunk)
                        part.n += len(chunk)
                        received += len(chunk)
                        if size is not None and part.n > size:
                            part.restart()
                            raise StatusError.internal(f"{what}: the server sent more than the {size} bytes expected")
                        now = time.monotonic()
                        if now - last >= PROGRESS_INTERVAL:
                            last = now
                            yield progress(part.n, total)
                if total is not None and part.n < total:
                    raise _Transient(f"connection closed after {part.n} of {total} bytes")
            break
        except (httpx.TransportError, _Transient) as exc:
            if received:  # progress was made: a fresh set of attempts
                delays, failures = policy.delays(), 0
            failures += 1
            if failures >= policy.attempts:
                raise _gave_up(what, url, exc, failures, remote, kept=part.n > 0) from exc
            time.sleep(next(delays))
        except httpx.HTTPError as exc:  # too many redirects, undecodable body: retrying will not help
            raise StatusError.internal(remote.scrub(f"{what}: {public_url(url)}: {exc}")) from exc
    actual = "sha256:" + part.hash.hexdigest()
    if digest and actual != digest:
        part.restart()
        raise StatusError.internal(f"digest mismatch, file must be downloaded again: want {digest}, got {actual}")
    with open(part.path, "ab") as f:  # durable before it becomes a blob (as the store's own writes)
        os.fsync(f.fileno())
    final = store.blob_path(actual)
    if final.exists():
        part.path.unlink()  # the same bytes are already there (pulled under another name)
    else:
        os.replace(part.path, final)
    vpath.unlink(missing_ok=True)
    yield progress(part.n, part.n)
    return Blob(actual, part.n)
