"""Find and load ggml's backend plugins, once, on first use.

Every ggml backend (CPU, CUDA, Vulkan, Metal...) is a plugin library next to
the extension: ``libggml-<backend>.so`` for a backend built for one machine,
``libggml-<backend>-<variant>.so`` when the build holds several variants (the
portable CPU build has one per x86-64 generation). For each backend the best
variant the machine can run is loaded, judged by the score each plugin reports
(0: this CPU or driver cannot run it).

Plugins are looked for in the package's own directory only, never in the
interpreter's or the current directory, so a stray library cannot be picked up
by accident. ``LLAMANATIVE_LIBRARY_PATH`` (directories separated by
``os.pathsep``) replaces that directory, for a plugin built separately.
``LLAMANATIVE_CPU_VARIANT`` (e.g. ``haswell``, ``sse42``) loads that CPU
variant instead of the best one, to compare them.

The plugins are loaded when something first needs them (the first
``Model``, ``backends()``, ``devices()``, :func:`backend_load_log`...), not at
import: ``import llamanative`` maps no plugin, so a broken GPU driver or plugin
cannot make the import fail. ``llamanative._core`` runs :func:`_load` under its
lock, once per process; an exception from it becomes a ``BackendLoadError``
at that use and every later one.

What was tried and why each file was or was not loaded is logged to
``llamanative.backends`` and kept for :func:`backend_load_log`.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from . import _core
from .errors import BackendLoadError

log = logging.getLogger("llamanative.backends")

# ggml's own loading order (ggml_backend_load_all_from_path): accelerators
# first, the CPU backend last.
BACKEND_ORDER = (
    "blas",
    "zendnn",
    "cann",
    "cuda",
    "hip",
    "metal",
    "rpc",
    "sycl",
    "vulkan",
    "virtgpu",
    "opencl",
    "hexagon",
    "musa",
    "openvino",
    "webgpu",
    "zdnn",
    "cpu",
)

# libggml.so and libggml-base.so are linked libraries, not plugins.
_NOT_PLUGINS = ("base",)

# ggml's naming (backend_filename_prefix / _extension in ggml-backend-reg.cpp).
_PATTERN = re.compile(
    r"^ggml-(?P<backend>[a-z0-9]+)(?:-(?P<variant>[A-Za-z0-9_.]+))?\.dll$"
    if os.name == "nt"
    else r"^libggml-(?P<backend>[a-z0-9]+)(?:-(?P<variant>[A-Za-z0-9_.]+))?\.so$"
)


@dataclass(frozen=True)
class PluginAttempt:
    """One plugin file considered when the backends were loaded.

    Attributes:
        path: the file.
        backend: ggml's backend name in the file name (``cpu``, ``vulkan``...).
        variant: the variant in the file name (``haswell``...), or None.
        score: what the plugin's ``ggml_backend_score()`` returned (0: not
            runnable here), or None when it has no score function or could not
            be probed.
        outcome: ``"loaded"``, ``"skipped"`` or ``"failed"``.
        reason: why, in words.
    """

    path: str
    backend: str
    variant: str | None
    score: int | None
    outcome: str
    reason: str


_lock = threading.Lock()
_attempts: list[PluginAttempt] = []
_loaded = False


def search_dirs() -> list[Path]:
    """The directories plugins are loaded from: ``LLAMANATIVE_LIBRARY_PATH``, else the package's."""
    override = os.environ.get("LLAMANATIVE_LIBRARY_PATH", "").strip()
    if override:
        return [Path(p) for p in override.split(os.pathsep) if p]
    return [Path(_core.__file__).resolve().parent]


def _candidates(dirs: list[Path]) -> dict[str, list[tuple[Path, str | None]]]:
    found: dict[str, list[tuple[Path, str | None]]] = {}
    for directory in dirs:
        try:
            if not directory.is_dir():
                _record(PluginAttempt(str(directory), "", None, None, "skipped", "not a directory"))
                continue
            entries = sorted(directory.iterdir())
        except OSError as exc:  # a name too long, no permission...: the directory is passed over
            _record(PluginAttempt(str(directory), "", None, None, "failed", f"cannot be listed: {exc}"))
            continue
        for entry in entries:
            match = _PATTERN.match(entry.name)
            if match is None or match["backend"] in _NOT_PLUGINS or not _is_file(entry):
                continue
            backend, variant = match["backend"], match["variant"]
            if backend not in BACKEND_ORDER:
                _record(
                    PluginAttempt(str(entry), backend, variant, None, "skipped", "not a ggml backend this build knows")
                )
                continue
            found.setdefault(backend, []).append((entry, variant))
    return found


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def _record(attempt: PluginAttempt) -> None:
    _attempts.append(attempt)
    level = (
        logging.WARNING
        if attempt.outcome == "failed"
        else logging.INFO
        if attempt.outcome == "loaded"
        else logging.DEBUG
    )
    log.log(level, "%s: %s (%s)", attempt.path, attempt.outcome, attempt.reason)


