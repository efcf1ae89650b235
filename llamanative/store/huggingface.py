"""Pull a GGUF file from a Hugging Face repository: ``hf.co/<org>/<repo>[:<quant>]``.

``huggingface.co/<org>/<repo>[:<quant>]`` works too. The repository's files
come from the Hub's HTTP API: ``GET {endpoint}/api/models/{org}/{repo}/tree/main?recursive=true``
(following its ``Link: rel="next"`` pages), or ``GET
{endpoint}/api/models/{org}/{repo}?blobs=true`` (its ``siblings``) when the
tree listing is not served. The GGUF whose file name carries the
quantisation is picked: the tag, or ``Q4_K_M`` when there is no tag (or the
tag ``latest``), matched case-insensitively as a whole word of the name, so
``Q4_K`` does not pick ``...-Q4_K_M.gguf``. Projector files (a file name
with ``mmproj``) are never picked as the model, and a quantisation split into
several files is refused (the store keeps one GGUF per model). No match: a
404 listing the quantisations the repository has.

When the repository has projector GGUFs (the vision/audio encoders that
llama.cpp calls ``mmproj``: a ``.gguf`` whose file name has ``mmproj``) in the
model's folder or a folder above it, one is pulled too and stored as the
model's projector layer, as llama-server's ``-hf`` downloads one: the one of
the deepest such folder, then the one whose quantisation is the model's, else
``F16``, else ``BF16``, else ``F32``, else the first by path.

The files are downloaded from ``{endpoint}/{org}/{repo}/resolve/main/{path}``
and checked against the sha256 the API reports (``lfs.oid`` in the tree,
``lfs.sha256`` in siblings) when it reports one.

It is stored under the name as written (``hf.co/<org>/<repo>:<quant>``, or
``:latest`` without a tag, as Ollama does), so the same name works in
``chat``/``generate`` afterwards.

Endpoint: ``$HF_ENDPOINT`` (default ``https://huggingface.co``). ``$HF_TOKEN``
is sent as ``Authorization: Bearer`` to that endpoint only (the file
downloads redirect to a CDN, which does not get it). 401/403 raise
:class:`AuthorizationError` with ``signin_url`` ``https://huggingface.co/login``,
except the Hub's answer for a repository that does not exist (or is private
and no token was sent): 401 with ``X-Error-Code: RepoNotFound``, a 404 here.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote, urljoin

import httpx

from ..errors import AuthorizationError, StatusError
from ..types import ProgressResponse
from . import download
from .names import DEFAULT_TAG, ModelName, parse_name
from .store import ModelStore

HOSTS = ("hf.co", "huggingface.co")
DEFAULT_QUANT = "Q4_K_M"
DEFAULT_ENDPOINT = "https://huggingface.co"
SIGNIN_URL = "https://huggingface.co/login"
_MAX_PAGES = 200  # a listing longer than this is not a model repository worth paging through
_SPLIT = re.compile(r"-\d{5}-of-\d{5}\.gguf$", re.I)
_QUANT_WORD = re.compile(r"^(I?Q\d[A-Z0-9_]*|BF16|F16|F32|F64)$", re.I)


def is_hf_name(model: str) -> bool:
    """True for ``hf.co/...`` and ``huggingface.co/...`` names."""
    return model.split("/", 1)[0].lower() in HOSTS and "/" in model


def endpoint() -> str:
    """``$HF_ENDPOINT`` without a trailing slash, else ``https://huggingface.co``."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).strip().rstrip("/")


@dataclass(frozen=True)
class HfFile:
    """A file of the repository, as the API lists it."""

    path: str
    size: int | None
    sha256: str | None  # hex, for files stored with Git LFS


def _entry(path: object, size: object, lfs: object, sha_key: str) -> HfFile | None:
    if not isinstance(path, str):
        return None
    sha = lfs.get(sha_key) if isinstance(lfs, dict) else None
    if isinstance(lfs, dict) and isinstance(lfs.get("size"), int):
        size = lfs["size"]
    return HfFile(
        path,
        size if isinstance(size, int) else None,
        sha if isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha) else None,
    )


