# The CPU worker threads of one Context: a ggml thread pool attached to its
# llama_context, as llama.cpp's own tools attach one. Without it ggml would
# start and join its threads at every decode.
#
# A pool whose threads would take the process's compute threads past the
# CPUs it may run on is made with poll 0: its idle workers sleep at once
# instead of spinning for the next decode on CPUs the other contexts need.

# The threads (the calling thread included) of every pool in use in the
# process; changed with the GIL held.
cdef int _pool_threads_in_use = 0

cdef extern from "pool_pause.h" nogil:
    ctypedef void (*lln_pool_pause_fn)(llama.ggml_threadpool_t)
    lln_pool_pause_fn lln_find_pool_pause(void * fn_in_plugin)

# ggml_threadpool_pause, found once beside the first pool's ggml_threadpool_new (see pool_pause.h).
cdef lln_pool_pause_fn _pool_pause = NULL
cdef bint _pool_pause_looked_up = False


@cython.final
cdef class _ThreadPool:
    """The ggml thread pool(s) of one llama_context.

    ``max(n_threads, n_threads_batch) - 1`` threads work beside the calling
    thread. A pool is freed only after the llama_context it was attached to:
    the context and its CPU backend keep pointers to it. The owner frees the
    llama_context first, then calls :meth:`release`.
    """

    cdef llama.ggml_threadpool_t _pool
    cdef vector[llama.ggml_threadpool_t] _retired  # replaced pools: the CPU backend still points to one
    cdef llama.ggml_threadpool_free_fn _free
    cdef int _n_threads
    cdef uint32_t poll  # how long idle workers spin before they sleep, 0..100 (ggml_threadpool_params.poll)
    cdef readonly uint32_t poll_used  # the poll the current pool was made with

    def __cinit__(self):
        self._pool = NULL
        self._free = NULL
        self._n_threads = 0
        self.poll = 0
        self.poll_used = 0

    def __dealloc__(self):
        self.release()

    cdef void attach(self, llama.llama_context * ctx, int n_threads) noexcept:
        """Give ``ctx`` a pool of ``n_threads`` (keeping ggml's per-decode threads if none can be made)."""
        if self._pool != NULL and n_threads <= self._n_threads:
            return  # a pool runs fewer threads than it was made with as well
        cdef llama.ggml_backend_dev_t dev = llama.ggml_backend_dev_by_type(llama.GGML_BACKEND_DEVICE_TYPE_CPU)
        if dev == NULL:
            return
        cdef llama.ggml_backend_reg_t reg = llama.ggml_backend_dev_backend_reg(dev)
        cdef llama.ggml_threadpool_new_fn new_fn = <llama.ggml_threadpool_new_fn> (
            llama.ggml_backend_reg_get_proc_address(reg, b"ggml_threadpool_new"))
        cdef llama.ggml_threadpool_free_fn free_fn = <llama.ggml_threadpool_free_fn> (
            llama.ggml_backend_reg_get_proc_address(reg, b"ggml_threadpool_free"))
        if new_fn == NULL or free_fn == NULL:
            return
        global _pool_threads_in_use
        cdef llama.ggml_threadpool_params params = llama.ggml_threadpool_params_default(n_threads)
        params.poll = self.poll
        cdef int in_use = _pool_threads_in_use - self._n_threads + n_threads  # this pool replaces the last
        if in_use > _allowed_cpus():
            params.poll = 0
        cdef llama.ggml_threadpool_t pool
        with nogil:
            pool = new_fn(&params)
        if pool == NULL:
            return
        _pool_threads_in_use = in_use
        self.poll_used = params.poll
        llama.llama_attach_threadpool(ctx, pool, NULL)  # NULL: the same pool for batches
        if self._pool != NULL:
            # Not freed yet: the CPU backend keeps a pointer to the last pool it ran
            # and pauses it when the next decode brings the new one.
            self._retired.push_back(self._pool)
        self._pool, self._free, self._n_threads = pool, free_fn, n_threads
        global _pool_pause, _pool_pause_looked_up
        if not _pool_pause_looked_up:
            _pool_pause = lln_find_pool_pause(<void *> new_fn)
            _pool_pause_looked_up = True

    cdef void pause(self) noexcept nogil:
        """Send the pool's idle workers to sleep now, rather than after their polling.

        For work on this thread that does not go through the pool (libmtmd's
        encoder is a CPU backend of its own, with threads of its own): workers
        still spinning from the last decode would hold the cores that work
        needs. The next decode resumes the pool (ggml does it in its kick-off).
        Nothing happens where the pause function could not be found.
        """
        if self._pool != NULL and _pool_pause != NULL:
            _pool_pause(self._pool)

    cdef void release(self) noexcept:
        """Free every pool; only once the llama_context they were attached to is freed."""
        global _pool_threads_in_use
        cdef size_t i
        if self._pool != NULL:
            _pool_threads_in_use -= self._n_threads
            self._n_threads = 0
            with nogil:
                self._free(self._pool)
                for i in range(self._retired.size()):
                    self._free(self._retired[i])
            self._retired.clear()
            self._pool = NULL


cdef int _allowed_cpus() noexcept:
    """default_n_threads(), or no limit if it cannot be read (this runs where no exception may escape)."""
    try:
        return _cpu_limit().cpus
    except Exception:
        return 1 << 30
