"""Model management: ``list``, ``show``, ``create``, ``pull``, ``copy``, ``delete``, ``unload``.

These work on the store (names, blobs, layers) and read GGUF headers
(``store.gguf``); only ``unload`` and ``delete`` ask the scheduler.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ..errors import StatusError
from ..prompting import template_caps
from ..store import gguf
from ..store.store import is_digest
from ..types import (
    CopyRequest,
    CreateRequest,
    DeleteRequest,
    ListModelResponse,
    ListResponse,
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


def list_models(session: Session) -> ListResponse:
    """The models in the store, newest first."""
    out = []
    for m in session.store.list():
        md = gguf.read_metadata(m.path)
        out.append(
            ListModelResponse(
                name=m.name,
                model=m.name,
                modified_at=m.modified_at,
                size=m.size,
                digest=m.digest.removeprefix("sha256:"),
                details=_details.model_details(md, gguf.parameter_count(m.path)),
            )
        )
    return ListResponse(models=out)


def show(session: Session, req: ShowRequest) -> ShowResponse:
    """Details, GGUF metadata, template, parameters and capabilities of a stored model."""
    stored = session.store.resolve(req.model)
    md = gguf.read_metadata(stored.path, arrays=bool(req.verbose))
    template, system, params, license_text, has_projector = _details.stored_layers(stored)
    gguf_template = md.get("tokenizer.chat_template")
    caps = template_caps(gguf_template) if gguf_template else None
    return ShowResponse(
        license=license_text,
        template=template or gguf_template or "",
        system=system,
        parameters=_details.format_parameters(params),
        messages=_details.stored_messages(stored) or None,
        modelfile=_details.modelfile(stored, template or gguf_template or "", system, params),
        details=_details.model_details(md, gguf.parameter_count(stored.path)),
        model_info=_details.model_info(md, bool(req.verbose)),
        capabilities=_details.capabilities(md, caps, has_projector),
        modified_at=stored.modified_at,
    )


def create(session: Session, req: CreateRequest) -> StatusResponse:
    """Store a model from a GGUF path, an uploaded blob or another stored model."""
    if req.quantize or req.adapters:
        raise StatusError.bad_request("quantize and adapters are not supported by create")
    source = req.from_ or next(iter((req.files or {}).values()), None)
    if not source:
        raise StatusError.bad_request("create needs from_ (a GGUF path or a model name) or files")
    if is_digest(source):  # files={"model.gguf": digest} after create_blob, as ollama-python does
        blob = session.store.blob_path(source)
        if not blob.is_file():
            raise StatusError.bad_request(f"blob {source} not found: upload it with create_blob(path) first")
        source = str(blob)
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
    )
    return StatusResponse(status="success")


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
