"""The worker process of :mod:`llamanative.store.quantize`: one ``llama_model_quantize`` call.

Started by the store as ``python -c`` with the parent's ``sys.path`` (so it
imports the same llamanative), it writes llama.cpp's log to stdout, one
message a line (``<level>\\t<text>``, level as :mod:`logging` numbers it), for
the parent to read progress and errors from, and exits 0 when the file is
written. It reads nothing from stdin: when stdin reaches end of file, the
parent has gone, and the worker removes its output and exits at once.
"""

from __future__ import annotations

import logging
import os
import sys
import threading


class _LineHandler(logging.Handler):
    """Every native log message as one ``<level>\\t<text>`` line on stdout, flushed."""

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage().replace("\r", " ").replace("\n", " ")
        sys.stdout.write(f"{record.levelno}\t{text}\n")
        sys.stdout.flush()


def _exit_with_parent(dst: str) -> None:
    """Wait for end of file on stdin (the parent closed it or died); then remove ``dst`` and exit."""
    # os.read, not sys.stdin: a thread blocked in a buffered read holds the reader's lock, which
    # interpreter shutdown then waits for.
    while os.read(0, 1 << 12):
        pass
    try:
        os.unlink(dst)
    except OSError:
        pass
    os._exit(1)  # the quantizer holds the main thread in native code: no clean shutdown to wait for


def main(argv: list[str]) -> int:
    """``SRC DST FILE_TYPE``: quantize SRC into DST (``FILE_TYPE`` an integer llama_ftype)."""
    src, dst, file_type = argv
    threading.Thread(target=_exit_with_parent, args=(dst,), daemon=True).start()
    from llamanative import _core
    from llamanative.errors import QuantizeError

    log = logging.getLogger("llamanative.native")
    log.handlers[:] = [_LineHandler()]
    log.propagate = False
    log.setLevel(logging.INFO)
    _core.set_log_level(logging.INFO)  # the per-tensor lines are INFO
    try:
        _core.quantize_model(src, dst, int(file_type))
    except QuantizeError:
        return 1  # llama.cpp has logged the reason at ERROR level
    except Exception as exc:  # a bad file ...: reported to the parent as a line, like llama.cpp's own errors
        _LineHandler().emit(logging.makeLogRecord({"levelno": logging.ERROR, "msg": f"{type(exc).__name__}: {exc}"}))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
