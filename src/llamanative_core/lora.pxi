# LoraAdapter: a LoRA adapter GGUF (llama_adapter_lora) loaded for a Model;
# _ContextAdapters: the layer of Context (context.pxi) that sets adapters,
# each with a scale, on a context.
#
# llama.cpp checks an adapter's architecture and tensor shapes against the
# model and returns NULL when they differ, but it aborts the process
# (GGML_ASSERT) on some files it does not expect: a general.type,
# general.architecture or adapter.type that is not a string, an
# adapter.lora.alpha that is not a float32, a token_embd pair whose ranks
# differ (the matrix product of the graph asserts), tensors of more than two
# dimensions beside a 2-D weight, an adapter of an NVFP4 weight with a scale.
# So the header is read here first (check_lora_adapter) and compared with the
# model file's: every refusal is an AdapterLoadError, before llama.cpp sees
# the file.
#
# Lifetimes: llama.cpp frees a model's adapters with the model, and a context
# keeps raw pointers to the adapters set on it. So a LoraAdapter keeps its
# Model alive and Model.close() refuses while it is open; a Context keeps the
# adapters set on it alive until it is freed (_ContextHandle._adapters), and
# LoraAdapter.close() refuses while a context has it set.

from libc.math cimport isfinite

# The tensor types of an adapter: those llama.cpp's converter writes
# (convert_lora_to_gguf.py --outtype f32/f16/bf16/q8_0).
_LORA_TENSOR_TYPES = (llama.GGML_TYPE_F32, llama.GGML_TYPE_F16, llama.GGML_TYPE_BF16, llama.GGML_TYPE_Q8_0)


cdef object _lora_str(llama.gguf_context * g, bytes key, str path):
    """The string value of ``key`` (None when missing); AdapterLoadError when it is not a string
    (llama.cpp's reader would abort the process on it)."""
    cdef int64_t k = gguf_find_key(g, key)
    if k < 0:
        return None
    if llama.gguf_get_kv_type(g, k) != llama.GGUF_TYPE_STRING:
        raise AdapterLoadError(f"{path!r}: {key.decode()} is not a string", path)
    return _gguf_value(g, k, False)


cdef dict _gguf_tensor_shapes(llama.gguf_context * g):
    """Tensor name -> (ne as 4 ints, ggml type) of an open GGUF header."""
    cdef int64_t t
    cdef const int64_t * ne
    cdef const char * name
    out = {}
    for t in range(llama.gguf_get_n_tensors(g)):
        name = llama.gguf_get_tensor_name(g, t)
        ne = llama.gguf_get_tensor_ne(g, t)
        out[name[:strlen(name)].decode("utf-8", "replace")] = (
            (ne[0], ne[1], ne[2], ne[3]), <int> gguf_get_tensor_type(g, t))
    return out


