// Speculative decoding for the stepper: drafts from llama.cpp's `common`
// (common/speculative.h), verified by the stepper in the same batch as every
// other slot's work.
//
// Drafting is common's: one common_speculative per distinct setting (its
// n-gram tables are per sequence, the ngram-mod hash is shared by the slots
// of one setting as in llama-server), with one sequence per stepper slot.
// What this file adds is the per-slot bookkeeping common leaves to its
// caller: when to call _begin (a new request, a context shift), how long a
// draft may be (context room, token limit, the request's maximum), and the
// `auto` gate that stops drafting for a slot whose drafts are mostly
// rejected.
//
// A draft model (type draft-simple) runs in a context of its own with one
// sequence per slot. common's draft-simple expects the draft context to hold
// a sequence's history before it drafts; the stepper keeps it so lazily:
// before a slot drafts, the draft sequence is cut to its longest common
// prefix with the tokens the target's sequence holds and the rest is decoded
// into it (a new request reusing a cached prefix, a restored or shifted
// sequence, rejected drafts: all come down to that comparison). So nothing
// else that changes the target's sequences (prefix cache, parking) needs to
// know about the draft context.
//
// Contracts:
//   - The types string holds names common_speculative_types_from_names
//     accepts: n-gram types, and draft-simple when the pool has a draft
//     context (the other draft-model types need models made for them; they
//     are refused). lln_spec_pool::acquire throws std::invalid_argument /
//     std::runtime_error when common refuses a setting (a draft model whose
//     vocabulary does not match the target's, for one).
//   - Drafted tokens are filtered here: a draft stops at the first id outside
//     the vocabulary (a media position of the history is a negative id).
#pragma once

#include "llama.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

struct common_speculative;

struct lln_spec_params {
    std::string types;         // comma-separated common type names, e.g. "ngram-map-k" or "ngram-simple,ngram-mod"
    int32_t     n_max    = 32; // most draft tokens verified per step
    int32_t     n_min    = 0;  // a shorter draft is not verified
    int32_t     ngram_n  = 0;  // lookup n-gram length (size_n; ngram-mod: n_match); 0 = common's default
    int32_t     ngram_m  = 0;  // drafted m-gram length (size_m; ngram-mod: n_max); 0 = n_max for the maps,
                               // common's default for ngram-mod
    int32_t     min_hits = 0;  // occurrences an n-gram needs before it drafts; 0 = common's default
    bool        gate     = false;  // `auto`: draft only while drafts are mostly accepted

    bool uses_draft_model() const;

    // Settings that share one common_speculative (n_min and the gate are applied per slot; n_max is
    // part of it only where it sets the maps' m-gram length).
    std::string key() const;
};

// The `auto` gate of one slot: after a window of mostly rejected drafts the
// slot stops drafting for `backoff` generated tokens, doubling each time the
// retry fails, so that prose (where drafts rarely match) runs as without
// speculation while copying (where they do) keeps its gain.
struct lln_spec_gate {
    static constexpr int32_t WINDOW      = 16;   // drafted tokens judged together
    static constexpr double  MIN_RATE    = 0.3;  // accepted / drafted below this closes the gate
    static constexpr int32_t FIRST_PAUSE = 16;   // generated tokens without drafting after the first failure
    static constexpr int32_t MAX_PAUSE   = 512;

    int64_t reopen_at = 0;  // generated-token count from which the slot drafts again
    int32_t pause     = FIRST_PAUSE;
    int32_t drafted   = 0;  // in the current window
    int32_t accepted  = 0;

    void reset() { *this = lln_spec_gate{}; }
    bool open(int64_t n_generated) const { return n_generated >= reopen_at; }
    void update(int32_t n_drafted, int32_t n_accepted, int64_t n_generated);
};

struct lln_spec_entry {
    lln_spec_params      params;
    common_speculative * spec        = nullptr;
    bool                 draft_model = false;  // params.uses_draft_model(), decided once

    lln_spec_entry() = default;
    lln_spec_entry(const lln_spec_entry &) = delete;
    lln_spec_entry & operator=(const lln_spec_entry &) = delete;
    ~lln_spec_entry();
};

// What one slot drafts and what came of it.
struct lln_spec_slot {
    lln_spec_entry *         entry = nullptr;  // null: no speculation
    lln_spec_params          params;
    bool                     begun = false;    // common_speculative_begin called for the current history
    lln_spec_gate            gate;
    std::vector<llama_token> draft;            // this step's draft (verified after the decode)
    std::vector<llama_token> dft_cells;        // the tokens the draft context's sequence holds (draft models)
    // The draft length this slot tries next (0: not yet set): half of n_max at first, two more after a
    // fully accepted draft, one fewer after a partly rejected one (transformers' "heuristic" schedule of
    // assisted generation). On a CPU a verified token costs a good part of a decode of its own, so
    // drafting far past what gets accepted is waste.
    int32_t                  cap = 0;
    int64_t                  n_drafted  = 0;   // draft tokens verified in this request
    int64_t                  n_accepted = 0;   // of those, accepted

    void clear_request() {
        begun = false;
        gate.reset();
        draft.clear();
        cap        = 0;
        n_drafted  = 0;
        n_accepted = 0;
    }
};

class lln_spec_pool {
  public:
    lln_spec_pool(llama_context * tgt, uint32_t n_seq) : n_seq(n_seq), ctx_tgt(tgt) {}
    ~lln_spec_pool();

    // The draft model's context (null: none); entries made before a change of
    // draft context are dropped.
    void set_draft(llama_context * dft);

    // The common_speculative for `p`, created on first use. Entries no slot
    // uses (per `in_use`) are freed once more than MAX_ENTRIES exist.
    lln_spec_entry * acquire(const lln_spec_params & p, const std::vector<const lln_spec_entry *> & in_use);

    static constexpr size_t MAX_ENTRIES = 8;

    // Bring the draft context's sequence `seq` to `history` (see the file comment); false when it cannot
    // hold it (media in the history, a failed decode: the sequence is then emptied).
    bool sync_draft(lln_spec_slot & s, llama_seq_id seq, const std::vector<llama_token> & history);
    // After a draft: record what common's draft-simple left in the draft sequence.
    void after_draft(lln_spec_slot & s, llama_seq_id seq, const std::vector<llama_token> & history, llama_token last);

  private:
    uint32_t                                     n_seq;
    std::vector<std::unique_ptr<lln_spec_entry>> entries;
    llama_context *                              ctx_tgt = nullptr;
    llama_context *                              ctx_dft = nullptr;
    llama_batch                                  dft_batch{};
    int32_t                                      dft_batch_size = 0;
};

// Fill `s.draft` for sequence `seq` whose history (the tokens its KV holds)
// is `history` and whose next token is `last`, at most `n_room` tokens long.
void lln_spec_draft(lln_spec_pool & pool, lln_spec_slot & s, llama_seq_id seq, const std::vector<llama_token> & history,
                    llama_token last, int32_t n_room, int32_t n_vocab);

// Every type name common knows, comma-separated (common_speculative_all_types_str).
const char * lln_spec_all_types();

// Tell common how many of the slot's draft tokens were accepted, and update the gate.
void lln_spec_accept(lln_spec_slot & s, llama_seq_id seq, int32_t n_accepted, int64_t n_generated);
