# What was compiled in and what hardware was found, and the loading of the
# backend plugins on first use.

_DEVICE_TYPES = {
    llama.GGML_BACKEND_DEVICE_TYPE_CPU: "cpu",
    llama.GGML_BACKEND_DEVICE_TYPE_GPU: "gpu",
    llama.GGML_BACKEND_DEVICE_TYPE_IGPU: "igpu",
    llama.GGML_BACKEND_DEVICE_TYPE_ACCEL: "accel",
    llama.GGML_BACKEND_DEVICE_TYPE_META: "meta",
}


# The backend plugins are loaded on first use (the first Model, backends(),
# devices(), ...), not at import: a broken GPU driver or plugin then cannot
# make `import llamanative` fail, and an import that never loads a model never
# maps a plugin. llamanative._backends chooses the files (the loader set
# here); this module runs it once per process. llama_backend_init() is not
# called at all: besides ggml_time_init() it would run ggml_backend_load_all(),
# which loads any libggml-*.so found in the interpreter's directory or the
# current directory (llama_supports_gpu_offload() does the same while no
# backend is registered, so supports_gpu_offload() does not call it either).
_backend_loader = None
_backend_lock = _threading.RLock()  # re-entrant: the loader itself reads backends()
cdef bint _backends_ready = False
cdef bint _backends_loading = False
_backend_failure = None  # the exception the loader raised, kept for every later use

llama.ggml_time_init()  # nothing else; required on Windows before ggml_time_us()


def _set_backend_loader(loader) -> None:
    """Register the function that loads the plugins (llamanative._backends does, at its import)."""
    global _backend_loader
    _backend_loader = loader


cdef int _require_backends() except -1:
    """Load the backend plugins the first time any caller needs them; raise what that load raised."""
    global _backends_ready, _backends_loading, _backend_failure
    if not _backends_ready:
        with _backend_lock:
            # Inside the loader (same thread) the registry is read as it is so far.
            if not _backends_ready and not _backends_loading and _backend_loader is not None:
                _backends_loading = True
                try:
                    _backend_loader()
                except Exception as exc:
                    _backend_failure = exc
                finally:
                    _backends_loading = False
                    _backends_ready = True
    if _backend_failure is not None:
        raise BackendLoadError(
            f"loading the ggml backend plugins failed: {type(_backend_failure).__name__}: {_backend_failure} "
            f"(llamanative.backend_load_log() lists what was tried)") from _backend_failure
    return 0


def ensure_backends() -> None:
    """Load the backend plugins now, if nothing has loaded them yet (thread-safe; once per process).

    The first :class:`Model`, :func:`backends`, :func:`devices`,
    :func:`system_info` or :func:`supports_gpu_offload` does it too; calling
    this at start-up moves the cost (and any failure) there.

    Raises:
        BackendLoadError (a RuntimeError): the loader raised; the same error
            is raised again at every later use.
    """
    _require_backends()


def system_info() -> str:
    """llama.cpp's one-line summary of the CPU features it was built with (``AVX2 = 1 | ...``).

    Raises:
        BackendLoadError: see :func:`ensure_backends`.
    """
    _require_backends()
    return llama.llama_print_system_info().decode()


def llama_version() -> str:
    """The llama.cpp version string reported by the library."""
    return llama.llama_version().decode()


cdef dict _reg_features(llama.ggml_backend_reg_t reg):
    cdef llama.ggml_backend_get_features_t get_features = <llama.ggml_backend_get_features_t> \
        llama.ggml_backend_reg_get_proc_address(reg, b"ggml_backend_get_features")
    cdef llama.ggml_backend_feature * feat
    features = {}
    if get_features != NULL:
        feat = get_features(reg)
        while feat != NULL and feat.name != NULL:
            features[feat.name.decode()] = feat.value.decode() if feat.value != NULL else ""
            feat += 1
    return features


# Backend name -> the plugin file it was loaded from (plugin_load).
_plugin_paths = {}


def plugin_score(path: str) -> tuple:
    """Probe a backend plugin file without registering it.

    Returns:
        ``(status, score, error)``: status ``"scored"`` with the plugin's
        ``ggml_backend_score()`` (0 means the CPU or driver here cannot run
        it), ``"no-score"`` for a plugin built for one machine (usable as is),
        or ``"load-failed"`` with the loader's message in ``error``.
    """
    cdef bytes bpath = _os.fsencode(path)
    cdef const char * cpath = bpath
    cdef int score = 0
    cdef string error
    cdef pp.lln_probe_status status
    with nogil:
        status = pp.lln_plugin_score(cpath, &score, &error)
    if status == pp.LLN_PROBE_SCORED:
        return ("scored", score, "")
    if status == pp.LLN_PROBE_NO_SCORE:
        return ("no-score", None, "")
    return ("load-failed", None, error.decode("utf-8", "replace"))


