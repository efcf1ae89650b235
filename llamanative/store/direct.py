"""Pull a GGUF file from a plain URL: ``https://host/path/file.gguf``.

The name it is stored under comes from the file name: the stem, lowercased,
every run of characters a model name cannot hold replaced by ``-`` (and
``..`` by ``.``), at most 128 characters, tag ``latest``:
``https://example.com/models/SmolLM2-135M-Instruct.Q4_1.gguf`` becomes
``smollm2-135m-instruct.q4_1:latest``. Use ``copy`` to give it another name.

Nothing tells the digest in advance, so the sha256 is computed while
downloading and the progress status is ``"pulling <file name>"`` (no
``digest`` field) with ``total`` (from Content-Length) and ``completed``. An
interrupted download resumes only with the server's validator (``If-Range``
with the first answer's strong ETag or Last-Modified), so a file that
changed in between is fetched again from the start.

``http://`` needs ``insecure=True`` (400 otherwise). ``$HF_TOKEN`` is sent
only when the URL is on the Hugging Face endpoint (``$HF_ENDPOINT``); no
other credentials are sent. A 401/403 raises :class:`AuthorizationError`
whose ``signin_url`` is Hugging Face's login page for those URLs, else the
site's root.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from urllib.parse import unquote

import httpx

from ..errors import AuthorizationError, StatusError
from ..types import ProgressResponse
from . import download, huggingface
from .store import ModelStore


def is_url(model: str) -> bool:
    """True for an ``http(s)://`` URL whose path ends in ``.gguf``."""
    if not re.match(r"^https?://", model, re.I):
        return False
    try:
        return httpx.URL(model).path.lower().endswith(".gguf")
    except (httpx.InvalidURL, UnicodeError):  # UnicodeError: lone surrogates, which no URL can hold
        return False  # then it is taken as a registry name, which reports what is wrong


def name_for(url: str) -> str:
    """The model name a URL's file is stored under (see the module docstring)."""
    stem = unquote(httpx.URL(url).path.rsplit("/", 1)[-1])[: -len(".gguf")].lower()
    stem = re.sub(r"\.{2,}", ".", re.sub(r"[^a-z0-9_.-]+", "-", stem))
    stem = re.sub(r"^[^a-z0-9]+", "", stem)[:128].rstrip(".-_") or "model"
    return f"{stem}:latest"


def _origin(url: httpx.URL) -> str:
    return f"{url.scheme}://{url.netloc.decode('ascii')}"


def pull(store: ModelStore, url: str, *, insecure: bool = False) -> Iterator[ProgressResponse]:
    """Download the GGUF at ``url`` into ``store`` as :func:`name_for` ``(url)``, yielding progress.

    Raises:
        StatusError: 400 http without ``insecure``; 404 no such file; 500
            network failure after the retries.
        AuthorizationError: the server answered 401/403.
    """
    u = httpx.URL(url)
    if u.scheme == "http" and not insecure:
        raise StatusError.bad_request("insecure protocol http: pass insecure=True to pull over plain http")
    name = name_for(url)
    on_hf = _origin(u) == _origin(httpx.URL(huggingface.endpoint()))
    token = os.environ.get("HF_TOKEN") if on_hf else None

    def auth_error(resp: httpx.Response) -> AuthorizationError:
        why = "set HF_TOKEN" if on_hf and not token else "access refused"
        return AuthorizationError(
            resp.status_code,
            f"pull {download.public_url(url)}: {resp.status_code} {resp.reason_phrase} ({why})",
            huggingface.SIGNIN_URL if on_hf else _origin(u) + "/",
        )

    remote = download.Remote(headers={"Authorization": f"Bearer {token}"} if token else {}, auth_error=auth_error)
    yield ProgressResponse(status="pulling manifest")
    with download.http_client() as client:
        blob = yield from download.download(
            client, store, url, remote, digest=None, size=None, label=unquote(u.path.rsplit("/", 1)[-1])
        )
    yield ProgressResponse(status="verifying sha256 digest")
    yield ProgressResponse(status="writing manifest")
    store.create_from_blob(
        name, blob.digest, blob.size, {"model_format": "gguf", "rootfs": {"type": "layers", "diff_ids": [blob.digest]}}
    )
    yield ProgressResponse(status="success")
