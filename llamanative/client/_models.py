"""Model management: ``list``, ``show``, ``create``, ``pull``, ``push``, ``copy``, ``delete``, ``unload``.

These work on the store (names, blobs, layers) and read GGUF headers
(``store.gguf``); only ``unload`` and ``delete`` ask the scheduler.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Generator, Iterator
from typing import Any

from ..errors import StatusError
from ..prompting import template_caps
from ..store import gguf, quantize
from ..store.names import parse_name
from ..store.store import (
    MEDIA_MODEL,
    check_adapter,
    check_control_vector,
    check_draft,
    check_projector,
    gguf_architecture,
    is_digest,
)
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
    PushRequest,
    ShowRequest,
    ShowResponse,
    StatusResponse,
    Tensor,
)
from ..types.options import REQUEST_ONLY
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
    """Details, GGUF metadata, template, parameters and capabilities of a stored model.

    As Ollama's show: the request's ``system`` and (deprecated) ``template``
    replace the stored ones in the response and its Modelfile; its
    ``options`` are merged into the Modelfile's parameters only (``parameters``
    stays what is stored); ``verbose`` adds the long arrays and the tensors.
    """
    stored = session.store.resolve(req.model)
    verbose = bool(req.verbose)
    md = gguf.read_metadata(stored.path, arrays=verbose)
    template, system, params, license_text, _has_projector = _details.stored_layers(stored)
    system = req.system or system
    template = req.template or template
    proj = _projector_metadata(stored.projector, arrays=True)  # a projector's arrays are short
    gguf_template = md.get("tokenizer.chat_template")
    caps = template_caps(gguf_template) if gguf_template else None
    modelfile_params = dict(params or {})
    if req.options is not None:
        modelfile_params.update(req.options.model_dump(exclude_none=True))
    return ShowResponse(
        license=license_text,
        template=template or gguf_template or "",
        system=system,
        parameters=_details.format_parameters(params),
        messages=_details.stored_messages(stored) or None,
        modelfile=_details.modelfile(stored, template or gguf_template or "", system, modelfile_params),
        details=_details.model_details(md, gguf.parameter_count(stored.path), proj),
        model_info=_details.model_info(md, verbose),
        projector_info=None if proj is None else _details.projector_info(proj, verbose),
        tensors=[Tensor(name=n, type=t, shape=list(s)) for n, t, s in gguf.tensor_infos(stored.path)]
        if verbose
        else None,
        capabilities=_details.capabilities(md, caps, proj),
        modified_at=stored.modified_at,
    )


def create(
    session: Session,
    req: CreateRequest,
    projector: str | None = None,
    draft: str | None = None,
    control_vectors: list[str] | None = None,
) -> Iterator[ProgressResponse]:
    """Store a model from a GGUF path, uploaded blobs or another stored model, with ``projector``, ``draft`` and
    ``control_vectors`` (paths: a projector GGUF, a draft model GGUF, control vector GGUFs) if given.

    ``files`` (name -> digest, after ``create_blob``) may hold a projector GGUF
    beside the model GGUF, as Ollama's create takes them: the file whose
    ``general.architecture`` is ``clip`` is stored as the projector.
    ``adapters`` (name -> digest, or name -> path) are LoRA adapter GGUFs,
    checked against the model and stored as its adapter layers in that order.

    Everything is checked before this returns. Without ``quantize`` (or when
    the source already has that type) the model is stored before this returns
    and the iterator holds one "success"; with it, the source is quantized and
    stored as the iterator is consumed (Ollama's statuses: see
    :class:`~..store.quantize.Quantization`, then "creating new layer
    <digest>", "writing manifest", "success"), and closing the iterator early
    (from any thread) stops the quantizer and stores nothing.
    """
    adapters = [_blob_file(session, v) if is_digest(v) else v for v in req.adapters.values()] if req.adapters else None
    want = quantize.parse_type(req.quantize) if req.quantize else None
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
        for key in REQUEST_ONLY:
            if key in req.parameters:
                raise StatusError.bad_request(REQUEST_ONLY[key])
    layers: dict[str, Any] = {
        "template": req.template,
        "system": req.system,
        "parameters": req.parameters,
        "license": req.license,
        "messages": [m.model_dump(exclude_none=True) for m in req.messages] if req.messages else None,
        "projector": projector,
        "adapters": adapters,
        "draft": draft,
        "control_vectors": control_vectors,
    }
    if want is not None:
        parse_name(req.model)  # a bad name is a 400 now, not after the quantizing
        path = session.store.source_file(source)
        have = quantize.check_source(path)
        if have != want:  # as Ollama: a model already of the asked type is stored as it is
            if projector is not None:
                check_projector(projector)  # before the quantizing, not after
            for adapter in adapters or ():
                check_adapter(adapter, path)
            if draft is not None:
                check_draft(draft, path)
            for cvec in control_vectors or ():
                check_control_vector(cvec, path)
            job = quantize.Quantization(path, session.store.temp_path("quantize"), have, want)
            return _Stoppable(_quantized(session, req.model, source, job, layers), job.stop)
    session.store.create(req.model, from_=source, **layers)
    return iter([ProgressResponse(status="success")])


def _quantized(
    session: Session, model: str, source: str, job: quantize.Quantization, layers: dict[str, Any]
) -> Generator[ProgressResponse, None, None]:
    """Run ``job``, then store its output as the model layer of ``model`` (the other layers from ``source``)."""
    try:
        yield from job
        stored = session.store.create(model, from_=source, model_file=job.dst, **layers)
        digest = next(layer["digest"] for layer in stored.layers if layer["mediaType"] == MEDIA_MODEL)
        yield ProgressResponse(status=f"creating new layer {digest}")
        yield ProgressResponse(status="writing manifest")
        yield ProgressResponse(status="success")
    finally:
        job.dst.unlink(missing_ok=True)  # stored as a blob by now (a link or a copy), or not wanted


class _Stoppable(Iterator[ProgressResponse]):
    """Progress responses whose ``close()`` works from any thread, even while another one is in ``next``.

    ``close()`` calls ``stop`` (which makes a running ``next`` end soon, with
    an error) and closes the generator, unless it is running on another
    thread: that thread then ends it, running its clean-up.
    """

    def __init__(self, steps: Generator[ProgressResponse, None, None], stop: Callable[[], None]) -> None:
        self._steps = steps
        self._stop = stop

    def __next__(self) -> ProgressResponse:
        return next(self._steps)

    def close(self) -> None:
        self._stop()
        with contextlib.suppress(ValueError):  # "generator already executing": its own thread cleans up
            self._steps.close()


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


def push(session: Session, req: PushRequest, fn: Callable[[ProgressResponse], Any] | None) -> Any:
    """The last progress response, an iterator of them (``req.stream``), or via ``fn``.

    Name, namespace and the stored model are checked before this returns (see
    :func:`~..store.upload.push`).
    """
    from ..store.upload import push as store_push  # here: the network clients load only when a push needs them

    progress: Iterator[ProgressResponse] = store_push(session.store, req.model, insecure=bool(req.insecure))
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