def plugin_load(path: str):
    """Load a backend plugin and register its devices with ggml.

    Returns:
        The backend's name (``"CPU"``, ``"Vulkan"``...), or None when ggml
        refused the file (the reason goes to the ``llamanative.native`` log).
    """
    cdef bytes bpath = _os.fsencode(path)
    cdef const char * cpath = bpath
    cdef llama.ggml_backend_reg_t reg
    with nogil:
        reg = llama.ggml_backend_load(cpath)
    if reg == NULL:
        return None
    name = llama.ggml_backend_reg_name(reg).decode()
    _plugin_paths[name] = path
    return name


def backends() -> list:
    """The ggml backends registered in this process.

    Returns:
        A list of dicts ``{"name", "n_devices", "features", "path"}``;
        ``features`` maps a feature name (``"AVX2"``, ``"CUDA"`` ...) to its
        value as a string; ``path`` is the plugin file the backend was loaded
        from (None for a backend linked into the library).

    Raises:
        BackendLoadError: see :func:`ensure_backends`.
    """
    cdef size_t i
    cdef llama.ggml_backend_reg_t reg
    _require_backends()
    out = []
    for i in range(llama.ggml_backend_reg_count()):
        reg = llama.ggml_backend_reg_get(i)
        out.append({
            "name": llama.ggml_backend_reg_name(reg).decode(),
            "n_devices": llama.ggml_backend_reg_dev_count(reg),
            "features": _reg_features(reg),
            "path": _plugin_paths.get(llama.ggml_backend_reg_name(reg).decode()),
        })
    return out


def devices() -> list:
    """The devices found by the compiled backends.

    Returns:
        A list of dicts ``{"name", "description", "type", "backend",
        "memory_free", "memory_total"}``; memory in bytes. An RPC
        server's device (:func:`rpc_add_server`) has its ``host:port`` as
        description and backend ``"RPC"``; while its server cannot be
        reached its memory reads 0.

    Raises:
        BackendLoadError: see :func:`ensure_backends`.
    """
    cdef size_t i, free_b, total_b
    cdef llama.ggml_backend_dev_t dev
    _require_backends()
    out = []
    for i in range(llama.ggml_backend_dev_count()):
        dev = llama.ggml_backend_dev_get(i)
        free_b = 0
        total_b = 0
        endpoint = _rpc_endpoint_of(dev)
        # ggml would connect to ask, and abort if the server is gone.
        if endpoint is None or _rpc_reachable(endpoint):
            llama.ggml_backend_dev_memory(dev, &free_b, &total_b)
        out.append({
            "name": llama.ggml_backend_dev_name(dev).decode(),
            "description": llama.ggml_backend_dev_description(dev).decode(),
            "type": _DEVICE_TYPES.get(llama.ggml_backend_dev_get_type(dev), "unknown"),
            "backend": llama.ggml_backend_reg_name(llama.ggml_backend_dev_backend_reg(dev)).decode(),
            "memory_free": free_b,
            "memory_total": total_b,
        })
    return out


# For Model(devices=...), whose parameter hides this function's name.
_all_devices = devices


def supports_gpu_offload() -> bool:
    """Whether a loaded backend can hold model layers (CUDA, Vulkan, Metal, RPC...).

    llama_supports_gpu_offload()'s test, without its fallback to
    ggml_backend_load_all() when nothing is registered, and counting the RPC
    backend only once a server was added (:func:`rpc_add_server`): the
    plugin alone offers no device.

    Raises:
        BackendLoadError: see :func:`ensure_backends`.
    """
    _require_backends()
    return (llama.ggml_backend_dev_by_type(llama.GGML_BACKEND_DEVICE_TYPE_GPU) != NULL
            or llama.ggml_backend_dev_by_type(llama.GGML_BACKEND_DEVICE_TYPE_IGPU) != NULL
            or (llama.ggml_backend_reg_by_name(b"RPC") != NULL and bool(_rpc_devices)))


def max_parallel_sequences() -> int:
    """llama.cpp's upper bound for ``n_seq_max``."""
    return llama.llama_max_parallel_sequences()


def time_us() -> int:
    """llama.cpp's monotonic clock, in microseconds."""
    return llama.llama_time_us()
