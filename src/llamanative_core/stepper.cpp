// See stepper.h for the contract of every function.
#include "stepper.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

namespace {

// Length of the UTF-8 sequence started by `lead`; 0 for a continuation byte.
int utf8_len(unsigned char lead) {
    if (lead < 0x80) return 1;
    if ((lead & 0xE0) == 0xC0) return 2;
    if ((lead & 0xF0) == 0xE0) return 3;
    if ((lead & 0xF8) == 0xF0) return 4;
    return 0;
}

// Length of the longest prefix of `s` that does not end inside a well-formed
// but unfinished UTF-8 character (invalid bytes count as complete: they are
// replaced later, not waited for). Same rule as the Python-level Detokenizer.
size_t complete_prefix(const std::string & s) {
    const size_t n = s.size();
    const size_t stop = n >= 4 ? n - 4 : 0;
    for (size_t j = n; j-- > stop;) {
        const int need = utf8_len(static_cast<unsigned char>(s[j]));
        if (need == 0) continue;  // continuation byte: look further back for its lead
        return n - j < static_cast<size_t>(need) ? j : n;
    }
    return n;
}

void add_token(llama_batch & b, llama_token tok, llama_pos pos, llama_seq_id seq, bool output) {
    const int32_t i = b.n_tokens++;
    b.token[i]     = tok;
    b.pos[i]       = pos;
    b.n_seq_id[i]  = 1;
    b.seq_id[i][0] = seq;
    b.logits[i]    = output;
}

bool is_plain_greedy(llama_sampler * chain) {
    return llama_sampler_chain_n(chain) == 1 &&
           std::strcmp(llama_sampler_name(llama_sampler_chain_get(chain, 0)), "greedy") == 0;
}

// The first of equal maxima, as llama.cpp's greedy sampler picks.
llama_token argmax(const float * logits, int32_t n_vocab) {
    llama_token best = 0;
    float       max  = logits[0];
    for (int32_t t = 1; t < n_vocab; ++t) {
        if (logits[t] > max) {
            max  = logits[t];
            best = t;
        }
    }
    return best;
}

}  // namespace

llama_token lln_sample_with_grammar(llama_sampler * chain, llama_sampler * grammar, const float * logits,
                                    int32_t n_vocab, llama_token_data * cur) {
    auto fill = [&](llama_token_data_array & arr) {
        for (int32_t t = 0; t < n_vocab; ++t) {
            cur[t] = llama_token_data{ t, logits[t], 0.0f };
        }
        arr = llama_token_data_array{ cur, static_cast<size_t>(n_vocab), -1, false };
    };
    llama_token_data_array arr;
    fill(arr);
    llama_sampler_apply(chain, &arr);
    llama_token tok = arr.data[arr.selected].id;
    if (grammar != nullptr) {
        // common_sampler_sample's order: check the freely sampled token; only on a
        // rejection constrain the whole distribution and sample again. Sampling P
        // and resampling from P restricted to the valid set on a rejection gives
        // exactly P restricted to the valid set.
        llama_token_data       single{ tok, 1.0f, 0.0f };
        llama_token_data_array one{ &single, 1, -1, false };
        llama_sampler_apply(grammar, &one);
        if (single.logit == -INFINITY) {
            fill(arr);
            llama_sampler_apply(grammar, &arr);
            llama_sampler_apply(chain, &arr);
            tok = arr.data[arr.selected].id;
        }
        llama_sampler_accept(grammar, tok);
    }
    llama_sampler_accept(chain, tok);
    return tok;
}

lln_stepper::lln_stepper(llama_context * ctx, int32_t n_slots, int32_t n_batch) :
    slots(n_slots),
    ctx(ctx),
    vocab(llama_model_get_vocab(llama_get_model(ctx))),
    n_batch(n_batch),
    n_vocab(llama_vocab_n_tokens(llama_model_get_vocab(llama_get_model(ctx)))),
    n_ctx_seq(llama_n_ctx_seq(ctx)),
    cur(n_vocab),
    spec_pool(ctx, static_cast<uint32_t>(n_slots)) {
    for (int32_t i = 0; i < n_slots; ++i) {
        slots[i].seq = i;
    }
}

