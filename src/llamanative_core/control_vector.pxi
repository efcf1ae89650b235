# ControlVector: control vectors (the GGUF files llama.cpp's cvector-generator
# writes: a direction.<layer> tensor of n_embd floats per layer) loaded and
# summed by llama.cpp's own loader (common_control_vector_load), each file with
# a scale; _ContextControlVector: the layer of Context (context.pxi) that sets
# one on a context, over a range of layers.
#
# common's loader reads every tensor named direction.<N> and sizes its buffer
# by the largest N (n_embd * N floats, in int arithmetic: a file with a huge N
# overflows it or asks for gigabytes), and llama_set_adapter_cvec copies the
# layers the buffer has, leaving the others as an earlier vector set them. So
# the header is read here first (check_control_vector) and compared with the
# model: every refusal is a ControlVectorLoadError before llama.cpp reads the
# file, and the data set on a context always covers every layer (zeros where
# the files have no direction).

cdef extern from "common.h" nogil:
    cdef cppclass common_control_vector_data:
        int n_embd
        vector[float] data
    cdef cppclass common_control_vector_load_info:
        float strength
        string fname
    common_control_vector_data common_control_vector_load(
        const vector[common_control_vector_load_info] & load_infos) except +


def check_control_vector(path, model_path) -> dict:
    """Check that the GGUF at ``path`` is a control vector llama.cpp can apply to the model GGUF at
    ``model_path``, from the two files' headers (no weights are read).

    What is checked: every tensor is named ``direction.<N>`` (``N`` a layer
    number from 1 to the model's layer count, in decimal digits), is F32 and
    one-dimensional, with the model's embedding length (``n_embd``)
    elements; there is at least one.

    Returns:
        ``{"n_embd": int, "layers": sorted list of the layers it has a
        direction for, "model_hint": str or None (``controlvector.model_hint``,
        the architecture cvector-generator names; not checked)}``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ControlVectorLoadError: any of the above does not hold, or ``path``
            is not a GGUF file (or a corrupt or truncated one).
        ModelLoadError: ``model_path`` is not a readable GGUF file, or one
            without ``<arch>.embedding_length`` and ``<arch>.block_count``.
    """
    path = _os.fspath(path)
    model_path = _os.fspath(model_path)
    g_model = _gguf_open(model_path)
    try:
        header = _gguf_header_ints(g_model, model_path)
    finally:
        llama.gguf_free(g_model)
    return _check_control_vector(path, header[0], header[1])


cdef tuple _gguf_header_ints(llama.gguf_context * g, str model_path):
    """``(n_embd, n_layer)`` of a model's open GGUF header."""
    cdef int64_t k = gguf_find_key(g, b"general.architecture")
    if k < 0 or llama.gguf_get_kv_type(g, k) != llama.GGUF_TYPE_STRING:
        raise ModelLoadError(f"{model_path!r} has no general.architecture", model_path)
    arch = _gguf_value(g, k, False)
    out = []
    for name in ("embedding_length", "block_count"):
        k = gguf_find_key(g, f"{arch}.{name}".encode())
        value = _gguf_value(g, k, False) if k >= 0 else None
        if not isinstance(value, int) or isinstance(value, bool):
            raise ModelLoadError(f"{model_path!r} has no integer {arch}.{name}", model_path)
        out.append(value)
    return tuple(out)


