"""The store methods of :class:`~llamanative.Client`: create, pull, push, copy, delete, list, show, ps, unload.

The work is done by ``_models`` (the store) and ``_status`` (what is loaded).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, cast, overload

from ..types import (
    CopyRequest,
    CreateRequest,
    DeleteRequest,
    ListResponse,
    Options,
    ProcessResponse,
    ProgressResponse,
    PullRequest,
    PushRequest,
    ShowRequest,
    ShowResponse,
    StatusResponse,
)
from . import _models, _status
from ._session import Session, validate
from ._stream import with_callback


class ModelMethods:
    """The store and the loaded models, over the client's session.

    ``list`` is the last method of the class: below it, ``list[...]`` in an
    annotation would name the method, not the builtin.
    """

    _session: Session

    @overload
    def create(
        self,
        model: str = "",
        quantize: str | None = None,
        from_: str | None = None,
        files: dict[str, str] | None = None,
        adapters: Mapping[str, str] | Sequence[str | os.PathLike] | None = None,
        template: str | None = None,
        license: str | Sequence[str] | None = None,
        system: str | None = None,
        parameters: Options | Mapping[str, Any] | None = None,
        messages: Sequence[Any] | None = None,
        *,
        projector: str | os.PathLike | None = None,
        draft: str | os.PathLike | None = None,
        control_vectors: Sequence[str | os.PathLike] | None = None,
        stream: Literal[False] = False,
    ) -> StatusResponse: ...

    @overload
    def create(
        self,
        model: str = "",
        quantize: str | None = None,
        from_: str | None = None,
        files: dict[str, str] | None = None,
        adapters: Mapping[str, str] | Sequence[str | os.PathLike] | None = None,
        template: str | None = None,
        license: str | Sequence[str] | None = None,
        system: str | None = None,
        parameters: Options | Mapping[str, Any] | None = None,
        messages: Sequence[Any] | None = None,
        *,
        projector: str | os.PathLike | None = None,
        draft: str | os.PathLike | None = None,
        control_vectors: Sequence[str | os.PathLike] | None = None,
        stream: Literal[True],
    ) -> Iterator[ProgressResponse]: ...

    @overload
    def create(
        self,
        model: str = "",
        quantize: str | None = None,
        from_: str | None = None,
        files: dict[str, str] | None = None,
        adapters: Mapping[str, str] | Sequence[str | os.PathLike] | None = None,
        template: str | None = None,
        license: str | Sequence[str] | None = None,
        system: str | None = None,
        parameters: Options | Mapping[str, Any] | None = None,
        messages: Sequence[Any] | None = None,
        *,
        projector: str | os.PathLike | None = None,
        draft: str | os.PathLike | None = None,
        control_vectors: Sequence[str | os.PathLike] | None = None,
        stream: bool,
    ) -> StatusResponse | Iterator[ProgressResponse]: ...

    def create(
        self,
        model: str = "",
        quantize: str | None = None,
        from_: str | None = None,
        files: dict[str, str] | None = None,
        adapters: Mapping[str, str] | Sequence[str | os.PathLike] | None = None,
        template: str | None = None,
        license: str | Sequence[str] | None = None,
        system: str | None = None,
        parameters: Options | Mapping[str, Any] | None = None,
        messages: Sequence[Any] | None = None,
        *,
        projector: str | os.PathLike | None = None,
        draft: str | os.PathLike | None = None,
        control_vectors: Sequence[str | os.PathLike] | None = None,
        stream: bool = False,
    ) -> StatusResponse | Iterator[ProgressResponse]:
        """Store a model under ``model`` from a GGUF path (``from_``) or another stored model.

        ``projector`` (a llamanative extension) is the path of a projector
        GGUF, the vision/audio encoder that llama.cpp calls ``mmproj``
        (``general.architecture`` ``clip``), stored with the model; a model
        created from a stored model keeps that model's projector unless
        ``projector`` replaces it. ``files`` may hold an uploaded projector
        GGUF beside the model GGUF, as Ollama's create takes them.

        ``adapters`` are LoRA adapter GGUFs for the model (llama.cpp's
        ``convert_lora_to_gguf.py`` writes them), stored as its adapter
        layers, in order, as Ollama stores a Modelfile's ``ADAPTER`` lines: a
        list of paths, or, as ollama-python sends them, file names mapped to
        blob digests (after :meth:`create_blob`) or to paths. Each is checked
        against the model (architecture and tensor shapes) before anything is
        stored. Requests then apply every adapter at scale 1.0, or those their
        ``options`` ``lora`` names (``[{"id": 0, "scale": 0.5}]``). A model
        created from a stored model keeps that model's adapters unless
        ``adapters`` replaces them.

        ``draft`` (a llamanative extension, a Modelfile's ``DRAFT``) is the
        path of a smaller model GGUF with the same vocabulary, stored with the
        model as its draft model: requests then use speculative decoding with
        it (``spec_type`` ``draft-simple``) unless their options choose
        otherwise. A model created from a stored model keeps that model's
        draft unless ``draft`` replaces it.

        ``control_vectors`` (a llamanative extension, a Modelfile's
        ``CONTROLVECTOR`` lines) are control vector GGUFs for the model
        (llama.cpp's ``cvector-generator`` writes them), paths stored as its
        control vector layers, in order, each checked against the model
        (embedding length, layers) first. Requests then add every one at
        scale 1.0 to every layer (as llama-server's ``--control-vector``), or
        those their ``options`` ``control_vectors`` names
        (``[{"id": 0, "scale": 0.8}]``) on the layers of
        ``control_vector_layer_range``. A model created from a stored model
        keeps that model's control vectors unless ``control_vectors``
        replaces them.

        ``quantize`` (Ollama's types, any case: ``q4_K_M``, ``q4_K_S``,
        ``q8_0``, ``q4_0``, ``q5_K_M``, ``q6_K``, ``f16``, ``bf16``, ``f32``)
        converts an F32, F16 or BF16 source with llama.cpp's quantizer and
        stores the result as a new blob; a source already of that type is
        stored as it is.

        The model is stored before this returns; with ``stream=True`` the
        result is an iterator of progress responses, as ollama-python's
        streamed create: one (status "success") without ``quantize``; with it,
        "quantizing F16 model to Q4_K_M" with ``total``/``completed`` after each
        tensor, "verifying conversion", "creating new layer sha256:...",
        "writing manifest", "success", the quantizing done as the iterator is
        consumed. Leaving that loop early (``break``, an exception in its body,
        closing the iterator) stops the quantizer and stores nothing.

        Raises:
            StatusError: 400 a bad name, parameter or quantization type, a
                source that is already quantized, a projector GGUF as the
                model, a ``projector`` that is not a projector GGUF, an
                adapter that is not a LoRA adapter GGUF or does not fit the
                model, a ``draft`` that is not a model GGUF or whose vocabulary
                differs from the model's, a control vector that does not fit
                the model; 404 the source, the projector, the draft, an adapter
                or a control vector file does not exist; 500 the quantizer
                failed (with llama.cpp's reason; raised by the iterator with
                ``stream=True``).
        """
        if isinstance(parameters, Options):
            parameters = parameters.model_dump(exclude_none=True)
        if isinstance(adapters, (str, os.PathLike)):
            adapters = [adapters]
        if adapters is not None and not isinstance(adapters, Mapping):
            adapters = {os.fspath(a): os.fspath(a) for a in adapters}  # paths, as the files of a request
        req = validate(
            CreateRequest,
            model=model,
            quantize=quantize,
            from_=from_,
            files=files,
            adapters=adapters,
            template=template,
            license=license if license is None or isinstance(license, str) else list(license),
            system=system,
            parameters=parameters,
            messages=messages,
            stream=stream,
        )
        progress = _models.create(
            self._session,
            req,
            None if projector is None else os.fspath(projector),
            None if draft is None else os.fspath(draft),
            None if control_vectors is None else [os.fspath(c) for c in control_vectors],
        )
        if stream:
            return progress
        last = with_callback(progress, lambda _p: None)
        return StatusResponse(status=last.status if last is not None else "success")

    def create_blob(self, path: str | os.PathLike) -> str:
        """Put the file at ``path`` into the store's blobs; return its digest for ``create(files=...)``.

        The digest is ``sha256:<hex>``.

        Raises:
            FileNotFoundError: no such file.
        """
        return self._session.store.put_blob(Path(path))

    @overload
    def pull(
        self,
        model: str,
        fn: None = None,
        *,
        insecure: bool = False,
        stream: Literal[False] = False,
    ) -> ProgressResponse: ...

    @overload
    def pull(
        self,
        model: str,
        fn: None = None,
        *,
        insecure: bool = False,
        stream: Literal[True],
    ) -> Iterator[ProgressResponse]: ...

    @overload
    def pull(
        self,
        model: str,
        fn: None = None,
        *,
        insecure: bool = False,
        stream: bool,
    ) -> ProgressResponse | Iterator[ProgressResponse]: ...

    @overload
    def pull(
        self,
        model: str | PullRequest,
        fn: Callable[[ProgressResponse], object],
        *,
        insecure: bool = False,
        stream: bool = False,
    ) -> ProgressResponse: ...

    @overload
    def pull(self, model: PullRequest) -> ProgressResponse | Iterator[ProgressResponse]: ...

    def pull(
        self,
        model: str | PullRequest = "",
        fn: Callable[[ProgressResponse], object] | None = None,
        *,
        insecure: bool = False,
        stream: bool = False,
    ) -> ProgressResponse | Iterator[ProgressResponse]:
        """Bring a model into the store (see :mod:`llamanative.store.pull` for the sources).

        Returns the last :class:`ProgressResponse` (status "success"), an
        iterator of them with ``stream=True``, or calls ``fn`` with each one
        (``pull(PullRequest(...), fn)``; if ``fn`` raises, the pull stops).
        """
        if isinstance(model, PullRequest):
            req = model
        else:
            req = validate(PullRequest, model=model, insecure=insecure, stream=stream)
        return cast("ProgressResponse | Iterator[ProgressResponse]", _models.pull(self._session, req, fn))

    @overload
    def push(
        self,
        model: str,
        fn: None = None,
        *,
        insecure: bool = False,
        stream: Literal[False] = False,
    ) -> ProgressResponse: ...

    @overload
    def push(
        self,
        model: str,
        fn: None = None,
        *,
        insecure: bool = False,
        stream: Literal[True],
    ) -> Iterator[ProgressResponse]: ...

    @overload
    def push(
        self,
        model: str,
        fn: None = None,
        *,
        insecure: bool = False,
        stream: bool,
    ) -> ProgressResponse | Iterator[ProgressResponse]: ...

    @overload
    def push(
        self,
        model: str | PushRequest,
        fn: Callable[[ProgressResponse], object],
        *,
        insecure: bool = False,
        stream: bool = False,
    ) -> ProgressResponse: ...

    @overload
    def push(self, model: PushRequest) -> ProgressResponse | Iterator[ProgressResponse]: ...

    def push(
        self,
        model: str | PushRequest = "",
        fn: Callable[[ProgressResponse], object] | None = None,
        *,
        insecure: bool = False,
        stream: bool = False,
    ) -> ProgressResponse | Iterator[ProgressResponse]:
        """Upload a stored model (``namespace/model:tag``) to its registry, as ``ollama push`` does.

        The registry is that of pull (see :mod:`llamanative.store.upload`):
        ``registry.ollama.ai`` (or ``$LLAMANATIVE_REGISTRY``) for names
        without a host, with ``$LLAMANATIVE_REGISTRY_TOKEN`` as its Bearer
        token; ``https://<host>`` for ``host/namespace/model:tag``
        (``http://`` with ``insecure=True``). Blobs the registry already has
        are not sent again.

        Returns the last :class:`ProgressResponse` (status "success"), an
        iterator of them with ``stream=True`` ("retrieving manifest",
        "pushing <digest[7:19]>" with ``digest``/``total``/``completed``,
        "pushing manifest", "success"), or calls ``fn`` with each one (if
        ``fn`` raises, the push stops).

        Raises:
            StatusError: 400 a bad name, plain http without ``insecure``, a
                name without a namespace for the default registry; 404 no
                such stored model; 500 the registry failed (after retries on
                5xx and connection errors) or refused the upload.
            AuthorizationError: the registry answered 401/403.
        """
        if isinstance(model, PushRequest):
            req = model
        else:
            req = validate(PushRequest, model=model, insecure=insecure, stream=stream)
        return cast("ProgressResponse | Iterator[ProgressResponse]", _models.push(self._session, req, fn))

    def copy(self, source: str, destination: str) -> StatusResponse:
        """Store ``source`` under the name ``destination`` too (its blobs are shared, not copied).

        Raises:
            StatusError: 404 unknown ``source``; 400 an invalid name.
        """
        req = validate(CopyRequest, source=source, destination=destination)
        return _models.copy(self._session, req)

    def unload(self, model: str) -> bool:
        """Unload ``model`` now (after its running requests), whatever options it was loaded with.

        A llamanative extension (Ollama's idiom, ``generate(model, keep_alive=0)``,
        would first reload a model loaded with other load-time options).
        Returns whether it was loaded.

        Raises:
            StatusError: 404 unknown model.
        """
        return _models.unload(self._session, model)

    def delete(self, model: str) -> StatusResponse:
        """Remove ``model`` from the store (blobs no other model uses are deleted with it).

        Raises:
            StatusError: 404 unknown model.
        """
        req = validate(DeleteRequest, model=model)
        return _models.delete(self._session, req)

    # -- what is stored and loaded -----------------------------------------------------------------
    # Last in the class body: from here on, `list` in an annotation would name the method.
    def list(self) -> ListResponse:
        """The models in the store, newest first."""
        return _models.list_models(self._session)

    def show(self, model: str | ShowRequest = "", *, verbose: bool | None = None) -> ShowResponse:
        """Details, GGUF metadata (``model_info``/``modelinfo``), template, parameters and capabilities.

        ``verbose`` adds the long arrays (the vocabulary) to ``model_info`` and
        the model's ``tensors`` (name, ggml type, shape). The spec's request
        object works too, ``show(ShowRequest(model=..., system=...))``, and its
        ``system``, ``template`` and ``options`` are shown as Ollama shows
        them: ``system`` and ``template`` replace the stored ones in the
        response and its Modelfile, ``options`` are added to the Modelfile's
        PARAMETER lines (not to ``parameters``, which is what is stored).

        Raises:
            StatusError: 404 unknown model; 400 an invalid name.
        """
        req = model if isinstance(model, ShowRequest) else validate(ShowRequest, model=model, verbose=verbose)
        return _models.show(self._session, req)

    def ps(self) -> ProcessResponse:
        """The loaded models (``list_running``), the latest to expire first."""
        return _status.running(self._session)

    list_running = ps