void lln_stepper::start(int32_t slot, const llama_token * prompt, size_t n_prompt, size_t keep,
                        llama_sampler * chain, llama_sampler * grammar, std::vector<std::string> stops,
                        int64_t max_tokens, bool shift, int32_t n_keep, bool special) {
    lln_slot & s = slots[slot];
    s.prompt.assign(prompt, prompt + n_prompt);
    s.cached.assign(prompt, prompt + keep);
    size_t cut  = keep;
    bool   known = true;
    s.n_past    = pos_of(prompt, n_prompt, keep, &cut, &known);  // keep is never inside a run (checked by the caller)
    s.generated.clear();
    s.n_done      = keep;
    s.n_evaluated = 0;
    s.chain       = chain;
    s.grammar     = grammar;
    s.stop.reset(std::move(stops));
    s.max_tokens = max_tokens;
    s.shift      = shift;
    s.n_keep     = n_keep;
    s.special    = special;
    s.take_max   = grammar == nullptr && is_plain_greedy(chain);
    s.pending.clear();
    s.out_index = -1;
    s.chunk     = 0;
    s.feeding   = false;
    s.paused    = false;
    s.held      = false;
    s.spec.entry = nullptr;
    s.spec.clear_request();
    s.active    = true;
}

void lln_stepper::speculate(int32_t slot, const lln_spec_params * p) {
    lln_slot & s = slots[slot];
    s.spec.entry = nullptr;
    s.spec.clear_request();
    if (p == nullptr) return;
    const llama_model * model = llama_get_model(ctx);
    if (llama_model_is_recurrent(model) || llama_model_is_hybrid(model)) {
        // Rejected draft tokens must be removed from the sequence, which a recurrent state cannot do.
        throw std::invalid_argument("speculative decoding needs a model whose KV cache can drop tokens; "
                                    "recurrent and hybrid models cannot");
    }
    std::vector<const lln_spec_entry *> in_use;
    for (const auto & o : slots) {
        if (o.active && o.spec.entry != nullptr) in_use.push_back(o.spec.entry);
    }
    s.spec.entry  = spec_pool.acquire(*p, in_use);
    s.spec.params = *p;
}

void lln_stepper::set_draft(llama_context * dft) {
    for (auto & s : slots) {
        if (s.spec.entry != nullptr && s.spec.entry->draft_model) s.spec.entry = nullptr;
        s.spec.dft_cells.clear();
    }
    spec_pool.set_draft(dft);
}

int32_t lln_stepper::max_outputs() const {
    int64_t n = 0;
    for (const auto & s : slots) {
        n += 1;
        if (s.active && s.spec.entry != nullptr) n += std::max(0, s.spec.params.n_max);
    }
    return static_cast<int32_t>(std::min<int64_t>(n, n_batch));
}

size_t lln_slot::text_end() const {
    size_t end = n_done;
    while (end < prompt.size() && prompt[end] >= 0) ++end;
    return end;
}

void lln_stepper::advance(int32_t slot, size_t n, llama_pos n_pos) {
    lln_slot &   s   = slots[slot];
    const size_t end = std::min(s.prompt.size(), s.n_done + n);
    s.cached.insert(s.cached.end(), s.prompt.begin() + s.n_done, s.prompt.begin() + end);
    s.n_evaluated += end - s.n_done;
    s.n_done = end;
    s.n_past += n_pos;
}

void lln_stepper::set_media(llama_token id, size_t n_tokens, llama_pos n_pos) {
    mrope = true;
    if (media_pos.size() >= MAX_MEDIA && media_pos.find(id) == media_pos.end()) {
        // Keep the ids some slot still holds or is about to evaluate; a parked
        // sequence with a dropped id cannot be restored (restored() says so)
        // and is evaluated again.
        std::unordered_map<llama_token, lln_media_span> kept;
        for (const auto & s : slots) {
            for (const auto * v : { &s.prompt, &s.cached }) {
                for (llama_token t : *v) {
                    if (t >= 0) continue;
                    auto it = media_pos.find(t);
                    if (it != media_pos.end()) kept.insert(*it);
                }
            }
        }
        media_pos.swap(kept);
    }
    media_pos[id] = lln_media_span{ n_tokens, n_pos };
}