def _remote(repo: str) -> download.Remote:
    token = os.environ.get("HF_TOKEN")

    def auth_error(resp: httpx.Response) -> AuthorizationError | StatusError:
        code_hdr = resp.headers.get("x-error-code", "")
        if code_hdr == "RepoNotFound" or code_hdr == "EntryNotFound":
            return StatusError.not_found(
                f"pull model manifest: file does not exist: no Hugging Face repository {repo}"
                + ("" if token else " (or it is private: set HF_TOKEN)")
            )
        if code_hdr == "GatedRepo":
            why = f"{repo} is gated: accept its conditions on its Hugging Face page, then set HF_TOKEN"
        elif token:
            why = f"Hugging Face refused the token in HF_TOKEN for {repo}"
        else:
            why = f"{repo} needs a Hugging Face token: set HF_TOKEN"
        return AuthorizationError(resp.status_code, f"pull hf.co/{repo}: {why}", SIGNIN_URL)

    return download.Remote(headers={"Authorization": f"Bearer {token}"} if token else {}, auth_error=auth_error)


def list_files(client: httpx.Client, base: str, repo: str, remote: download.Remote) -> list[HfFile]:
    """Every file of ``repo`` (``org/name``) on the main branch.

    Raises:
        StatusError: 404 no such repository; 500 unreadable listing or network failure.
        AuthorizationError: 401/403.
    """
    missing = f"pull model manifest: file does not exist: no Hugging Face repository {repo} at {base}"
    url: str | None = f"{base}/api/models/{repo}/tree/main?recursive=true"
    files: list[HfFile] = []
    try:
        for _ in range(_MAX_PAGES):
            if url is None:
                return files
            resp, body = download.get(client, url, remote, what=f"list the files of {repo}", not_found=missing)
            for e in _json(body, repo):
                if isinstance(e, dict) and e.get("type") == "file":
                    f = _entry(e.get("path"), e.get("size"), e.get("lfs"), "oid")
                    if f:
                        files.append(f)
            nxt = resp.links.get("next", {}).get("url")
            url = urljoin(url, nxt) if nxt else None
        raise StatusError.internal(f"list the files of {repo}: more than {_MAX_PAGES} pages")
    except StatusError as exc:
        if exc.status_code != 404 or files:
            raise
    # No tree listing here: the model endpoint's siblings say the same.
    _, body = download.get(
        client, f"{base}/api/models/{repo}?blobs=true", remote, what=f"list the files of {repo}", not_found=missing
    )
    info = _json(body, repo)
    siblings = info.get("siblings") if isinstance(info, dict) else None
    if not isinstance(siblings, list):
        raise StatusError.internal(f"list the files of {repo}: the answer has no file list")
    return [
        f
        for s in siblings
        if isinstance(s, dict)
        for f in [_entry(s.get("rfilename"), s.get("size"), s.get("lfs"), "sha256")]
        if f
    ]


def _json(body: bytes, repo: str):
    try:
        return json.loads(body)
    except ValueError as exc:
        raise StatusError.internal(f"list the files of {repo}: the answer is not JSON") from exc


def quant_of(path: str) -> str | None:
    """The quantisation word of a GGUF file name (``...-Q4_K_M.gguf`` -> ``Q4_K_M``), if it has one."""
    stem = _SPLIT.sub(".gguf", path.rsplit("/", 1)[-1])[: -len(".gguf")]
    words = re.split(r"[-.]", stem)
    return next((w.upper() for w in reversed(words) if _QUANT_WORD.match(w)), None)


def is_projector_name(path: str) -> bool:
    """Whether ``path`` names a projector GGUF by llama.cpp's convention (``mmproj`` in the file name)."""
    name = path.rsplit("/", 1)[-1].lower()
    return name.endswith(".gguf") and "mmproj" in name


def pick_projector(files: list[HfFile], model: HfFile) -> HfFile | None:
    """The projector GGUF to pull with ``model`` (see the module docstring for the rule), or None.

    Only a projector in the model's folder or a folder above it is a candidate.
    """
    folder = model.path.split("/")[:-1]
    candidates = [
        f for f in files if is_projector_name(f.path) and folder[: len(f.path.split("/")) - 1] == f.path.split("/")[:-1]
    ]
    if not candidates:
        return None
    depth = max(f.path.count("/") for f in candidates)
    candidates = sorted((f for f in candidates if f.path.count("/") == depth), key=lambda f: f.path)
    for want in (quant_of(model.path), "F16", "BF16", "F32"):
        hit = next((f for f in candidates if want and quant_of(f.path) == want), None)
        if hit is not None:
            return hit
    return candidates[0]


