"""ollama-python's own example programs about images, run unchanged with ``import llamanative as ollama``.

The programs are in tests/data/ollama_python_examples (copied byte for byte;
its README says from where). Each runs in a subprocess where the module
``ollama`` is ``llamanative``, against a store that holds the test vision
pair of scripts/make_test_projector.py under the model name the example asks
for (``gemma3``); the test gives only the inputs, the image path the programs
read with ``input()``. The pair's projector is random, so an answer means
nothing: a run passes when the program ends normally, and the structured
example's own ``model_validate_json`` is what proves that its answer is valid
JSON for its schema.

The stored model carries ``repeat_penalty 1.3``: without it the greedy text
model repeats one object of the schema's list until the context is full, and
the JSON never ends (a real vision model does not need it). ``num_predict``
bounds a run that goes wrong anyway, so it fails quickly.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from llamanative import Client

EXAMPLES = REPO / "tests" / "data" / "ollama_python_examples"
PHOTO = REPO / "vendor" / "llama.cpp" / "tools" / "mtmd" / "test-1.jpeg"
# What `import llamanative as ollama` means for a program that says `from ollama import chat`.
LAUNCH = (
    "import runpy, sys, llamanative; sys.modules['ollama'] = llamanative; "
    "runpy.run_path(sys.argv[1], run_name='__main__')"
)


@pytest.fixture(scope="module")
def store(tmp_path_factory, vision_pair) -> Path:
    model, projector = vision_pair
    root = tmp_path_factory.mktemp("examples-store")
    with Client(models_dir=str(root)) as c:
        c.create(
            "gemma3",
            from_=str(model),
            projector=str(projector),
            parameters={"repeat_penalty": 1.3, "num_predict": 1024, "num_ctx": 2048},
        )
    return root


def run_example(name: str, store: Path, cwd: Path, stdin: str) -> subprocess.CompletedProcess:
    source = EXAMPLES / name
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLAMANATIVE_MODELS")}
    env["LLAMANATIVE_MODELS"] = str(store)
    proc = subprocess.run(
        [sys.executable, "-c", LAUNCH, str(source)],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
    )
    assert proc.returncode == 0, f"{name} exited {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc


def test_the_examples_are_ollama_pythons_and_use_ollama():
    for name in ("multimodal-chat.py", "structured-outputs-image.py"):
        text = (EXAMPLES / name).read_text()
        assert "from ollama import chat" in text and "llamanative" not in text  # unchanged: no adaptation inside


def test_multimodal_chat(store, tmp_path):
    """A chat about an image given as a path (the path typed at its prompt)."""
    out = run_example("multimodal-chat.py", store, tmp_path, f"{PHOTO}\n").stdout
    prompt = "Please enter the path to the image: "
    assert out.startswith(prompt)
    assert out[len(prompt) :].strip(), "no answer printed"


def test_multimodal_chat_relative_path(store, tmp_path):
    (tmp_path / "photo.jpeg").write_bytes(PHOTO.read_bytes())
    out = run_example("multimodal-chat.py", store, tmp_path, "photo.jpeg\n").stdout
    assert out.split(": ", 1)[1].strip()


def test_structured_outputs_image(store, tmp_path):
    """Structured output about an image: the program parses the answer with its own pydantic schema."""
    out = run_example("structured-outputs-image.py", store, tmp_path, f"{PHOTO}\n").stdout
    prompt = "Enter the path to your image: "
    assert out.startswith(prompt)
    printed = out[len(prompt) :]
    # print(image_analysis): the validated ImageDescription's fields
    for field in ("summary=", "objects=", "scene=", "colors=", "time_of_day=", "setting="):
        assert field in printed, printed