llama_pos lln_stepper::pos_of(const llama_token * toks, size_t n_toks, size_t n, size_t * cut, bool * known) const {
    *cut   = n;
    *known = true;
    if (!mrope) return static_cast<llama_pos>(n);  // text and plain media: one position per entry
    llama_pos pos = 0;
    size_t    i   = 0;
    while (i < n_toks) {
        if (toks[i] >= 0) {
            if (i >= n) break;
            ++pos;
            ++i;
            continue;
        }
        auto it = media_pos.find(toks[i]);
        if (it == media_pos.end()) {  // unknown: count one position per entry, and say so
            *known = false;
            if (i >= n) break;
            ++pos;
            ++i;
            continue;
        }
        if (i >= n) break;
        const size_t end = i + it->second.n_tokens;
        if (n < end) {  // inside the run: back to its start
            *cut = i;
            return pos;
        }
        pos += it->second.n_pos;
        i = end;
    }
    return pos;
}

size_t lln_stepper::forget(int32_t slot, size_t keep) {
    lln_slot & s = slots[slot];
    if (keep >= s.cached.size()) return s.cached.size();
    size_t cut;
    bool   known;
    s.n_past = pos_of(s.cached.data(), s.cached.size(), keep, &cut, &known);
    s.cached.resize(cut);
    return cut;
}

bool lln_stepper::restored(int32_t slot, const llama_token * toks, size_t n) {
    lln_slot & s = slots[slot];
    size_t     cut;
    bool       known;
    // Positions up to the end: a run cut off at the end of `toks` is moved back to its start.
    const llama_pos pos = pos_of(toks, n, n, &cut, &known);
    if (!known) {
        s.cached.clear();
        s.n_past = 0;
        return false;
    }
    s.cached.assign(toks, toks + cut);
    s.n_past = pos;
    return true;
}

int32_t lln_stepper::build(llama_batch & batch, bool drafts) {
    batch.n_tokens = 0;
    int32_t budget = n_batch;
    // Generating slots first: one token each, as far as the batch allows; then
    // the drafts of the speculating ones from what is left.
    int32_t n_feeding = 0;
    for (auto & s : slots) {
        s.out_index = -1;
        s.chunk     = 0;
        s.feeding   = false;
        s.spec.draft.clear();  // drafted anew below (a rebuild without drafts keeps none)
        if (!s.active || s.paused || s.held) continue;
        if (s.n_done >= s.prompt.size() && !s.generated.empty()) ++n_feeding;
    }
    int32_t n_draft_budget = std::max(0, n_batch - n_feeding);
    int32_t n_drafted      = 0;
    for (auto & s : slots) {
        if (!s.active || s.paused || s.held) continue;
        if (s.n_done >= s.prompt.size() && !s.generated.empty() && budget > 0) {
            add_token(batch, s.generated.back(), s.n_past, s.seq, true);
            s.out_index = batch.n_tokens - 1;
            s.feeding   = true;
            --budget;
            if (drafts && s.spec.entry != nullptr &&
                (!s.spec.params.gate || s.spec.gate.open(static_cast<int64_t>(s.generated.size())))) {
                // Room: the cells must fit without a shift (one more is needed after the step's last
                // token, as without speculation), and more than the tokens left to generate is waste.
                const int64_t limit = s.max_tokens > 0 ? s.max_tokens : 10 * static_cast<int64_t>(n_ctx_seq);
                int64_t       room  = static_cast<int64_t>(n_ctx_seq) - static_cast<int64_t>(s.cached.size()) - 2;
                room = std::min(room, limit - static_cast<int64_t>(s.generated.size()) - 1);
                room = std::min<int64_t>(room, n_draft_budget);
                lln_spec_draft(spec_pool, s.spec, s.seq, s.cached, s.generated.back(), static_cast<int32_t>(std::max<int64_t>(room, 0)),
                               n_vocab);
                for (size_t j = 0; j < s.spec.draft.size(); ++j) {
                    add_token(batch, s.spec.draft[j], s.n_past + 1 + static_cast<llama_pos>(j), s.seq, true);
                }
                const auto k = static_cast<int32_t>(s.spec.draft.size());
                budget -= k;
                n_draft_budget -= k;
                n_drafted += k;
            }
        }
    }
    // Then prompt chunks, as far as the batch allows.
    for (auto & s : slots) {
        if (!s.active || s.paused || s.held || budget <= 0 || s.n_done >= s.prompt.size()) continue;
        // A media run (negative ids) is evaluated by the caller (advance());
        // text stops at the next one.
        const size_t end       = s.text_end();
        const size_t remaining = s.prompt.size() - s.n_done;
        const size_t take      = std::min(end - s.n_done, static_cast<size_t>(budget));
        if (take == 0) continue;
        for (size_t j = 0; j < take; ++j) {
            const bool last = take == remaining && j + 1 == take;
            add_token(batch, s.prompt[s.n_done + j], s.n_past + static_cast<llama_pos>(j), s.seq, last);
        }
        if (take == remaining) s.out_index = batch.n_tokens - 1;
        s.chunk = take;
        budget -= static_cast<int32_t>(take);
    }
    return n_drafted;
}