def pick(files: list[HfFile], quant: str, repo: str) -> HfFile:
    """The GGUF file of ``files`` for ``quant``.

    Raises:
        StatusError: 404 (with the available quantisations) when none matches;
            400 when the match is split into several files.
    """
    ggufs = [f for f in files if f.path.lower().endswith(".gguf") and not is_projector_name(f.path)]
    word = re.compile(r"(?<![A-Za-z0-9])" + re.escape(quant) + r"(?![A-Za-z0-9_])", re.I)
    hits = [f for f in ggufs if word.search(f.path.rsplit("/", 1)[-1])]
    whole = [f for f in hits if not _SPLIT.search(f.path)]
    if whole:
        # Prefer the top level, then the shortest name (".../x-Q4_K_M.gguf" over "x-Q4_K_M-extra.gguf").
        return min(whole, key=lambda f: (f.path.count("/"), len(f.path), f.path))
    if hits:
        raise StatusError.bad_request(
            f"hf.co/{repo}:{quant} is split into {len(hits)} files; a split GGUF cannot be pulled yet"
        )
    available = sorted({q for f in ggufs if (q := quant_of(f.path))})
    have = (
        f"available: {', '.join(available)}"
        if available
        else "its GGUF files are all projectors (mmproj)"
        if not ggufs and any(is_projector_name(f.path) for f in files)
        else "the repository has no GGUF files"
        if not ggufs
        else f"its GGUF files: {', '.join(sorted(f.path for f in ggufs)[:20])}"
    )
    raise StatusError.not_found(
        f"pull model manifest: file does not exist: hf.co/{repo} has no GGUF file for {quant} ({have})"
    )


def pull(store: ModelStore, model: str) -> Iterator[ProgressResponse]:
    """Pull ``hf.co/<org>/<repo>[:<quant>]`` into ``store``, yielding Ollama's progress.

    Raises:
        StatusError: 400 bad name or split file; 404 no such repository or
            quantisation; 500 digest mismatch or network failure after the retries.
        AuthorizationError: Hugging Face answered 401/403 (gated, private, bad token).
    """
    name: ModelName = parse_name(model)
    if "/" not in model.split(":", 1)[0].split("/", 1)[1]:
        raise StatusError.bad_request(f"invalid model name {model!r}: use hf.co/<org>/<repo>[:<quant>]")
    explicit = ":" in model.rsplit("/", 1)[-1] and name.tag.lower() != DEFAULT_TAG
    quant = name.tag if explicit else DEFAULT_QUANT
    repo = f"{name.namespace}/{name.model}"
    base = endpoint()
    remote = _remote(repo)
    yield ProgressResponse(status="pulling manifest")
    with download.http_client() as client:
        files = list_files(client, base, repo, remote)
        chosen = pick(files, quant, repo)
        mmproj = pick_projector(files, chosen)
        blobs = []
        for f in (chosen, mmproj) if mmproj else (chosen,):
            blob = yield from download.download(
                client,
                store,
                f"{base}/{repo}/resolve/main/{quote(f.path, safe='/')}",
                remote,
                digest=f"sha256:{f.sha256}" if f.sha256 else None,
                size=f.size,
                label=f.path.rsplit("/", 1)[-1],
            )
            blobs.append(blob)
    yield ProgressResponse(status="verifying sha256 digest")
    yield ProgressResponse(status="writing manifest")
    store.create_from_blob(
        "/".join(name.parts()[:3]) + ":" + name.tag,
        blobs[0].digest,
        blobs[0].size,
        {
            "model_format": "gguf",
            "file_type": quant_of(chosen.path) or quant.upper(),
            "rootfs": {"type": "layers", "diff_ids": [b.digest for b in blobs]},
        },
        projector=(blobs[1].digest, blobs[1].size) if len(blobs) > 1 else None,
    )
    yield ProgressResponse(status="success")
