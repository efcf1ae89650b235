"""Misuse and fault recovery of the native core: cancellation that does not stick, a second ``__init__``,
exceptions raised by a log handler, and failure messages that need no Python 3.11 feature.

Real models (SmolLM2, MiniLM) throughout.
"""

from __future__ import annotations

import logging
import signal
import sys

import numpy as np
import pytest

from llamanative import _core
from llamanative.errors import DecodeAbortedError

PROMPT = "The capital of France is"


def gen_ctx(model: _core.Model, **kw) -> _core.Context:
    return _core.Context(model, n_ctx=256, n_batch=64, n_ubatch=64, n_threads=2, **kw)


def start(stepper: _core.Stepper, model: _core.Model, max_tokens: int = 4) -> None:
    tokens = model.vocab.tokenize(PROMPT, add_special=True)
    stepper.start(0, tokens, 0, _core.Sampler(model).greedy(), max_tokens=max_tokens)


def run_to_end(stepper: _core.Stepper) -> list[int]:
    tokens: list[int] = []
    while stepper.active(0):
        tokens += [ev[2] for ev in stepper.step() if ev[2] >= 0]
    return tokens


# -- cancel: stops one step, not every later one --------------------------------------------------------------
def test_cancelled_step_then_the_next_step_runs(smollm2):
    with gen_ctx(smollm2) as ctx:
        reference = _core.Stepper(ctx, 1)
        start(reference, smollm2)
        expected = run_to_end(reference)
        reference.close()
        ctx.seq_rm(0, -1, -1)

        stepper = _core.Stepper(ctx, 1)
        start(stepper, smollm2)
        ctx.cancel()  # asks the next decode to stop
        with pytest.raises(DecodeAbortedError):
            stepper.step()
        assert stepper.cached(0).size == 0  # the aborted prompt left nothing recorded
        # The same request goes on: the flag was for that one step only.
        assert run_to_end(stepper) == expected
        stepper.close()


def test_cancel_between_generated_tokens_then_generation_goes_on(smollm2):
    with gen_ctx(smollm2) as ctx:
        stepper = _core.Stepper(ctx, 1)
        start(stepper, smollm2, max_tokens=6)
        first = [ev[2] for ev in stepper.step()]
        assert len(first) == 1
        ctx.cancel()
        with pytest.raises(DecodeAbortedError):
            stepper.step()
        rest = run_to_end(stepper)
        assert len(first) + len(rest) == 6
        # The memory and the stepper's record agree after the abort: decoding continues from it.
        assert ctx.seq_pos_max(0) == stepper.cached(0).size - 1
        stepper.close()


# -- a second __init__ is refused, the object stays usable -----------------------------------------------------
def test_model_init_twice_is_refused(smollm2_path):
    model = _core.Model(smollm2_path, vocab_only=True)
    n_vocab = model.vocab.n_vocab
    with pytest.raises(RuntimeError, match="create a new Model"):
        model.__init__(smollm2_path, vocab_only=True)
    assert not model.closed and model.vocab.n_vocab == n_vocab
    model.close()
    # A closed model holds nothing: loading into it again is no leak.
    model.__init__(smollm2_path, vocab_only=True)
    assert model.vocab.n_vocab == n_vocab
    model.close()


def test_context_init_twice_is_refused(smollm2):
    ctx = gen_ctx(smollm2)
    with pytest.raises(RuntimeError, match="create a new Context"):
        ctx.__init__(smollm2, n_ctx=128)
    assert ctx.n_ctx == 256
    ctx.close()


def test_stepper_init_twice_is_refused(smollm2):
    with gen_ctx(smollm2) as ctx:
        stepper = _core.Stepper(ctx, 1)
        start(stepper, smollm2, max_tokens=2)
        with pytest.raises(RuntimeError, match="create a new Stepper"):
            stepper.__init__(ctx, 1)
        assert stepper.active(0) and len(run_to_end(stepper)) == 2
        stepper.close()


# -- exceptions raised by a handler of the native log --------------------------------------------------------
class Raising(logging.Handler):
    def __init__(self, exc: BaseException) -> None:
        super().__init__()
        self.exc: BaseException | None = exc

    def emit(self, record: logging.LogRecord) -> None:
        exc, self.exc = self.exc, None  # once
        if exc is not None:
            raise exc


def load_with_handler(path, handler: logging.Handler) -> None:
    logger = logging.getLogger("llamanative.native")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    _core.set_log_level("INFO")
    try:
        _core.Model(path, vocab_only=True).close()
    finally:
        _core.set_log_level("WARNING")
        logger.setLevel(old_level)
        logger.removeHandler(handler)


def test_log_handler_exception_is_dropped(smollm2_path):
    handler = Raising(ValueError("handler bug"))
    load_with_handler(smollm2_path, handler)
    assert handler.exc is None  # it ran and raised; the load went on


def test_log_handler_system_exit_reaches_unraisablehook(smollm2_path, monkeypatch):
    seen: list[type[BaseException]] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(u.exc_type))
    load_with_handler(smollm2_path, Raising(SystemExit(3)))
    assert SystemExit in seen


