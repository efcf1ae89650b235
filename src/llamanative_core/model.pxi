# Model: one loaded llama_model.


cdef tuple _rpc_endpoints(rpc):
    """Model(rpc=...) as a tuple of distinct endpoints, each checked (rpc.pxi)."""
    if rpc is None:
        return ()
    items = [rpc] if isinstance(rpc, str) else list(rpc)
    out = []
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"rpc takes 'host:port' strings, got {type(item).__name__}")
        for part in item.split(","):
            part = part.strip()
            if part:
                parse_rpc_endpoint(part)
                if part not in out:
                    out.append(part)
    return tuple(out)


cdef bint _has_device(vector[llama.ggml_backend_dev_t] & devs, llama.ggml_backend_dev_t dev):
    cdef size_t i
    for i in range(devs.size()):
        if devs[i] == dev:
            return True
    return False


cdef void _local_gpus(vector[llama.ggml_backend_dev_t] & out):
    """Append this machine's GPU devices (its integrated ones when it has none), as llama.cpp's
    default device choice does, without the RPC devices."""
    cdef size_t i, start = out.size()
    cdef llama.ggml_backend_dev_t dev
    cdef llama.ggml_backend_dev_type kind
    for kind in (llama.GGML_BACKEND_DEVICE_TYPE_GPU, llama.GGML_BACKEND_DEVICE_TYPE_IGPU):
        for i in range(llama.ggml_backend_dev_count()):
            dev = llama.ggml_backend_dev_get(i)
            if llama.ggml_backend_dev_get_type(dev) == kind and _rpc_endpoint_of(dev) is None:
                out.push_back(dev)
        if out.size() > start:
            return


cdef size_t _free_memory(llama.ggml_backend_dev_t dev):
    """A device's free memory, the host's for a device that reports none (llama.cpp's rule)."""
    cdef size_t free_b = 0, total_b = 0
    llama.ggml_backend_dev_memory(dev, &free_b, &total_b)
    if free_b == 0 and total_b == 0:
        llama.ggml_backend_dev_memory(llama.ggml_backend_dev_by_type(llama.GGML_BACKEND_DEVICE_TYPE_CPU),
                                      &free_b, &total_b)
    return free_b


cdef object _check_tensor_split(tensor_split, size_t n_devices):
    if tensor_split is None:
        return None
    split = [float(x) for x in tensor_split]
    if len(split) != n_devices:
        raise ValueError(f"tensor_split has {len(split)} entries for {n_devices} device(s)")
    if any(not (x >= 0.0) or x == float("inf") for x in split) or not any(split):
        raise ValueError(f"tensor_split must be finite numbers >= 0, not all 0; got {split}")
    return split


