"""Pull and create progress on the terminal: a status line per step, a bar per downloaded layer or quantization."""

from __future__ import annotations

import sys
from typing import TextIO

from ..types import ProgressResponse
from ._format import human_bytes

_BAR_WIDTH = 25


class ProgressPrinter:
    """Prints :class:`ProgressResponse` updates to ``out`` (stderr).

    On a terminal a layer's bar is redrawn in place with a carriage return;
    elsewhere (a pipe, a log file) each layer is printed once, when complete,
    so logs are not flooded.
    """

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stderr
        self.tty = self.out.isatty()
        self._status: str | None = None
        self._open_bar: str | None = None  # digest of the bar on the current line
        self._done: set[str] = set()
        self.last_status: str | None = None

    def update(self, p: ProgressResponse) -> None:
        if p.digest and p.total:
            if p.completed:  # the first update of a layer (0 bytes) only announces it
                self._bar(p.digest, p.total, p.completed, p.status)
        elif p.status and p.status != self._status:
            self._end_bar()
            self._status = p.status
            self.out.write(p.status + "\n")
        self.last_status = p.status or self.last_status
        self.out.flush()

    def close(self) -> None:
        self._end_bar()
        self.out.flush()

    def _bar(self, digest: str, total: int, completed: int, status: str | None = None) -> None:
        if digest in self._done:
            return
        completed = min(completed, total)
        finished = completed >= total
        if not self.tty and not finished:
            return
        if self._open_bar not in (None, digest):
            self._end_bar()
        pct = int(completed * 100 / total)
        filled = int(_BAR_WIDTH * completed / total)
        label = status or f"pulling {digest.removeprefix('sha256:')[:12]}"  # "quantizing F16 model to Q8_0"
        line = (
            f"{label}: {pct:3d}% ▕{'█' * filled}{' ' * (_BAR_WIDTH - filled)}▏ "
            f"{human_bytes(completed)}/{human_bytes(total)}"
        )
        self.out.write(("\r" + line + "\x1b[K") if self.tty else line)
        self._open_bar = digest
        if finished:
            self._done.add(digest)
            self._end_bar()

    def _end_bar(self) -> None:
        if self._open_bar is not None:
            self.out.write("\n")
            self._open_bar = None
