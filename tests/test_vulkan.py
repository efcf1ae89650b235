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

PROMPTS = ["The capital of France is", "def fibonacci(n):", "Once upon a time, in a small village,"]


def _greedy(client: llamanative.Client, model: str, prompt: str, num_gpu: int) -> tuple[str, int]:
    r = client.generate(model=model, prompt=prompt, raw=True,
                        options={"temperature": 0, "num_predict": 32, "num_gpu": num_gpu, "seed": 0})
    return r.response, r.eval_count


def test_vulkan_device_is_listed():
    dev = VULKAN[0]
    assert dev["name"].startswith("Vulkan") and dev["memory_total"] > 0
    backend = next(b for b in llamanative.backends() if b["name"] == "Vulkan")
    assert backend["path"] and backend["n_devices"] >= 1


@pytest.mark.parametrize("num_gpu", [999, 8])
def test_offloaded_greedy_equals_cpu(smollm2_path, num_gpu):
    """All layers (999) or some (8) on the Vulkan device: the same greedy text as on the CPU alone."""
    client = llamanative.Client()
    for prompt in PROMPTS:
        cpu, n_cpu = _greedy(client, str(smollm2_path), prompt, 0)
        gpu, n_gpu = _greedy(client, str(smollm2_path), prompt, num_gpu)
        assert n_cpu == n_gpu == 32
        assert gpu == cpu, f"{prompt!r}: Vulkan {gpu!r} != CPU {cpu!r}"


def test_model_placed_on_named_device(smollm2_path):
    """devices=[...] places the layers; the last logits agree with the CPU's to fp16 accuracy."""
    import numpy as np

    logits = {}
    for device in ("CPU", VULKAN[0]["name"]):
        with _core.Model(smollm2_path, devices=[device]) as model:
            with _core.Context(model, n_ctx=64) as ctx:
                batch = _core.Batch(64)
                batch.add_sequence(model.vocab.tokenize("The quick brown fox"), 0, 0)
                ctx.decode(batch)
                logits[device] = np.array(ctx.logits(-1))
    a, b = logits["CPU"], logits[VULKAN[0]["name"]]
    assert int(a.argmax()) == int(b.argmax())
    assert np.abs(a - b).max() < 0.5