cdef list _placement(vector[llama.ggml_backend_dev_t] & devs, split, int32_t n_gpu_layers, int32_t n_layer):
    """(device name, backend, description, layer count) for each device holding layers, by llama.cpp's rule
    (llama_model::load_tensors): the last n_gpu_layers of the n_layer + 1 layers, split at the
    cumulative proportions of ``split`` (one device: all of them)."""
    cdef size_t n_devs = devs.size()
    cdef int32_t total = n_layer + 1
    cdef int32_t n_gpu = total if n_gpu_layers < 0 else n_gpu_layers
    cdef int32_t act = 0 if n_devs == 0 else min(n_gpu, total)
    cdef int32_t start = max(total - n_gpu, 0)
    counts = [0] * n_devs
    if act > 0:
        # In float32 as llama.cpp computes them: the cumulative proportions, then upper_bound.
        weights = np.asarray(split if split is not None else [1.0] + [0.0] * (n_devs - 1), dtype=np.float32)
        bounds = np.cumsum(weights, dtype=np.float32)
        bounds = (bounds / bounds[-1]).astype(np.float32)
        for il in range(start, start + act):
            frac = np.float32(il - start) / np.float32(act)
            counts[int(np.searchsorted(bounds, frac, side="right"))] += 1
    out = []
    if total - act > 0:
        out.append(("CPU", "CPU", "this machine's CPU", total - act))
    cdef size_t i
    for i in range(n_devs):
        if counts[i]:
            out.append((llama.ggml_backend_dev_name(devs[i]).decode(),
                        llama.ggml_backend_reg_name(llama.ggml_backend_dev_backend_reg(devs[i])).decode(),
                        llama.ggml_backend_dev_description(devs[i]).decode(), counts[i]))
    return out


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
            every layer on the CPU. Default: every GPU device loaded, and
            the devices of the ``rpc`` servers.
        rpc: RPC servers (``"host:port"``, a list or one comma-separated
            string) to place layers on, before the local GPUs, as llama.cpp's
            ``--rpc`` does: ``llamanative rpc-server`` runs one. Each is
            probed with the protocol's handshake before ggml connects (see
            :func:`rpc_add_server`). The ``n_gpu_layers`` last layers are
            split over these and the local GPUs by their free memory (or
            ``tensor_split``); the others stay on this CPU. A model loaded
            without ``rpc`` never uses a server added for another one.
        tensor_split: proportion of the offloaded layers for each device,
            in device order (RPC devices first); default by free memory.
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
        ValueError: an unknown device name, ``main_gpu`` beyond the GPUs
            loaded, a malformed RPC endpoint or a bad ``tensor_split``.
        RpcConnectError (a ConnectionError): an RPC server cannot be reached
            or is not one.
        RpcLostError (a ConnectionError): a server's connection broke while
            the weights were sent.

    The GIL is released while the weights load. ``close()`` frees the model;
    it refuses while a :class:`Context` made from it is still open.
    """

    cdef llama.llama_model * _ptr
    cdef readonly str path
    cdef readonly bint vocab_only
    cdef int _n_contexts
    cdef int _n_adapters  # LoraAdapters loaded for it and open (llama.cpp frees them with the model)
    cdef dict _metadata
    cdef readonly tuple rpc  # the RPC endpoints it is placed on
    cdef tuple _rpc_used  # the same, while they are counted as in use (rpc.pxi)
    cdef list _placement  # (device name, backend, description, layer count) for each device holding layers

    def __cinit__(self):
        self._ptr = NULL
        self._n_contexts = 0
        self._n_adapters = 0
        self.rpc = ()
        self._rpc_used = ()
        self._placement = []

    def __init__(self, path, *, int n_gpu_layers=-1, int main_gpu=0, bint use_mmap=True,
                 bint use_mlock=False, bint vocab_only=False, devices=None, bint repack=True, rpc=None,
                 tensor_split=None):
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
        endpoints = _rpc_endpoints(rpc)
        for endpoint in endpoints:
            rpc_add_server(endpoint)  # probed, registered: its devices exist from here on
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
        # llama.cpp's order: the RPC servers' devices first, to keep the network transfers few.
        for endpoint in endpoints:
            for name in _rpc_devices[endpoint]:
                dev_list.push_back(llama.ggml_backend_dev_by_name(name.encode()))
        if devices is not None:
            for name in devices:
                dev = llama.ggml_backend_dev_by_name(str(name).encode())
                if dev == NULL:
                    known = [d["name"] for d in _all_devices()]
                    raise ValueError(f"no device named {name!r}; loaded devices: {', '.join(known)}")
                endpoint = _rpc_endpoint_of(dev)
                if endpoint is not None and endpoint not in endpoints:
                    endpoints = endpoints + (endpoint,)
                    rpc_add_server(endpoint)  # probed while no model holds its connection
                if (llama.ggml_backend_dev_get_type(dev) != llama.GGML_BACKEND_DEVICE_TYPE_CPU
                        and not _has_device(dev_list, dev)):
                    dev_list.push_back(dev)
        elif endpoints or _rpc_devices:
            # An explicit list: llama.cpp's default takes every GPU device, which would include the
            # servers added for other models.
            _local_gpus(dev_list)
        if devices is not None or endpoints or _rpc_devices:
            if dev_list.size() == 0:
                params.n_gpu_layers = 0  # only the CPU: nothing offloaded
            dev_list.push_back(NULL)
            params.devices = dev_list.data()
        # The devices the offloaded layers go to: the list given to llama.cpp, or its default choice.
        cdef vector[llama.ggml_backend_dev_t] placed = dev_list
        if params.devices != NULL:
            placed.pop_back()  # the NULL terminator
        else:
            _local_gpus(placed)
        cdef size_t n_devs = placed.size()
        split = _check_tensor_split(tensor_split, n_devs)
        if split is None and n_devs > 1:
            # By free memory, as llama.cpp does, but computed here and passed on, so that
            # placement() reports exactly what llama.cpp does.
            split = [float(_free_memory(placed[i])) for i in range(n_devs)]
        cdef vector[float] split_values
        if split is not None:
            split_values.resize(llama.llama_max_devices(), 0.0)
            for i in range(len(split)):
                split_values[i] = split[i]
            params.tensor_split = split_values.data()
        cdef bytes bpath = _os.fsencode(self.path)
        cdef const char * cpath = bpath
        cdef unsigned long mark = lln_rpc_failures()
        _rpc_use(endpoints, 1)  # from the first connection on: no probe may interrupt the load
        try:
            with nogil:
                self._ptr = llama.llama_model_load_from_file(cpath, params)
            if self._ptr != NULL and lln_rpc_failures() != mark:
                llama.llama_model_free(self._ptr)
                self._ptr = NULL
                _rpc_check(mark, endpoints, "the load of the weights")
        except BaseException:
            _rpc_use(endpoints, -1)
            raise
        if self._ptr == NULL:
            _rpc_use(endpoints, -1)
            raise ModelLoadError(
                f"llama.cpp could not load {self.path!r} (unsupported architecture or corrupt "
                f"tensors; set llamanative._core.set_log_level('INFO') for llama.cpp's log)", self.path)
        self.rpc = endpoints
        self._rpc_used = endpoints
        self.vocab_only = vocab_only
        self._placement = _placement(placed, split, params.n_gpu_layers, llama.llama_model_n_layer(self._ptr))

    cdef void _release_rpc(self):
        if self._rpc_used:
            _rpc_use(self._rpc_used, -1)
            self._rpc_used = ()

    def placement(self) -> list:
        """Where the layers are: a dict ``{"device", "backend", "description", "layers"}`` for each device that holds
        some, the CPU first (llama.cpp offloads the last ``n_gpu_layers``), then in device order (RPC
        servers first; an RPC device's description is its server's ``host:port``).

        ``layers`` counts the repeating blocks and the output layer (``n_layer + 1`` in all), as
        llama.cpp's "offloaded N/M layers" line does; the input embeddings always stay on the CPU.
        """
        self._check()
        return [{"device": d, "backend": b, "description": desc, "layers": n} for d, b, desc, n in self._placement]

    def __dealloc__(self):
        if self._ptr != NULL:
            llama.llama_model_free(self._ptr)
            self._ptr = NULL
        self._release_rpc()

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
        self._release_rpc()

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
