# Model: one loaded llama_model.


cdef class Model:
    """A GGUF model loaded by llama.cpp.

    Args:
        path: the ``.gguf`` file.
        n_gpu_layers: layers to offload to a GPU backend; -1 = all, 0 = none.
            Ignored when no GPU backend was compiled in. Default -1.
        main_gpu: index of the device that holds the model when not split.
        use_mmap: map the file instead of reading it (fast load, shared pages).
        use_mlock: lock the weights in RAM.
        vocab_only: load only the tokenizer (for tokenizing without weights).
        devices: names of the devices to place the model on (see
            :func:`devices`: ``"Vulkan0"``, ``"CUDA0"``...); ``["CPU"]`` keeps
            every layer on the CPU. Default: every GPU device loaded.
        repack: let the CPU backend keep weights in its extra buffer types:
            layouts repacked for this CPU's SIMD, or AMX tiles on CPUs with
            AMX (llama.cpp's ``use_extra_bufts``; ``llama-bench -nr`` turns
            it off). Default True. Off, every CPU computes on the GGUF's own
            layout: slower prompts, and results that depend less on the CPU.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ModelLoadError (a ValueError): the file is not a GGUF, is truncated,
            or llama.cpp cannot load it (unknown architecture, ...), or no
            backend plugin is loaded.
        BackendLoadError (a RuntimeError): loading the backend plugins
            (on the first use of the backends) raised.
        ValueError: an unknown device name, or ``main_gpu`` beyond the GPUs loaded.

    The GIL is released while the weights load. ``close()`` frees the model;
    it refuses while a :class:`Context` made from it is still open.
    """

    cdef llama.llama_model * _ptr
    cdef readonly str path
    cdef readonly bint vocab_only
    cdef int _n_contexts
    cdef int _n_adapters  # LoraAdapters loaded for it and open (llama.cpp frees them with the model)
    cdef dict _metadata

    def __cinit__(self):
        self._ptr = NULL
        self._n_contexts = 0
        self._n_adapters = 0

    def __init__(self, path, *, int n_gpu_layers=-1, int main_gpu=0, bint use_mmap=True,
                 bint use_mlock=False, bint vocab_only=False, devices=None, bint repack=True):
        if self._ptr != NULL:
            # Freeing the loaded model could pull it from under its contexts and views.
            raise RuntimeError("Model.__init__ was called on a loaded model; create a new Model")
        self.path = _os.fspath(path)
        if main_gpu < 0:
            raise ValueError(f"main_gpu must be >= 0, got {main_gpu}")
        # Validates the file and reads its header in one pass.
        cdef llama.gguf_context * g = _gguf_open(self.path)
        try:
            _check_vocab(g, self.path)
        finally:
            llama.gguf_free(g)

        cdef llama.llama_model_params params = llama.llama_model_default_params()
        params.n_gpu_layers = n_gpu_layers
        params.main_gpu = main_gpu
        params.vocab_only = vocab_only
        params.use_extra_bufts = repack
        if use_mmap and use_mlock:
            params.load_mode = llama.LLAMA_LOAD_MODE_MMAP_MLOCK
        elif use_mmap:
            params.load_mode = llama.LLAMA_LOAD_MODE_MMAP
        elif use_mlock:
            params.load_mode = llama.LLAMA_LOAD_MODE_MLOCK
        else:
            params.load_mode = llama.LLAMA_LOAD_MODE_NONE
        _require_backends()
        if llama.ggml_backend_dev_count() == 0:
            # llama.cpp would only log "no backends are loaded" and return NULL.
            raise ModelLoadError(
                f"cannot load {self.path!r}: no ggml backend is loaded (no usable libggml-cpu plugin was "
                f"found in the package directory or LLAMANATIVE_LIBRARY_PATH); "
                f"llamanative.backend_load_log() lists every file tried and why it was skipped", self.path)
        cdef size_t i, n_gpus = 0
        for i in range(llama.ggml_backend_dev_count()):
            if llama.ggml_backend_dev_get_type(llama.ggml_backend_dev_get(i)) != llama.GGML_BACKEND_DEVICE_TYPE_CPU:
                n_gpus += 1
        if n_gpus and main_gpu >= <int> n_gpus:
            raise ValueError(f"main_gpu={main_gpu} but only {n_gpus} GPU device(s) are loaded "
                             f"(llamanative.devices() lists them)")
        # devices: names from devices() ("Vulkan0", "CUDA1"...), checked here
        # because llama.cpp would dereference whatever it is given.
        cdef vector[llama.ggml_backend_dev_t] dev_list
        cdef llama.ggml_backend_dev_t dev
        if devices is not None:
            for name in devices:
                dev = llama.ggml_backend_dev_by_name(str(name).encode())
                if dev == NULL:
                    known = [d["name"] for d in _all_devices()]
                    raise ValueError(f"no device named {name!r}; loaded devices: {', '.join(known)}")
                if llama.ggml_backend_dev_get_type(dev) != llama.GGML_BACKEND_DEVICE_TYPE_CPU:
                    dev_list.push_back(dev)
            # Only the CPU named: no GPU device, nothing offloaded.
            dev_list.push_back(NULL)
            params.devices = dev_list.data()
            if dev_list.size() == 1:
                params.n_gpu_layers = 0
        cdef bytes bpath = _os.fsencode(self.path)
        cdef const char * cpath = bpath
        with nogil:
            self._ptr = llama.llama_model_load_from_file(cpath, params)
        if self._ptr == NULL:
            raise ModelLoadError(
                f"llama.cpp could not load {self.path!r} (unsupported architecture or corrupt "
                f"tensors; set llamanative._core.set_log_level('INFO') for llama.cpp's log)", self.path)
        self.vocab_only = vocab_only

    def __dealloc__(self):
        if self._ptr != NULL:
            llama.llama_model_free(self._ptr)
            self._ptr = NULL

    cdef inline int _check(self) except -1:
        if self._ptr == NULL:
            raise ValueError("the model is closed")
        return 0

    def close(self) -> None:
        """Free the weights. Safe to call twice.

        Raises:
            RuntimeError: a Context made from this model, or a LoraAdapter
                loaded for it, is still open.
        """
        if self._n_contexts > 0:
            raise RuntimeError(f"cannot close the model: {self._n_contexts} context(s) still use it")
        if self._n_adapters > 0:
            raise RuntimeError(f"cannot close the model: {self._n_adapters} LoRA adapter(s) loaded for it are "
                               f"still open (close them first)")
        if self._ptr != NULL:
            llama.llama_model_free(self._ptr)
            self._ptr = NULL

    @property
    def closed(self) -> bool:
        return self._ptr == NULL

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = "closed" if self._ptr == NULL else f"{self.architecture}, {self.n_params} params"
        return f"<Model {self.path!r} ({state})>"

    @property
    def vocab(self) -> Vocab:
        """The tokenizer. A Vocab keeps its Model alive (the Model holds no
        Vocab, so dropping the last reference frees a model at once, with no
        reference cycle left for the garbage collector)."""
        self._check()
        return Vocab._wrap(self, llama.llama_model_get_vocab(self._ptr))

    @property
    def metadata(self) -> dict:
        """Every GGUF key/value of the file, arrays included (read once, then cached)."""
        if self._metadata is None:
            self._metadata = read_gguf_metadata(self.path)
        return self._metadata

    @property
    def architecture(self) -> str:
        return self._meta_str(b"general.architecture") or ""

    cdef object _meta_str(self, bytes key):
        # llama_model_meta_val_str gives scalar values without parsing the
        # whole header again (arrays would be summarised: use .metadata).
        self._check()
        cdef char buf[512]
        cdef int32_t n = llama.llama_model_meta_val_str(self._ptr, key, buf, sizeof(buf))
        if n < 0:
            return None
        return buf[:min(n, <int32_t> sizeof(buf) - 1)].decode("utf-8", "replace")

    @property
    def description(self) -> str:
        """llama.cpp's short description, e.g. ``"llama ?B Q4_1"``."""
        self._check()
        cdef char buf[256]
        cdef int32_t n = llama.llama_model_desc(self._ptr, buf, sizeof(buf))
        return buf[:max(0, min(n, 255))].decode("utf-8", "replace")

    @property
    def n_params(self) -> int:
        self._check()
        return llama.llama_model_n_params(self._ptr)

    @property
    def size(self) -> int:
        """Size of the weights in bytes."""
        self._check()
        return llama.llama_model_size(self._ptr)

    @property
    def n_ctx_train(self) -> int:
        self._check()
        return llama.llama_model_n_ctx_train(self._ptr)

    @property
    def n_swa(self) -> int:
        """Sliding-window attention size in tokens (0: the model has no sliding-window layers)."""
        self._check()
        return llama.llama_model_n_swa(self._ptr)

    @property
    def n_embd(self) -> int:
        self._check()
        return llama.llama_model_n_embd(self._ptr)

    @property
    def n_embd_out(self) -> int:
        """Width of the embeddings the model outputs (equal to n_embd for most models)."""
        self._check()
        return llama.llama_model_n_embd_out(self._ptr)

    @property
    def n_cls_out(self) -> int:
        """Outputs of the classifier head: the floats per sequence under rank pooling (1 for a reranker)."""
        self._check()
        return llama.llama_model_n_cls_out(self._ptr)

    @property
    def n_layer(self) -> int:
        self._check()
        return llama.llama_model_n_layer(self._ptr)

    @property
    def n_head(self) -> int:
        """Attention heads of the first layer (0 for a ``vocab_only`` model)."""
        self._check()
        # llama.cpp reads a per-layer array and aborts the process when the
        # model has no layers, as a vocab-only model has not.
        if llama.llama_model_n_layer(self._ptr) <= 0:
            return 0
        return llama.llama_model_n_head(self._ptr)

    @property
    def n_head_kv(self) -> int:
        """Key/value heads of the first layer (0 for a ``vocab_only`` model)."""
        self._check()
        if llama.llama_model_n_layer(self._ptr) <= 0:  # as n_head
            return 0
        return llama.llama_model_n_head_kv(self._ptr)

    @property
    def has_encoder(self) -> bool:
        self._check()
        return llama.llama_model_has_encoder(self._ptr)

    @property
    def has_decoder(self) -> bool:
        self._check()
        return llama.llama_model_has_decoder(self._ptr)

    @property
    def is_recurrent(self) -> bool:
        self._check()
        return llama.llama_model_is_recurrent(self._ptr)

    @property
    def is_hybrid(self) -> bool:
        """Attention layers beside recurrent ones (their state cannot be shared or cut in part)."""
        self._check()
        return llama.llama_model_is_hybrid(self._ptr)

    @property
    def chat_template(self):
        """The default chat template (Jinja source) stored in the GGUF, or None."""
        self._check()
        cdef const char * t = llama.llama_model_chat_template(self._ptr, NULL)
        return None if t == NULL else t[:strlen(t)].decode("utf-8", "replace")

    @property
    def chat_templates(self) -> dict:
        """Every chat template in the GGUF: ``{"default": ..., "<name>": ...}``."""
        prefix = "tokenizer.chat_template"
        out = {}
        for key, value in self.metadata.items():
            if key == prefix:
                out["default"] = value
            elif key.startswith(prefix + "."):
                out[key[len(prefix) + 1:]] = value
        return out