int32_t lln_stepper::step(llama_batch & batch, std::vector<lln_event> & events) {
    n_outputs_last           = 0;
    const int32_t n_drafted = build(batch, true);
    if (batch.n_tokens == 0) return 0;
    int32_t rc = llama_decode(ctx, batch);
    if (rc == 1 && n_drafted > 0) {
        // No KV room for the drafts' extra cells. llama.h: the memory is as it
        // was before the call, so decode the step as it would be without
        // speculation; only a batch that cannot fit even then is reported.
        build(batch, false);
        rc = llama_decode(ctx, batch);
    }
    if (rc == 2 || rc < -1) {
        // llama.h: after an abort or a fatal error the ubatches processed before
        // it stay in the memory; drop them so that it matches the slot records.
        llama_memory_t mem = llama_get_memory(ctx);
        if (mem != nullptr) {
            for (auto & s : slots) {
                if (s.active && (s.chunk > 0 || s.feeding)) {
                    llama_memory_seq_rm(mem, s.seq, s.n_past, -1);  // the draft cells too
                }
            }
        }
    }
    if (rc != 0) {
        for (auto & s : slots) s.spec.draft.clear();
        return rc;  // no slot changed: the caller may free KV space and retry
    }
    for (int32_t j = 0; j < batch.n_tokens; ++j) n_outputs_last += batch.logits[j] != 0;
    for (int32_t i = 0; i < static_cast<int32_t>(slots.size()); ++i) {
        lln_slot & s = slots[i];
        if (!s.active || s.paused || s.held) continue;
        if (s.chunk > 0) {
            s.cached.insert(s.cached.end(), s.prompt.begin() + s.n_done, s.prompt.begin() + s.n_done + s.chunk);
            s.n_done += s.chunk;
            s.n_evaluated += s.chunk;
            s.n_past += static_cast<llama_pos>(s.chunk);
        }
        if (s.out_index < 0) continue;
        if (s.feeding) {  // now in the KV cache
            s.cached.push_back(s.generated.back());
            ++s.n_past;
        }
        verify(i, events);
    }
    return 0;
}

void lln_stepper::verify(int32_t i, std::vector<lln_event> & events) {
    lln_slot &   s = slots[i];
    const size_t k = s.spec.draft.size();
    if (k == 0) {
        sample(i, s.out_index, events);
        return;
    }
    // Draft token j sits at batch index out_index + 1 + j, so the logits at
    // out_index + j are those after draft token j - 1 (after the last token for j = 0).
    int32_t n_accepted = 0;
    for (size_t j = 0;; ++j) {
        if (!sample(i, s.out_index + static_cast<int32_t>(j), events) || j == k) break;
        if (s.generated.back() != s.spec.draft[j]) break;
        // The model samples what was drafted: the draft token's cell is what the next step would have written.
        s.cached.push_back(s.spec.draft[j]);
        ++s.n_past;
        ++n_accepted;
    }
    // The cells of the rejected draft tokens (and, after a finish, of those after the last token).
    if (static_cast<size_t>(n_accepted) < k) {
        llama_memory_t mem = llama_get_memory(ctx);
        if (mem != nullptr) llama_memory_seq_rm(mem, s.seq, s.n_past, -1);
    }
    lln_spec_accept(s.spec, s.seq, n_accepted, static_cast<int64_t>(s.generated.size()));
}

