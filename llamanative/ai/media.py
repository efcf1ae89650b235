"""The bytes of a media part: ``data:`` URLs, files, and downloads of http(s) URLs.

A media part is ``{"media": {"url": ..., "contentType": ...}}``. Its URL can be:

- ``data:<type>[;base64],<payload>``: decoded here (base64, or percent-encoded
  text without ``;base64``);
- a ``file:`` URL or a path (no scheme; relative to the working directory):
  the file is read;
- ``http:`` / ``https:``: fetched only by the
  :func:`~llamanative.ai.middleware.download_request_media` middleware
  (:func:`download` here), which puts a ``data:`` URL in its place before the
  model sees the request. :func:`read_media` refuses such a URL: a local model
  opens no connection on its own, so a URL that reached a prompt (a
  ``{{media url=...}}`` of a template, a tool's output) is fetched only where
  the caller asked for downloads, with their size limit and filter.

The content type is the part's own ``contentType``, else the ``data:`` URL's,
else the one guessed from the file name, else the download's
``Content-Type`` header (its parameters dropped); ``""`` when none says.

>>> read_media(Media(url="data:image/png;base64,iVBORw=="))
MediaBytes(content_type='image/png', data=b'\\x89PNG')
"""

from __future__ import annotations

import base64
import binascii
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import InvalidArgumentError, MediaTooLarge, UnsupportedMedia
from .parts import Media

if TYPE_CHECKING:
    import httpx

__all__ = ["MediaBytes", "decode_data_url", "download", "read_media"]

# A URL scheme (RFC 3986) of two characters or more: "C:\x.png" is a Windows path, not a URL.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")


@dataclass(frozen=True)
class MediaBytes:
    """The content of a media part."""

    content_type: str
    'The MIME type (``"image/png"``), ``""`` when unknown.'

    data: bytes
    "The encoded media (the file's bytes: PNG, JPEG, MP3 ...)."


def _short(url: str) -> str:
    # Error messages quote a URL's start: a data: URL can be megabytes.
    return repr(url if len(url) <= 80 else url[:77] + "...")


def decode_data_url(url: str) -> tuple[str, bytes]:
    """``(content type, bytes)`` of a ``data:`` URL (RFC 2397).

    >>> decode_data_url("data:text/plain,a%20b")
    ('text/plain', b'a b')

    Raises:
        InvalidArgumentError: no comma, or the base64 payload does not decode.
    """
    header, comma, payload = url[len("data:") :].partition(",")
    if not comma:
        raise InvalidArgumentError(f"malformed data: URL {_short(url)} (no comma)")
    content_type, *params = header.split(";")
    try:
        if any(p.strip().lower() == "base64" for p in params):
            data = base64.b64decode(urllib.parse.unquote(payload), validate=True)
        else:
            data = urllib.parse.unquote_to_bytes(payload)
    except (binascii.Error, ValueError) as exc:
        raise InvalidArgumentError(f"malformed data: URL {_short(url)}: {exc}") from exc
    return content_type.strip(), data


def _file_path(url: str) -> Path:
    """The path a ``file:`` URL names (only local ones: no host, or ``localhost``)."""
    parts = urllib.parse.urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise UnsupportedMedia(f"media URL {_short(url)} names a file on another host ({parts.netloc})")
    from urllib.request import url2pathname  # urllib.request is slow to import; only file: URLs need it

    return Path(url2pathname(parts.path))


def _read_file(path: Path, url: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UnsupportedMedia(f"media file {_short(url)} does not exist") from None
    except OSError as exc:  # a folder, no permission ...
        raise UnsupportedMedia(f"media file {_short(url)} cannot be read: {exc.strerror or exc}") from exc


def _guess_type(path: Path) -> str:
    import mimetypes  # reads the system's MIME tables on first use

    return mimetypes.guess_type(path.name)[0] or ""


def read_media(media: Media) -> MediaBytes:
    """The bytes of a ``data:`` URL, a ``file:`` URL or a path, and their content type.

    Raises:
        UnsupportedMedia: an http(s) URL (the message says to add
            ``download_request_media()``), another scheme (``gs:`` ...), a
            file that does not exist or cannot be read.
        InvalidArgumentError: a malformed ``data:`` URL.
    """
    url = media.url
    scheme_match = _SCHEME.match(url)
    scheme = scheme_match[1].lower() if scheme_match else ""
    if scheme == "data":
        content_type, data = decode_data_url(url)
        return MediaBytes(media.content_type or content_type, data)
    if scheme in ("http", "https"):
        raise UnsupportedMedia(
            f"media URL {_short(url)} is not downloaded by local models: add download_request_media() to the "
            "call's middleware (use=[download_request_media()]) to fetch it, or pass a data: URL or a file path"
        )
    if scheme == "file":
        path = _file_path(url)
    elif scheme:
        raise UnsupportedMedia(f"local models cannot read {scheme}: media URLs ({_short(url)})")
    else:
        path = Path(url)
    data = _read_file(path, url)
    return MediaBytes(media.content_type or _guess_type(path), data)


def download(
    url: str, *, max_bytes: int | None = None, timeout: float = 30.0, client: httpx.Client | None = None
) -> MediaBytes:
    """GET ``url`` (redirects followed) and return its body and ``Content-Type`` (without parameters).

    Args:
        url: an http(s) URL.
        max_bytes: the most bytes the body may have; None: no limit. A
            ``Content-Length`` over it fails before the body is read, and
            the read stops as soon as the body passes it.
        timeout: seconds for the connection and between two reads.
        client: an ``httpx.Client`` to reuse (one per request of the
            middleware); None: a connection of its own.

    Raises:
        MediaTooLarge: the body has more than ``max_bytes`` bytes.
        InvalidArgumentError: a status other than 200, or a network error.
    """
    import httpx  # only downloads need it

    def too_large() -> MediaTooLarge:
        return MediaTooLarge(f"media {_short(url)} is larger than the limit of {max_bytes} bytes")

    try:
        stream = (
            client.stream("GET", url, timeout=timeout, follow_redirects=True)
            if client is not None
            else httpx.stream("GET", url, timeout=timeout, follow_redirects=True)
        )
        with stream as resp:
            if resp.status_code != 200:
                body = resp.read()[:200].decode("utf-8", "replace")
                raise InvalidArgumentError(f"HTTP error downloading media {_short(url)}: {resp.status_code} {body}")
            declared = resp.headers.get("content-length", "")
            if max_bytes is not None and declared.isdigit() and int(declared) > max_bytes:
                raise too_large()
            chunks, size = [], 0
            for chunk in resp.iter_bytes():
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise too_large()
                chunks.append(chunk)
            content_type = resp.headers.get("content-type", "").split(";")[0].strip()
            return MediaBytes(content_type, b"".join(chunks))
    except httpx.HTTPError as exc:
        raise InvalidArgumentError(f"HTTP error downloading media {_short(url)}: {exc}") from exc
