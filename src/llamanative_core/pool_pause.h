// ggml_threadpool_pause of the CPU backend plugin that made a pool.
//
// The CPU backend is a plugin loaded with RTLD_LOCAL, and its registry's
// get_proc_address offers ggml_threadpool_new and _free but not _pause. The
// symbol is exported by the plugin (GGML_BACKEND_API), so it is looked up in
// the library that holds ggml_threadpool_new: dladdr finds that library, a
// dlopen with RTLD_NOLOAD (a reference to what is already loaded, never a
// second load) gives its handle. NULL where any step fails: pausing is an
// optimisation, never needed for correctness (a decode resumes a paused pool
// itself, in ggml_graph_compute_kickoff).
#pragma once

#include "ggml-cpu.h"

typedef void (*lln_pool_pause_fn)(struct ggml_threadpool *);

#if defined(_WIN32)
#include <windows.h>

static inline lln_pool_pause_fn lln_find_pool_pause(void * fn_in_plugin) {
    HMODULE module = NULL;
    if (!GetModuleHandleExA(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                            (LPCSTR) fn_in_plugin, &module)) {
        return NULL;
    }
    return (lln_pool_pause_fn) GetProcAddress(module, "ggml_threadpool_pause");
}
#else
#include <dlfcn.h>

static inline lln_pool_pause_fn lln_find_pool_pause(void * fn_in_plugin) {
    Dl_info info;
    if (fn_in_plugin == NULL || !dladdr(fn_in_plugin, &info) || info.dli_fname == NULL) {
        return NULL;
    }
    void * lib = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD);
    if (lib == NULL) {
        return NULL;
    }
    // The plugin stays loaded after this dlclose: ggml's registry holds its own handle until the process ends.
    lln_pool_pause_fn fn = (lln_pool_pause_fn) dlsym(lib, "ggml_threadpool_pause");
    dlclose(lib);
    return fn;
}
#endif