bool lln_stepper::sample(int32_t i, int32_t out, std::vector<lln_event> & events) {
    lln_slot &    s      = slots[i];
    const float * logits = llama_get_logits_ith(ctx, out);
    llama_token   tok;
    if (s.take_max) {
        tok = argmax(logits, n_vocab);
        llama_sampler_accept(s.chain, tok);  // a no-op for greedy; kept for the chain's contract
    } else {
        tok = lln_sample_with_grammar(s.chain, s.grammar, logits, n_vocab, cur.data());
    }
    if (llama_vocab_is_eog(vocab, tok)) {
        finish(i, LLN_FINISH_STOP, events, nullptr);
        return false;
    }
    s.generated.push_back(tok);
    char    buf[256];
    int32_t n = llama_token_to_piece(vocab, tok, buf, sizeof(buf), 0, s.special);
    std::string piece;
    if (n < 0) {  // longer than the buffer: ask again with the size it needs
        piece.resize(-n);
        n = llama_token_to_piece(vocab, tok, piece.data(), -n, 0, s.special);
        piece.resize(std::max<int32_t>(n, 0));
    } else {
        piece.assign(buf, n);
    }
    s.pending += piece;
    const size_t k    = complete_prefix(s.pending);
    std::string  text = s.pending.substr(0, k);
    s.pending.erase(0, k);
    events.push_back(lln_event{ i, s.stop.push(text), tok, out, LLN_FINISH_NONE });
    const int64_t limit = s.max_tokens > 0 ? s.max_tokens : 10 * static_cast<int64_t>(n_ctx_seq);
    if (s.stop.stopped) {
        finish(i, LLN_FINISH_STOP, events, &events.back());
    } else if (static_cast<int64_t>(s.generated.size()) >= limit) {
        finish(i, LLN_FINISH_LENGTH, events, &events.back());
    } else if (s.cached.size() + 1 >= n_ctx_seq && !shift(s)) {
        finish(i, LLN_FINISH_LENGTH, events, &events.back());
    }
    return s.active;
}

void lln_stepper::finish(int32_t i, int32_t reason, std::vector<lln_event> & events, lln_event * last) {
    lln_slot & s = slots[i];
    // An unfinished character (replaced when decoded), then what was held back
    // for a stop string that never came.
    std::string tail = s.stop.push(s.pending);
    tail += s.stop.flush();
    s.pending.clear();
    if (last != nullptr) {
        last->text += tail;
        last->finish = reason;
    } else {
        events.push_back(lln_event{ i, std::move(tail), -1, -1, reason });
    }
    s.active = false;
}

bool lln_stepper::shift(lln_slot & s) {
    if (!s.shift) return false;
    llama_memory_t mem = llama_get_memory(ctx);
    if (mem == nullptr || !llama_memory_can_shift(mem)) return false;
    const size_t n = s.cached.size();
    size_t keep = s.n_keep < 0 ? s.prompt.size() : static_cast<size_t>(s.n_keep);
    keep = std::min(keep, n >= 2 ? n - 2 : 0);
    const size_t discard = (n - keep) / 2;
    if (discard == 0) return false;
    // Drop the older half after `keep` tokens and slide the rest down: positions
    // stay equal to indices into `cached`.
    llama_memory_seq_rm(mem, s.seq, static_cast<llama_pos>(keep), static_cast<llama_pos>(keep + discard));
    llama_memory_seq_add(mem, s.seq, static_cast<llama_pos>(keep + discard), -1, -static_cast<llama_pos>(discard));
    s.cached.erase(s.cached.begin() + keep, s.cached.begin() + keep + discard);
    s.spec.begun = false;  // the history changed in the middle: the n-gram maps index it anew
    s.n_past -= static_cast<llama_pos>(discard);  // a prompt with media is never shifted: here position == index
    return true;
}

void lln_stop_matcher::reset(std::vector<std::string> new_stops) {
    stops.clear();
    for (auto & stop : new_stops) {
        if (!stop.empty()) stops.push_back(std::move(stop));
    }
    held.clear();
    stopped = false;
}

std::string lln_stop_matcher::push(const std::string & piece) {
    if (stopped) return "";
    if (stops.empty()) return piece;
    std::string text = held + piece;
    size_t      cut  = std::string::npos;
    for (const auto & stop : stops) {
        cut = std::min(cut, text.find(stop));
    }
    if (cut != std::string::npos) {
        stopped = true;
        held.clear();
        return text.substr(0, cut);
    }
    // Hold back the longest end of the text that is a proper prefix of a stop
    // string: the next piece decides. Text is whole characters and a stop
    // string starts with a lead byte, so the cut never splits a character.
    size_t keep = 0;
    for (const auto & stop : stops) {
        for (size_t len = std::min(stop.size() - 1, text.size()); len > keep; --len) {
            if (text.compare(text.size() - len, len, stop, 0, len) == 0) {
                keep = len;
                break;
            }
        }
    }
    held = text.substr(text.size() - keep);
    return text.substr(0, text.size() - keep);
}

std::string lln_stop_matcher::flush() {
    std::string out = stopped ? std::string() : held;
    held.clear();
    return out;
}
