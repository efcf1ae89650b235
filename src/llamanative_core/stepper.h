// The per-token hot loop of continuous batching, in C++ so that a whole step
// runs without the Python interpreter (the caller releases the GIL).
//
// A stepper drives one llama_context with several sequence slots. One call to
// lln_stepper::step():
//   1. builds one batch: the last sampled token of every generating slot, then
//      chunks of pending prompts, up to n_batch tokens;
//   2. decodes it once;
//   3. for every slot with an output: samples a token (chain + grammar, the
//      grammar checked after sampling as in common), checks end of generation,
//      turns the token into UTF-8-complete text, holds back text that may be
//      the start of a stop string, and decides whether the slot is finished
//      (stop string, end of generation, token limit, or a full context that
//      cannot or may not be shifted);
//   4. reports one event per sampled token (and one per finished slot).
// A paused slot (pause()) takes no part in a step: it is neither in the batch
// nor sampled, and everything it holds stays as it is until it is resumed. A
// held slot (hold()) is the same, for the caller's own reasons (a step that
// serves only some slots), independently of pause().
//
// Speculative decoding (speculate(), speculation.h): before building the
// batch, every generating slot that speculates drafts tokens with common's
// n-gram drafters; its last token and the draft go into the batch, each with
// an output. After the decode the slot samples at each output in turn, with
// its own chain and grammar, exactly as it would one token per step: as long
// as the sampled token equals the draft token at that position, the draft
// token's KV cell is kept and the next output is sampled; the first token
// that differs (or the one after a fully accepted draft) is the slot's next
// token, and the cells of the rejected draft tokens are removed from the
// slot's sequence. Every sampled token is a token the slot would have sampled
// without speculation from the same logits, so greedy output is unchanged and
// sampled output keeps the model's distribution; the sampler (penalties,
// grammar) accepts exactly the tokens that are kept. A draft is bounded so
// that its cells fit the context without a shift (a shift can only happen
// after the last token of a step, as without speculation) and it does not
// run past the token limit.
// Admission (which slot, how much cached prefix to keep) stays with the caller.
//
// Contracts:
//   - step() returns llama_decode's code. On any non-zero code no slot state
//     has changed. On 1 (no KV slot) and -1 (invalid batch) llama.h says the
//     memory is restored: the same step can be retried after freeing KV space.
//     On 2 (aborted) and < -1 (fatal) llama.h says the ubatches processed
//     before the failure stay in the memory; step() removes them again
//     (llama_memory_seq_rm from each slot's recorded length) so that the slot
//     records and the memory agree. A memory that cannot remove the tail of a
//     sequence (recurrent, hybrid) keeps them, and those slots' KV state is
//     then undefined: the caller clears their sequences.
//   - Token ids given to start() must be valid for the vocabulary (checked by
//     the Cython layer), or negative: a negative id stands for one position of
//     a media chunk (an image's embeddings), which step() never puts into a
//     batch. A slot whose next prompt position is media waits (media_next())
//     until the caller has decoded the chunk into its sequence and called
//     advance(). Positions are computed here and are always valid.
//   - Positions and prompt indices: every prompt entry is one KV cell, and
//     normally one position (position == index). A media run of an M-RoPE
//     model (Qwen2-VL and later) takes n_tokens cells but n_pos positions
//     (max(width, height) of its token grid), so the text after it continues
//     at the run's position + n_pos. Such runs are registered by their id
//     (set_media()); each slot keeps n_past, the position after its cached
//     entries, and every position the stepper gives llama.cpp (batches,
//     seq_rm after a failed step) is derived from it. Without registered
//     runs n_past == cached.size() always. Capacity checks stay on cells
//     (cached.size() against n_ctx_seq), as llama-server checks n_tokens:
//     cells are what fills up, and positions never exceed them.
//   - Nothing here throws except std::bad_alloc.
#pragma once

#include "llama.h"
#include "speculation.h"

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

enum lln_finish : int32_t {
    LLN_FINISH_NONE   = 0,
    LLN_FINISH_STOP   = 1,  // end-of-generation token or a stop string
    LLN_FINISH_LENGTH = 2,  // token limit, or the context is full and no shift is possible
};

