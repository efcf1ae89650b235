// See speculation.h for the contract of every function.
#include "speculation.h"

#include "common.h"
#include "log.h"
#include "speculative.h"

#include <algorithm>
#include <stdexcept>

std::string lln_spec_params::key() const {
    return types + "|" + std::to_string(ngram_n) + "|" + std::to_string(ngram_m > 0 ? ngram_m : -n_max) + "|" +
           std::to_string(min_hits);
}

void lln_spec_gate::update(int32_t n_drafted, int32_t n_accepted, int64_t n_generated) {
    drafted += n_drafted;
    accepted += n_accepted;
    if (drafted < WINDOW) return;
    const double rate = static_cast<double>(accepted) / drafted;
    drafted  = 0;
    accepted = 0;
    if (rate >= MIN_RATE) {
        pause = FIRST_PAUSE;  // paying again: a later failure starts from the short pause
        return;
    }
    reopen_at = n_generated + pause;
    pause     = std::min(pause * 2, MAX_PAUSE);
}

bool lln_spec_params::uses_draft_model() const {
    return types.find("draft-") != std::string::npos;
}

lln_spec_entry::~lln_spec_entry() {
    common_speculative_free(spec);
}

lln_spec_pool::~lln_spec_pool() {
    entries.clear();
    if (dft_batch_size > 0) llama_batch_free(dft_batch);
}

void lln_spec_pool::set_draft(llama_context * dft) {
    if (dft == ctx_dft) return;
    // Entries that drafted with the old draft context must not outlive it.
    entries.erase(std::remove_if(entries.begin(), entries.end(),
                                 [](const std::unique_ptr<lln_spec_entry> & e) { return e->draft_model; }),
                  entries.end());
    ctx_dft = dft;
    if (dft_batch_size > 0) {
        llama_batch_free(dft_batch);
        dft_batch_size = 0;
    }
    if (dft != nullptr) {
        dft_batch_size = static_cast<int32_t>(llama_n_batch(dft));
        dft_batch      = llama_batch_init(dft_batch_size, 0, 1);
    }
}

bool lln_spec_pool::sync_draft(lln_spec_slot & s, llama_seq_id seq, const std::vector<llama_token> & history) {
    llama_memory_t mem = llama_get_memory(ctx_dft);
    if (std::any_of(history.begin(), history.end(), [](llama_token t) { return t < 0; })) {
        // Media: its embeddings come from the target's projector; the draft model cannot read them.
        llama_memory_seq_rm(mem, seq, 0, -1);
        s.dft_cells.clear();
        return false;
    }
    size_t keep = 0;
    while (keep < s.dft_cells.size() && keep < history.size() && s.dft_cells[keep] == history[keep]) ++keep;
    if (keep < s.dft_cells.size()) {
        llama_memory_seq_rm(mem, seq, static_cast<llama_pos>(keep), -1);
        s.dft_cells.resize(keep);
    }
    while (s.dft_cells.size() < history.size()) {
        const size_t n = std::min(history.size() - s.dft_cells.size(), static_cast<size_t>(dft_batch_size));
        dft_batch.n_tokens = 0;
        for (size_t j = 0; j < n; ++j) {
            const size_t i             = s.dft_cells.size() + j;
            dft_batch.token[j]         = history[i];
            dft_batch.pos[j]           = static_cast<llama_pos>(i);
            dft_batch.n_seq_id[j]      = 1;
            dft_batch.seq_id[j][0]     = seq;
            dft_batch.logits[j]        = false;
            dft_batch.n_tokens        += 1;
        }
        if (llama_decode(ctx_dft, dft_batch) != 0) {
            llama_memory_seq_rm(mem, seq, 0, -1);
            s.dft_cells.clear();
            return false;
        }
        s.dft_cells.insert(s.dft_cells.end(), history.begin() + s.dft_cells.size(),
                           history.begin() + s.dft_cells.size() + n);
    }
    return true;
}

void lln_spec_pool::after_draft(lln_spec_slot & s, llama_seq_id seq, const std::vector<llama_token> & history,
                                llama_token last) {
    // draft-simple decoded `last` and the draft tokens it went on from (not always the last one):
    // the draft sequence's highest position says how far.
    const llama_pos pos_max = llama_memory_seq_pos_max(llama_get_memory(ctx_dft), seq);
    s.dft_cells.assign(history.begin(), history.end());
    if (pos_max >= static_cast<llama_pos>(history.size())) s.dft_cells.push_back(last);
    for (size_t j = 0; j < s.draft.size() && static_cast<llama_pos>(s.dft_cells.size()) <= pos_max; ++j) {
        s.dft_cells.push_back(s.draft[j]);
    }
}

