"""The model store on disk, in Ollama's layout.

``<root>/manifests/<host>/<namespace>/<model>/<tag>`` holds a JSON manifest
listing content-addressed layers stored as ``<root>/blobs/sha256-<hex>``
(the GGUF, and optional projector GGUF, LoRA adapter GGUFs, control vector GGUFs, template, system
prompt, parameters, license and messages). ``LLAMANATIVE_MODELS`` can point at an existing Ollama models
directory. Writes are atomic (temporary file + rename) under a file lock, so
concurrent writers and crashes never leave a half-written manifest or blob.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..errors import StatusError
from . import filelock
from .names import ModelName, parse_name

MEDIA_MODEL = "application/vnd.ollama.image.model"
MEDIA_TEMPLATE = "application/vnd.ollama.image.template"
MEDIA_SYSTEM = "application/vnd.ollama.image.system"
MEDIA_PARAMS = "application/vnd.ollama.image.params"
MEDIA_LICENSE = "application/vnd.ollama.image.license"
MEDIA_MESSAGES = "application/vnd.ollama.image.messages"
MEDIA_PROJECTOR = "application/vnd.ollama.image.projector"
MEDIA_ADAPTER = "application/vnd.ollama.image.adapter"
# A draft model for speculative decoding (a Modelfile's DRAFT). Ollama reserves the instruction but stores no such
# layer, so the type is llamanative's own; Ollama skips layers of types it does not know.
MEDIA_DRAFT = "application/vnd.llamanative.image.draft"
# A control vector (a Modelfile's CONTROLVECTOR, llama-server's --control-vector): llamanative's own type, as
# Ollama has none.
MEDIA_CONTROL_VECTOR = "application/vnd.llamanative.image.controlvector"
MEDIA_CONFIG = "application/vnd.docker.container.image.v1+json"
MEDIA_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_BLOB_NAME = re.compile(r"^sha256-[0-9a-f]{64}$")


def default_root() -> Path:
    """``$LLAMANATIVE_MODELS``, else ``<user cache>/llamanative/store``."""
    env = os.environ.get("LLAMANATIVE_MODELS")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(cache) / "llamanative" / "store"


@dataclass(frozen=True)
class StoredModel:
    """A model resolved from the store (or a plain GGUF path)."""

    name: str  # display name ("smollm2:latest"), or the path for a plain file
    path: str  # the GGUF file to load
    digest: str  # "sha256:<hex>" of the manifest (store) or of the file (plain path)
    size: int  # bytes of all layers
    modified_at: datetime
    layers: tuple[dict, ...] = ()
    store: ModelStore | None = None

    def layer_text(self, media_type: str) -> str | None:
        """Text of the first layer of ``media_type`` (template, system, license ...)."""
        for layer in self.layers:
            if layer["mediaType"] == media_type and self.store is not None:
                return self.store.blob_path(layer["digest"]).read_text("utf-8")
        return None

    def layer_json(self, media_type: str):
        text = self.layer_text(media_type)
        return None if text is None else json.loads(text)

    @property
    def projector(self) -> str | None:
        """The path of the projector GGUF (the vision/audio encoder, llama.cpp's ``mmproj``) stored with
        the model: its layer of type :data:`MEDIA_PROJECTOR`. None without one, and for a plain GGUF path."""
        for layer in self.layers:
            if layer["mediaType"] == MEDIA_PROJECTOR and self.store is not None:
                return str(self.store.blob_path(layer["digest"]))
        return None

    @property
    def draft(self) -> str | None:
        """The path of the draft model GGUF stored with the model (its layer of type :data:`MEDIA_DRAFT`,
        a Modelfile's ``DRAFT``): speculative decoding drafts with it. None without one."""
        for layer in self.layers:
            if layer["mediaType"] == MEDIA_DRAFT and self.store is not None:
                return str(self.store.blob_path(layer["digest"]))
        return None

    @property
    def adapters(self) -> list[str]:
        """The paths of the LoRA adapter GGUFs stored with the model (its layers of type
        :data:`MEDIA_ADAPTER`), in their order: a request's ``lora`` option names them by index."""
        if self.store is None:
            return []
        return [
            str(self.store.blob_path(layer["digest"])) for layer in self.layers if layer["mediaType"] == MEDIA_ADAPTER
        ]

    @property
    def control_vectors(self) -> list[str]:
        """The paths of the control vector GGUFs stored with the model (its layers of type
        :data:`MEDIA_CONTROL_VECTOR`), in their order: a request's ``control_vectors`` option names them by index."""
        if self.store is None:
            return []
        return [
            str(self.store.blob_path(layer["digest"]))
            for layer in self.layers
            if layer["mediaType"] == MEDIA_CONTROL_VECTOR
        ]


def _is_file(path: str) -> bool:
    """Whether ``path`` (``~`` expanded) names a file; False for a path the system cannot look at
    (an unknown ``~user``, a name too long for the file system, a NUL in ``~user`` ...)."""
    try:
        return Path(path).expanduser().is_file()
    except (OSError, RuntimeError, ValueError):
        return False


def gguf_architecture(path: str | os.PathLike) -> str:
    """``general.architecture`` of the GGUF at ``path`` (``""`` when the header has none).

    Raises:
        ValueError: not a GGUF file, or its header is corrupt or truncated.
        OSError: the file cannot be read.
    """
    from . import gguf  # here: reading a header needs the native module, importing the store does not

    arch = gguf.read_metadata(path).get("general.architecture")
    return arch if isinstance(arch, str) else ""


def check_projector(path: str) -> Path:
    """The projector GGUF at ``path`` (``~`` expanded), checked: a GGUF whose ``general.architecture`` is ``clip``.

    Raises:
        StatusError: 404 no such file; 400 not a GGUF file, or a GGUF that is not a projector.
    """
    if not _is_file(path):
        raise StatusError.not_found(f"projector file {path!r} not found")
    p = Path(path).expanduser()
    try:
        arch = gguf_architecture(p)
    except (ValueError, OSError) as exc:
        raise StatusError.bad_request(f"projector {path!r} is not a GGUF file: {exc}") from None
    if arch != "clip":
        raise StatusError.bad_request(
            f"projector {path!r} is not a projector: its general.architecture is {arch!r}, "
            "a projector GGUF's (an mmproj file) is 'clip'"
        )
    return p


def check_draft(path: str, model_path: str | os.PathLike) -> Path:
    """The draft model GGUF at ``path`` (``~`` expanded), checked against the model GGUF at ``model_path``: a
    model (not a projector) whose vocabulary is the model's, as llama.cpp's speculative decoding requires (the
    same tokenizer type, the same BOS/EOS tokens, at most 128 tokens more or fewer).

    Raises:
        StatusError: 404 no such file; 400 not a GGUF file, a projector, or a vocabulary that differs.
    """
    from . import gguf  # here: reading a header needs the native module, importing the store does not

    p = Path(path).expanduser()
    if not p.is_file():
        raise StatusError.not_found(f"draft model file {path!r} not found")
    try:
        draft = gguf.read_metadata(p, arrays=True)
        target = gguf.read_metadata(model_path, arrays=True)
    except ValueError as exc:
        raise StatusError.bad_request(f"draft model {path!r} is not a GGUF file: {exc}") from None
    if draft.get("general.architecture") == "clip":
        raise StatusError.bad_request(f"draft model {path!r} is a projector (general.architecture 'clip'), not a model")
    for key in ("tokenizer.ggml.model", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"):
        if draft.get(key) != target.get(key):
            raise StatusError.bad_request(
                f"draft model {path!r} does not share the model's vocabulary: its {key} is {draft.get(key)!r}, "
                f"the model's {target.get(key)!r}"
            )
    n_draft, n_target = len(draft.get("tokenizer.ggml.tokens") or ()), len(target.get("tokenizer.ggml.tokens") or ())
    if abs(n_draft - n_target) > 128:
        raise StatusError.bad_request(
            f"draft model {path!r} does not share the model's vocabulary: {n_draft} tokens against {n_target}"
        )
    return p


def check_adapter(path: str, model_path: str | os.PathLike) -> Path:
    """The LoRA adapter GGUF at ``path`` (``~`` expanded), checked against the model GGUF at ``model_path``:
    a LoRA adapter of the model's architecture whose tensors fit the model's (see ``_core.check_lora_adapter``).

    Raises:
        StatusError: 404 no such file; 400 not a LoRA adapter GGUF, or one that does not fit the model.
    """
    if not _is_file(path):
        raise StatusError.not_found(f"adapter file {path!r} not found")
    p = Path(path).expanduser()
    from .. import _core  # here: checking an adapter needs the native module, importing the store does not

    try:
        _core.check_lora_adapter(p, model_path)
    except (ValueError, OSError) as exc:  # AdapterLoadError, or a model file that is not a GGUF
        raise StatusError.bad_request(f"adapter {path!r} cannot be used with this model: {exc}") from None
    return p


def check_control_vector(path: str, model_path: str | os.PathLike) -> Path:
    """The control vector GGUF at ``path`` (``~`` expanded), checked against the model GGUF at ``model_path``:
    ``direction.<layer>`` F32 tensors of the model's embedding length for layers it has (see
    ``_core.check_control_vector``).

    Raises:
        StatusError: 404 no such file; 400 not a control vector GGUF, or one that does not fit the model.
    """
    if not _is_file(path):
        raise StatusError.not_found(f"control vector file {path!r} not found")
    p = Path(path).expanduser()
    from .. import _core  # here: checking a control vector needs the native module, importing the store does not

    try:
        _core.check_control_vector(p, model_path)
    except (ValueError, OSError) as exc:  # ControlVectorLoadError, or a model file that is not a GGUF
        raise StatusError.bad_request(f"control vector {path!r} cannot be used with this model: {exc}") from None
    return p


def _check_model_file(path: str) -> None:
    """Refuse a projector GGUF given as the model; any other file is left to the loader."""
    try:
        arch = gguf_architecture(path)
    except (ValueError, OSError):
        return
    if arch == "clip":
        raise StatusError.bad_request(
            f"{path!r} is a projector (general.architecture 'clip'), not a model: "
            "give the model GGUF as from_ and this file as projector"
        )


def is_digest(digest: object) -> bool:
    """True for ``sha256:<64 lowercase hex>``, the only digest form the store accepts."""
    return isinstance(digest, str) and _DIGEST.match(digest) is not None


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ModelStore:
    """Names to GGUF blobs. See the module docstring for the layout."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root).expanduser() if root else default_root()

    # -- paths -------------------------------------------------------------------------
    def manifest_path(self, name: ModelName) -> Path:
        return self.root.joinpath("manifests", *name.parts())

    def blob_path(self, digest: str) -> Path:
        if not is_digest(digest):
            raise StatusError.bad_request(f"invalid digest {digest!r}")
        return self.root / "blobs" / f"sha256-{digest[7:]}"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as lock:
            filelock.lock(lock.fileno())
            try:
                yield
            finally:
                filelock.unlock(lock.fileno())

    def _write_atomic(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    # -- reading -------------------------------------------------------------------------
    def resolve(self, model: str) -> StoredModel:
        """The model named ``model``, or the GGUF file at that path.

        Raises:
            StatusError: 404 when there is no such model, 400 for an invalid name.
        """
        # Only an existing file named *.gguf is taken as a path: anything else
        # is a name, checked by parse_name (so "../../etc/passwd" is refused).
        if model.endswith(".gguf") and _is_file(model):
            path = Path(model).expanduser()
            st = path.stat()
            return StoredModel(
                str(path), str(path.resolve()), "", st.st_size, datetime.fromtimestamp(st.st_mtime, timezone.utc)
            )
        name = parse_name(model)
        mpath = self.manifest_path(name)
        if not _is_file(str(mpath)):  # a host part may be longer than a file name can be
            raise StatusError.not_found(f"model '{name.display}' not found")
        return self._load_manifest(name, mpath)

    def _load_manifest(self, name: ModelName, mpath: Path) -> StoredModel:
        raw = mpath.read_bytes()
        manifest = json.loads(raw)
        layers = tuple(manifest.get("layers", []))
        gguf = next((layer for layer in layers if layer["mediaType"] == MEDIA_MODEL), None)
        if gguf is None:
            raise StatusError.internal(f"model '{name.display}' has no model layer")
        size = sum(int(layer.get("size", 0)) for layer in layers) + int(manifest.get("config", {}).get("size", 0))
        return StoredModel(
            name.display,
            str(self.blob_path(gguf["digest"])),
            "sha256:" + hashlib.sha256(raw).hexdigest(),
            size,
            datetime.fromtimestamp(mpath.stat().st_mtime, timezone.utc),
            layers,
            self,
        )

    def list(self) -> list[StoredModel]:
        """Every model with a manifest, newest first."""
        base = self.root / "manifests"
        out = []
        if base.is_dir():
            for mpath in base.glob("*/*/*/*"):
                if mpath.is_file() and not mpath.name.startswith("."):
                    host, ns, model, tag = mpath.relative_to(base).parts
                    with contextlib.suppress(StatusError, ValueError, KeyError):
                        out.append(self._load_manifest(ModelName(host, ns, model, tag), mpath))
        return sorted(out, key=lambda m: m.modified_at, reverse=True)

    # -- writing -------------------------------------------------------------------------
    def put_blob(self, src: Path) -> str:
        """Put the file ``src`` into the blobs (atomically, under the store lock); return its digest.

        Raises:
            FileNotFoundError: no such file.
        """
        if not src.is_file():
            raise FileNotFoundError(f"no such file: {src}")
        with self._locked():
            return self._put_blob_file(src)["digest"]

    def _put_blob_file(self, src: Path) -> dict:
        digest = "sha256:" + sha256_file(src)
        dst = self.blob_path(digest)
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(f".tmp-{dst.name}-{os.getpid()}")
            try:
                os.link(src, tmp)  # same filesystem: no copy of gigabytes
            except OSError:
                shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
        return {"mediaType": MEDIA_MODEL, "digest": digest, "size": dst.stat().st_size}

    def write_manifest(self, model: str, raw: bytes) -> StoredModel:
        """Store ``raw``, byte for byte, as the manifest of ``model`` (so its digest is the sender's).

        Every blob the manifest names must already be in the store.

        Raises:
            StatusError: 400 bad name, 500 when the manifest is not valid JSON
                or names a blob that is missing.
        """
        name = parse_name(model)
        try:
            manifest = json.loads(raw)
            config = manifest.get("config") or {}
            digests = [e["digest"] for e in manifest["layers"]] + ([config["digest"]] if config.get("digest") else [])
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise StatusError.internal(f"invalid manifest for {name.display}: {exc}") from exc
        if not all(is_digest(d) for d in digests):
            raise StatusError.internal(f"invalid manifest for {name.display}: a digest is not sha256:<hex>")
        with self._locked():
            missing = [d for d in digests if not self.blob_path(d).is_file()]
            if missing:
                raise StatusError.internal(f"manifest of {name.display} names missing blobs: {', '.join(missing)}")
            self._write_atomic(self.manifest_path(name), raw)
        return self.resolve(model)

    def create_from_blob(
        self,
        model: str,
        digest: str,
        size: int,
        config: dict | None = None,
        projector: tuple[str, int] | None = None,
    ) -> StoredModel:
        """Store ``model`` as the GGUF blob ``digest`` (already in the store) plus a config blob, and the
        projector blob ``projector`` (``(digest, size)``, already in the store) when given.

        Raises:
            StatusError: 400 bad name, 500 when a blob is missing.
        """
        cfg = self._put_blob_bytes(MEDIA_CONFIG, json.dumps(config or {"model_format": "gguf"}).encode())
        layers = [{"mediaType": MEDIA_MODEL, "digest": digest, "size": size}]
        if projector is not None:
            layers.append({"mediaType": MEDIA_PROJECTOR, "digest": projector[0], "size": projector[1]})
        manifest = {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": cfg,
            "layers": layers,
        }
        return self.write_manifest(model, json.dumps(manifest, indent=2).encode())

    def _put_blob_bytes(self, media_type: str, data: bytes) -> dict:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        dst = self.blob_path(digest)
        if not dst.exists():
            self._write_atomic(dst, data)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def create(
        self,
        model: str,
        *,
        from_: str,
        template: str | None = None,
        system: str | None = None,
        parameters: dict | None = None,
        license: str | builtins.list[str] | None = None,  # `list` is a method of this class
        messages: builtins.list[dict] | None = None,
        config: dict | None = None,
        projector: str | None = None,
        adapters: builtins.list[str] | None = None,
        draft: str | None = None,
        control_vectors: builtins.list[str] | None = None,
        model_file: str | os.PathLike[str] | None = None,
    ) -> StoredModel:
        """Store a model under ``model`` from a GGUF file or another stored model.

        Layers given here replace the source model's layers of the same kind;
        ``projector``, the path of a projector GGUF (``general.architecture``
        ``clip``, llama.cpp's ``mmproj`` files), is stored as the projector
        layer. A model created from a stored model keeps that model's projector
        unless ``projector`` replaces it. ``adapters``, paths of LoRA adapter
        GGUFs for the model, are stored as its adapter layers, in that order
        (replacing the source model's; a model created from a stored model
        keeps that model's otherwise). ``model_file``, a GGUF made from the
        source (a quantized copy), becomes the model layer in place of the
        source's: a new blob with its own digest. ``draft``, the path of a
        smaller model GGUF with the same vocabulary, is stored as the draft
        model layer (speculative decoding; kept from a stored source unless
        replaced). ``control_vectors``, paths of control vector GGUFs for the
        model, are stored as its control vector layers, in that order (kept
        from a stored source unless replaced, as adapters).

        Raises:
            StatusError: 400 bad name, a projector GGUF as the model, a
                ``projector`` that is not a projector GGUF, an adapter that is
                not a LoRA adapter of the model, a control vector that does not
                fit it; 404 the source, the projector, an adapter or a control
                vector file does not exist.
        """
        name = parse_name(model)
        proj = check_projector(projector) if projector is not None else None
        if os.path.isfile(from_):
            _check_model_file(from_)
        loras = None
        if adapters is not None:
            weights = self.source_file(from_) if model_file is None else Path(model_file)
            loras = [check_adapter(a, weights) for a in adapters]
        cvecs = None
        if control_vectors is not None:
            weights = self.source_file(from_) if model_file is None else Path(model_file)
            cvecs = [check_control_vector(c, weights) for c in control_vectors]
        dft = None
        if draft is not None:
            dft = check_draft(draft, self.source_file(from_) if model_file is None else Path(model_file))
        with self._locked():
            # The source's GGUF is stored only when it is the model: not when model_file replaces it.
            if os.path.isfile(from_):
                layers = [] if model_file is not None else [self._put_blob_file(Path(from_))]
            elif os.sep in from_ or from_.endswith(".gguf"):
                raise StatusError.not_found(f"file {from_!r} not found")
            else:
                src = self.resolve(from_)
                layers = [dict(layer) for layer in src.layers]
                if not layers and model_file is None:
                    layers = [self._put_blob_file(Path(src.path))]
            if model_file is not None:
                others = [layer for layer in layers if layer["mediaType"] != MEDIA_MODEL]
                layers = [self._put_blob_file(Path(model_file)), *others]
            if proj is not None:
                layers = [layer for layer in layers if layer["mediaType"] != MEDIA_PROJECTOR]
                layers.append(dict(self._put_blob_file(proj), mediaType=MEDIA_PROJECTOR))
            if dft is not None:
                layers = [layer for layer in layers if layer["mediaType"] != MEDIA_DRAFT]
                layers.append(dict(self._put_blob_file(dft), mediaType=MEDIA_DRAFT))
            if loras is not None:
                layers = [layer for layer in layers if layer["mediaType"] != MEDIA_ADAPTER]
                layers += [dict(self._put_blob_file(p), mediaType=MEDIA_ADAPTER) for p in loras]
            if cvecs is not None:
                layers = [layer for layer in layers if layer["mediaType"] != MEDIA_CONTROL_VECTOR]
                layers += [dict(self._put_blob_file(p), mediaType=MEDIA_CONTROL_VECTOR) for p in cvecs]
            replace = {
                MEDIA_TEMPLATE: template,
                MEDIA_SYSTEM: system,
                MEDIA_PARAMS: None if parameters is None else json.dumps(parameters),
                MEDIA_LICENSE: None
                if license is None
                else ("\n\n".join(license) if isinstance(license, list) else license),
                MEDIA_MESSAGES: None if messages is None else json.dumps(messages),
            }
            for media, text in replace.items():
                if text is not None:
                    layers = [layer for layer in layers if layer["mediaType"] != media]
                    layers.append(self._put_blob_bytes(media, text.encode()))
            cfg = self._put_blob_bytes(MEDIA_CONFIG, json.dumps(config or {"model_format": "gguf"}).encode())
            manifest = {"schemaVersion": 2, "mediaType": MEDIA_MANIFEST, "config": cfg, "layers": layers}
            self._write_atomic(self.manifest_path(name), json.dumps(manifest, indent=2).encode())
        return self.resolve(model)

    def source_file(self, from_: str) -> Path:
        """The GGUF that :meth:`create` from ``from_`` starts from: the file ``from_``, or the stored model's.

        Raises:
            StatusError: 404 no such file or model; 400 a bad name, or a projector GGUF.
        """
        if os.path.isfile(from_):
            _check_model_file(from_)
            return Path(from_)
        if os.sep in from_ or from_.endswith(".gguf"):
            raise StatusError.not_found(f"file {from_!r} not found")
        return Path(self.resolve(from_).path)

    def temp_path(self, tag: str) -> Path:
        """A new path among the blobs (``.tmp-<tag>-<random>``, which :meth:`delete` leaves alone) for a
        blob being made, on the store's file system; nothing is created. The caller removes the file."""
        blobs = self.root / "blobs"
        blobs.mkdir(parents=True, exist_ok=True)
        return blobs / f".tmp-{tag}-{uuid.uuid4().hex}"

    def copy(self, source: str, destination: str) -> None:
        """Give a stored model a second name (the blobs are shared)."""
        src, dst = parse_name(source), parse_name(destination)
        with self._locked():
            spath = self.manifest_path(src)
            if not spath.is_file():
                raise StatusError.not_found(f"model '{src.display}' not found")
            self._write_atomic(self.manifest_path(dst), spath.read_bytes())

    def delete(self, model: str) -> None:
        """Remove a name; blobs go only when no remaining manifest uses them."""
        name = parse_name(model)
        with self._locked():
            mpath = self.manifest_path(name)
            if not mpath.is_file():
                raise StatusError.not_found(f"model '{name.display}' not found")
            mpath.unlink()
            used: set[str] = set()
            for m in self.list():
                used.update(layer["digest"] for layer in m.layers)
                raw = json.loads(self.manifest_path(parse_name(m.name)).read_bytes())
                used.add(raw.get("config", {}).get("digest"))
            blobs = self.root / "blobs"
            for blob in blobs.glob("sha256-*") if blobs.is_dir() else ():
                # Only finished blobs: a pull in progress keeps "-partial" files
                # and lock files here that must survive a delete.
                if _BLOB_NAME.match(blob.name) and "sha256:" + blob.name[7:] not in used:
                    blob.unlink()
