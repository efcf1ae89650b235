#include "plugin_probe.h"

#ifdef _WIN32
#    define WIN32_LEAN_AND_MEAN
#    include <windows.h>
#else
#    include <dlfcn.h>
#endif

typedef int (*lln_score_fn)(void);

lln_probe_status lln_plugin_score(const char * path, int * score, std::string * error) {
    *score = 0;
#ifdef _WIN32
    // Same flags as ggml's loader: the plugin's own directory is searched for its DLLs.
    int wlen = MultiByteToWideChar(CP_UTF8, 0, path, -1, nullptr, 0);
    std::wstring wpath(wlen > 0 ? wlen : 0, L'\0');
    MultiByteToWideChar(CP_UTF8, 0, path, -1, wpath.data(), wlen);
    HMODULE handle = LoadLibraryExW(wpath.c_str(), nullptr,
                                    LOAD_LIBRARY_SEARCH_DEFAULT_DIRS | LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR);
    if (handle == nullptr) {
        *error = "LoadLibraryExW failed with error " + std::to_string(GetLastError());
        return LLN_PROBE_LOAD_FAILED;
    }
    auto fn = (lln_score_fn) (void *) GetProcAddress(handle, "ggml_backend_score");
    lln_probe_status status = LLN_PROBE_NO_SCORE;
    if (fn != nullptr) {
        *score = fn();
        status = LLN_PROBE_SCORED;
    }
    FreeLibrary(handle);
    return status;
#else
    // RTLD_LOCAL: nothing of a probed variant leaks into the global namespace.
    void * handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
        const char * msg = dlerror();
        *error = msg != nullptr ? msg : "dlopen failed";
        return LLN_PROBE_LOAD_FAILED;
    }
    auto fn = (lln_score_fn) dlsym(handle, "ggml_backend_score");
    lln_probe_status status = LLN_PROBE_NO_SCORE;
    if (fn != nullptr) {
        *score = fn();
        status = LLN_PROBE_SCORED;
    }
    dlclose(handle);
    return status;
#endif
}
