"""Every example of README.md and docs/ runs here, so a renamed argument breaks a test, not a reader.

- ```python blocks run page by page: the blocks of one page in order, in one
  namespace (like a doctest session), in a temporary directory that holds the
  test models under their usual file names, with an empty model store of its
  own (``LLAMANATIVE_MODELS``). ``pull("smollm2:135m")`` and the other short
  names come from the cache the model fixtures fill, so a warm cache needs no
  network.
- A block that cannot run here follows an HTML comment ``<!-- not run: why -->``.
  :data:`NOT_RUN` lists each one with its reason; the pages and the list must agree.
- Shell blocks are not run, but each ``llamanative`` command they show must exist
  with the options shown (its ``--help``), and each ``python benchmarks/...`` or
  ``scripts/...`` they run must exist with the options shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import shlex
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

import llamanative
from llamanative.ai import Registry
from llamanative.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]

# (page, reason) of every block that is not run: only what cannot run in the test suite.
NOT_RUN = [
    ("docs/models.md", "pulls from Hugging Face and the Ollama registry over the network"),
    ("docs/client.md", "downloads a reranker from Hugging Face; tests/test_rerank.py runs the test one"),
    ("README.md", "downloads a reranker from Hugging Face; tests/test_rerank.py runs the test one"),
    ("docs/models.md", "pushes to a registry over the network"),
    ("docs/ai.md", "needs the genkit extra, which the test suite runs in its own environment"),
    ("docs/scaling.md", "needs the ray extra, which the test suite runs in its own environment (tests/test_ray.py)"),
    ("docs/scaling.md", "needs the ray extra, which the test suite runs in its own environment (tests/test_ray.py)"),
    ("docs/scaling.md", "needs the ray extra, which the test suite runs in its own environment (tests/test_ray.py)"),
    ("docs/scaling.md", "needs running RPC servers (tests/test_rpc.py starts its own)"),
    ("docs/server-openai.md", "needs a server listening on 127.0.0.1:11434"),
    ("docs/migration/from-llama-cpp-python.md", "llama-cpp-python is not a dependency of llamanative"),
    ("docs/migration/from-llama-cpp-python.md", "llama-cpp-python is not a dependency of llamanative"),
]

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_NOT_RUN = re.compile(r"^\s*<!--\s*not run:\s*(?P<reason>.*?)\s*-->\s*$")
_SHELL = {"bash", "sh", "shell", "console"}


@dataclass
class Block:
    page: str  # relative to the repository
    line: int  # of the first code line, 1-based
    lang: str
    code: str
    not_run: str | None  # the reason, for a block that is not run


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page, in order."""
    out: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    page = path.relative_to(REPO).as_posix()
    i, previous = 0, ""
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            if lines[i].strip():
                previous = lines[i]
            i += 1
            continue
        indent, fence = len(m["indent"]), m["fence"]
        lang = (m["info"].split() or [""])[0].lower()
        start, body = i + 1, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        i += 1
        skip = _NOT_RUN.match(previous)
        out.append(Block(page, start + 1, lang, "\n".join(body) + "\n", skip["reason"] if skip else None))
        previous = ""
    return out


ALL_BLOCKS = [b for p in PAGES for b in blocks(p)]
PYTHON_PAGES = sorted({b.page for b in ALL_BLOCKS if b.lang in ("python", "py") and b.not_run is None})


# The README's image example names SmolVLM's files as ggml-org publishes them; the test suite
# has no real vision model, so the test pair (a text model with SmolVLM's image tokens and a
# tiny random projector of SmolVLM's kind) stands in under those names: the example's calls
# run, its answer is not judged.
VISION_NAMES = ("SmolVLM-256M-Instruct-Q8_0.gguf", "mmproj-SmolVLM-256M-Instruct-Q8_0.gguf")
PHOTO = REPO / "vendor" / "llama.cpp" / "tools" / "mtmd" / "test-1.jpeg"
# The audio examples' Voxtral files, likewise: the audio test pair (the same text model and a tiny
# random projector of Voxtral's family, a Whisper encoder that stacks frames) stands in under those
# names, with the vendored MP3 as the clip.
AUDIO_NAMES = ("Voxtral-Mini-3B-2507-Q4_K_M.gguf", "mmproj-Voxtral-Mini-3B-2507-Q8_0.gguf")
CLIP = REPO / "vendor" / "llama.cpp" / "tools" / "mtmd" / "test-2.mp3"


@pytest.fixture
def docs_dir(
    tmp_path, monkeypatch, smollm2_path, gemma3_path, minilm_path, vision_pair, audio_pair, lora_paths, cvec_paths
):
    """A working directory with the test models under their file names, a photo, a clip, the test LoRA adapter
    and control vector (as ``scripts/make_test_lora.py .`` and ``scripts/make_test_control_vector.py .`` name
    them), and an empty store."""
    work = tmp_path / "work"
    work.mkdir()
    for model in (smollm2_path, gemma3_path, minilm_path, lora_paths[0], cvec_paths[0]):
        (work / model.name).symlink_to(model)
    for name, path in zip(VISION_NAMES, vision_pair):
        (work / name).symlink_to(path)
    for name, path in zip(AUDIO_NAMES, audio_pair):
        (work / name).symlink_to(path)
    (work / "photo.jpg").symlink_to(PHOTO)
    (work / "clip.mp3").symlink_to(CLIP)
    monkeypatch.setenv("LLAMANATIVE_MODELS", str(tmp_path / "store"))
    monkeypatch.chdir(work)
    # The module-level functions' default client opens the store it finds when first used.
    monkeypatch.setattr(llamanative, "_default_client", None)
    yield work
    if llamanative._default_client is not None:
        llamanative._default_client.close()