lln_spec_entry * lln_spec_pool::acquire(const lln_spec_params & p, const std::vector<const lln_spec_entry *> & in_use) {
    const std::string key = p.key();
    for (auto & e : entries) {
        if (e->params.key() == key) return e.get();
    }
    if (entries.size() >= MAX_ENTRIES) {
        entries.erase(std::remove_if(entries.begin(), entries.end(),
                                     [&](const std::unique_ptr<lln_spec_entry> & e) {
                                         return std::find(in_use.begin(), in_use.end(), e.get()) == in_use.end();
                                     }),
                      entries.end());
    }
    // common's own log (not the llama_log_set route that reaches Python's logging) prints to stderr from
    // a thread of its own, and the n-gram maps log every refresh at INFO: keep it to errors.
    static const bool quiet = (common_log_set_verbosity_thold(LOG_LEVEL_ERROR), true);
    (void) quiet;
    common_params_speculative params;
    params.types = common_speculative_types_from_names(string_split<std::string>(p.types, ','));
    for (auto type : params.types) {
        if (type == COMMON_SPECULATIVE_TYPE_NONE || type >= COMMON_SPECULATIVE_TYPE_NGRAM_SIMPLE) continue;
        if (type == COMMON_SPECULATIVE_TYPE_DRAFT_SIMPLE) {
            if (ctx_dft == nullptr) throw std::invalid_argument("speculative type draft-simple needs a draft model");
            continue;
        }
        throw std::invalid_argument("speculative type " + common_speculative_type_to_str(type) +
                                    " needs a draft model made for it (EAGLE3, MTP, DFlash heads), which the "
                                    "stepper does not run; use draft-simple or an n-gram type");
    }
    params.draft.ctx_tgt = ctx_tgt;
    params.draft.ctx_dft = ctx_dft;
    params.draft.n_max   = 1024;  // the bound is each slot's (common_speculative_draft_params::n_max)
    params.draft.n_min   = 0;  // applied per slot (lln_spec_draft)
    // 0 keeps common's default of each type (they differ: ngram-mod looks up 24 tokens, the maps 12),
    // except the maps' m-gram: common's 48 needs 48 tokens of history after a match before it drafts
    // at all, which a short source never has, and no more than n_max tokens are verified anyway. It is
    // n_max, but not below the n-gram (ngram-simple drafts nothing with an m-gram shorter than its n-gram).
    for (auto * map : { &params.ngram_simple, &params.ngram_map_k, &params.ngram_map_k4v }) {
        if (p.ngram_n > 0) map->size_n = static_cast<uint16_t>(p.ngram_n);
        map->size_m = static_cast<uint16_t>(p.ngram_m > 0 ? p.ngram_m : std::max<int32_t>(p.n_max, map->size_n));
        if (p.min_hits > 0) map->min_hits = static_cast<uint16_t>(p.min_hits);
    }
    if (p.ngram_n > 0) params.ngram_mod.n_match = p.ngram_n;
    if (p.ngram_m > 0) {
        params.ngram_mod.n_max = p.ngram_m;
        params.ngram_mod.n_min = std::min(params.ngram_mod.n_min, p.ngram_m);
    }
    auto entry    = std::make_unique<lln_spec_entry>();
    entry->params      = p;
    entry->draft_model = p.uses_draft_model();
    entry->spec        = common_speculative_init(params, n_seq);
    if (entry->spec == nullptr) throw std::invalid_argument("no speculative type in '" + p.types + "'");
    entries.push_back(std::move(entry));
    return entries.back().get();
}

void lln_spec_draft(lln_spec_pool & pool, lln_spec_slot & s, llama_seq_id seq, const std::vector<llama_token> & history,
                    llama_token last, int32_t n_room, int32_t n_vocab) {
    s.draft.clear();
    if (s.cap <= 0) s.cap = std::max(1, (s.params.n_max + 1) / 2);
    const int32_t n_max = std::min({ s.params.n_max, std::max(s.cap, s.params.n_min), n_room });
    if (s.entry == nullptr || n_max <= 0 || n_max < s.params.n_min) return;
    common_speculative * spec = s.entry->spec;
    const bool draft_model    = s.entry->draft_model;
    if (draft_model && !pool.sync_draft(s, seq, history)) return;
    if (!s.begun) {
        // The history is the request's prompt (and, after a context shift, what
        // remains): the n-gram maps index it from here on.
        common_speculative_begin(spec, seq, history);
        s.begun = true;
    }
    auto & dp = common_speculative_get_draft_params(spec, seq);
    dp        = common_speculative_draft_params{
        /* .drafting = */ true,
        /* .n_max    = */ n_max,
        /* .pos0     = */ static_cast<llama_pos>(history.size()),
        /* .id_last  = */ last,
        /* .prompt   = */ &history,
        /* .result   = */ &s.draft,
    };
    common_speculative_draft(spec);
    if (draft_model) pool.after_draft(s, seq, history, last);
    if (static_cast<int32_t>(s.draft.size()) > n_max) s.draft.resize(n_max);
    // A draft copied from a media run of the history holds negative ids: never put them into a batch.
    for (size_t i = 0; i < s.draft.size(); ++i) {
        if (s.draft[i] < 0 || s.draft[i] >= n_vocab) {
            s.draft.resize(i);
            break;
        }
    }
    if (static_cast<int32_t>(s.draft.size()) < std::max(s.params.n_min, 1)) {
        if (!s.draft.empty()) {
            s.draft.clear();
            common_speculative_accept(spec, seq, 0);  // common recorded the draft as generated
        }
    }
}

const char * lln_spec_all_types() {
    return common_speculative_all_types_str();
}

void lln_spec_accept(lln_spec_slot & s, llama_seq_id seq, int32_t n_accepted, int64_t n_generated) {
    const auto n_drafted = static_cast<int32_t>(s.draft.size());
    s.n_drafted += n_drafted;
    s.n_accepted += n_accepted;
    s.cap = n_accepted == n_drafted ? std::min(s.cap + 2, s.params.n_max) : std::max(s.cap - 1, 1);
    common_speculative_accept(s.entry->spec, seq, static_cast<uint16_t>(n_accepted));
    if (s.params.gate) s.gate.update(n_drafted, n_accepted, n_generated);
    s.draft.clear();
}
