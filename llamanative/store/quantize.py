"""Quantizing a model on create, with llama.cpp's own quantizer (``llama_model_quantize``).

``create(model, from_=..., quantize="q4_K_M")`` converts an F32, F16 or BF16
GGUF to one of :data:`TYPES`, as Ollama's create does, and stores the result
as a new blob. llama.h gives the quantizer no progress or abort callback, so
it runs in a worker process (:mod:`._quantize_worker`): its per-tensor log
lines are the progress, and stopping it (a progress callback that raises, a
stream closed early, Ctrl-C) kills the process and removes its output. A
failure of the quantizer, even an abort inside llama.cpp, ends that process,
never the caller's. Why, and the other ways weighed: docs/design/quantize.md.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from .. import _core
from ..errors import StatusError
from ..types import ProgressResponse
from . import gguf

# Ollama's names of the target types (F32, F16, BF16, Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q4_K_S, Q4_0), in that order.
TYPES = tuple(_core.QUANTIZE_FILE_TYPES)
_ALIASES = {"Q4_K": "Q4_K_M"}  # Ollama's ParseFileType takes Q4_K for Q4_K_M
SOURCE_TYPES = ("F16", "BF16", "F32")  # what Ollama quantizes from

# The digest of the progress updates: Ollama's placeholder (the new blob's digest is known only at the end).
PROGRESS_DIGEST = "0000000000000000000"

# "[  12/ 101]  blk.0.attn_q.weight  - [...], type = f16, ": llama.cpp's line at the start of each tensor.
_TENSOR_LINE = re.compile(r"^\[\s*(\d+)/\s*(\d+)\]\s+(\S+)")
_WORKER = (
    "import json, sys; sys.path[:] = json.loads(sys.argv.pop(1)); "
    "from llamanative.store._quantize_worker import main; sys.exit(main(sys.argv[1:]))"
)


def parse_type(name: str) -> str:
    """Ollama's name of the target type ``name``, case-insensitive (``"q4_k_m"`` -> ``"Q4_K_M"``).

    Raises:
        StatusError: 400 not one of :data:`TYPES` (nor ``Q4_K``).
    """
    upper = name.strip().upper()
    upper = _ALIASES.get(upper, upper)
    if upper not in TYPES:
        raise StatusError.bad_request(f"unsupported quantization type {name} - supported types are {', '.join(TYPES)}")
    return upper


def source_type(path: str | os.PathLike[str]) -> str:
    """Ollama's name of the file type of the GGUF at ``path`` (``general.file_type``: ``"F16"``, ``"Q4_1"``...).

    Without ``general.file_type`` it is read off the weights: ``"F32"`` when
    every tensor of two or more dimensions has 4 bytes per weight, ``"F16"``
    when they have 2 or 4 (BF16 weights count as F16 here), else ``""``.

    Raises:
        ValueError, OSError: not a GGUF file, or it cannot be read.
    """
    file_type = gguf.read_metadata(path).get("general.file_type")
    if file_type is not None:
        return gguf.file_type_name(file_type) or f"file type {file_type}"
    widths = {size / max(1, math.prod(shape)) for _name, _offset, size, shape in gguf.tensors(path) if len(shape) > 1}
    if widths <= {4.0}:
        return "F32"
    return "F16" if widths <= {2.0, 4.0} else ""


def check_source(path: str | os.PathLike[str]) -> str:
    """The source's type (:func:`source_type`), when Ollama would quantize it: F32, F16 or BF16.

    Raises:
        StatusError: 400 a model already quantized (or of no known type).
    """
    try:
        have = source_type(path)
    except (ValueError, OSError) as exc:
        raise StatusError.bad_request(f"cannot quantize {os.fspath(path)!r}: {exc}") from None
    if have not in SOURCE_TYPES:
        raise StatusError.bad_request(
            f"quantization is only supported for F16, BF16 and F32 models (this one is {have or 'quantized'})"
        )
    return have


class Quantization:
    """Writing ``dst``: the GGUF ``src`` (of type ``have``) converted to ``want``, as its iterator is consumed.

    Iterating yields ``quantizing <have> model to <want>`` with ``digest``
    :data:`PROGRESS_DIGEST`, ``total`` (the size of ``src``) and ``completed``
    (that size times the share of the tensor bytes converted so far), once at
    the start and after each tensor; then ``verifying conversion`` once the
    header of ``dst`` says ``want``. ``dst`` is complete when the iterator is
    exhausted. Closing it early, an exception in the caller's loop, or
    :meth:`stop` kills the worker; ``dst`` is then removed, as on any failure.
    It can be iterated once.

    Iterating raises:
        StatusError: 500 the quantizer failed (with llama.cpp's reason), was
            stopped, or wrote a file that is not ``want``.
    """

    def __init__(self, src: str | os.PathLike[str], dst: Path, have: str, want: str) -> None:
        self.src, self.dst, self.have, self.want = os.fspath(src), dst, have, want
        self._lock = threading.Lock()
        self._worker: _Worker | None = None
        self._stopped = False

    def stop(self) -> None:
        """Kill the worker (from any thread; idempotent); a loop reading the progress then raises."""
        with self._lock:
            self._stopped = True
            if self._worker is not None:
                self._worker.stop()

    def __iter__(self) -> Iterator[ProgressResponse]:
        status = f"quantizing {self.have} model to {self.want}"
        total = os.path.getsize(self.src)
        sizes = {name: size for name, _offset, size, _shape in gguf.tensors(self.src)}
        data_bytes = sum(sizes.values()) or 1
        ok = False
        try:
            with self._lock:
                if self._stopped:
                    raise StatusError.internal("quantizing was stopped")
                worker = self._worker = _Worker(self.src, self.dst, _core.QUANTIZE_FILE_TYPES[self.want])
            try:
                yield ProgressResponse(status=status, digest=PROGRESS_DIGEST, total=total, completed=0)
                done = 0
                for name in worker.tensors():
                    yield ProgressResponse(
                        status=status, digest=PROGRESS_DIGEST, total=total, completed=total * done // data_bytes
                    )
                    done += sizes.get(name, 0)
                worker.finish()
            finally:
                worker.stop()
                worker.close()
            yield ProgressResponse(status=status, digest=PROGRESS_DIGEST, total=total, completed=total)
            got = gguf.file_type_name(gguf.read_metadata(self.dst).get("general.file_type"))
            if got != self.want:
                raise StatusError.internal(f"the quantizer wrote a {got or 'model of unknown type'}, not {self.want}")
            yield ProgressResponse(status="verifying conversion")
            ok = True
        finally:
            if not ok:
                self.dst.unlink(missing_ok=True)


class _Worker:
    """The worker process of one quantization, and what it said.

    ``tensors()`` yields the name of each tensor the quantizer has begun
    (read from its log lines); ``finish()`` waits for the exit status;
    ``stop()`` (idempotent, from any thread) kills it; ``close()``, on the
    thread that reads it, waits for it and closes the pipes.
    """

    def __init__(self, src: str, dst: Path, file_type: int) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER, json.dumps(sys.path), src, os.fspath(dst), str(file_type)],
            stdin=subprocess.PIPE,  # never written: it closes when this process ends, which stops the worker
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        self._errors: list[str] = []
        self._stderr: deque[str] = deque(maxlen=20)
        # stderr is drained on a thread of its own, so a chatty worker never blocks on a full pipe.
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()
        self._stopped = False

    def _read_stderr(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            self._stderr.append(line.rstrip("\n"))

    def tensors(self) -> Iterator[str]:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            level, _, text = line.rstrip("\n").partition("\t")
            if level.isdigit() and int(level) >= logging.ERROR:
                self._errors.append(text.strip())
            elif m := _TENSOR_LINE.match(text):
                yield m.group(3)

    def finish(self) -> None:
        """Wait for the worker's end.

        Raises:
            StatusError: 500 it failed, was killed, or was stopped.
        """
        rc = self._proc.wait()
        self._drain.join()
        if rc == 0 and not self._stopped:
            return
        if self._stopped:
            raise StatusError.internal("quantizing was stopped")
        reason = "; ".join(self._errors) or "\n".join(self._stderr) or f"the worker process ended with status {rc}"
        raise StatusError.internal(f"quantizing failed: {reason}")

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._stopped = True
            self._proc.kill()  # a blocked read of its stdout then ends: tensors() returns

    def close(self) -> None:
        self._proc.wait()
        self._drain.join()
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                pipe.close()
