"""Scheduler: which models are loaded, for how long, and which one to evict.

Models load on first use and stay loaded for ``keep_alive`` after their last
request ends (a request resets the timer; 0 unloads as soon as the request
ends; a negative value / ``inf`` keeps the model forever). A request whose
load-time settings differ from the loaded runner's reloads the model once it
is idle. At most ``max_loaded`` runners stay loaded; to make room the least
recently used idle one is unloaded. Requests for a model that is loading wait
for it; only one model loads at a time. A runner whose worker failed
(``Runner.failure``) is never handed out again: it is dropped at once, freed
when its last request ends, and the next request loads the model afresh.

``close()`` does not wait for requests: it cancels what still runs (each
request gets a ``StatusError`` 503; a stream held but not read gets it at its
next read) and returns within its timeout. Schedulers still open when the
interpreter exits are closed then.
"""

from __future__ import annotations

import atexit
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..prompting import PromptPipeline
from .runner import Runner, RunnerConfig

DEFAULT_KEEP_ALIVE_S = 300.0
DEFAULT_MAX_LOADED = 3
# Seconds close() waits for the runners' workers once it has cancelled their jobs.
# A worker stops after its current step; a step still running after half of this
# is aborted (CPU), and a worker still busy at the end frees its model when it ends.
CLOSE_TIMEOUT_S = 10.0

_open: weakref.WeakSet[Scheduler] = weakref.WeakSet()  # closed at interpreter exit


@dataclass
class Loaded:
    """A loaded runner and its bookkeeping (read by ``list_running``)."""

    path: str
    runner: Runner
    refs: int = 0
    last_used: float = 0.0
    keep_alive_s: float = DEFAULT_KEEP_ALIVE_S
    expires_at: float = math.inf  # wall-clock seconds; inf while in use or kept forever
    name: str = ""  # what the client calls the model (for list_running)
    # The model's prompt side: chat templates (parsed once), tokenizer, output parsing.
    prompts: PromptPipeline = field(init=False)

    def __post_init__(self) -> None:
        self.prompts = PromptPipeline(self.runner.model, self.runner.projector)

    @property
    def config(self) -> RunnerConfig:
        return self.runner.config


