// Probe a ggml backend plugin without registering it.
//
// ggml's own loader (ggml_backend_load_best) scores every variant of a backend
// but only logs at debug level and searches the executable's and the current
// directory. llamanative picks plugins itself, from its own package directory,
// so that it can record why each file was or was not chosen; this is the one
// piece of that which needs the platform's dynamic loader.
#pragma once

#include <string>

// Outcome of lln_plugin_score.
enum lln_probe_status {
    LLN_PROBE_SCORED   = 0,  // *score holds ggml_backend_score() (0: unsupported here)
    LLN_PROBE_NO_SCORE = 1,  // loaded, but the plugin exports no ggml_backend_score
                             // (a backend built for one machine: usable as is)
    LLN_PROBE_LOAD_FAILED = 2,  // the loader refused the file; *error says why
};

// Load `path` (UTF-8), call its ggml_backend_score if it has one, unload it.
// Never registers anything with ggml. Thread-compatible (call it once at import).
lln_probe_status lln_plugin_score(const char * path, int * score, std::string * error);
