"""Model loading, metadata and the typed errors for bad model files."""

from __future__ import annotations

import pytest

from llamanative import _core
from llamanative.errors import ModelLoadError


def test_smollm2_properties(smollm2):
    assert smollm2.architecture == "llama"
    assert 130e6 < smollm2.n_params < 140e6
    assert smollm2.size > 50e6
    assert smollm2.n_ctx_train == 8192
    assert smollm2.n_embd == 576
    assert smollm2.n_embd_out == 576
    assert smollm2.n_layer == 30
    assert "Q4_1" in smollm2.description
    assert "<|im_start|>" in smollm2.chat_template
    assert smollm2.chat_templates["default"] == smollm2.chat_template
    assert smollm2.vocab.n_vocab == 49152


def test_metadata_has_every_key_with_arrays(smollm2):
    md = smollm2.metadata
    assert md["general.architecture"] == "llama"
    assert md["llama.context_length"] == 8192
    tokens = md["tokenizer.ggml.tokens"]
    assert isinstance(tokens, list) and len(tokens) == smollm2.vocab.n_vocab
    assert tokens[smollm2.vocab.eos] == "<|im_end|>"
    assert list(md)[0] == "general.architecture"  # file order
    assert _core.read_gguf_metadata(smollm2.path, arrays=False)["tokenizer.ggml.tokens"] is None


def test_gemma3_second_architecture(gemma3):
    assert gemma3.architecture == "gemma3"
    assert gemma3.n_embd == 640
    assert gemma3.vocab.type == "spm"
    # This GGUF carries no chat template: callers must supply one.
    assert gemma3.chat_template is None and gemma3.chat_templates == {}


def test_minilm_is_an_encoder(minilm):
    assert minilm.architecture == "bert"
    assert minilm.n_embd_out == 384


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        _core.Model(tmp_path / "nope.gguf")
    assert "nope.gguf" in str(e.value)


def test_directory_raises(tmp_path):
    with pytest.raises(IsADirectoryError):
        _core.Model(tmp_path)


def test_not_a_gguf_raises_value_error_naming_the_file(tmp_path):
    p = tmp_path / "model.gguf"
    p.write_bytes(b"this is not a model at all" * 10)
    with pytest.raises(ValueError, match="not a GGUF file") as e:
        _core.Model(p)
    assert isinstance(e.value, ModelLoadError)
    assert str(p) in str(e.value)


def test_empty_file_raises(tmp_path):
    p = tmp_path / "empty.gguf"
    p.write_bytes(b"")
    with pytest.raises(ValueError, match="not a GGUF"):
        _core.Model(p)


@pytest.mark.parametrize("keep", [8, 1000, 0.5, 0.999])
def test_truncated_gguf_raises_value_error(smollm2_path, tmp_path, keep):
    data = smollm2_path.read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else keep
    p = tmp_path / "cut.gguf"
    p.write_bytes(data[:n])
    with pytest.raises(ValueError, match="cut.gguf") as e:
        _core.Model(p)
    assert isinstance(e.value, ModelLoadError)


def test_vocab_only_model_cannot_make_a_context(smollm2_path):
    m = _core.Model(smollm2_path, vocab_only=True)
    assert m.vocab.tokenize("hello").size > 0
    with pytest.raises(ValueError, match="vocab_only"):
        _core.Context(m)


def test_a_vocab_only_model_reports_zero_for_its_layer_shapes(smollm2_path):
    """llama.cpp aborts on per-layer reads of a model without layers: the binding answers 0 instead."""
    with _core.Model(smollm2_path, vocab_only=True) as m:
        assert (m.n_layer, m.n_head, m.n_head_kv, m.n_embd) == (0, 0, 0, 0)
        assert m.n_swa == 0 and m.has_decoder and not m.is_recurrent
    with _core.Model(smollm2_path) as m:
        assert (m.n_layer, m.n_head, m.n_head_kv) == (30, 9, 3)


def test_close_is_idempotent_and_guarded(smollm2_path):
    m = _core.Model(smollm2_path)
    ctx = _core.Context(m, n_ctx=256)
    with pytest.raises(RuntimeError, match="context"):
        m.close()
    ctx.close()
    ctx.close()
    m.close()
    m.close()
    assert m.closed
    with pytest.raises(ValueError, match="closed"):
        _ = m.n_params
    with pytest.raises(ValueError, match="closed"):
        m.vocab.tokenize("x")


def test_system_info_reports_the_machine_simd():
    info = _core.system_info()
    names = {b["name"] for b in _core.backends()}
    assert "CPU" in names
    cpu = next(b for b in _core.backends() if b["name"] == "CPU")
    # The CPU backend is compiled for this machine's SIMD, not the baseline ISA.
    import platform

    if platform.machine() in ("x86_64", "AMD64") and "avx2" in open("/proc/cpuinfo").read():
        assert "AVX2 = 1" in info
        assert cpu["features"].get("AVX2") == "1"
    devs = _core.devices()
    assert devs and devs[0]["memory_total"] > 0