def check_lora_adapter(path, model_path) -> dict:
    """Check that the GGUF at ``path`` is a LoRA adapter llama.cpp can apply to the model GGUF at
    ``model_path``, from the two files' headers (no weights are read).

    What is checked: ``general.type`` is ``adapter`` and ``adapter.type``
    ``lora`` (strings); ``general.architecture`` is the model's;
    ``adapter.lora.alpha``, when present, is a finite float32; the adapter is
    not an activated LoRA (aLoRA: invocation tokens); every tensor is a
    ``<weight>.lora_a`` / ``<weight>.lora_b`` pair (``*_norm.weight`` tensors
    are skipped, as llama.cpp skips them) of type F32, F16, BF16 or Q8_0, for
    a 2-D weight the model has, with shapes that fit it: ``lora_a`` is
    ``[n_in, rank]`` and ``lora_b`` ``[rank, n_out]`` for a weight of
    ``[n_in, n_out]`` (ggml order), ``token_embd.weight``'s pair the other
    way round (``lora_a`` ``[rank, n_vocab]``, ``lora_b`` ``[rank, n_embd]``).

    Returns:
        ``{"architecture": str, "alpha": float (0.0 when absent: the scale
        is then used as it is), "rank": int (the largest), "targets": list of
        the model's weight names it adapts}``.

    Raises:
        FileNotFoundError: no file at ``path``.
        AdapterLoadError: any of the above does not hold, or ``path`` is not
            a GGUF file (or a corrupt or truncated one).
        ModelLoadError: ``model_path`` is not a readable GGUF file.
    """
    path = _os.fspath(path)
    model_path = _os.fspath(model_path)
    if not _os.path.isfile(path):
        raise FileNotFoundError(2, "LoRA adapter file not found", path)
    cdef llama.gguf_context * g
    try:
        g = _gguf_open(path)
    except ModelLoadError as exc:
        raise AdapterLoadError(str(exc).replace("model", "LoRA adapter"), path) from None
    cdef int64_t k
    cdef float alpha = 0.0
    try:
        general_type = _lora_str(g, b"general.type", path)
        adapter_type = _lora_str(g, b"adapter.type", path)
        arch = _lora_str(g, b"general.architecture", path)
        if general_type != "adapter" or adapter_type != "lora":
            raise AdapterLoadError(
                f"{path!r} is not a LoRA adapter: general.type is {general_type!r} and adapter.type "
                f"{adapter_type!r}, where a LoRA adapter GGUF has 'adapter' and 'lora' (llama.cpp's "
                f"convert_lora_to_gguf.py writes them)", path)
        k = gguf_find_key(g, b"adapter.lora.alpha")
        if k >= 0:
            if llama.gguf_get_kv_type(g, k) != llama.GGUF_TYPE_FLOAT32:
                raise AdapterLoadError(f"{path!r}: adapter.lora.alpha is not a float32", path)
            alpha = llama.gguf_get_val_f32(g, k)
            if not isfinite(alpha):
                raise AdapterLoadError(f"{path!r}: adapter.lora.alpha is {alpha}, not a finite number", path)
        if gguf_find_key(g, b"adapter.alora.invocation_tokens") >= 0:
            raise AdapterLoadError(
                f"{path!r} is an activated LoRA (aLoRA: it applies only after its invocation tokens), "
                f"which llamanative does not run", path)
        tensors = _gguf_tensor_shapes(g)
    finally:
        llama.gguf_free(g)

    g = _gguf_open(model_path)
    try:
        model_arch = _lora_str(g, b"general.architecture", model_path)
        weights = _gguf_tensor_shapes(g)
    finally:
        llama.gguf_free(g)
    if arch != model_arch:
        raise AdapterLoadError(
            f"{path!r} is a LoRA adapter for a {arch!r} model; the model is a {model_arch!r} model", path)

    pairs = {}
    for name in tensors:
        if name.endswith(".lora_a") or name.endswith(".lora_b"):
            pairs.setdefault(name[:-7], {})[name[-1]] = tensors[name]
        elif not name.endswith("_norm.weight"):
            raise AdapterLoadError(
                f"{path!r}: tensor {name!r} is not a LoRA tensor (a LoRA adapter's end in .lora_a or .lora_b)",
                path)
    if not pairs:
        raise AdapterLoadError(f"{path!r} holds no LoRA tensors (.lora_a / .lora_b pairs)", path)
    rank = 0
    for base, ab in pairs.items():
        if len(ab) != 2:
            raise AdapterLoadError(
                f"{path!r}: {base}.lora_{'b' if 'a' in ab else 'a'} is missing (LoRA tensors come in pairs)", path)
        (a, a_type), (b, b_type) = ab["a"], ab["b"]
        for part, kind in (("a", a_type), ("b", b_type)):
            if kind not in _LORA_TENSOR_TYPES:
                name = ggml_type_name(<llama.ggml_type> <int> kind)
                raise AdapterLoadError(
                    f"{path!r}: {base}.lora_{part} is of type {name.decode('ascii', 'replace').upper()}; "
                    f"llamanative takes LoRA tensors of type F32, F16, BF16 or Q8_0", path)
        if base not in weights:
            raise AdapterLoadError(
                f"{path!r} adapts {base!r}, a tensor the model does not have (an adapter for another model?)",
                path)
        w, w_type = weights[base]
        if w[2] != 1 or w[3] != 1 or a[2] != 1 or a[3] != 1 or b[2] != 1 or b[3] != 1:
            raise AdapterLoadError(
                f"{path!r}: the pair of {base!r} is not of 2-D matrices for a 2-D weight (adapters of "
                f"expert weights are not supported)", path)
        if w_type == <int> llama.GGML_TYPE_NVFP4:
            raise AdapterLoadError(f"{path!r} adapts {base!r}, an NVFP4 weight, which llama.cpp cannot adapt",
                                   path)
        if base.endswith("token_embd.weight"):
            # llama.cpp takes rows of lora_a by token and multiplies lora_b (not transposed) with them.
            fits = b[1] == w[0] and a[1] == w[1] and a[0] == b[0]
            r = a[0]
        else:
            fits = a[0] == w[0] and b[1] == w[1] and a[1] == b[0]
            r = b[0]
        if not fits or r <= 0:
            raise AdapterLoadError(
                f"{path!r}: the shapes of {base!r}'s pair (lora_a {list(a[:2])}, lora_b {list(b[:2])}) do not "
                f"fit the model's weight {list(w[:2])} (an adapter for another model of this architecture?)",
                path)
        rank = max(rank, r)
    return {"architecture": arch, "alpha": float(alpha), "rank": int(rank), "targets": sorted(pairs)}


