"""Every invalid input gets a typed Python error before llama.cpp sees it.

llama.cpp aborts the process on some of these (GGML_ASSERT), which no
``except`` can catch; the last test runs them all in a child process to show
the process survives.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from llamanative import _core
from llamanative.errors import DecodeError, NoKvSlotError


@pytest.fixture()
def ctx(smollm2):
    # llama.cpp rounds n_ctx up to a multiple of 256.
    c = _core.Context(smollm2, n_ctx=256, n_batch=32, n_ubatch=32, n_seq_max=2)
    assert c.n_ctx_seq == 256
    yield c
    c.close()


def batch_of(tokens, pos0=0, seq=0):
    b = _core.Batch(max(len(tokens), 1), 2)
    for i, t in enumerate(tokens):
        b.add(t, pos0 + i, seq, i == len(tokens) - 1)
    return b


@pytest.mark.parametrize("token", [-1, 49152, 2**31 - 1])
def test_token_out_of_vocab(ctx, token):
    with pytest.raises(ValueError, match=r"token id .* out of range: the vocab has 49152"):
        ctx.decode(batch_of([1, token]))


@pytest.mark.parametrize("seq", [2, 100, -1])
def test_seq_id_out_of_range(ctx, seq):
    with pytest.raises(ValueError, match=r"n_seq_max=2"):
        ctx.decode(batch_of([1, 2], seq=seq))


def test_batch_larger_than_n_batch(ctx):
    with pytest.raises(ValueError, match=r"40 tokens, more than the context's n_batch=32"):
        ctx.decode(batch_of(list(range(1, 41))))


def test_position_beyond_context(ctx):
    with pytest.raises(ValueError, match=r"position 256 .* exceeds the context: .*0\.\.255"):
        ctx.decode(batch_of([1, 2], pos0=255))
    with pytest.raises(ValueError, match=r"position -3"):
        ctx.decode(batch_of([1], pos0=-3))


def test_empty_batch(ctx):
    with pytest.raises(ValueError, match="empty"):
        ctx.decode(_core.Batch(4))


def test_kv_cache_full_is_a_typed_decode_error(ctx):
    # Sequence 0 fills the 256 shared cells; sequence 1 then finds no slot.
    for start in range(0, 256, 32):
        ctx.decode(batch_of(list(range(100, 132)), pos0=start, seq=0))
    with pytest.raises(NoKvSlotError) as e:
        ctx.decode(batch_of([5, 6, 7], seq=1))
    assert isinstance(e.value, DecodeError) and e.value.code == 1 and "KV" in str(e.value)
    ctx.seq_rm(0, 128, -1)  # free cells: the same batch now fits
    ctx.decode(batch_of([5, 6, 7], seq=1))


def test_batch_builder_limits():
    b = _core.Batch(2, 1)
    b.add(1, 0, 0)
    b.add(2, 1, 0)
    with pytest.raises(ValueError, match="full"):
        b.add(3, 2, 0)
    with pytest.raises(ValueError, match="do not fit"):
        _core.Batch(2).add_sequence([1, 2, 3])
    with pytest.raises(ValueError, match="sequence ids"):
        _core.Batch(2, 1).add(1, 0, [0, 1])
    with pytest.raises(ValueError, match="capacity"):
        _core.Batch(0)
    with pytest.raises(ValueError, match="output"):
        _core.Batch(4).add_sequence([1], output="some")
    with pytest.raises(IndexError):
        _core.Batch(4).set_output(3)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"n_ctx": -1}, "n_ctx"),
        ({"n_batch": 0}, "n_batch"),
        ({"n_seq_max": 0}, "n_seq_max"),
        ({"n_seq_max": 10**6}, "n_seq_max"),
        ({"n_threads": 0}, "n_threads"),
        ({"pooling_type": "median"}, "pooling_type"),
        ({"flash_attn": "maybe"}, "flash_attn"),
        ({"type_k": "q3"}, "type_k"),
        # llama.cpp aborts the process when there are more sequences than batch (or context) rows.
        ({"n_seq_max": 64, "n_batch": 48, "n_ubatch": 48}, "n_seq_max=64 is more than the batch holds"),
        ({"n_seq_max": 8, "n_ctx": 4}, "n_seq_max=8 is more than the batch holds"),
    ],
)
def test_bad_context_parameters(smollm2, kw, match):
    with pytest.raises(ValueError, match=match):
        _core.Context(smollm2, **kw)


def test_an_encoder_context_with_fewer_batch_rows_than_sequences_is_refused(minilm):
    with pytest.raises(ValueError, match="n_seq_max"):
        _core.Context(minilm, n_ctx=48, n_batch=48, n_ubatch=48, n_seq_max=64, embeddings=True)
    with _core.Context(minilm, n_ctx=48, n_batch=48, n_ubatch=48, n_seq_max=48, embeddings=True) as ctx:
        assert ctx.n_seq_max == 48


def test_mean_pooling_with_a_ubatch_that_is_not_a_multiple_of_the_sequences_is_refused(minilm, smollm2):
    """llama.cpp rounds its worst-case ubatch up to a multiple of n_seq_max and mean pooling then aborts."""
    with pytest.raises(ValueError, match="multiple of n_seq_max=64"):
        _core.Context(minilm, n_ctx=100, n_batch=100, n_ubatch=100, n_seq_max=64, embeddings=True)
    with pytest.raises(ValueError, match="multiple of n_seq_max=3"):
        _core.Context(smollm2, n_ctx=512, n_seq_max=3, embeddings=True, pooling_type="mean")
    for ok in (
        {"n_seq_max": 50, "embeddings": True},
        {"n_seq_max": 64, "embeddings": True, "pooling_type": "cls"},
        {"n_seq_max": 64},
    ):
        with _core.Context(minilm, n_ctx=100, n_batch=100, n_ubatch=100, **ok):
            pass


def test_switching_embeddings_on_in_a_shape_that_cannot_pool_is_refused(minilm):
    ctx = _core.Context(minilm, n_ctx=100, n_batch=100, n_ubatch=100, n_seq_max=64)  # MiniLM pools by mean
    with pytest.raises(ValueError, match="multiple of n_seq_max=64"):
        ctx.set_embeddings(True)
    ctx.set_embeddings(False)
    ctx.close()


def test_a_tiny_context_still_embeds_and_generates(smollm2_path, minilm_path):
    """A context smaller than the engine's default sequence counts: the runner sizes them down."""
    from llamanative import Client

    with Client() as client:
        for path in (smollm2_path, minilm_path):
            for num_ctx in (16, 100):  # 100: not a multiple of the 64 sequences an embedding decode takes
                r = client.embed(str(path), ["a short text", "another one"], options={"num_ctx": num_ctx})
                assert len(r.embeddings) == 2 and len(r.embeddings[0]) > 0
        r = client.generate(str(smollm2_path), "Hi", raw=True, options={"num_ctx": 8, "num_predict": 2})
        assert r.done