class Scheduler:
    """Owns every Runner of a Client.

    Args:
        max_loaded: most models loaded at once (default ``LLAMANATIVE_MAX_LOADED_MODELS`` or 3).
        loader: builds a Runner (tests and alternative engines can replace it).
    """

    def __init__(self, max_loaded: int | None = None, loader: Callable[[str, RunnerConfig], Runner] = Runner) -> None:
        env = os.environ.get("LLAMANATIVE_MAX_LOADED_MODELS")
        if max_loaded is None:
            max_loaded = int(env) if env else DEFAULT_MAX_LOADED
        self.max_loaded = max_loaded
        if self.max_loaded < 1:
            raise ValueError(f"max_loaded must be >= 1, got {self.max_loaded}")
        self._loader = loader
        self._loaded: dict[str, Loaded] = {}
        self._cond = threading.Condition()
        self._load_lock = threading.Lock()  # one load at a time
        self._closed = False
        self._reaper = threading.Thread(target=self._reap, name="llamanative-keepalive", daemon=True)
        self._reaper.start()
        _open.add(self)

    # -- use ---------------------------------------------------------------------------
    @contextmanager
    def use(self, path: str, config: RunnerConfig, keep_alive_s: float) -> Iterator[Loaded]:
        """Hold the runner of ``path`` (loading or reloading it) for the duration of a request.

        Args:
            keep_alive_s: seconds to stay loaded after this request; 0 = unload at
                the end, negative or ``inf`` = forever.
        """
        entry = self._acquire(path, config)
        try:
            yield entry
        finally:
            self._release(entry, keep_alive_s)

    def _acquire(self, path: str, config: RunnerConfig) -> Loaded:
        while True:
            detached: list[Runner | None] = []
            room = False
            with self._cond:
                while True:
                    if self._closed:
                        raise RuntimeError("the client is closed")
                    entry = self._loaded.get(path)
                    if entry is not None and entry.runner.failure is not None:
                        # Its worker failed: forget it now (a fresh load follows); it is closed
                        # here if idle, otherwise when its last request ends (_release).
                        self._detach_locked(entry)
                        if entry.refs == 0:
                            detached.append(entry.runner)
                        continue
                    if entry is not None and entry.config == config:
                        entry.refs += 1
                        entry.last_used = time.time()
                        entry.expires_at = math.inf
                        return entry
                    if entry is not None and entry.refs == 0:
                        detached.append(self._detach_locked(entry))  # load-time settings changed: reload
                        break
                    if entry is None and self._room_locked(detached):
                        room = True
                        break
                    self._cond.wait(0.1)  # in use with other settings, or no room yet
            # Close outside the lock (it joins a worker thread and frees memory),
            # and before loading, so the memory is free for the new model.
            _close_all(detached)
            if not room:
                continue
            with self._load_lock:
                with self._cond:
                    room = path not in self._loaded and self._room_locked(detached)
                _close_all(detached)
                if not room:
                    continue  # another thread loaded it or took the room meanwhile
                runner = self._loader(path, config)  # outside the condition: loading takes time
                with self._cond:
                    if not self._closed:
                        entry = Loaded(path, runner, refs=1, last_used=time.time())
                        self._loaded[path] = entry
                        self._cond.notify_all()
                        return entry
                runner.close()  # the scheduler closed while it loaded: nobody else would free it
                raise RuntimeError("the client is closed")

    def _room_locked(self, detached: list[Runner | None]) -> bool:
        """Whether one more model fits; may detach the least recently used idle runner into ``detached``."""
        if len(self._loaded) < self.max_loaded:
            return True
        idle = [e for e in self._loaded.values() if e.refs == 0]
        if not idle:
            return False
        detached.append(self._detach_locked(min(idle, key=lambda e: e.last_used)))
        return True

    def _release(self, entry: Loaded, keep_alive_s: float) -> None:
        detached: list[Runner | None] = []
        with self._cond:
            entry.refs -= 1
            entry.last_used = time.time()
            entry.keep_alive_s = keep_alive_s
            if entry.refs == 0:
                if entry.runner.failure is not None:  # its worker failed: drop it and free it now
                    self._detach_locked(entry)
                    detached.append(entry.runner)
                elif keep_alive_s == 0:
                    detached.append(self._detach_locked(entry))
                elif keep_alive_s < 0 or math.isinf(keep_alive_s):
                    entry.expires_at = math.inf
                else:
                    entry.expires_at = entry.last_used + keep_alive_s
            self._cond.notify_all()
        _close_all(detached)

    # -- inspection and unloading ----------------------------------------------------------
    def loaded(self) -> list[Loaded]:
        """The loaded models, most recently used first."""
        with self._cond:
            return sorted(self._loaded.values(), key=lambda e: e.last_used, reverse=True)

    def get(self, path: str) -> Loaded | None:
        with self._cond:
            return self._loaded.get(path)

    def unload(self, path: str) -> bool:
        """Unload ``path`` once its requests end (now if idle). Returns whether it was loaded."""
        with self._cond:
            while True:
                entry = self._loaded.get(path)
                if entry is None:
                    return False
                if entry.refs == 0:
                    runner = self._detach_locked(entry)
                    break
                self._cond.wait(0.1)
        _close_all([runner])
        return True

    def _detach_locked(self, entry: Loaded) -> Runner | None:
        """Forget ``entry``; the caller closes the returned runner after releasing the lock."""
        if self._loaded.get(entry.path) is not entry:
            return None  # already unloaded (e.g. its last request ended with keep_alive 0)
        del self._loaded[entry.path]
        self._cond.notify_all()
        return entry.runner

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Unload everything, without waiting for the requests that still run. Idempotent.

        Each running request is cancelled and answered with a ``StatusError``
        503 ("the model was unloaded before the request finished"): a stream
        raises it at its next read, dropping the text it had not read; a
        blocking call raises it. Returns within about ``timeout`` seconds
        (the workers' joins share it); a worker still busy in a decode then
        frees its model when that decode ends.
        """
        with self._cond:
            self._closed = True
            detached = [self._detach_locked(entry) for entry in list(self._loaded.values())]
            self._cond.notify_all()
        _open.discard(self)
        runners = [r for r in detached if r is not None]
        for runner in runners:  # all workers stop at once; then each is joined in the time left
            runner.stop()
        deadline = time.monotonic() + timeout
        for runner in runners:
            runner.close(timeout=max(0.0, deadline - time.monotonic()))

    def _reap(self) -> None:
        while True:
            detached: list[Runner | None] = []
            with self._cond:
                if self._closed:
                    return
                now = time.time()
                for entry in list(self._loaded.values()):
                    if entry.refs == 0 and (entry.expires_at <= now or entry.runner.failure is not None):
                        detached.append(self._detach_locked(entry))
                if not detached:
                    soonest = min((e.expires_at for e in self._loaded.values()), default=math.inf)
                    self._cond.wait(min(1.0, max(0.01, soonest - now)))
            _close_all(detached)


@atexit.register
def _close_open_schedulers() -> None:
    # Non-daemon threads have ended by now; the workers are daemons and would
    # otherwise still decode while the interpreter tears itself down.
    for scheduler in list(_open):
        scheduler.close()


def _close_all(runners: list[Runner | None]) -> None:
    """Close detached runners (outside the scheduler's lock), emptying the list."""
    while runners:
        runner = runners.pop()
        if runner is not None:
            runner.close()
