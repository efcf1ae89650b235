// Linked into libggml-base when the RPC backend is built (see CMakeLists.txt).
//
// The count of calls of ggml's RPC client that failed because a server's
// connection broke (rpc_no_abort.h records them instead of aborting). It
// lives in libggml-base because the RPC plugin and the extension both link
// that library: the plugin writes, llamanative._core reads it around every
// call that can reach a server (model load, context creation, decode) and
// raises RpcLostError when it moved.
#include <stdatomic.h>

#if defined(_WIN32)
#define LLAMANATIVE_EXPORT __declspec(dllexport)
#else
#define LLAMANATIVE_EXPORT __attribute__((visibility("default")))
#endif

static atomic_ulong llamanative_rpc_failure_count;

LLAMANATIVE_EXPORT void llamanative_rpc_record_failure(void) {
    atomic_fetch_add(&llamanative_rpc_failure_count, 1);
}

LLAMANATIVE_EXPORT unsigned long llamanative_rpc_failures(void) {
    return atomic_load(&llamanative_rpc_failure_count);
}
