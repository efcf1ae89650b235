"""Model names and store paths: parsing, normalisation, where a name or digest lands on disk.

Names are built from parts (hosts with ports, namespaces, models, tags, the
``hf.co/`` and ``http(s)://`` forms, ``..``, ``/``, ``:``, ``\\``, NUL, a
trailing newline, long parts) or are random text. Each goes through
``parse_name`` and its ``display`` form, ``ModelStore.manifest_path``,
``blob_path``, ``ModelStore.resolve`` on an empty store (and on one
holding a model), the registry's ``target``, the URL and Hugging Face name
helpers (``is_url``, ``name_for``, ``is_hf_name``, ``quant_of``, ``pick``).

Contract: a result or a ``StatusError``; a parsed name's parts hold only the
characters the names module allows and its display form parses back to the
same name; a manifest or blob path stays inside the store; ``name_for`` of
a URL is a valid name; ``resolve`` answers 400 or 404, never an ``OSError``.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import atheris
from contract import call, check

from llamanative.errors import StatusError
from llamanative.store import direct, huggingface, registry
from llamanative.store.names import parse_name
from llamanative.store.store import ModelStore, is_digest

TARGETS = [
    "llamanative/store/names.py",
    "llamanative/store/store.py",
    "llamanative/store/direct.py",
    "llamanative/store/huggingface.py",
    "llamanative/store/registry.py",
]
PARTS = [
    "smollm2",
    "library",
    "latest",
    "registry.ollama.ai",
    "localhost:11434",
    "hf.co",
    "huggingface.co",
    "a",
    "A-b_c.d",
    "..",
    ".",
    "-a",
    "_a",
    "a..b",
    "",
    " ",
    "x" * 128,
    "y" * 129,
    "h" * 253,
    "h" * 254,
    "host:99999",
    "host:",
    ":",
    "Q4_K_M",
    "q4_k_m",
    "\x00",
    "a\n",
    "a\\b",
    "é",
    "%2e%2e",
    "~",
    "*",
]
PATHS = [
    "model-Q4_K_M.gguf",
    "sub/model-q4_k_m.gguf",
    "model-Q4_K_M-00001-of-00002.gguf",
    "mmproj-Q4_K_M.gguf",
    "model.Q8_0.gguf",
    "model-F16.gguf",
    "README.md",
    "model.gguf",
    ".gguf",
    "Q4_K_M.gguf",
    "-Q4_K.gguf",
]
_ALLOWED = re.compile(r"[A-Za-z0-9_.\-]+")

_empty: ModelStore | None = None
_root: Path | None = None


def setup() -> None:
    global _empty, _root
    _root = Path(tempfile.mkdtemp(prefix="fuzz-names-"))
    _empty = ModelStore(_root / "store")


def _name(fdp: atheris.FuzzedDataProvider) -> str:
    kind = fdp.ConsumeIntInRange(0, 4)
    if kind == 0:
        return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 80))
    parts = [fdp.PickValueInList(PARTS) for _ in range(fdp.ConsumeIntInRange(1, 4))]
    name = "/".join(parts)
    if fdp.ConsumeBool():
        name += ":" + fdp.PickValueInList(PARTS)
    if kind == 1:
        name = fdp.PickValueInList(["https://", "http://", "ftp://", "HTTPS://", ""]) + name
    if kind == 2 and fdp.ConsumeBool():
        name += fdp.PickValueInList(["\n", ".gguf", "/", ":", "@sha256:" + "0" * 64])
    return name


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    assert _empty is not None and _root is not None
    name = _name(fdp)
    parsed, err = call(parse_name, name)
    check(err is None or isinstance(err, StatusError), f"parse_name({name!r}) raised {err!r}")
    if parsed is not None:
        for part in (parsed.namespace, parsed.model, parsed.tag):
            check(_ALLOWED.fullmatch(part) and ".." not in part, f"parse_name({name!r}) kept the part {part!r}")
        check(re.fullmatch(r"[A-Za-z0-9_.\-]+(:[0-9]{1,5})?", parsed.host), f"host {parsed.host!r} of {name!r}")
        again, err = call(parse_name, parsed.display)
        check(again == parsed, f"display {parsed.display!r} of {name!r} parses as {again!r} ({err!r})")
        mpath = _empty.manifest_path(parsed)
        check(_inside(mpath, _empty.root / "manifests"), f"manifest path {mpath} of {name!r} is outside the store")
    for fn in (_empty.resolve, registry.target):
        out, err = call(fn, name)
        check(err is None or isinstance(err, StatusError), f"{fn.__qualname__}({name!r}) raised {err!r}")
    digest = fdp.PickValueInList(["sha256:" + "0" * 64, "sha256:" + "A" * 64, "sha256:../x", "", "sha256:", name])
    blob, err = call(_empty.blob_path, digest)
    check((blob is not None) == is_digest(digest), f"blob_path({digest!r}) gave {blob} / {err!r}")
    if blob is not None:
        check(_inside(blob, _empty.root / "blobs"), f"blob path {blob} is outside the store")
    url = fdp.PickValueInList(["https://example.com/", "http://h/", "https://h/a/", ""]) + name
    if direct.is_url(url):
        stored, err = call(direct.name_for, url)
        check(err is None, f"name_for({url!r}) raised {err!r}")
        if stored is not None:
            _, err = call(parse_name, stored)
            check(err is None, f"name_for({url!r}) = {stored!r} is not a valid name: {err!r}")
    if huggingface.is_hf_name(name):
        files = [huggingface.HfFile(fdp.PickValueInList(PATHS), None, None) for _ in range(fdp.ConsumeIntInRange(0, 5))]
        quant = fdp.PickValueInList(["Q4_K_M", "q4_k", "F16", "latest", "", "(", name.rsplit(":", 1)[-1]])
        out, err = call(huggingface.pick, files, quant, "org/repo")
        check(err is None or isinstance(err, StatusError), f"pick raised {err!r}")
        for f in files:
            call(huggingface.quant_of, f.path)
