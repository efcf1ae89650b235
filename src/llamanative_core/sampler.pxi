# Sampler: a llama.cpp sampler chain, built stage by stage.

cdef uint32_t _DEFAULT_SEED = 0xFFFFFFFF  # LLAMA_DEFAULT_SEED: a random seed


# Keep `model`/`vocab` set until __dealloc__: the native object must be
# freed before the model it points into, also when collected in a cycle.
@cython.no_gc_clear
cdef class Sampler:
    """A chain of llama.cpp samplers, applied in the order they are added.

    Build it with the stage methods, each returning the sampler so calls chain::

        s = Sampler(model).penalties(64, 1.1).top_k(40).top_p(0.9).temperature(0.8).dist(42)
        token = s.sample(ctx, -1)

    The chain must end with :meth:`greedy` or :meth:`dist`, which pick the
    token; the other stages only reshape the distribution. ``sample`` also
    accepts the token (penalties and grammars see it).

    A grammar (:meth:`grammar`, :meth:`grammar_lazy`; at most one) is kept
    beside the chain and checked after sampling, as llama.cpp's ``common``
    does: the chain picks from the whole distribution, and only when the
    grammar rejects that token is the distribution constrained and sampled
    again. The grammar then costs one check per token instead of a pass over
    the whole vocabulary, and the result has the same distribution as
    constraining first (sampling from P restricted to the valid tokens).

    Args:
        model: the model whose vocabulary the samplers use.
        no_perf: skip llama.cpp's timing counters. Default False.

    Raises:
        ValueError: a parameter is out of range (checked per stage).
        GrammarError: a grammar does not parse.
    """

    cdef llama.llama_sampler * _ptr
    cdef llama.llama_sampler * _grammar  # owned; not part of the chain
    cdef llama.llama_token_data * _cur   # n_vocab candidates, reused by every sample with a grammar
    cdef readonly Model model
    cdef list _stages
    cdef bint _final
    cdef int32_t _n_vocab

    def __cinit__(self):
        self._ptr = NULL
        self._grammar = NULL
        self._cur = NULL
        self._stages = []
        self._final = False

    def __init__(self, Model model not None, *, bint no_perf=False):
        model._check()
        cdef llama.llama_sampler_chain_params p = llama.llama_sampler_chain_default_params()
        p.no_perf = no_perf
        self._ptr = llama.llama_sampler_chain_init(p)
        self.model = model
        self._n_vocab = llama.llama_vocab_n_tokens(llama.llama_model_get_vocab(model._ptr))

    def __dealloc__(self):
        self._free()

    cdef void _free(self) noexcept:
        if self._ptr != NULL:
            llama.llama_sampler_free(self._ptr)
            self._ptr = NULL
        if self._grammar != NULL:
            llama.llama_sampler_free(self._grammar)
            self._grammar = NULL
        if self._cur != NULL:
            free(self._cur)
            self._cur = NULL

    def close(self) -> None:
        """Free the chain and its grammar. Safe to call twice."""
        self._free()

    def __repr__(self):
        return f"<Sampler {' -> '.join(self._stages) or '(empty)'}>"

    cdef Sampler _set_grammar(self, llama.llama_sampler * g, str name):
        if self._ptr == NULL:
            llama.llama_sampler_free(g)
            raise ValueError("the sampler is closed")
        if self._grammar != NULL:
            llama.llama_sampler_free(g)
            raise ValueError("a sampler takes one grammar")
        if self._cur == NULL:
            self._cur = <llama.llama_token_data *> malloc(self._n_vocab * sizeof(llama.llama_token_data))
            if self._cur == NULL:
                llama.llama_sampler_free(g)
                raise MemoryError("no memory for the sampler's candidate array")
        self._grammar = g
        self._stages.insert(0, name)
        return self

    @property
    def stages(self) -> list:
        """Names of the stages, in order (e.g. ``["top_k(40)", "dist(42)"]``)."""
        return list(self._stages)

    cdef Sampler _add(self, llama.llama_sampler * stage, str name, bint final):
        if self._ptr == NULL:
            if stage != NULL:
                llama.llama_sampler_free(stage)
            raise ValueError("the sampler is closed")
        if self._final:
            if stage != NULL:
                llama.llama_sampler_free(stage)
            raise ValueError(f"cannot add {name} after {self._stages[len(self._stages) - 1]}: greedy/dist must be the last stage")
        if stage == NULL:
            raise MemoryError(f"llama.cpp could not create the {name} sampler")
        llama.llama_sampler_chain_add(self._ptr, stage)  # the chain owns the stage from here
        self._stages.append(name)
        self._final = final
        return self

    # -- terminal stages ------------------------------------------------------
    def greedy(self) -> Sampler:
        """Pick the most likely token (deterministic)."""
        return self._add(llama.llama_sampler_init_greedy(), "greedy", True)

    def dist(self, seed=None) -> Sampler:
        """Draw from the distribution with a seeded RNG (``seed`` None = random)."""
        cdef uint32_t s
        if seed is None or seed == -1:
            s = _DEFAULT_SEED
        elif not 0 <= seed < 0xFFFFFFFF:
            raise ValueError(f"seed must be in 0..{0xFFFFFFFF - 1} (or None / -1 for random), got {seed}")
        else:
            s = seed
        return self._add(llama.llama_sampler_init_dist(s), f"dist({seed})", True)

    # -- shaping stages -------------------------------------------------------
    def top_k(self, int32_t k) -> Sampler:
        """Keep the ``k`` most likely tokens (``k`` <= 0 keeps all)."""
        return self._add(llama.llama_sampler_init_top_k(k), f"top_k({k})", False)

    def top_p(self, float p, size_t min_keep=1) -> Sampler:
        """Nucleus sampling: keep the smallest set with probability mass >= ``p`` (0 < p <= 1)."""
        if not 0.0 < p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {p}")
        return self._add(llama.llama_sampler_init_top_p(p, min_keep), f"top_p({p:g})", False)

    def min_p(self, float p, size_t min_keep=1) -> Sampler:
        """Drop tokens less likely than ``p`` times the best one (0 <= p <= 1)."""
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"min_p must be in [0, 1], got {p}")
        return self._add(llama.llama_sampler_init_min_p(p, min_keep), f"min_p({p:g})", False)

    def typical(self, float p, size_t min_keep=1) -> Sampler:
        """Locally typical sampling (0 < p <= 1; 1 disables it)."""
        if not 0.0 < p <= 1.0:
            raise ValueError(f"typical_p must be in (0, 1], got {p}")
        return self._add(llama.llama_sampler_init_typical(p, min_keep), f"typical({p:g})", False)

    def temperature(self, float t) -> Sampler:
        """Scale logits by 1/t (t <= 0 keeps only the most likely token)."""
        if t != t:
            raise ValueError("temperature must be a number, got NaN")
        return self._add(llama.llama_sampler_init_temp(t), f"temperature({t:g})", False)

    def penalties(self, int32_t last_n=64, float repeat=1.0, float frequency=0.0,
                  float presence=0.0) -> Sampler:
        """Penalise tokens seen in the last ``last_n`` tokens (0 = off).

        llama.cpp keeps a buffer of ``last_n`` tokens: for "the whole
        context", pass the context size.

        Args:
            repeat: divide logits of seen tokens by this (> 0, 1.0 = off).
            frequency: subtract ``frequency * count``.
            presence: subtract ``presence`` once per seen token.
        """
        if last_n < 0:
            raise ValueError(f"repeat_last_n must be >= 0, got {last_n}")
        if not repeat > 0.0:
            raise ValueError(f"repeat_penalty must be > 0, got {repeat}")
        if frequency != frequency or presence != presence:
            raise ValueError("frequency and presence penalties must be numbers")
        return self._add(llama.llama_sampler_init_penalties(self._n_vocab, last_n, repeat, frequency, presence),
                         f"penalties({last_n}, {repeat:g}, {frequency:g}, {presence:g})", False)

    def logit_bias(self, biases) -> Sampler:
        """Add ``bias`` to the logit of each token: ``{token_id: bias}`` (``-inf`` bans it)."""
        items = list(dict(biases).items())
        cdef Py_ssize_t n = len(items), i
        cdef llama.llama_logit_bias * arr = <llama.llama_logit_bias *> malloc(max(n, 1) * sizeof(llama.llama_logit_bias))
        if arr == NULL:
            raise MemoryError()
        try:
            for i in range(n):
                tok, bias = items[i]
                tok = int(tok)
                if not 0 <= tok < self._n_vocab:
                    raise ValueError(f"logit_bias token id {tok} is out of range (0..{self._n_vocab - 1})")
                arr[i].token = tok
                arr[i].bias = float(bias)
            return self._add(llama.llama_sampler_init_logit_bias(self._n_vocab, <int32_t> n, arr),
                             f"logit_bias({n})", False)
        finally:
            free(arr)

    def grammar(self, str gbnf, str root="root") -> Sampler:
        """Constrain output to a GBNF grammar.

        Raises:
            GrammarError: the grammar does not parse or has no rule ``root``,
                or has a repetition ``x{m,n}`` with n < m (llama.cpp's parser
                would never end on it).
        """
        self.model._check()
        cdef bytes g = gbnf.encode(), r = root.encode()
        _check_grammar_text(g)
        cdef Vocab vocab = self.model.vocab
        cdef llama.llama_sampler * s = llama.llama_sampler_init_grammar(vocab._ptr, g, r)
        if s == NULL:
            raise GrammarError(f"invalid GBNF grammar (or no rule {root!r}); llama.cpp's log has the parse error")
        return self._set_grammar(s, "grammar")

    def grammar_lazy(self, str gbnf, str root="root", trigger_patterns=(), trigger_tokens=()) -> Sampler:
        """A grammar that only starts constraining once a trigger appears.

        Args:
            trigger_patterns: regular expressions; the grammar applies from the
                first match (its first capture group, if any) onwards.
            trigger_tokens: token ids that start the grammar.
        """
        self.model._check()
        pats = [p.encode() for p in trigger_patterns]
        toks = [int(t) for t in trigger_tokens]
        if not pats and not toks:
            raise ValueError("a lazy grammar needs at least one trigger pattern or token")
        for t in toks:
            if not 0 <= t < self._n_vocab:
                raise ValueError(f"trigger token id {t} is out of range (0..{self._n_vocab - 1})")
        cdef Py_ssize_t n_p = len(pats), n_t = len(toks), i
        cdef const char ** cpats = <const char **> malloc(max(n_p, 1) * sizeof(char *))
        cdef llama_token * ctoks = <llama_token *> malloc(max(n_t, 1) * sizeof(llama_token))
        cdef bytes g = gbnf.encode(), r = root.encode()
        _check_grammar_text(g)
        cdef llama.llama_sampler * s
        cdef Vocab vocab = self.model.vocab
        try:
            for i in range(n_p):
                cpats[i] = pats[i]
            for i in range(n_t):
                ctoks[i] = toks[i]
            s = llama.llama_sampler_init_grammar_lazy_patterns(vocab._ptr, g, r, cpats, n_p, ctoks, n_t)
        finally:
            free(cpats)
            free(ctoks)
        if s == NULL:
            raise GrammarError(f"invalid GBNF grammar or trigger pattern; llama.cpp's log has the parse error")
        return self._set_grammar(s, "grammar_lazy")

    # -- use ------------------------------------------------------------------
    def sample(self, Context ctx not None, int32_t i=-1) -> int:
        """Pick a token from the logits of batch token ``i`` of ``ctx``'s last decode, and accept it.

        Raises:
            ValueError: the chain has no final greedy/dist stage, or ``ctx``
                belongs to another model.
            IndexError: batch token ``i`` had no output.
        """
        if self._ptr == NULL:
            raise ValueError("the sampler is closed")
        self.model._check()
        if not self._final:
            raise ValueError("the chain must end with greedy() or dist() to pick a token")
        if ctx.model is not self.model:
            raise ValueError("the context belongs to another model than this sampler")
        ctx._enter()
        cdef llama_token tok
        try:
            ctx._check_output(i)
            if llama.llama_get_logits_ith(ctx._ptr, i) == NULL:
                raise IndexError(f"no logits for batch index {i}")
            if self._grammar == NULL:
                with nogil:
                    tok = llama.llama_sampler_sample(self._ptr, ctx._ptr, i)
            else:
                with nogil:
                    tok = st.lln_sample_with_grammar(self._ptr, self._grammar, llama.llama_get_logits_ith(ctx._ptr, i),
                                                     self._n_vocab, self._cur)
        finally:
            ctx._leave()
        return tok

    def accept(self, llama_token token) -> None:
        """Tell stateful stages (penalties, grammar) that ``token`` was emitted (e.g. prompt tokens)."""
        if self._ptr == NULL:
            raise ValueError("the sampler is closed")
        self.model._check()  # a grammar stage reads the model's vocab
        if token < 0 or token >= self._n_vocab:
            raise ValueError(f"token id {token} is out of range (0..{self._n_vocab - 1})")
        if self._grammar != NULL:
            llama.llama_sampler_accept(self._grammar, token)
        llama.llama_sampler_accept(self._ptr, token)

    def reset(self) -> None:
        """Forget accepted tokens and grammar state."""
        if self._ptr != NULL:
            self.model._check()
            llama.llama_sampler_reset(self._ptr)
            if self._grammar != NULL:
                llama.llama_sampler_reset(self._grammar)

    def perf(self) -> dict:
        """Sampling time in ms and number of sampled tokens."""
        if self._ptr == NULL:
            raise ValueError("the sampler is closed")
        cdef llama.llama_perf_sampler_data d = llama.llama_perf_sampler(self._ptr)
        return {"t_sample_ms": d.t_sample_ms, "n_sample": d.n_sample}


cdef int _check_grammar_text(bytes gbnf) except -1:
    inverted = _gbnf_inverted_repetition(gbnf)
    if inverted is not None:
        raise GrammarError(f"invalid GBNF grammar: the repetition {inverted} has a maximum below its minimum")
    return 0
