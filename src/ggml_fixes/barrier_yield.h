// Force-included into the C sources of ggml's CPU backend on x86 (GCC and
// Clang, not MSVC; not with OpenMP, whose barriers yield already).
//
// ggml's thread pool makes its threads wait for each other at every barrier
// of a graph (several per layer) by spinning on _mm_pause (ggml_barrier in
// ggml-cpu.c), and never gives up the CPU. When there are more compute
// threads than CPUs free to run them (more threads than CPUs, two models
// generating at once, or a machine busy with other work), a thread spinning
// for one that is not running burns its time slice before that one can run
// again: every barrier then costs scheduler round trips instead of
// nanoseconds, and generation falls from hundreds of tokens/s to a few
// (docs/design/cpu-threads.md has the figures). The pinned llama.cpp commit
// has no remedy; upstream discussed yielding after a short spin (pull
// request #29258) and a futex barrier (#13079).
//
// The vendored tree is not edited: this header replaces the pause of ggml's
// spin loops (its only use of _mm_pause is ggml_thread_cpu_relax, called by
// the barrier and by an idle pool's polling) with one that counts the pauses
// of the current wait and, past 2048 of them (about 0.1 ms), makes every
// 32nd a sched_yield(), so that a runnable thread the spinner waits for can
// take the CPU. A wait is taken to be new when the thread's previous pause
// is more than 20,000 TSC ticks (several microseconds) old: real work came
// between them. A barrier whose threads arrive within microseconds, the
// common case on an idle machine, never reaches a yield; an idle pool's
// polling (Context(poll=1)) lasts about 13 ms instead of 9 (a yield costs
// about 20 pauses).
#pragma once

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(__cplusplus)
#include <immintrin.h>
#include <sched.h>
#include <x86intrin.h>

static inline __attribute__((__always_inline__)) void llamanative_spin_pause(void) {
    static __thread unsigned long long llamanative_last_pause;
    static __thread unsigned llamanative_spins;
    if (__rdtsc() - llamanative_last_pause > 20000) {
        llamanative_spins = 0;  // a new wait
    }
    if (++llamanative_spins > 2048 && (llamanative_spins & 31u) == 0) {
        sched_yield();
    } else {
        _mm_pause();
    }
    llamanative_last_pause = __rdtsc();  // after the yield: time spent descheduled is not a new wait
}

#define _mm_pause() llamanative_spin_pause()
#endif
