# Stepper: the compiled per-token loop of continuous batching (stepper.cpp).

_FINISH_NAMES = {st.LLN_FINISH_STOP: "stop", st.LLN_FINISH_LENGTH: "length"}

# Draft-model types made for special draft heads, which the stepper does not run (draft-simple, a plain
# draft model, it does: set_draft()).
_DRAFT_HEAD_TYPES = frozenset({"draft-eagle3", "draft-mtp", "draft-dflash", "draft-dspark"})


def speculative_types() -> list:
    """The speculative decoding type names of the compiled llama.cpp ``common``, in its order.

    ``Stepper.speculate`` runs the n-gram ones (``ngram-*``); the ``draft-*``
    types need a draft model.
    """
    return (<bytes> st.lln_spec_all_types()).decode().split(",")


# Keep `ctx` set until __dealloc__: the C++ stepper points into the context.
@cython.no_gc_clear
cdef class Stepper:
    """Runs the requests of several sequence slots of one :class:`Context`, a step at a time.

    Each :meth:`step` builds one batch from every active slot (the last token
    of each generating slot, then chunks of pending prompts up to the
    context's ``n_batch``), decodes it, samples every slot with its own
    :class:`Sampler`, detokenizes (never splitting a UTF-8 character), holds
    back text that may be the start of a stop string, and finishes slots on
    end of generation, a stop string, the token limit or a full context that
    cannot be shifted. All of it runs in C++ without the GIL; Python sees one
    event per sampled token.

    A slot can be paused (:meth:`pause`): it then takes no part in the steps
    and keeps everything it holds until it is resumed.

    Slot ``i`` is sequence ``i`` of the context. Choosing a slot and removing
    the part of its sequence that is not reused (``Context.seq_rm`` from
    :meth:`pos`) is the caller's job; :meth:`cached` tells which tokens a
    slot's sequence holds.

    Each prompt entry is one KV cell. Its position is its index, except after
    a media run of an M-RoPE projector (Qwen2-VL and later): such a run of
    ``n_tokens`` entries takes ``n_pos`` positions (fewer), and the text
    after it continues from there. The stepper tracks the positions of every
    slot (:meth:`pos`) from the runs given to :meth:`start` and
    :meth:`eval_media`; for text-only prompts positions are indices.

    Args:
        ctx: the context; it must not be decoded by anything else meanwhile.
        n_slots: number of slots (at most ``ctx.n_seq_max``).
    """

    cdef st.lln_stepper * _s
    cdef readonly Context ctx
    cdef readonly Context draft_ctx
    cdef Batch _batch
    cdef list _samplers
    cdef vector[st.lln_event] _events
    cdef int32_t _n_slots

    def __cinit__(self):
        self._s = NULL

    def __init__(self, Context ctx not None, int n_slots):
        if self._s != NULL:
            # Freeing the running state under its caller would be worse than refusing.
            raise RuntimeError("Stepper.__init__ was called on an open stepper; create a new Stepper")
        ctx._check()
        if not 0 < n_slots <= ctx.n_seq_max:
            raise ValueError(f"n_slots must be 1..{ctx.n_seq_max} (the context's n_seq_max), got {n_slots}")
        if ctx.embeddings:
            raise ValueError("the context computes embeddings; generation needs one without")
        self.ctx = ctx
        self._batch = Batch(ctx.n_batch)
        self._samplers = [None] * n_slots
        self._n_slots = n_slots
        self._s = new st.lln_stepper(ctx._ptr, n_slots, ctx.n_batch)

    def __dealloc__(self):
        if self._s != NULL:
            del self._s
            self._s = NULL

    def close(self) -> None:
        """Free the native state (the draft context stays open: it is its owner's). Safe to call twice."""
        if self._s != NULL:
            del self._s
            self._s = NULL
        self._samplers = [None] * self._n_slots
        self.draft_ctx = None

    @property
    def n_slots(self) -> int:
        return self._n_slots

    cdef int _slot(self, int slot) except -1:
        if self._s == NULL:
            raise ValueError("the stepper is closed")
        if not 0 <= slot < self._n_slots:
            raise IndexError(f"slot {slot} out of range (0..{self._n_slots - 1})")
        return slot

    def start(self, int slot, prompt, Py_ssize_t keep, Sampler sampler not None, stops=(), *,
              int64_t max_tokens=-1, bint shift=True, int32_t n_keep=4, bint special=False,
              media=False) -> None:
        """Start generating on ``slot`` from ``prompt``.

        Args:
            prompt: int32 token ids, at least one, fewer than the context holds.
            keep: leading prompt tokens already in the slot's KV cache (0 ..
                len(prompt) - 1); the caller has removed the rest of the sequence.
            sampler: picks the tokens; kept alive until the slot is released.
            stops: stop strings, never part of the output.
            max_tokens: most tokens to generate; <= 0 means ten times the context.
            shift: when the context fills up, drop the older half after
                ``n_keep`` tokens and go on; False finishes with "length".
            n_keep: prompt tokens a shift keeps (-1 = the whole prompt).
            special: render special tokens as their text.
            media: the prompt holds media runs: negative ids, one per entry
                (KV cell) of a media chunk, every entry of a chunk the same id.
                :meth:`step` stops at each run until :meth:`eval_media` has
                written it; the last prompt entry must be a token, and the
                context is never shifted (the media's positions would move).
                True, or a mapping of each run's start index to its
                :class:`MediaChunk`: the chunks of an M-RoPE projector then
                tell the positions of the runs, which a reused cached prefix
                (``keep``) needs.

        Raises:
            ValueError: a token id outside the vocabulary, an empty or too long
                prompt, ``keep`` out of range or inside a media run, a ``media``
                chunk whose run is not in the prompt, or a sampler of another
                model / without a final greedy/dist stage.
        """
        self._slot(slot)
        self.ctx._check()
        cdef cnp.ndarray[cnp.int32_t, ndim=1] toks = np.ascontiguousarray(prompt, dtype=np.int32)
        cdef Py_ssize_t n = toks.shape[0]
        if n == 0:
            raise ValueError("the prompt is empty")
        if n >= self.ctx.n_ctx_seq:
            raise ValueError(f"the prompt has {n} tokens; the context holds {self.ctx.n_ctx_seq}")
        cdef int32_t n_vocab = self.ctx.n_vocab
        if (toks.min() < 0 and not media) or toks.max() >= n_vocab:
            raise ValueError(f"the prompt has token ids outside the vocabulary (0..{n_vocab - 1})")
        if not 0 <= keep < n:
            raise ValueError(f"keep must be 0..{n - 1}, got {keep}")
        cdef MediaChunk mc
        cdef Py_ssize_t at
        if media:
            if toks[n - 1] < 0:
                raise ValueError("a prompt with media must end with a token, not media")
            if keep and toks[keep] < 0 and toks[keep - 1] == toks[keep]:
                raise ValueError(f"keep={keep} ends inside a media run")
            shift = False
            if hasattr(media, "items"):  # a mapping of run indices to chunks
                for at, chunk in media.items():
                    if not isinstance(chunk, MediaChunk):
                        raise TypeError(f"media maps run indices to MediaChunk objects, not {type(chunk).__name__}")
                    mc = <MediaChunk> chunk
                    if not 0 <= at < n or toks[at] >= 0 or at + mc.n_tokens > n or toks[at + mc.n_tokens - 1] != toks[at]:
                        raise ValueError(f"media: no run of {mc.n_tokens} entries starts at index {at}")
                    if mc.projector is not None and mc.projector.mrope:
                        self._s.set_media(toks[at], <size_t> mc.n_tokens, <llama_pos> mc.n_pos)
        if sampler.model is not self.ctx.model:
            raise ValueError("the sampler belongs to another model than the context")
        if sampler._ptr == NULL or not sampler._final:
            raise ValueError("the sampler must be open and end with greedy() or dist()")
        cdef vector[string] cstops
        for s in stops:
            cstops.push_back(s.encode())
        self._s.start(slot, <const llama_token *> toks.data, n, keep, sampler._ptr, sampler._grammar,
                      cstops, max_tokens, shift, n_keep, special)
        self._samplers[slot] = sampler

    def speculate(self, int slot, types, *, int n_max=32, int n_min=0, int ngram_n=0, int ngram_m=0,
                  int min_hits=0, bint gate=False) -> None:
        """Speculate on the request running on ``slot`` (call after :meth:`start`).

        Each step, the slot drafts up to ``n_max`` tokens with llama.cpp's
        n-gram drafters (``common/speculative.h``) from the tokens its
        sequence holds, and the step verifies them in its batch: sampling at
        every draft position with the slot's own sampler, keeping the drafted
        tokens as long as they are what is sampled. The output is what the
        slot produces without speculation; only the number of decodes changes.

        Args:
            types: comma-separated type names (:func:`speculative_types`;
                several: the first that drafts wins, in common's order), or
                ``"none"``/``""`` for no speculation.
            n_max: most draft tokens verified per step (1..1024).
            n_min: a shorter draft is not verified (0..n_max).
            ngram_n: length of the n-gram looked up (``size_n``; ngram-mod:
                ``n_match``), 0 = common's default for each type.
            ngram_m: length of the m-gram drafted (``size_m``; ngram-mod:
                ``n_max``), 0 = common's default.
            min_hits: occurrences an n-gram needs before it drafts, 0 = common's default.
            gate: stop drafting while the slot's drafts are mostly rejected
                (the ``auto`` setting), trying again later.

        Raises:
            ValueError: an unknown or draft-model type, a value out of range,
                no running request on ``slot``, or a recurrent/hybrid model
                (its state cannot drop rejected tokens).
        """
        self._slot(slot)
        if not self._s.slots[slot].active:
            raise ValueError(f"slot {slot} has no running request")
        if not isinstance(types, str):
            raise TypeError(f"types must be a str, not {type(types).__name__}")
        names = [t.strip() for t in types.split(",") if t.strip()]
        if not names or "none" in names:
            self._s.speculate(slot, NULL)
            return
        known = set(speculative_types())
        for name in names:
            if name in _DRAFT_HEAD_TYPES:
                raise ValueError(f"speculative type {name!r} needs a draft head made for it, which is not supported; "
                                 f"use draft-simple (a draft model) or an n-gram type")
            if name not in known:
                raise ValueError(f"unknown speculative type {name!r}; known: {', '.join(sorted(known))}")
            if name == "draft-simple" and self.draft_ctx is None:
                raise ValueError("speculative type 'draft-simple' needs a draft model (set_draft)")
        if not 1 <= n_max <= 1024:
            raise ValueError(f"n_max must be 1..1024, got {n_max}")
        if not 0 <= n_min <= n_max:
            raise ValueError(f"n_min must be 0..n_max ({n_max}), got {n_min}")
        for label, v in (("ngram_n", ngram_n), ("ngram_m", ngram_m)):
            if not 0 <= v <= 1024:
                raise ValueError(f"{label} must be 0..1024 (0 = default), got {v}")
        if not 0 <= min_hits <= 65535:
            raise ValueError(f"min_hits must be 0..65535 (0 = default), got {min_hits}")
        cdef st.lln_spec_params p
        p.types = ",".join(names).encode()
        p.n_max = n_max
        p.n_min = n_min
        p.ngram_n = ngram_n
        p.ngram_m = ngram_m
        p.min_hits = min_hits
        p.gate = gate
        try:
            self._s.speculate(slot, &p)
        except RuntimeError as exc:  # common refused it: a draft model whose vocabulary does not fit
            raise ValueError(f"speculative decoding cannot run with these models: {exc}") from None

    def set_draft(self, Context ctx) -> None:
        """Use ``ctx`` (a context of the draft model) for ``draft-simple``; ``None``: no draft model.

        The draft model must share the target's vocabulary (llama.cpp's
        compatibility check runs when a slot first speculates with it). The
        context needs one sequence per slot (``n_seq_max`` equal to the
        stepper's slots) and room for as many tokens per sequence as the
        target's; it belongs to this stepper from now on (nothing else may
        decode it) and is kept alive until it is replaced or the stepper is
        closed. Its sequences follow the slots' by themselves: before a slot
        drafts, its draft sequence is cut to the longest prefix it shares with
        the slot's tokens and the rest is decoded.

        Raises:
            ValueError: ``ctx`` has another number of sequences than the
                stepper has slots, holds fewer tokens per sequence, or computes
                embeddings.
        """
        if self._s == NULL:
            raise ValueError("the stepper is closed")
        if ctx is not None:
            ctx._check()
            if ctx.n_seq_max != self._n_slots:
                raise ValueError(f"the draft context has n_seq_max={ctx.n_seq_max}; the stepper has {self._n_slots} slots")
            if ctx.n_ctx_seq < self.ctx.n_ctx_seq:
                raise ValueError(f"the draft context holds {ctx.n_ctx_seq} tokens a sequence, "
                                 f"fewer than the target's {self.ctx.n_ctx_seq}")
            if ctx.embeddings:
                raise ValueError("the draft context computes embeddings; drafting needs one without")
        cdef llama.llama_context * dft = NULL
        if ctx is not None:
            dft = ctx._ptr
        self._s.set_draft(dft)
        self.draft_ctx = ctx

    def spec_counts(self, int slot) -> tuple:
        """``(drafted, accepted)``: draft tokens the slot's request verified, and how many of them it kept."""
        self._slot(slot)
        cdef st.lln_slot * s = &self._s.slots[slot]
        return s.spec.n_drafted, s.spec.n_accepted

    def hold(self, int slot, bint held=True) -> None:
        """Leave ``slot`` out of the following steps (``held=False``: schedule it again).

        As :meth:`pause`, for the caller's own reasons (steps that serve only
        some slots), independently of it: a slot runs when it is neither
        paused nor held. :meth:`start` and :meth:`release` end a hold.
        """
        self._slot(slot)
        self._s.hold(slot, held)

    def held(self, int slot) -> bool:
        """Whether ``slot`` is held (see :meth:`hold`)."""
        self._slot(slot)
        return self._s.slots[slot].held

    def release(self, int slot) -> None:
        """Stop serving ``slot`` (its cached tokens stay, for prefix reuse)."""
        self._slot(slot)
        self._s.release(slot)
        self._samplers[slot] = None

    def active(self, int slot) -> bool:
        """Whether ``slot`` has a request that has not finished."""
        self._slot(slot)
        return self._s.slots[slot].active

    def pause(self, int slot, bint paused=True) -> None:
        """Leave ``slot`` out of the following steps (``paused=False``: schedule it again).

        A paused slot is neither in a step's batch nor sampled: its KV cells,
        sampler state, pending text and position stay as they are, and the
        other slots go on. :meth:`start` and :meth:`release` end a pause.

        Raises:
            ValueError: the slot has no running request.
        """
        self._slot(slot)
        if paused and not self._s.slots[slot].active:
            raise ValueError(f"slot {slot} has no running request")
        self._s.pause(slot, paused)

    def paused(self, int slot) -> bool:
        """Whether ``slot`` is paused (see :meth:`pause`)."""
        self._slot(slot)
        return self._s.slots[slot].paused

    def cached(self, int slot) -> np.ndarray:
        """The tokens whose KV the slot's sequence holds (a copy; one cell each, positions: :meth:`pos`)."""
        self._slot(slot)
        return _int32_copy(self._s.slots[slot].cached)

    def pos(self, int slot, index=None) -> int:
        """The position of the slot's cached entry ``index`` (default, or an ``index`` past the
        cached entries: the position after them all).

        It equals ``index`` unless the cached tokens hold media runs of an
        M-RoPE projector. An ``index`` inside such a run gives the run's first
        position (all of its cells have it): ``Context.seq_rm`` from there
        removes the whole run, as :meth:`forget` does.
        """
        self._slot(slot)
        cdef st.lln_slot * s = &self._s.slots[slot]
        if index is None:
            return s.n_past
        cdef Py_ssize_t i = index
        if i < 0:
            raise IndexError(f"index must be >= 0, got {i}")
        if <size_t> i >= s.cached.size():
            return s.n_past
        cdef size_t cut
        cdef cppbool known
        return self._s.pos_of(s.cached.data(), s.cached.size(), <size_t> i, &cut, &known)

    def forget(self, int slot, Py_ssize_t keep=0) -> int:
        """Record that only the first ``keep`` cached tokens remain (after ``Context.seq_rm`` from
        ``pos(slot, keep)``); a ``keep`` inside an M-RoPE media run is moved back to the run's start.

        Returns:
            the cached tokens that remain.
        """
        self._slot(slot)
        if self._s.slots[slot].active:
            raise ValueError(f"slot {slot} is running a request")
        if keep < 0:
            raise ValueError(f"keep must be >= 0, got {keep}")
        return self._s.forget(slot, <size_t> keep)

    def restored(self, int slot, tokens) -> int:
        """Record that the slot's sequence now holds ``tokens`` (after ``Context.load_seq_state``,
        or ``Context.seq_cp`` of another slot's cells up to ``pos(other, len(tokens))``).

        Tokens that end inside an M-RoPE media run are cut back to its start.

        Returns:
            the tokens recorded.

        Raises:
            ValueError: the slot runs a request, or ``tokens`` hold an M-RoPE
                media run the stepper no longer knows (its positions are
                unknown: nothing is recorded; clear the sequence).
        """
        self._slot(slot)
        if self._s.slots[slot].active:
            raise ValueError(f"slot {slot} is running a request")
        cdef cnp.ndarray[cnp.int32_t, ndim=1] toks = np.ascontiguousarray(tokens, dtype=np.int32)
        cdef const llama_token * p = <const llama_token *> toks.data
        if not self._s.restored(slot, p, toks.shape[0]):
            raise ValueError("the tokens hold a media run whose positions are no longer known")
        return self._s.slots[slot].cached.size()

    def generated(self, int slot) -> np.ndarray:
        """The tokens the slot's request generated (end of generation excluded)."""
        self._slot(slot)
        return _int32_copy(self._s.slots[slot].generated)

    def n_evaluated(self, int slot) -> int:
        """Prompt tokens the slot's request evaluated (a reused cached prefix is not counted)."""
        self._slot(slot)
        return self._s.slots[slot].n_evaluated

    def media_next(self, int slot) -> bool:
        """Whether the slot's next prompt position is media, which :meth:`step` waits on (see :meth:`eval_media`)."""
        self._slot(slot)
        return self._s.slots[slot].media_next()

    def eval_media(self, int slot, Projector projector not None, MediaChunk chunk not None) -> tuple:
        """Write ``chunk`` (an image or audio chunk) into the slot's sequence at its next prompt entry.

        The projector encodes it (GIL released) and its embeddings are decoded
        into the slot's sequence from the slot's position (:meth:`pos`); the
        run of ``chunk.n_tokens`` media entries of the prompt then counts as
        cached and evaluated, and the slot's position moves on by
        ``chunk.n_pos``. The other slots wait meanwhile: call it between
        steps, one chunk at a time.

        Returns:
            (encode nanoseconds, decode nanoseconds).

        Raises:
            ValueError: the slot's next position is not the start of a media
                run of ``chunk.n_tokens`` entries, or the chunk does not fit.
            MediaError: libmtmd could not encode it.
            DecodeError (and its subclasses): decoding the embeddings failed;
                what was written of them is removed from the sequence again.
        """
        self._slot(slot)
        cdef st.lln_slot * s = &self._s.slots[slot]
        if not s.media_next():
            raise ValueError(f"slot {slot} is not at a media position")
        cdef size_t start = s.n_done, n = <size_t> chunk.n_tokens, j
        cdef llama_token mark = s.prompt[start]
        if start + n > s.prompt.size() or (start + n < s.prompt.size() and s.prompt[start + n] == mark):
            raise ValueError(f"the chunk has {n} tokens, not the length of the slot's media run")
        for j in range(start, start + n):
            if s.prompt[j] != mark:
                raise ValueError(f"the chunk has {n} tokens, not the length of the slot's media run")
        cdef int64_t times[2]
        times[0] = 0
        times[1] = 0
        cdef llama.llama_memory_t mem
        self.ctx._enter()
        try:
            self.ctx._keep_outputs(0, True, "eval_media")
            try:
                projector._eval(self.ctx, chunk, s.n_past, slot, times)
            except BaseException:
                mem = llama.llama_get_memory(self.ctx._ptr)
                if mem != NULL:
                    llama.llama_memory_seq_rm(mem, slot, s.n_past, -1)
                raise
        finally:
            self.ctx._leave()
        if projector.mrope:
            self._s.set_media(mark, n, <llama_pos> chunk.n_pos)
        self._s.advance(slot, n, <llama_pos> chunk.n_pos)
        return times[0], times[1]

    def generating(self, int slot) -> bool:
        """Whether the slot's prompt is fully evaluated."""
        self._slot(slot)
        return self._s.slots[slot].n_done >= self._s.slots[slot].prompt.size()

    def step(self) -> list:
        """Decode one batch and sample every slot with an output.

        Returns one ``(slot, text, token, out_index, finish)`` per sampled
        token, in slot order: ``text`` is what became showable (may be ""),
        ``out_index`` the batch index whose logits the token came from (valid
        for ``ctx.logits`` until the next decode), ``finish`` None or "stop" /
        "length" (the slot is then inactive). A slot that ends on an
        end-of-generation token reports ``token`` -1.

        A :meth:`Context.cancel` stops the running step (or the next one)
        only; the step after it runs normally.

        Raises:
            BufferError: views of the context's outputs are alive that the
                step may invalidate (see :meth:`Context.decode`).
            NoKvSlotError: the KV cache has no room for the batch. llama.h:
                the memory is restored to its state before the call; no slot
                has changed: free room (or release a slot) and step again.
            InvalidBatchError: llama.cpp rejected the batch; as above, nothing
                has changed.
            DecodeAbortedError: ``ctx.cancel()`` stopped the decode.
            DecodeError: another decode failure (code < -1).

        After DecodeAbortedError or DecodeError, llama.h says the ubatches
        processed before the failure stay in the context's memory. The
        stepper then removes those positions again (``llama_memory_seq_rm``
        from each slot's recorded length), so that its records and the memory
        agree and the step can be retried. A memory that cannot drop the tail
        of a sequence (recurrent or hybrid models) keeps them: the state of
        the slots that were in the batch is then undefined; clear their
        sequences (``Context.seq_rm``) and :meth:`forget` them before reusing.
        """
        if self._s == NULL:
            raise ValueError("the stepper is closed")
        cdef int32_t rc
        cdef unsigned long mark
        self.ctx._enter()
        try:
            self._events.clear()
            # One output a slot, and one per draft token of a speculating slot.
            self.ctx._keep_outputs(self._s.max_outputs(), True, "step")
            mark = lln_rpc_failures()
            with nogil:
                rc = self._s.step(self._batch._b, self._events)
            # A cancel() asks for the running (or the next) decode only, as in Context.decode.
            self.ctx._abort_flag = 0
            # The slots sampled from garbage: no event of this step is handed out.
            self.ctx._check_rpc(mark, "a decode step")
            if rc == 0 and self._batch._b.n_tokens > 0:
                self.ctx._held_outputs(self._s.n_outputs())
            self.ctx._after_run(self._batch, rc)
        finally:
            self.ctx._leave()
        if rc != 0:
            raise _decode_error(rc, "decode")
        out = []
        cdef size_t i
        cdef st.lln_event * ev
        for i in range(self._events.size()):
            ev = &self._events[i]
            out.append((ev.slot, ev.text.decode("utf-8", "replace"), ev.token, ev.out_index,
                        _FINISH_NAMES.get(ev.finish)))
            if ev.finish != st.LLN_FINISH_NONE:
                self._samplers[ev.slot] = None
        return out


cdef class StopMatcher:
    """Stop strings over a stream of text pieces (the matcher :class:`Stepper` uses).

    A stop string may arrive split across pieces, so text that could be the
    start of one is held back until the next piece decides. Nothing of a stop
    string is ever emitted.

    Args:
        stops: the stop strings (empty strings are ignored).
    """

    cdef st.lln_stop_matcher _m

    def __init__(self, stops=()):
        cdef vector[string] cstops
        for s in stops:
            cstops.push_back(s.encode())
        self._m.reset(cstops)

    def push(self, str piece) -> str:
        """Add ``piece``; return what can be emitted now. After a stop, returns ``""``."""
        return self._m.push(piece.encode()).decode("utf-8", "replace")

    def flush(self) -> str:
        """At the end of generation: release held-back text (it was no stop string)."""
        return self._m.flush().decode("utf-8", "replace")

    @property
    def stopped(self) -> bool:
        return self._m.stopped


cdef object _int32_copy(const vector[llama_token] & v):
    cdef cnp.ndarray[cnp.int32_t, ndim=1] a = np.empty(v.size(), dtype=np.int32)
    if v.size():
        memcpy(a.data, v.data(), v.size() * sizeof(llama_token))
    return a
