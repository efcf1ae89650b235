// Included before every C++ source of ggml's RPC plugin (see CMakeLists.txt).
//
// ggml-rpc.cpp checks each exchange with a server with RPC_STATUS_ASSERT,
// which aborts the process with "Remote RPC server crashed or returned
// malformed response" when the connection broke: one server that stops would
// take down the Python process that uses it, with every other model it holds.
// GGML_ABORT is routed through llamanative_rpc_abort() here: that one message
// is recorded (llamanative_rpc_failures(), in libggml-base) and the call
// returns, as if the exchange had answered nothing. The client's dispatcher
// then completes the waiting request, later requests on the broken socket
// fail the same way at once, and llamanative._core, which reads the count
// after each call that can reach a server, raises RpcLostError before any
// output computed from the missing answer is used.
//
// Every other GGML_ABORT and GGML_ASSERT keeps its meaning: the message is
// formatted and ggml_abort() called as before. That includes the server's
// checks of the requests it receives and the client's handshake at connect
// time (llamanative probes a server with its own handshake before ggml
// connects to it). If upstream rewords the message, nothing matches and the
// abort comes back, which tests/test_rpc.py detects.
#pragma once

#include "ggml.h"

#include <cstdarg>
#include <cstdio>
#include <cstring>

extern "C" void llamanative_rpc_record_failure(void);

static inline void llamanative_rpc_abort(const char * file, int line, const char * fmt, ...) {
    if (std::strcmp(fmt, "Remote RPC server crashed or returned malformed response") == 0) {
        llamanative_rpc_record_failure();
        return;
    }
    char msg[2048];
    va_list args;
    va_start(args, fmt);
    std::vsnprintf(msg, sizeof(msg), fmt, args);
    va_end(args);
    ggml_abort(file, line, "%s", msg);
}

#undef GGML_ABORT
#define GGML_ABORT(...) llamanative_rpc_abort(__FILE__, __LINE__, __VA_ARGS__)