@cython.no_gc_clear  # `model` stays set until __dealloc__: the adapter is freed before the model
cdef class LoraAdapter:
    """A LoRA adapter GGUF loaded for a :class:`Model` (llama.cpp's ``llama_adapter_lora``).

    An adapter changes nothing until it is set on a context
    (:meth:`Context.set_adapters`), with a scale: the context's weights are
    then ``W + scale * alpha / rank * B A`` for each weight it adapts (just
    ``scale * B A`` when the adapter's alpha is 0). One adapter can be set on
    several contexts of its model at once.

    Args:
        path: the adapter ``.gguf`` (``general.type`` ``adapter``,
            ``adapter.type`` ``lora``; llama.cpp's ``convert_lora_to_gguf.py``
            writes them).
        model: the model it adapts (kept alive by the adapter). Load adapters
            before making the model's contexts, or while none of them decodes
            (llama.cpp registers them with the model).

    Attributes:
        alpha: ``adapter.lora.alpha`` (0.0 when the file has none).
        rank: the largest rank of its tensor pairs.
        targets: the names of the model's weights it adapts.

    Raises:
        FileNotFoundError: no file at ``path``.
        AdapterLoadError: not a LoRA adapter GGUF, one for another
            architecture, or one whose tensors do not fit the model's (see
            :func:`check_lora_adapter`); or llama.cpp could not load it.
        ValueError: the model is closed or loaded vocabulary-only.

    The GIL is released while the adapter loads. ``close()`` frees it; it
    refuses while a context has it set. ``model.close()`` refuses while the
    adapter is open.
    """

    cdef llama.llama_adapter_lora * _ptr
    cdef readonly Model model
    cdef readonly str path
    cdef readonly double alpha
    cdef readonly int rank
    cdef readonly tuple targets
    cdef int _n_users  # contexts that have it set
    cdef dict _metadata

    def __cinit__(self):
        self._ptr = NULL
        self._n_users = 0

    def __init__(self, path, Model model not None):
        if self._ptr != NULL:
            raise RuntimeError("the adapter is already loaded; create a new LoraAdapter")
        model._check()
        if model.vocab_only:
            raise ValueError("the model was loaded vocabulary-only: an adapter needs its weights")
        self.path = _os.fspath(path)
        info = check_lora_adapter(self.path, model.path)
        cdef bytes bpath = _os.fsencode(self.path)
        cdef const char * cpath = bpath
        cdef llama.llama_adapter_lora * ptr
        with nogil:
            ptr = llama.llama_adapter_lora_init(model._ptr, cpath)
        if ptr == NULL:
            raise AdapterLoadError(
                f"llama.cpp could not load the LoRA adapter {self.path!r} (a corrupt file, or not enough "
                f"memory; set llamanative._core.set_log_level('INFO') for its log)", self.path)
        self._ptr = ptr
        self.model = model
        model._n_adapters += 1
        self.alpha = info["alpha"]
        self.rank = info["rank"]
        self.targets = tuple(info["targets"])

    def __dealloc__(self):
        # A context that has it set holds a reference: none is left when this runs.
        if self._ptr != NULL:
            llama.llama_adapter_lora_free(self._ptr)
            self._ptr = NULL
            if self.model is not None:
                self.model._n_adapters -= 1

    def close(self) -> None:
        """Free the adapter (before its model). Safe to call twice.

        Raises:
            RuntimeError: a context has it set (set other adapters on it, or close it, first).
        """
        if self._n_users > 0:
            raise RuntimeError(f"cannot close the LoRA adapter: {self._n_users} context(s) have it set")
        if self._ptr != NULL:
            llama.llama_adapter_lora_free(self._ptr)
            self._ptr = NULL
            self.model._n_adapters -= 1

    @property
    def closed(self) -> bool:
        return self._ptr == NULL

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    cdef inline int _check(self) except -1:
        if self._ptr == NULL:
            raise ValueError("the LoRA adapter is closed")
        return 0

    @property
    def metadata(self) -> dict:
        """Every GGUF key/value of the adapter file, arrays included (read once, then cached)."""
        if self._metadata is None:
            self._metadata = read_gguf_metadata(self.path)
        return self._metadata

    @property
    def architecture(self) -> str:
        """``general.architecture``: the model's."""
        return self.model.architecture

    def __repr__(self) -> str:
        state = "closed" if self._ptr == NULL else f"rank {self.rank}, alpha {self.alpha:g}, {len(self.targets)} weights"
        return f"<LoraAdapter {self.path!r} ({state})>"


