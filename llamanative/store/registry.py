"""Pull from an Ollama registry: the Docker registry v2 manifest and blob protocol.

``GET {base}/v2/{namespace}/{model}/manifests/{tag}`` (Accept:
``application/vnd.docker.distribution.manifest.v2+json``), then every layer
and the config blob: ``GET {base}/v2/{namespace}/{model}/blobs/{digest}``.
The manifest is stored byte for byte as received, so its digest (what
``list()`` shows) is the registry's, as with Ollama.

Base URL:

- ``$LLAMANATIVE_REGISTRY`` for names on the default host
  (``registry.ollama.ai``, written or implied): a mirror of the default
  registry. Its scheme is used as given, ``http://`` included: setting the
  variable is an explicit choice.
- otherwise ``https://<host of the name>``. ``insecure=True`` uses
  ``http://`` instead, as Ollama's ``--insecure`` does. A name written with
  ``http://`` (``http://host:port/ns/model:tag``) needs ``insecure=True``,
  else 400 ``insecure protocol http``.

Credentials: ``$LLAMANATIVE_REGISTRY_TOKEN`` is sent as ``Authorization:
Bearer`` only to the default registry (the base above for default-host
names), never to a host written in a model name, so a name cannot hand the
token to another server. A 401/403 raises :class:`AuthorizationError` whose
``signin_url`` is ``https://ollama.com/connect`` for Ollama's own registry,
else the ``realm`` of the registry's ``WWW-Authenticate: Bearer`` challenge,
else ``https://ollama.com/connect``. The token exchange of Docker registries
(fetching a token from the realm) and Ollama's key-signed requests are not
implemented: public models need neither.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from ..errors import AuthorizationError, StatusError
from ..types import ProgressResponse
from . import download
from .names import DEFAULT_HOST, ModelName, parse_name
from .store import MEDIA_MANIFEST, MEDIA_MODEL, ModelStore, is_digest

DEFAULT_BASE = "https://registry.ollama.ai"
ENV_BASE = "LLAMANATIVE_REGISTRY"
ENV_TOKEN = "LLAMANATIVE_REGISTRY_TOKEN"
SIGNIN_URL = "https://ollama.com/connect"
_OLLAMA_HOSTS = ("registry.ollama.ai", "ollama.com", "www.ollama.com")


@dataclass(frozen=True)
class Target:
    """Where a registry name is pulled from."""

    name: ModelName
    base: str  # scheme://host[:port][/path], no trailing slash
    token: str | None


def target(model: str, insecure: bool = False, verb: str = "pull") -> Target:
    """Resolve ``[http(s)://][host/][namespace/]model[:tag]`` to a registry base URL.

    ``verb`` (``pull`` or ``push``) words the errors.

    Raises:
        StatusError: 400 for a bad name, a scheme other than http/https, or
            http without ``insecure``.
    """
    scheme = None
    if "://" in model:
        scheme, model = model.split("://", 1)
        scheme = scheme.lower()
        if scheme not in ("http", "https"):
            raise StatusError.bad_request(f"unsupported protocol {scheme!r}: use https:// (or http:// with insecure)")
        if scheme == "http" and not insecure:
            raise StatusError.bad_request(f"insecure protocol http: pass insecure=True to {verb} over plain http")
        if model.count("/") != 2:
            raise StatusError.bad_request(
                f"invalid model name {scheme}://{model}: with a scheme, write host/namespace/model[:tag]"
            )
    name = parse_name(model)
    env = os.environ.get(ENV_BASE, "").strip().rstrip("/")
    if name.host == DEFAULT_HOST and scheme is None:
        base = env or DEFAULT_BASE
        if not re.match(r"^https?://[^/]+", base, re.I):
            raise StatusError.bad_request(f"{ENV_BASE} must be an http:// or https:// URL, not {base!r}")
        return Target(name, base, os.environ.get(ENV_TOKEN) or None)
    if scheme is None:
        scheme = "http" if insecure else "https"
    return Target(name, f"{scheme}://{name.host}", None)


def _signin_url(t: Target, resp: httpx.Response) -> str:
    host = (httpx.URL(t.base).host or "").lower()
    if host in _OLLAMA_HOSTS:
        return SIGNIN_URL
    m = re.search(r'realm="([^"]+)"', resp.headers.get("www-authenticate", ""))
    return m[1] if m and re.match(r"^https?://", m[1]) else SIGNIN_URL


def _remote(t: Target) -> download.Remote:
    def auth_error(resp: httpx.Response) -> AuthorizationError:
        code = resp.status_code
        hint = (
            f"the registry refused the token in {ENV_TOKEN}"
            if t.token
            else f"set {ENV_TOKEN} if the registry needs a token"
        )
        word = "unauthorized" if code == 401 else "forbidden"
        return AuthorizationError(
            code, f"pull {t.name.display}: {word}: {t.base} refused access ({hint})", _signin_url(t, resp)
        )

    headers = {"Authorization": f"Bearer {t.token}"} if t.token else {}
    return download.Remote(headers=headers, auth_error=auth_error)


def _layers(raw: bytes, t: Target) -> list[dict]:
    """The blobs a manifest names (layers, then config, as Ollama pulls them), checked.

    Raises:
        StatusError: 500 when the manifest is not a v2 manifest of a GGUF model.
    """
    bad = f"pull model manifest: the registry sent an invalid manifest for {t.name.display}"
    try:
        manifest = json.loads(raw)
        layers = list(manifest["layers"])
        config = manifest.get("config") or {}
    except (ValueError, TypeError, KeyError) as exc:
        raise StatusError.internal(f"{bad} ({exc})") from exc
    blobs = layers + ([config] if config.get("digest") else [])
    for b in blobs:
        ok = isinstance(b, dict) and is_digest(b.get("digest")) and isinstance(b.get("size"), int) and b["size"] >= 0
        if not ok:
            raise StatusError.internal(f"{bad} (layer {str(b)[:120]})")
    if not any(b.get("mediaType") == MEDIA_MODEL for b in layers):
        raise StatusError.internal(f"{bad}: no {MEDIA_MODEL} layer (not a GGUF model)")
    return blobs


def pull(store: ModelStore, model: str, *, insecure: bool = False) -> Iterator[ProgressResponse]:
    """Pull ``model`` from its registry into ``store``, yielding Ollama's progress.

    Raises:
        StatusError: 400 bad name or http without ``insecure``; 404 no such model
            (``pull model manifest: file does not exist``) or blob; 500 digest
            mismatch, invalid manifest, network failure after the retries.
        AuthorizationError: the registry answered 401/403.
    """
    t = target(model, insecure)  # before the first yield: a bad name fails with nothing reported
    yield ProgressResponse(status="pulling manifest")
    remote = _remote(t)
    repo = f"{t.base}/v2/{t.name.namespace}/{t.name.model}"
    with download.http_client() as client:
        resp, raw = download.get(
            client,
            f"{repo}/manifests/{t.name.tag}",
            remote,
            what="pull model manifest",
            accept=MEDIA_MANIFEST,
            limit=4 << 20,
            not_found=f'pull model manifest: file does not exist: model "{t.name.display}" not found at {t.base}',
        )
        sent = resp.headers.get("docker-content-digest", "")
        if sent.startswith("sha256:") and sent != "sha256:" + hashlib.sha256(raw).hexdigest():
            raise StatusError.internal(f"pull model manifest: the manifest does not match its digest {sent}")
        for blob in _layers(raw, t):
            yield from download.download(
                client, store, f"{repo}/blobs/{blob['digest']}", remote, digest=blob["digest"], size=blob["size"]
            )
    # Each blob was checked against its digest before it entered the store.
    yield ProgressResponse(status="verifying sha256 digest")
    yield ProgressResponse(status="writing manifest")
    store.write_manifest("/".join(t.name.parts()[:3]) + ":" + t.name.tag, raw)
    yield ProgressResponse(status="success")


__all__ = ["DEFAULT_BASE", "ENV_BASE", "ENV_TOKEN", "SIGNIN_URL", "Target", "pull", "target"]
