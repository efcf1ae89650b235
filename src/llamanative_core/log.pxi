# llama.cpp / ggml logging, routed to Python's `logging`.
#
# Messages go to the logger "llamanative.native". Quiet by default: only
# warnings and errors cross into Python unless set_log_level() lowers the
# threshold. The level test happens before taking the GIL, so the tensor-by-
# tensor chatter of a model load costs nothing when it is filtered out.
#
# A handler that raises an Exception loses that message. A KeyboardInterrupt
# raised in a handler is raised again in the main thread once the native call
# has returned; any other BaseException (SystemExit, ...) cannot unwind through
# C++ and goes to sys.unraisablehook.

from cpython.exc cimport PyErr_SetInterrupt, PyErr_SetObject, PyErr_WriteUnraisable

cdef int _log_min_level = llama.GGML_LOG_LEVEL_WARN
cdef int _log_last_level = llama.GGML_LOG_LEVEL_INFO

_native_logger = _logging.getLogger("llamanative.native")
_LEVELS = {
    llama.GGML_LOG_LEVEL_DEBUG: _logging.DEBUG,
    llama.GGML_LOG_LEVEL_INFO: _logging.INFO,
    llama.GGML_LOG_LEVEL_WARN: _logging.WARNING,
    llama.GGML_LOG_LEVEL_ERROR: _logging.ERROR,
}


cdef void _log_callback(llama.ggml_log_level level, const char * text, void * user_data) noexcept nogil:
    global _log_last_level
    cdef int lvl = <int> level
    if lvl == llama.GGML_LOG_LEVEL_CONT:
        lvl = _log_last_level  # a continuation keeps the level of the line it continues
    else:
        _log_last_level = lvl
    if lvl < _log_min_level or text == NULL:
        return
    with gil:
        try:
            msg = text[:strlen(text)].decode("utf-8", "replace").rstrip("\n")
            if msg:
                _native_logger.log(_LEVELS.get(lvl, _logging.INFO), "%s", msg)
        except Exception:
            pass  # a failing handler must not unwind into C++: the message is dropped
        except KeyboardInterrupt:
            # Nothing can unwind through llama.cpp, so the interrupt is raised
            # again once control is back in Python (in the main thread).
            PyErr_SetInterrupt()
        except BaseException as exc:
            # SystemExit and the like: reported, not acted on in the middle of
            # a native call (letting it reach the edge of this noexcept
            # function would print it with PyErr_PrintEx, which exits the
            # process on SystemExit).
            PyErr_SetObject(type(exc), exc)
            PyErr_WriteUnraisable("llamanative native log callback")


cdef void _install_log_callback():
    llama.llama_log_set(_log_callback, NULL)


def set_log_level(level) -> None:
    """Choose which llama.cpp messages reach ``logging.getLogger("llamanative.native")``.

    Args:
        level: a ``logging`` level (``logging.DEBUG``, ``logging.INFO``, ...) or
            its name. Default at import: ``WARNING``.
    """
    global _log_min_level
    if isinstance(level, str):
        resolved = _logging.getLevelName(level.upper())
        if not isinstance(resolved, int):
            raise ValueError(f"unknown log level {level!r}")
        level = resolved
    if level <= _logging.DEBUG:
        _log_min_level = llama.GGML_LOG_LEVEL_DEBUG
    elif level <= _logging.INFO:
        _log_min_level = llama.GGML_LOG_LEVEL_INFO
    elif level <= _logging.WARNING:
        _log_min_level = llama.GGML_LOG_LEVEL_WARN
    else:
        _log_min_level = llama.GGML_LOG_LEVEL_ERROR