struct lln_event {
    int32_t     slot;
    std::string text;       // complete UTF-8 text safe to show (may be empty)
    llama_token token;      // the sampled token, -1 for a finish without a new token
    int32_t     out_index;  // batch index of the logits the token was sampled from, -1 if none
    int32_t     finish;     // lln_finish
};

// Stop strings over a stream of UTF-8 text pieces. A stop string may arrive
// split across pieces, so text that could be its start is held back until the
// next piece decides; nothing of a stop string is ever returned.
struct lln_stop_matcher {
    std::vector<std::string> stops;  // empty strings are ignored
    std::string              held;
    bool                     stopped = false;

    void reset(std::vector<std::string> new_stops);
    // Add `piece` (whole characters); return the text safe to emit. After a stop, "".
    std::string push(const std::string & piece);
    // At the end of generation: the held-back text (it was no stop string), or "" after a stop.
    std::string flush();
};

struct lln_slot {
    llama_seq_id             seq = 0;
    bool                     active = false;
    std::vector<llama_token> prompt;
    std::vector<llama_token> cached;     // tokens whose KV this sequence holds, one cell each
    llama_pos                n_past = 0; // the position after `cached` (== cached.size() without M-RoPE runs)
    std::vector<llama_token> generated;  // sampled tokens, end of generation excluded
    size_t                   n_done = 0;       // prompt tokens in the KV cache
    size_t                   n_evaluated = 0;  // prompt tokens this request evaluated
    llama_sampler *          chain = nullptr;    // borrowed: owned by the caller's Sampler
    llama_sampler *          grammar = nullptr;  // borrowed, may be null
    lln_stop_matcher         stop;
    int64_t                  max_tokens = -1;  // <= 0: 10 x the context
    bool                     shift = true;
    int32_t                  n_keep = 4;       // -1: the whole prompt
    bool                     special = false;  // render special tokens as text
    // The chain is greedy alone, without a grammar: take the maximum logit
    // directly instead of copying all of them into a candidate array, a copy
    // of the whole vocabulary per token (docs/design/sampling.md). The same
    // token: the first of equal maxima.
    bool                     take_max = false;
    // Not scheduled: its reader is behind (back-pressure). A paused slot is left
    // out of every batch and keeps its KV cells, sampler state and position.
    bool                     paused = false;
    // Not scheduled for the caller's own reasons (see hold()).
    bool                     held = false;
    // Speculative decoding of this slot (entry null: none).
    lln_spec_slot            spec;
    // step state
    std::string pending;   // bytes of an unfinished UTF-8 character
    int32_t     out_index = -1;
    size_t      chunk = 0;       // prompt tokens added to the current batch
    bool        feeding = false; // the last generated token is in the current batch

    // End of the text run that starts at n_done: the index of the next media
    // position (a negative id) or the end of the prompt.
    size_t text_end() const;
    // Whether the next prompt position is media, which step() does not feed.
    bool media_next() const { return active && n_done < prompt.size() && prompt[n_done] < 0; }
};

// Sample one token from `logits` with `chain`, checking it against `grammar`
// (may be null) and resampling from the constrained distribution only when the
// grammar rejects it; accepts the token into both. `cur` holds n_vocab entries.
llama_token lln_sample_with_grammar(llama_sampler * chain, llama_sampler * grammar, const float * logits,
                                    int32_t n_vocab, llama_token_data * cur);

// A registered media run: its cells (prompt entries) and the positions they take.
struct lln_media_span {
    size_t    n_tokens;
    llama_pos n_pos;
};

class lln_stepper {
  public:
    lln_stepper(llama_context * ctx, int32_t n_slots, int32_t n_batch);

