// Linked into libggml-base on Linux, with -Wl,--wrap for ggml_aligned_malloc
// and ggml_aligned_free (see CMakeLists.txt).
//
// ggml's CPU buffers (the KV cache, compute and output buffers, weights that
// are not mapped from the file, repacked weights) are allocated by
// ggml_aligned_malloc, which is posix_memalign on Linux. glibc serves a large
// block from the arena of the thread that asks for it once its mmap threshold
// has risen: freeing a block it had mapped raises the threshold to that
// block's size (up to 32 MB) and the trim threshold to twice that. A model
// that is loaded by one thread and unloaded leaves its buffers (tens of MB)
// free in that thread's arena, and each reload by another thread leaves as
// much in another: a process that loads and unloads models from many threads
// grew by 267 MB in 2,000 requests while the bytes malloc had in use stayed
// flat (docs/design/soak.md).
//
// Blocks of 1 MiB or more are mapped here with mmap and unmapped when freed,
// as ggml does on macOS (vm_allocate), so they never enter an arena and never
// move glibc's thresholds. ggml passes the size of the block to
// ggml_aligned_free, so the size alone tells which path allocated a block.
// Smaller blocks (ggml contexts' metadata, the thread pool) keep ggml's own
// path. Only the callers inside libggml-base are wrapped: the CPU buffer type
// is defined there, and plugins such as the AMX buffer type free their
// blocks with free() themselves.
#include <stddef.h>
#include <sys/mman.h>

void * __real_ggml_aligned_malloc(size_t size);
void __real_ggml_aligned_free(void * ptr, size_t size);
// Hidden: only libggml-base's own calls reach them.
__attribute__((visibility("hidden"))) void * __wrap_ggml_aligned_malloc(size_t size);
__attribute__((visibility("hidden"))) void __wrap_ggml_aligned_free(void * ptr, size_t size);

enum { LLAMANATIVE_PAGE_BUFFER_MIN = 1 << 20 };

void * __wrap_ggml_aligned_malloc(size_t size) {
    if (size < LLAMANATIVE_PAGE_BUFFER_MIN) {
        return __real_ggml_aligned_malloc(size);
    }
    // Page-aligned, which is more than ggml's 64 bytes; zero-filled, which ggml does not rely on.
    void * p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;  // the caller logs the failure, as for posix_memalign's
}

void __wrap_ggml_aligned_free(void * ptr, size_t size) {
    if (ptr == NULL) {
        return;
    }
    if (size < LLAMANATIVE_PAGE_BUFFER_MIN) {
        __real_ggml_aligned_free(ptr, size);
        return;
    }
    munmap(ptr, size);
}
