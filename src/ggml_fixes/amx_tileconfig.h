// Force-included into ggml's CPU backend when it is compiled by GCC for x86.
//
// GCC's _tile_loadconfig (amxtileintrin.h, GCC 12 and 13) tells the compiler
// that `ldtilecfg` reads only 8 bytes of its 64-byte operand. ggml builds the
// tile configuration on the stack (ggml_tile_config_init in amx/mmq.cpp), so
// GCC drops the stores to its rows/colsb fields as dead, `ldtilecfg` loads a
// configuration with garbage in it, the CPU raises #GP and the process dies
// with SIGSEGV at the first prompt on any CPU with AMX (Sapphire Rapids and
// later). Upstream: llama.cpp issue #20824, pull request #26954 (not merged at
// the pinned commit).
//
// The vendored tree is not edited: this header replaces the intrinsic, for
// the sources that include <immintrin.h>, with the same instruction and an
// operand that covers the whole 64-byte configuration.
#pragma once

#if defined(__AMX_TILE__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>

static inline __attribute__((__always_inline__)) void llamanative_tile_loadconfig(const void * config) {
    __asm__ volatile("ldtilecfg\t%X0" ::"m"(*(const unsigned char(*)[64]) config));
}

#define _tile_loadconfig(config) llamanative_tile_loadconfig(config)
#endif