cdef dict _check_control_vector(str path, int64_t n_embd, int64_t n_layer):
    if not _os.path.isfile(path):
        raise FileNotFoundError(2, "control vector file not found", path)
    cdef llama.gguf_context * g
    try:
        g = _gguf_open(path)
    except ModelLoadError as exc:
        raise ControlVectorLoadError(str(exc).replace("model", "control vector"), path) from None
    cdef int64_t t, k
    cdef const int64_t * ne
    cdef const char * cname
    layers = []
    hint = None
    try:
        k = gguf_find_key(g, b"controlvector.model_hint")
        if k >= 0 and llama.gguf_get_kv_type(g, k) == llama.GGUF_TYPE_STRING:
            hint = _gguf_value(g, k, False)
        for t in range(llama.gguf_get_n_tensors(g)):
            cname = llama.gguf_get_tensor_name(g, t)
            name = cname[:strlen(cname)].decode("utf-8", "replace")
            prefix, _, number = name.partition(".")
            if prefix != "direction" or not (number.isascii() and number.isdigit()):
                raise ControlVectorLoadError(
                    f"{path!r}: tensor {name!r} is not a control vector's (they are named direction.<layer>; "
                    f"llama.cpp's cvector-generator writes them)", path)
            layer = int(number)
            if not 1 <= layer <= n_layer:
                raise ControlVectorLoadError(
                    f"{path!r} has a direction for layer {layer}; the model's layers are 1..{n_layer} "
                    f"(a control vector for another model?)", path)
            if gguf_get_tensor_type(g, t) != llama.GGML_TYPE_F32:
                kind = ggml_type_name(gguf_get_tensor_type(g, t)).decode("ascii", "replace").upper()
                raise ControlVectorLoadError(
                    f"{path!r}: {name} is of type {kind}; a control vector's directions are F32", path)
            ne = llama.gguf_get_tensor_ne(g, t)
            if ne[1] != 1 or ne[2] != 1 or ne[3] != 1:
                raise ControlVectorLoadError(
                    f"{path!r}: {name} has shape {[ne[0], ne[1], ne[2], ne[3]]}; a direction is one-dimensional",
                    path)
            if ne[0] != n_embd:
                raise ControlVectorLoadError(
                    f"{path!r}: {name} has {ne[0]} elements; the model's embedding length (n_embd) is {n_embd} "
                    f"(a control vector for another model?)", path)
            layers.append(layer)
    finally:
        llama.gguf_free(g)
    if not layers:
        raise ControlVectorLoadError(f"{path!r} holds no direction tensors: it is not a control vector", path)
    return {"n_embd": int(n_embd), "layers": sorted(layers), "model_hint": hint}


cdef class ControlVector:
    """Control vectors for a :class:`Model`, loaded from GGUF files and summed, each with a scale:
    what llama.cpp's ``--control-vector`` / ``--control-vector-scaled`` options load.

    A control vector adds a direction (``n_embd`` floats) to the output of
    each of the model's layers it has one for; llama.cpp's
    ``cvector-generator`` writes them (``direction.<layer>`` F32 tensors).
    It changes nothing until it is set on a context
    (:meth:`Context.set_control_vector`); the data is copied there, so one
    ControlVector can be set on several contexts, and closing the model
    does not invalidate it.

    Args:
        files: ``[(path, scale), ...]`` (a plain path means scale 1.0): the
            files are loaded by llama.cpp's ``common_control_vector_load``,
            each direction multiplied by its file's scale, the files added.
        model: the model they are for: each file is checked against it first
            (see :func:`check_control_vector`).

    Attributes:
        data: float32 array of shape ``(model.n_layer, n_embd)``, read-only:
            row ``i`` is the direction added to the output of layer ``i + 1``
            (llama.cpp numbers the layers from 0 and never adds one to layer 0);
            zeros for layers the files have no direction for.
        n_embd: the model's embedding length.
        n_layer: the model's layer count (rows of ``data``).
        files: ``((path, scale), ...)`` as loaded.
        layers: the layers any of the files has a direction for, sorted.

    Raises:
        FileNotFoundError: a file does not exist.
        ControlVectorLoadError: a file that is not a control vector GGUF, or
            one for another model (another ``n_embd``, layers the model lacks);
            or llama.cpp could not load it.
        ValueError: no files, a scale that is not a finite number, or the
            model is closed or loaded vocabulary-only.
    """

    cdef readonly object data
    cdef readonly int n_embd
    cdef readonly int n_layer
    cdef readonly tuple files
    cdef readonly tuple layers

    def __init__(self, files, Model model not None):
        model._check()
        if model.vocab_only:
            raise ValueError("the model was loaded vocabulary-only: a control vector needs its layers")
        pairs = []
        for item in ([files] if isinstance(files, (str, bytes, _os.PathLike)) else files):
            if isinstance(item, (str, bytes, _os.PathLike)):
                path, scale = item, 1.0
            else:
                path, scale = item
            path, scale = _os.fspath(path), float(scale)
            if isinstance(path, bytes):
                path = _os.fsdecode(path)
            if not isfinite(<float> scale):  # llama.cpp's scale is a float32
                raise ValueError(f"the scale of control vector {path!r} is {scale}, not a finite number")
            pairs.append((path, scale))
        if not pairs:
            raise ValueError("no control vector files given")
        cdef int64_t n_embd = llama.llama_model_n_embd(model._ptr)
        cdef int64_t n_layer = llama.llama_model_n_layer(model._ptr)
        layers = set()
        for path, _scale in pairs:
            layers.update(_check_control_vector(path, n_embd, n_layer)["layers"])
        cdef vector[common_control_vector_load_info] infos
        cdef common_control_vector_load_info info
        for path, scale in pairs:
            info.fname = _os.fsencode(path)
            info.strength = scale
            infos.push_back(info)
        cdef common_control_vector_data loaded
        with nogil:
            loaded = common_control_vector_load(infos)
        if loaded.n_embd != n_embd or loaded.data.size() > <size_t> (n_embd * n_layer):
            names = ", ".join(repr(p) for p, _ in pairs)
            raise ControlVectorLoadError(
                f"llama.cpp could not load the control vector(s) {names} (a corrupt file; set "
                f"llamanative._core.set_log_level('INFO') for its log)", pairs[0][0])
        cdef cnp.ndarray out = np.zeros((n_layer, n_embd), dtype=np.float32)
        if loaded.data.size():
            memcpy(cnp.PyArray_DATA(out), loaded.data.data(), loaded.data.size() * sizeof(float))
        out.flags.writeable = False
        self.data = out
        self.n_embd = n_embd
        self.n_layer = n_layer
        self.files = tuple(pairs)
        self.layers = tuple(sorted(layers))

    def __repr__(self) -> str:
        files = ", ".join(f"{p!r} x {s:g}" for p, s in self.files)
        return f"<ControlVector {files} ({len(self.layers)} layers, n_embd {self.n_embd})>"