def test_closed_objects_raise(smollm2):
    c = _core.Context(smollm2, n_ctx=64)
    c.close()
    for call in (lambda: c.decode(batch_of([1])), lambda: c.logits(-1), c.clear, c.save_state):
        with pytest.raises(ValueError, match="closed"):
            call()


def test_the_process_survives_every_bad_input(smollm2_path, tmp_path):
    """Run the inputs that would abort inside llama.cpp in a child process."""
    script = textwrap.dedent(f"""
        import numpy as np
        from llamanative import _core
        m = _core.Model({str(smollm2_path)!r})
        ctx = _core.Context(m, n_ctx=256, n_batch=32, n_ubatch=32, n_seq_max=2)
        bad = [
            lambda: m.vocab.detokenize([10**7]),
            lambda: m.vocab.token_to_piece(-7),
            lambda: ctx.decode(_core.Batch(4)),
            lambda: _core.Sampler(m).greedy().sample(ctx, -1),
            lambda: ctx.logits(5),
            lambda: ctx.seq_cp(0, 9),
            lambda: ctx.load_state(b"garbage" * 10),
            lambda: _core.Model({str(tmp_path / "missing.gguf")!r}),
        ]
        for i, f in enumerate(bad):
            b = _core.Batch(40, 1)
            try:
                f()
            except Exception as e:
                print(type(e).__name__)
            else:
                print("NO ERROR", i)
        for tok, pos, seq in [(10**6, 0, 0), (1, 10**6, 0), (1, 0, 7)]:
            b = _core.Batch(4, 1); b.add(tok, pos, seq, True)
            try:
                ctx.decode(b)
            except ValueError as e:
                print("ValueError")
        print("SURVIVED")
    """)
    # cwd: not the checkout, whose llamanative/ source folder would shadow the installed package.
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split()
    assert lines[-1] == "SURVIVED"
    assert "NO" not in lines
