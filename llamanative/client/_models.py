"""Model management: ``list``, ``show``, ``create``, ``pull``, ``copy``, ``delete``, ``unload``.

These work on the store (names, blobs, layers) and read GGUF headers
(``store.gguf``); only ``unload`` and ``delete`` ask the scheduler.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import StatusError
from ..prompting import template_caps
from ..store import gguf
from ..store.store import gguf_architecture, is_digest
from ..types import (
    CopyRequest,
    CreateRequest,
    DeleteRequest,
    ListModelResponse,
    ListResponse,
    ModelDetails,
    Options,
    ProgressResponse,
    PullRequest,
    ShowRequest,
    ShowResponse,
    StatusResponse,
)
from . import _details
from ._session import Session
from ._stream import with_callback

_log = logging.getLogger("llamanative")


def list_models(session: Session) -> ListResponse:
    """The models in the store, newest first."""
    out = []
    for m in session.store.list():
        try:
            details = _details.model_details(
                gguf.read_metadata(m.path), gguf.parameter_count(m.path), _projector_metadata(m.projector, arrays=False)
            )
        except (ValueError, OSError) as exc:
            # A blob that is not a readable GGUF (a file pulled from a URL, damaged since) is still a
            # stored model: it is listed without details, and only using it fails, with its own error.
            _log.warning("model %r: its file cannot be read as a GGUF: %s", m.name, exc)
            details = ModelDetails()
        out.append(
            ListModelResponse(
                name=m.name,
                model=m.name,
                modified_at=m.modified_at,
                size=m.size,
                digest=m.digest.removeprefix("sha256:"),
                details=details,
            )
        )
    return ListResponse(models=out)


def _projector_metadata(path: str | None, *, arrays: bool) -> dict | None:
    """The header of the model's projector GGUF; None without one, or when it cannot be read."""
    if path is None:
        return None
    try:
        return gguf.read_metadata(path, arrays=arrays)
    except (ValueError, OSError):
        return None


def show(session: Session, req: ShowRequest) -> ShowResponse:
    """Details, GGUF metadata, template, parameters and capabilities of a stored model."""
    stored = session.store.resolve(req.model)
    md = gguf.read_metadata(stored.path, arrays=bool(req.verbose))
    template, system, params, license_text, _has_projector = _details.stored_layers(stored)
    proj = _projector_metadata(stored.projector, arrays=True)  # a projector's arrays are short
    gguf_template = md.get("tokenizer.chat_template")
    caps = template_caps(gguf_template) if gguf_template else None
    return ShowResponse(
        license=license_text,
        template=template or gguf_template or "",
        system=system,
        parameters=_details.format_parameters(params),
        messages=_details.stored_messages(stored) or None,
        modelfile=_details.modelfile(stored, template or gguf_template or "", system, params),
        details=_details.model_details(md, gguf.parameter_count(stored.path), proj),
        model_info=_details.model_info(md, bool(req.verbose)),
        projector_info=None if proj is None else _details.projector_info(proj, bool(req.verbose)),
        capabilities=_details.capabilities(md, caps, proj),
        modified_at=stored.modified_at,
    )


def create(session: Session, req: CreateRequest, projector: str | None = None) -> StatusResponse:
    """Store a model from a GGUF path, uploaded blobs or another stored model, with ``projector`` (a path) if given.

    ``files`` (name -> digest, after ``create_blob``) may hold a projector GGUF
    beside the model GGUF, as Ollama's create takes them: the file whose
    ``general.architecture`` is ``clip`` is stored as the projector.
    """
    if req.quantize or req.adapters:
        raise StatusError.bad_request("quantize and adapters are not supported by create")
    files = [_blob_file(session, v) if is_digest(v) else v for v in (req.files or {}).values()]
    if not req.from_ and len(files) > 1:
        projectors = [f for f in files if _is_projector(f)]
        models = [f for f in files if f not in projectors]
        if len(models) != 1 or len(projectors) + (projector is not None) > 1:
            raise StatusError.bad_request(
                f"create takes one model GGUF and at most one projector GGUF, not {len(models)} model "
                f"and {len(projectors) + (projector is not None)} projector files"
            )
        files = models
        projector = projector or (projectors[0] if projectors else None)
    source = req.from_ or next(iter(files), None)
    if not source:
        raise StatusError.bad_request("create needs from_ (a GGUF path or a model name) or files")
    if is_digest(source):  # from_ may name an uploaded blob too
        source = _blob_file(session, source)
    if req.parameters:
        Options.from_map(req.parameters)  # validate before storing
    session.store.create(
        req.model,
        from_=source,
        template=req.template,
        system=req.system,
        parameters=req.parameters,
        license=req.license,
        messages=[m.model_dump(exclude_none=True) for m in req.messages] if req.messages else None,
        projector=projector,
    )
    return StatusResponse(status="success")


def _blob_file(session: Session, digest: str) -> str:
    """The path of an uploaded blob (files={"model.gguf": digest} after create_blob, as ollama-python does)."""
    blob = session.store.blob_path(digest)
    if not blob.is_file():
        raise StatusError.bad_request(f"blob {digest} not found: upload it with create_blob(path) first")
    return str(blob)


def _is_projector(path: str) -> bool:
    try:
        return gguf_architecture(path) == "clip"
    except (ValueError, OSError):
        return False


def pull(session: Session, req: PullRequest, fn: Callable[[ProgressResponse], Any] | None) -> Any:
    """The last progress response, an iterator of them (``req.stream``), or via ``fn``."""
    from ..store.pull import pull as store_pull  # here: the network clients load only when a pull needs them

    progress: Iterator[ProgressResponse] = store_pull(session.store, req.model, insecure=bool(req.insecure))
    if fn is not None:
        return with_callback(progress, fn)
    if req.stream:
        return progress
    last = None
    for item in progress:
        last = item
    return last


def copy(session: Session, req: CopyRequest) -> StatusResponse:
    session.store.copy(req.source, req.destination)
    return StatusResponse(status="success")


def unload(session: Session, model: str) -> bool:
    return session.scheduler.unload(session.store.resolve(model).path)


def delete(session: Session, req: DeleteRequest) -> StatusResponse:
    stored = session.store.resolve(req.model)
    session.scheduler.unload(stored.path)
    session.store.delete(req.model)
    return StatusResponse(status="success")
