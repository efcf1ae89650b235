"""Layers offloaded to a Vulkan device give the CPU backend's greedy output.

Needs the Vulkan plugin: in the package (``pip install . -C
cmake.define.GGML_VULKAN=ON``) or built apart and named by
LLAMANATIVE_LIBRARY_PATH (``scripts/test_vulkan.sh`` does that, on Mesa's
lavapipe, a Vulkan implementation that runs on the CPU). ggml skips
CPU-type Vulkan devices unless GGML_VK_VISIBLE_DEVICES names them, which the
script sets. Without a Vulkan device the tests are skipped, with that reason.
"""

from __future__ import annotations

import pytest

import llamanative
from llamanative import _core

VULKAN = [d for d in llamanative.devices() if d["backend"] == "Vulkan"]
pytestmark = pytest.mark.skipif(not VULKAN, reason="no Vulkan device loaded (scripts/test_vulkan.sh builds one)")

PROMPTS = ["The capital of France is", "def fibonacci(n):"]


@pytest.fixture(scope="module")
def smollm2_f32_path(smollm2_path, tmp_path_factory):
    """SmolLM2's weights dequantized to float32 (540 MB, written once per run).

    With quantized weights the two backends legitimately compute differently
    (the CPU quantizes activations to 8 bits for its Q4_1 dot products;
    Vulkan does not), which moves logits by ~0.2 and flips greedy choices at
    near-ties. With float32 weights nothing lossy differs, so greedy output
    must be identical.
    """
    from gguf_edit import dequantized_f32

    return dequantized_f32(smollm2_path, tmp_path_factory.mktemp("f32") / "smollm2-f32.gguf")


def _greedy(client: llamanative.Client, model: str, prompt: str, num_gpu: int) -> tuple[str, int]:
    r = client.generate(
        model=model,
        prompt=prompt,
        raw=True,
        options={"temperature": 0, "num_predict": 24, "num_gpu": num_gpu, "seed": 0},
    )
    return r.response, r.eval_count


def test_vulkan_device_is_listed():
    dev = VULKAN[0]
    assert dev["name"].startswith("Vulkan") and dev["memory_total"] > 0
    backend = next(b for b in llamanative.backends() if b["name"] == "Vulkan")
    assert backend["path"] and backend["n_devices"] >= 1


@pytest.mark.parametrize("num_gpu", [999, 8])
def test_offloaded_greedy_equals_cpu(smollm2_f32_path, num_gpu):
    """All layers (999) or some (8) on the Vulkan device: the same greedy text as on the CPU alone."""
    client = llamanative.Client()
    for prompt in PROMPTS:
        cpu, n_cpu = _greedy(client, str(smollm2_f32_path), prompt, 0)
        gpu, n_gpu = _greedy(client, str(smollm2_f32_path), prompt, num_gpu)
        assert n_cpu == n_gpu == 24
        assert gpu == cpu, f"{prompt!r}: Vulkan {gpu!r} != CPU {cpu!r}"


def _last_logits(path, device: str):
    import numpy as np

    with _core.Model(path, devices=[device]) as model:
        with _core.Context(model, n_ctx=64) as ctx:
            batch = _core.Batch(64)
            batch.add_sequence(model.vocab.tokenize("The quick brown fox"), 0, 0)
            ctx.decode(batch)
            return np.array(ctx.logits(-1))


def test_model_placed_on_named_device(smollm2_f32_path):
    """devices=[...] places the layers; float32 weights give the CPU's logits to within 0.1."""
    import numpy as np

    a, b = _last_logits(smollm2_f32_path, "CPU"), _last_logits(smollm2_f32_path, VULKAN[0]["name"])
    assert int(a.argmax()) == int(b.argmax())
    assert np.abs(a - b).max() < 0.1


def test_quantized_model_close_to_cpu(smollm2_path):
    """Q4_1 weights: the same top token, and logits equal up to a common shift within 0.5 (see the f32 fixture)."""
    a, b = _last_logits(smollm2_path, "CPU"), _last_logits(smollm2_path, VULKAN[0]["name"])
    assert int(a.argmax()) == int(b.argmax())
    d = b - a
    assert (d - d.mean()).std() < 0.5
