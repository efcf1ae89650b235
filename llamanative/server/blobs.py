"""``HEAD``/``POST /api/blobs/:digest``: uploads into the model store's blobs, checked against their digest.

An upload streams to a temporary file beside the blobs (in chunks, each
written in a worker thread), hashed as it arrives; only when its SHA-256 is
the digest of the URL is it renamed into place, so a failed or dishonest
upload leaves nothing behind. The digest is checked for its form first
(``sha256:<64 hex>``), which is also what keeps a name out of any other
directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from ..client import AsyncClient
from ._http import BadRequest, error_response, status_of
from .inputs import digest as checked_digest

_WRITE_CHUNK = 1 << 20


def blob_path(client: AsyncClient, digest: str) -> Path:
    """Where the store keeps the blob ``digest`` (a checked ``sha256:<hex>``)."""
    # The server writes blobs exactly as Client.create_blob does, without first copying the
    # upload to a file of its own.
    return Path(client.store.blob_path(digest))


async def head(request: Request, client: AsyncClient) -> Response:
    try:
        digest = checked_digest(request.path_params["digest"])
        exists = await asyncio.to_thread(blob_path(client, digest).is_file)
    except Exception as exc:  # noqa: BLE001
        return error_response(request.url.path, *status_of(exc))
    if not exists:
        return error_response(request.url.path, 404, f"blob {digest} not found")
    return Response(status_code=200)


async def upload(request: Request, client: AsyncClient) -> Response:
    """201 when stored, 200 when the blob was already there, 400 for a digest that does not match."""
    try:
        digest = checked_digest(request.path_params["digest"])
        dst = blob_path(client, digest)
        if await asyncio.to_thread(dst.is_file):
            return Response(status_code=200)
        await _receive(request, dst, digest)
    except Exception as exc:  # noqa: BLE001
        return error_response(request.url.path, *status_of(exc))
    return Response(status_code=201)


async def _receive(request: Request, dst: Path, digest: str) -> None:
    await asyncio.to_thread(dst.parent.mkdir, parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dst.parent, prefix=".tmp-upload-")
    tmp = Path(tmp_name)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as f:
            pending = bytearray()
            async for chunk in request.stream():
                h.update(chunk)
                pending += chunk
                if len(pending) >= _WRITE_CHUNK:
                    await asyncio.to_thread(f.write, bytes(pending))
                    pending.clear()
            if pending:
                await asyncio.to_thread(f.write, bytes(pending))
        got = "sha256:" + h.hexdigest()
        if got != digest:
            raise BadRequest(f"digest mismatch: the upload's digest is {got}, not {digest}")
        await asyncio.to_thread(os.replace, tmp, dst)
    finally:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(tmp.unlink)