    // Start a request on `slot`: the first `keep` prompt tokens are already
    // in the KV cache (the caller removed the rest of the sequence).
    void start(int32_t slot, const llama_token * prompt, size_t n_prompt, size_t keep, llama_sampler * chain,
               llama_sampler * grammar, std::vector<std::string> stops, int64_t max_tokens, bool shift,
               int32_t n_keep, bool special);
    // Stop serving `slot` (its cached tokens stay for prefix reuse).
    void release(int32_t slot) {
        slots[slot].active = false;
        slots[slot].paused = false;
        slots[slot].held   = false;
    }
    // Speculate on the request running on `slot` with `p` (null: not at all).
    // Throws std::invalid_argument / std::runtime_error when common refuses
    // the setting; the slot then does not speculate.
    void speculate(int32_t slot, const lln_spec_params * p);
    // The draft model's context for draft-simple (null: none), with one
    // sequence per slot; its sequences are kept in step with the slots' (see
    // speculation.h). Slots speculating with a draft model stop doing so.
    void set_draft(llama_context * dft);
    // Record that the caller wrote the next `n` prompt entries (a media run)
    // into the slot's sequence itself, taking `n_pos` positions from
    // slots[slot].n_past: they become cached and evaluated.
    void advance(int32_t slot, size_t n, llama_pos n_pos);
    // Register the media run `id` (negative) as `n_tokens` entries taking
    // `n_pos` positions. Registered ids are kept while any slot's prompt or
    // cached tokens hold them; beyond MAX_MEDIA ids the others are dropped.
    void set_media(llama_token id, size_t n_tokens, llama_pos n_pos);
    // Whether any run was registered (an M-RoPE projector is in use).
    bool has_media_pos() const { return mrope; }
    // The position of entry `n` of `toks` (n <= toks.size()). An `n` inside a
    // registered run is moved back to the run's start (written to *cut): the
    // run's cells all share its first position, so no position separates
    // them. *known is false when `toks` holds a negative id that is not
    // registered while M-RoPE runs are in use (its positions are unknown).
    llama_pos pos_of(const llama_token * toks, size_t n_toks, size_t n, size_t * cut, bool * known) const;
    // Record that only the first `keep` cached entries remain (cut back to the
    // start of a registered run it ends inside); returns the entries kept.
    size_t forget(int32_t slot, size_t keep);
    // Record that the slot's sequence holds `toks` (after a state load or a
    // copy of another sequence's first cells); cut back as forget(). False
    // (and the slot records nothing) when their positions are unknown.
    bool restored(int32_t slot, const llama_token * toks, size_t n);
    // Leave `slot` out of the next steps (true) or schedule it again (false).
    void pause(int32_t slot, bool paused) { slots[slot].paused = paused; }
    // Leave `slot` out of the next steps (true) or schedule it again (false),
    // independently of pause(). start() and release() end a hold.
    void hold(int32_t slot, bool held) { slots[slot].held = held; }
    // The most outputs a step can ask for (each speculating slot's draft has one per token).
    int32_t max_outputs() const;
    // Outputs of the last step's batch.
    int32_t n_outputs() const { return n_outputs_last; }

    int32_t step(llama_batch & batch, std::vector<lln_event> & events);

    std::vector<lln_slot> slots;

    static constexpr size_t MAX_MEDIA = 4096;

  private:
    // Sample slot i from the logits of batch index `out`; false when the slot finished.
    bool sample(int32_t i, int32_t out, std::vector<lln_event> & events);
    // Sample slot i from its outputs after a decode, verifying its draft if it has one.
    void verify(int32_t i, std::vector<lln_event> & events);
    // Build the batch of a step (drafts included or not); the number of draft tokens in it.
    int32_t build(llama_batch & batch, bool drafts);
    void finish(int32_t i, int32_t reason, std::vector<lln_event> & events, lln_event * last);
    bool shift(lln_slot & s);

    llama_context *               ctx;
    const llama_vocab *           vocab;
    int32_t                       n_batch;
    int32_t                       n_vocab;
    uint32_t                      n_ctx_seq;
    std::vector<llama_token_data> cur;
    lln_spec_pool                 spec_pool;
    int32_t                       n_outputs_last = 0;
    // The media runs of an M-RoPE projector, by id (all of them, so that an
    // unregistered one is known to be unknown).
    std::unordered_map<llama_token, lln_media_span> media_pos;
    bool mrope = false;  // set_media() was called
};