def _close(namespace: dict) -> None:
    """Close what the examples left open (their clients unload their models)."""
    for value in namespace.values():
        if isinstance(value, (llamanative.Client, Registry)):
            value.close()
        elif isinstance(value, llamanative.AsyncClient):
            asyncio.run(value.close())


@pytest.mark.parametrize("page", PYTHON_PAGES)
def test_page_examples(page, docs_dir):
    """The page's python blocks, in order, in one namespace."""
    namespace: dict = {"__name__": "__docs__"}
    try:
        for block in (b for b in ALL_BLOCKS if b.page == page and b.lang in ("python", "py")):
            if block.not_run is not None:
                continue
            # Padding the code with newlines makes a traceback name the page's own line.
            code = compile("\n" * (block.line - 1) + block.code, str(REPO / block.page), "exec")
            exec(code, namespace)
    finally:
        _close(namespace)


def test_not_run_examples_are_listed():
    """Each block that is not run is in NOT_RUN with its reason, and NOT_RUN names no other."""
    found = Counter((b.page, b.not_run) for b in ALL_BLOCKS if b.not_run is not None)
    assert found == Counter(NOT_RUN)


def test_every_page_has_examples_that_run():
    """The pages that teach the API show code that runs (a page of only skipped examples would hide rot)."""
    for page in ("README.md", "docs/getting-started.md", "docs/client.md", "docs/ai.md", "docs/native-core.md"):
        assert page in PYTHON_PAGES


def _commands() -> list[tuple[Block, list[str]]]:
    """Every command line of the shell blocks: its words, without a ``$`` prompt, comments or variables."""
    out = []
    for block in (b for b in ALL_BLOCKS if b.lang in _SHELL):
        lines = block.code.replace("\\\n", " ").splitlines()  # continuation lines joined
        for line in lines:
            if block.lang == "console":
                if not line.startswith("$ "):
                    continue  # output
                line = line[2:]
            words: list[str] = []
            for word in [*shlex.split(line, comments=True), "&&"]:
                if word not in ("&&", "||", "|", ";"):
                    words.append(word)
                    continue
                while words and re.match(r"^[A-Z_]+=", words[0]):  # VAR=value before the command
                    words = words[1:]
                if words:
                    out.append((block, words))
                words = []
    return out


def _help(argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        cli_main([*argv, "--help"])
    return out.getvalue()


def _options(words: list[str]) -> list[str]:
    """The ``--long``/``-s`` options among ``words`` (``--opt=value`` as ``--opt``)."""
    return [w.split("=", 1)[0] for w in words if w.startswith("-") and not re.match(r"^-\d", w)]


def test_cli_commands_shown_exist():
    """``llamanative COMMAND --opt`` in a shell block: COMMAND exists and its --help lists --opt."""
    shown = [(b, w) for b, w in _commands() if w[0] == "llamanative" or w[:3] == ["python", "-m", "llamanative"]]
    assert shown
    for block, words in shown:
        words = words[3:] if words[0] == "python" else words[1:]
        if not words or words[0].startswith("-"):
            continue
        text = _help([words[0]])
        for opt in _options(words[1:]):
            assert re.search(rf"(^|[\s,\[]){re.escape(opt)}([\s,=\]]|$)", text, re.M), (
                f"{block.page}:{block.line}: `llamanative {words[0]}` has no option {opt}"
            )


def _inline_commands() -> list[tuple[Block, list[str]]]:
    """``python benchmarks/...`` written as inline code (the README's performance table)."""
    out = []
    for path in PAGES:
        page = path.relative_to(REPO).as_posix()
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for m in re.finditer(r"`(python benchmarks/[^`]+)`", line):
                out.append((Block(page, n, "inline", m[1], None), shlex.split(m[1])))
    return out


def test_scripts_shown_exist():
    """``python benchmarks/X.py --opt`` and ``scripts/X.sh`` shown: the file exists and takes --opt."""
    for block, words in _commands() + _inline_commands():
        if words[0] == "python" and len(words) > 1 and words[1].startswith("benchmarks/"):
            script = REPO / words[1]
            assert script.is_file(), f"{block.page}:{block.line}: no {words[1]}"
            source = script.read_text()
            for opt in _options(words[2:]):
                assert f'"{opt}"' in source, f"{block.page}:{block.line}: {words[1]} has no option {opt}"
        elif words[0].startswith("scripts/"):
            assert (REPO / words[0]).is_file(), f"{block.page}:{block.line}: no {words[0]}"


def test_design_notes_named_in_the_code_exist():
    """A comment that points at a design note (``docs/design/x.md``) points at a page that exists."""
    sources = [REPO / "CMakeLists.txt"]
    for folder, patterns in (("llamanative", ("*.py", "*.pyi")), ("src", ("*.pyx", "*.pxi", "*.cpp", "*.h"))):
        for pattern in patterns:
            sources += (REPO / folder).rglob(pattern)
    named = {
        (src.relative_to(REPO).as_posix(), m[0])
        for src in sources
        for m in re.finditer(r"docs/[\w./-]+?\.md", src.read_text(encoding="utf-8", errors="replace"))
    }
    assert named, "no design note named in the code"
    missing = sorted((src, page) for src, page in named if not (REPO / page).is_file())
    assert not missing