def _load_backend(backend: str, files: list[tuple[Path, str | None]]) -> None:
    """Probe every file of one backend, load the best, record the rest."""
    wanted = os.environ.get("LLAMANATIVE_CPU_VARIANT", "").strip() if backend == "cpu" else ""
    scored: list[tuple[int, Path, str | None]] = []
    unscored: list[tuple[Path, str | None]] = []
    for path, variant in files:
        status, score, error = _core.plugin_score(str(path))
        if status == "load-failed":
            _record(PluginAttempt(str(path), backend, variant, None, "failed", f"cannot be loaded: {error}"))
        elif status == "no-score" or score is None:
            unscored.append((path, variant))
        elif score == 0:
            _record(
                PluginAttempt(
                    str(path), backend, variant, 0, "skipped", "needs CPU features or a driver this machine lacks"
                )
            )
        else:
            scored.append((score, path, variant))
    scored.sort(key=lambda item: -item[0])
    order = [(path, variant, score) for score, path, variant in scored] + [(p, v, None) for p, v in unscored]
    if wanted:
        chosen = [item for item in order if item[1] == wanted]
        if not chosen:
            log.warning("LLAMANATIVE_CPU_VARIANT=%s: no runnable plugin of that variant; using the best one", wanted)
        else:
            order = chosen + [item for item in order if item[1] != wanted]
    for i, (path, variant, score) in enumerate(order):
        name = _core.plugin_load(str(path))
        if name is None:
            _record(
                PluginAttempt(
                    str(path),
                    backend,
                    variant,
                    score,
                    "failed",
                    "ggml could not initialise it (see the llamanative.native log)",
                )
            )
            continue
        if wanted and variant == wanted:
            why = f"LLAMANATIVE_CPU_VARIANT={wanted}"
        elif score is None:
            why = "the only plugin of this backend (it reports no score)"
        elif len(order) == 1:
            why = f"the only plugin of this backend; runnable here (score {score})"
        else:
            why = f"best score {score} of {len(scored)} runnable variant(s)"
        _record(PluginAttempt(str(path), backend, variant, score, "loaded", why))
        for other_path, other_variant, other_score in order[i + 1 :]:
            _record(
                PluginAttempt(
                    str(other_path), backend, other_variant, other_score, "skipped", f"{path.name} was loaded instead"
                )
            )
        return


def load_backends() -> None:
    """Load the plugins now if nothing has yet (``llamanative._core.ensure_backends``).

    Raises:
        BackendLoadError: the loading raised (now or at an earlier use).
    """
    _core.ensure_backends()


def _load() -> None:
    """Choose and load the plugins; run by ``_core`` once per process, under its lock.

    Backends linked into the library (a build with ``GGML_BACKEND_DL=OFF``)
    are already registered and need nothing from here.
    """
    global _loaded
    with _lock:
        if _loaded:
            return
        _loaded = True
        found = _candidates(search_dirs())
        linked = bool(_core.backends())
        for backend in BACKEND_ORDER:
            for path, variant in found.get(backend, []) if linked else []:
                # A GGML_BACKEND_DL=OFF build: its backend libraries are linked
                # into libggml and registered already; they are not plugins.
                _record(
                    PluginAttempt(
                        str(path),
                        backend,
                        variant,
                        None,
                        "skipped",
                        "backends are linked into this build (GGML_BACKEND_DL=OFF)",
                    )
                )
            if backend in found and not linked:
                _load_backend(backend, found[backend])
        if not any(b["name"] == "CPU" for b in _core.backends()):
            log.warning(
                "no CPU backend was loaded from %s; models cannot be loaded "
                "(llamanative.backend_load_log() lists what was tried)",
                os.pathsep.join(str(d) for d in search_dirs()),
            )


def backend_load_log() -> list[PluginAttempt]:
    """Every plugin file considered, in order, with its outcome and the reason.

    Loads the backends first if nothing has yet. Never raises for a failed
    load: the attempts made before the failure are what explains it.
    """
    try:
        _core.ensure_backends()
    except BackendLoadError:
        pass
    with _lock:
        return list(_attempts)


_core._set_backend_loader(_load)
