// llama_tokenize behind a catch.
//
// llama.cpp's tokenizers throw from inside llama_tokenize: the BPE and WPM
// pre-tokenizers throw std::invalid_argument for bytes that decode to no
// Unicode code point (b"\xf4\x90\x80\x80"), and an SPM or UGM vocabulary that
// lacks the byte token (<0xNN>) of a byte it has to fall back to throws
// std::out_of_range (std::unordered_map::at). llama.h is a C API, so nothing
// on the way catches these; in Python's frames the exception ends the process
// (std::terminate). Here it becomes a return value and a message.
#pragma once

#include "llama.h"

#include <cstdint>
#include <exception>
#include <string>

// What lln_tokenize returns when the tokenizer threw (llama_tokenize itself
// returns a token count, or minus the count it needs: never this).
#define LLN_TOKENIZER_THREW INT32_MIN

// ``error`` receives the exception's message.
static inline int32_t lln_tokenize(const llama_vocab * vocab, const char * text, int32_t text_len,
                                   llama_token * tokens, int32_t n_tokens_max, bool add_special,
                                   bool parse_special, std::string * error) noexcept {
    try {
        return llama_tokenize(vocab, text, text_len, tokens, n_tokens_max, add_special, parse_special);
    } catch (const std::exception & e) {
        try {
            *error = e.what();
        } catch (...) {
        }
        return LLN_TOKENIZER_THREW;
    } catch (...) {
        return LLN_TOKENIZER_THREW;
    }
}