cdef void _release_adapters(tuple adapters) noexcept:
    """A context that had ``adapters`` set (``(adapter, scale)`` pairs) no longer points to them."""
    if adapters is None:
        return
    for pair in adapters:
        (<LoraAdapter> pair[0])._n_users -= 1


cdef class _ContextAdapters(_ContextState):
    """The LoRA adapters of a :class:`Context`; not used on its own."""

    def set_adapters(self, adapters=(), scales=None) -> None:
        """Decode with ``adapters`` from now on (replacing those set before; ``()``: none).

        Args:
            adapters: :class:`LoraAdapter` objects loaded for this context's model.
            scales: one float per adapter (default 1.0 each). An adapter at
                scale 0 changes nothing (llama.cpp leaves it out).

        Setting the same adapters and scales again costs nothing; a change
        makes the next decode rebuild its compute graph. The KV cells already
        computed stay as they are: what they hold was computed with the
        adapters set then.

        Raises:
            TypeError: an item of ``adapters`` is not a LoraAdapter.
            ValueError: an adapter of another model, a closed one, one given
                twice, a scale that is not a finite number, or as many scales
                as adapters not given.
        """
        items = list(adapters)
        values = [1.0] * len(items) if scales is None else [float(s) for s in scales]
        if len(values) != len(items):
            raise ValueError(f"{len(items)} adapter(s) and {len(values)} scale(s): give one scale per adapter")
        cdef LoraAdapter a
        for i, item in enumerate(items):
            if not isinstance(item, LoraAdapter):
                raise TypeError(f"adapters[{i}] is a {type(item).__name__}, not a LoraAdapter")
            a = item
            a._check()
            if a.model is not self.model:
                raise ValueError(f"adapters[{i}] ({a.path!r}) was loaded for another model than this context's")
            if any(other is item for other in items[:i]):
                raise ValueError(f"adapters[{i}] ({a.path!r}) is given twice")
            if not isfinite(values[i]):
                raise ValueError(f"scales[{i}] is {values[i]}, not a finite number")
        cdef vector[llama.llama_adapter_lora *] ptrs
        cdef vector[float] fs
        for i in range(len(items)):
            ptrs.push_back((<LoraAdapter> items[i])._ptr)
            fs.push_back(values[i])
        self._enter()
        try:
            llama.llama_set_adapters_lora(self._ptr, ptrs.data() if ptrs.size() else NULL, ptrs.size(),
                                          fs.data() if fs.size() else NULL)
            new = tuple(zip(items, values))
            for pair in new:
                (<LoraAdapter> pair[0])._n_users += 1
            _release_adapters(self._adapters)
            self._adapters = new
        finally:
            self._leave()

    @property
    def adapters(self) -> tuple:
        """The adapters set on the context: ``((adapter, scale), ...)`` (see :meth:`set_adapters`)."""
        return self._adapters
