"""What a request from the network may name: store names and uploaded blobs, never a path.

The Client also takes paths where a Python caller means a local file (a
``.gguf`` path as the model, an image path, ``from_`` and ``files`` naming
files). Over HTTP those would read the server's disk, so requests are checked
here, before the Client sees them:

- model names (``model``, ``name``, ``source``, ``destination``) must not be
  ``.gguf`` paths (the store's name parser refuses ``..`` and the like);
- ``images`` (and ``audio``) are base64 text, as on Ollama's wire, decoded
  here into bytes, so the Client never takes one for a file name;
- create's ``files`` and ``adapters`` map plain file names to blob digests
  (``sha256:<hex>``, uploaded with ``POST /api/blobs/:digest``), and ``from``
  names a stored model or a blob, not a file.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from typing import Any

from ._http import BadRequest

DIGEST = re.compile(r"sha256[:-]([0-9a-fA-F]{64})")


def digest(value: str) -> str:
    """A blob digest in the store's form (``sha256:<64 lowercase hex>``); Ollama's ``sha256-`` form too.

    Raises:
        BadRequest: anything else (a path, another algorithm).
    """
    m = DIGEST.fullmatch(value)
    if not m:
        raise BadRequest(f"invalid digest {value!r}: expected sha256:<64 hex digits>")
    return "sha256:" + m.group(1).lower()


def model_name(value: Any, field: str = "model") -> Any:
    """``value`` unchanged when it can only be a store name; a 400 when it would be read as a file."""
    if isinstance(value, str) and (value.strip().lower().endswith(".gguf") or "\\" in value or "\0" in value):
        raise BadRequest(f"{field}: {value!r} is not a model name (the server runs stored models, not paths)")
    return value


def media(values: Any, field: str) -> Any:
    """A list of base64 texts as bytes (strict base64, as Ollama's JSON decoder reads ``[]byte``)."""
    if values is None:
        return None
    if not isinstance(values, list):
        raise BadRequest(f"{field}: expected a list of base64 strings")
    out = []
    for i, item in enumerate(values):
        if not isinstance(item, str):
            raise BadRequest(f"{field}.{i}: expected a base64 string")
        try:
            out.append(base64.b64decode(item, validate=True))
        except (binascii.Error, ValueError):
            raise BadRequest(f"{field}.{i}: illegal base64 data") from None
    return out


def completion_body(body: dict[str, Any]) -> dict[str, Any]:
    """A generate or chat body made safe for the Client: nulls dropped, names checked, media decoded."""
    body = {k: v for k, v in body.items() if v is not None}
    for key in ("model", "name"):
        if key in body:
            model_name(body[key], key)
    for key in ("images", "audio"):
        if key in body:
            body[key] = media(body[key], key)
    messages = body.get("messages")
    if isinstance(messages, list):
        body["messages"] = [_message(m, i) for i, m in enumerate(messages)]
    return body


def _message(message: Any, i: int) -> Any:
    if not isinstance(message, Mapping):
        return message  # the request type reports it
    message = dict(message)
    for key in ("images", "audio"):
        if message.get(key) is not None:
            message[key] = media(message[key], f"messages.{i}.{key}")
    return message


def blob_map(files: Any, field: str) -> dict[str, str] | None:
    """create's ``files``/``adapters``: plain file names to blob digests."""
    if files is None:
        return None
    if not isinstance(files, Mapping):
        raise BadRequest(f"{field}: expected an object of file names to digests")
    out = {}
    for name, value in files.items():
        if not isinstance(name, str) or not _plain_file_name(name):
            raise BadRequest(f"{field}: invalid file name {name!r}")
        if not isinstance(value, str):
            raise BadRequest(f"{field}.{name}: expected a digest")
        out[name] = digest(value)
    return out


def _plain_file_name(name: str) -> bool:
    parts = re.split(r"[\\/]", name)
    return bool(name) and not os.path.isabs(name) and all(p not in ("", ".", "..") for p in parts)


def from_source(value: Any) -> Any:
    """create's ``from``: a blob digest, or a stored model's name, never a file of the server's."""
    if not isinstance(value, str):
        return value
    if DIGEST.fullmatch(value):
        return digest(value)
    model_name(value, "from")
    if os.path.isabs(value) or value.startswith(("~", "./", "../")) or os.path.lexists(value):
        raise BadRequest(f"from: {value!r} is not a model name (upload a file as a blob and name its digest)")
    return value
