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

# A message from a thread that Python does not know (ggml's RPC dispatcher, which logs a broken
# connection while a Python thread holding the GIL waits for it in llama_free or llama_decode) is
# queued instead of taking the GIL, which would deadlock; it reaches the logger with the next message
# logged from a Python thread, or at flush_native_log().
cdef extern from *:
    """
    #include <deque>
    #include <mutex>
    #include <string>
    #include <utility>
    #include <Python.h>
    static std::mutex lln_foreign_log_mutex;
    static std::deque<std::pair<int, std::string>> lln_foreign_log_queue;
    static inline bool lln_python_thread(void) { return PyGILState_GetThisThreadState() != NULL; }
    static inline void lln_foreign_log_push(int level, const char * text) {
        std::lock_guard<std::mutex> lock(lln_foreign_log_mutex);
        if (lln_foreign_log_queue.size() < 4096) lln_foreign_log_queue.emplace_back(level, text);
    }
    static inline bool lln_foreign_log_pop(int * level, std::string * text) {
        std::lock_guard<std::mutex> lock(lln_foreign_log_mutex);
        if (lln_foreign_log_queue.empty()) return false;
        *level = lln_foreign_log_queue.front().first;
        *text = std::move(lln_foreign_log_queue.front().second);
        lln_foreign_log_queue.pop_front();
        return true;
    }
    """
    bint lln_python_thread() nogil
    void lln_foreign_log_push(int level, const char * text) nogil
    bint lln_foreign_log_pop(int * level, string * text) nogil

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
    # No Python object in this function: Cython would take the GIL at its end to release it, on
    # every path, the queueing one included.
    global _log_last_level
    cdef int lvl = <int> level
    if lvl == llama.GGML_LOG_LEVEL_CONT:
        lvl = _log_last_level  # a continuation keeps the level of the line it continues
    else:
        _log_last_level = lvl
    if lvl < _log_min_level or text == NULL:
        return
    if not lln_python_thread():
        lln_foreign_log_push(lvl, text)
        return
    _log_to_python(lvl, text)


cdef void _log_to_python(int lvl, const char * text) noexcept with gil:
    try:
        flush_native_log()
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


def flush_native_log() -> None:
    """Hand the messages queued by threads Python does not know to the logger (in order)."""
    cdef int lvl
    cdef string text
    while lln_foreign_log_pop(&lvl, &text):
        msg = text.decode("utf-8", "replace").rstrip("\n")
        if msg:
            try:
                _native_logger.log(_LEVELS.get(lvl, _logging.INFO), "%s", msg)
            except Exception:
                pass  # as in _log_callback: a failing handler loses the message


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
