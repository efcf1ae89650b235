# C++ declarations of plugin_probe.h. Declarations only; see the header.

from libcpp.string cimport string


cdef extern from "plugin_probe.h" nogil:
    enum lln_probe_status:
        LLN_PROBE_SCORED
        LLN_PROBE_NO_SCORE
        LLN_PROBE_LOAD_FAILED

    lln_probe_status lln_plugin_score(const char * path, int * score, string * error)