cdef class _ContextControlVector(_ContextAdapters):
    """The control vector of a :class:`Context`; not used on its own."""

    def set_control_vector(self, ControlVector cv, layer_start=None, layer_end=None) -> None:
        """Decode with the control vector ``cv`` added to the layers ``layer_start..layer_end`` (both
        included) from now on; ``None``: none (replacing the one set before).

        Args:
            cv: a :class:`ControlVector` for this context's model (its
                ``n_embd`` and layer count), or None.
            layer_start: the first layer it is added to (default 1, the first
                llama.cpp adds one to).
            layer_end: the last (default: the model's layer count).

        The KV cells already computed stay as they are: what they hold was
        computed with the vector set then. Setting a vector (or clearing one)
        makes the next decode rebuild its compute graph.

        Raises:
            ValueError: a vector of another ``n_embd`` or layer count than the
                model's, or a layer range that is not
                ``1 <= layer_start <= layer_end <= n_layer``.
        """
        self._check()
        cdef int32_t n_layer = llama.llama_model_n_layer(self.model._ptr)
        cdef int32_t start = 0, end = 0
        if cv is not None:
            if cv.n_embd != llama.llama_model_n_embd(self.model._ptr) or cv.n_layer != n_layer:
                raise ValueError(
                    f"the control vector is for a model with n_embd {cv.n_embd} and {cv.n_layer} layers; this "
                    f"context's model has n_embd {llama.llama_model_n_embd(self.model._ptr)} and {n_layer}")
            start = 1 if layer_start is None else _layer_number(layer_start, "layer_start")
            end = n_layer if layer_end is None else _layer_number(layer_end, "layer_end")
            if not 1 <= start <= end <= n_layer:
                raise ValueError(
                    f"the control vector's layer range {start}..{end} is not within the model's layers "
                    f"1..{n_layer} (layer_start <= layer_end)")
        elif layer_start is not None or layer_end is not None:
            raise ValueError("a layer range without a control vector")
        cdef cnp.ndarray data
        cdef int32_t rc
        self._enter()
        try:
            if cv is None:
                rc = llama.llama_set_adapter_cvec(self._ptr, NULL, 0, 0, 0, 0)
            else:
                data = cv.data
                rc = llama.llama_set_adapter_cvec(self._ptr, <const float *> cnp.PyArray_DATA(data),
                                                  <size_t> cnp.PyArray_SIZE(data), cv.n_embd, start, end)
            if rc != 0:
                raise ControlVectorLoadError(
                    "llama.cpp could not set the control vector on the context (not enough memory?)",
                    cv.files[0][0] if cv is not None else None)
            self._control_vector = None if cv is None else (cv, start, end)
        finally:
            self._leave()

    @property
    def control_vector(self):
        """The control vector set on the context and its layer range: ``(cv, layer_start, layer_end)``,
        or None (see :meth:`set_control_vector`)."""
        return self._control_vector


cdef int32_t _layer_number(object value, str name) except? -1:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not -(1 << 31) <= value < (1 << 31):
        raise ValueError(f"{name} {value} is out of range")
    return value
