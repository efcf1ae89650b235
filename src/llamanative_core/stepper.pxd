# C++ declarations of stepper.h (the compiled per-token loop of continuous
# batching). Declarations only; see stepper.h for every contract.

from libc.stdint cimport int32_t, int64_t
from libcpp cimport bool as cppbool
from libcpp.string cimport string
from libcpp.vector cimport vector

from llama cimport llama_batch, llama_context, llama_pos, llama_sampler, llama_token, llama_token_data


cdef extern from "speculation.h" nogil:
    cdef cppclass lln_spec_params:
        string types
        int32_t n_max
        int32_t n_min
        int32_t ngram_n
        int32_t ngram_m
        int32_t min_hits
        cppbool gate

    cdef cppclass lln_spec_slot:
        int64_t n_drafted
        int64_t n_accepted

    const char * lln_spec_all_types()


cdef extern from "stepper.h" nogil:
    int32_t LLN_FINISH_NONE
    int32_t LLN_FINISH_STOP
    int32_t LLN_FINISH_LENGTH

    cdef struct lln_event:
        int32_t slot
        string text
        llama_token token
        int32_t out_index
        int32_t finish

    cdef cppclass lln_stop_matcher:
        cppbool stopped
        void reset(vector[string] stops) except +
        string push(const string & piece) except +
        string flush() except +

    cdef cppclass lln_slot:
        cppbool active
        cppbool paused
        vector[llama_token] prompt
        vector[llama_token] cached
        llama_pos n_past
        vector[llama_token] generated
        size_t n_done
        size_t n_evaluated
        cppbool held
        lln_spec_slot spec
        cppbool media_next()

    cdef cppclass lln_stepper:
        lln_stepper(llama_context * ctx, int32_t n_slots, int32_t n_batch) except +
        void start(int32_t slot, const llama_token * prompt, size_t n_prompt, size_t keep, llama_sampler * chain,
                   llama_sampler * grammar, vector[string] stops, int64_t max_tokens, cppbool shift,
                   int32_t n_keep, cppbool special) except +
        void release(int32_t slot)
        void advance(int32_t slot, size_t n, llama_pos n_pos)
        void set_media(llama_token id, size_t n_tokens, llama_pos n_pos) except +
        cppbool has_media_pos()
        llama_pos pos_of(const llama_token * toks, size_t n_toks, size_t n, size_t * cut, cppbool * known)
        size_t forget(int32_t slot, size_t keep)
        cppbool restored(int32_t slot, const llama_token * toks, size_t n) except +
        void pause(int32_t slot, cppbool paused)
        void hold(int32_t slot, cppbool held)
        void speculate(int32_t slot, const lln_spec_params * p) except +
        void set_draft(llama_context * dft) except +
        int32_t max_outputs()
        int32_t n_outputs()
        int32_t step(llama_batch & batch, vector[lln_event] & events) except +
        vector[lln_slot] slots

    llama_token lln_sample_with_grammar(llama_sampler * chain, llama_sampler * grammar, const float * logits,
                                        int32_t n_vocab, llama_token_data * cur)