def test_log_handler_keyboard_interrupt_is_raised_after_the_call(smollm2_path):
    # The interrupt is delivered as a SIGINT would be, which Python drops while SIGINT is ignored
    # (a test run started as a background job of a non-interactive shell): handle it as a terminal does.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    handler = Raising(KeyboardInterrupt())
    try:
        with pytest.raises(KeyboardInterrupt):
            load_with_handler(smollm2_path, handler)
            for _ in range(100_000):  # the interrupt arrives at the interpreter's next signal check
                pass
    finally:
        logging.getLogger("llamanative.native").removeHandler(handler)
        _core.set_log_level("WARNING")
        signal.signal(signal.SIGINT, previous)


# -- failure context in the message, without BaseException.add_note (3.11+) ----------------------------------
def test_embed_failure_names_the_input_in_its_message(minilm):
    ctx = _core.Context(minilm, n_ctx=512, n_batch=512, n_ubatch=512, n_seq_max=8, n_threads=2, embeddings=True)
    tokens, offsets = minilm.vocab.tokenize_many(["one sentence", "another sentence"])
    out = np.zeros((2, ctx.n_embd_out), np.float32)
    ctx.cancel()
    with pytest.raises(DecodeAbortedError, match="starts at input 0") as info:
        ctx.embed_sequences(tokens, offsets, out)
    assert not getattr(info.value, "__notes__", None)
    ctx.close()


# -- zero-copy views: the memory they read is never freed or moved under them -----------------------------
def decoded(model: _core.Model, **kw) -> tuple[_core.Context, _core.Batch]:
    ctx = gen_ctx(model, **kw)
    b = _core.Batch(64)
    b.add_sequence(model.vocab.tokenize(PROMPT), 0, 0)
    ctx.decode(b)
    return ctx, b


def test_close_is_refused_while_a_logits_view_is_alive(smollm2):
    ctx, _ = decoded(smollm2)
    lg = ctx.logits(-1)
    expected = lg.copy()
    head = lg[:10]  # a view of the view reads the same memory
    with pytest.raises(BufferError, match="view"):
        ctx.close()
    assert not ctx.closed
    np.testing.assert_array_equal(lg, expected)  # still the decode's values, never freed memory
    del lg
    with pytest.raises(BufferError):
        ctx.close()
    np.testing.assert_array_equal(head, expected[:10])
    del head
    ctx.close()
    assert ctx.closed


def test_copies_do_not_hold_the_context(smollm2):
    ctx, _ = decoded(smollm2)
    out = ctx.logits(-1, out=np.empty(smollm2.vocab.n_vocab, np.float32))
    derived = np.asarray(ctx.logits(-1)) * 2.0  # a new array: the view is gone
    ctx.close()
    assert ctx.closed and np.isfinite(out).all() and np.isfinite(derived).all()


def test_a_decode_that_would_grow_the_output_buffer_is_refused_while_views_are_alive(smollm2):
    ctx, b = decoded(smollm2)
    n = b.n_tokens
    lg = ctx.logits(-1)
    first = lg.copy()
    # One more token with one output: the buffer holds it, the view reads this decode's values.
    one = _core.Batch(1)
    one.add(int(np.argmax(first)), n, 0, True)
    ctx.decode(one)
    np.testing.assert_array_equal(lg, ctx.logits(-1))
    # Every token an output: more outputs than the buffer held, llama.cpp would reallocate it.
    many = _core.Batch(64)
    many.add_sequence(smollm2.vocab.tokenize(" and the capital of Italy is"), n + 1, 0, output="all")
    with pytest.raises(BufferError, match="reallocate"):
        ctx.decode(many)
    del lg
    ctx.decode(many)  # no view alive: runs
    assert ctx.logits(0).shape == (smollm2.vocab.n_vocab,)
    ctx.close()


def test_a_step_runs_while_a_logits_view_is_alive(smollm2):
    with gen_ctx(smollm2) as ctx:
        stepper = _core.Stepper(ctx, 1)
        start(stepper, smollm2, max_tokens=3)
        stepper.step()
        lg = ctx.logits(-1)  # one output a slot: a step never grows the buffer
        assert len(stepper.step()) == 1
        assert lg.shape == (smollm2.vocab.n_vocab,)
        del lg
        run_to_end(stepper)
        stepper.close()


def test_every_decode_is_refused_while_a_pooled_embedding_view_is_alive(minilm):
    ctx = _core.Context(minilm, n_ctx=512, n_batch=512, n_ubatch=512, n_seq_max=2, n_threads=2, embeddings=True)
    b = _core.Batch(64, 2)
    b.add_sequence(minilm.vocab.tokenize("one sentence"), 0, 0, output="all")
    ctx.decode(b)
    e = ctx.embeddings_seq(0)
    expected = e.copy()
    with pytest.raises(BufferError, match="pooled"):
        ctx.decode(b)  # it would free the pooled embeddings the view reads
    tokens, offsets = minilm.vocab.tokenize_many(["x"])
    with pytest.raises(BufferError, match="pooled"):
        ctx.embed_sequences(tokens, offsets, np.zeros((1, ctx.n_embd_out), np.float32))
    with pytest.raises(BufferError):
        ctx.load_state(ctx.save_state())
    np.testing.assert_array_equal(e, expected)
    del e
    ctx.decode(b)
    np.testing.assert_allclose(ctx.embeddings_seq(0), expected, rtol=1e-5, atol=1e-6)
    ctx.close()
