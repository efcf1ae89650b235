"""Images on the command line: paths in ``run``'s prompt and ``/image`` in the interactive chat.

``run`` is driven in process through :func:`llamanative.cli.main` with the
output captured; the chat on a pseudo-terminal, as a user types it. The model
is the test pair of scripts/make_test_projector.py (SmolLM2 with a tiny random
projector): its answers mean nothing, so what is checked is that the image
reached the model — the ``Added image`` line and the image's tokens in the
prompt count that ``--verbose`` prints (the photo is 5 tiles of 16 tokens) —
and the errors.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
from conftest import REPO
from test_cli import Env, Pty

from llamanative import Client
from llamanative.cli import main

PHOTO = REPO / "vendor" / "llama.cpp" / "tools" / "mtmd" / "test-1.jpeg"
IMAGE_TOKENS = 80  # test-1.jpeg through the test projector: 5 tiles of 16 tokens (tests/test_test_projector.py)
# Short answers, a small context, and the model unloaded after each one, so that every run evaluates its whole
# prompt (a loaded model would reuse the image's cached cells and count only the new text).
FAST = ["--verbose", "--keepalive", "0", "-p", "num_predict", "2", "-p", "num_ctx", "1024", "-p", "num_thread", "2"]


@pytest.fixture(scope="module")
def store(tmp_path_factory, vision_pair, smollm2_path) -> Path:
    """A store with ``vis`` (the vision pair) and ``text-only`` (SmolLM2 without a projector)."""
    model, projector = vision_pair
    root = tmp_path_factory.mktemp("cli-images-store")
    with Client(models_dir=str(root)) as c:
        c.create("vis", from_=str(model), projector=str(projector))
        c.create("text-only", from_=str(smollm2_path))
    return root


@pytest.fixture
def cwd(tmp_path, monkeypatch, store) -> Path:
    """A working directory holding the photo under plain and awkward names, with the store in the environment."""
    for name in ("photo.jpg", "my photo.jpg", "IMG.JPEG"):
        shutil.copy(PHOTO, tmp_path / name)
    (tmp_path / "folder.png").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LLAMANATIVE_MODELS", str(store))
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal, nothing piped: the prompt is the arguments
    return tmp_path


def run(capsys, *argv: str, stdin: str | None = None) -> tuple[int, str, str]:
    """``llamanative run ...`` in this process: (exit status, stdout, stderr)."""
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)  # restored by the cwd fixture's monkeypatch
    status = main(["run", *argv])
    out = capsys.readouterr()
    return status, out.out, out.err


def prompt_count(stderr: str) -> int:
    m = re.search(r"^prompt eval count:\s+(\d+) token\(s\)$", stderr, re.M)
    assert m, stderr
    return int(m[1])


def added(stderr: str) -> list[str]:
    return re.findall(r"^Added image '(.+)'$", stderr, re.M)


def test_image_argument_is_attached(cwd, capsys):
    status, _out, err = run(capsys, "vis", "What is in this image?", *FAST)
    assert status == 0, err
    text_only = prompt_count(err)
    status, out, err = run(capsys, "vis", "What is in this image?", "./photo.jpg", *FAST)
    assert status == 0, err
    assert out.strip(), "no answer"
    assert added(err) == ["photo.jpg"]
    assert prompt_count(err) >= text_only + IMAGE_TOKENS
    # The same image as an absolute path, and one without "./" (a word of its own is a path): the same prompt.
    for path in (str(cwd / "photo.jpg"), "photo.jpg"):
        status, _out, err2 = run(capsys, "vis", "What is in this image?", path, *FAST)
        assert status == 0 and prompt_count(err2) == prompt_count(err), err2
    # Two images: both attached, in order; an upper-case extension counts.
    status, _out, err3 = run(capsys, "vis", "Compare", "./photo.jpg", "IMG.JPEG", *FAST)
    assert status == 0, err3
    assert added(err3) == ["photo.jpg", "IMG.JPEG"]


def test_image_paths_inside_the_prompt_text(cwd, capsys):
    status, _out, err = run(capsys, "vis", "What is in this image?", "./photo.jpg", *FAST)
    assert status == 0, err
    expected = prompt_count(err)
    # Ollama's forms: a path in the text, quoted with spaces, with escaped spaces, absolute; the path leaves the
    # text, so each prompt is the same "What is in this image?" with one image.
    for prompt in (
        "What is in this image? ./photo.jpg",
        "./photo.jpg What is in this image?",
        "What is in this image? './my photo.jpg'",
        'What is in this image? "./my photo.jpg"',
        r"What is in this image? ./my\ photo.jpg",
        f"What is in this image? {cwd / 'photo.jpg'}",
    ):
        status, _out, err = run(capsys, "vis", prompt, *FAST)
        assert status == 0, (prompt, err)
        assert len(added(err)) == 1, (prompt, err)
        assert prompt_count(err) == expected, (prompt, err)


def test_piped_prompt_with_an_image_argument(cwd, capsys):
    status, out, err = run(capsys, "vis", "./photo.jpg", *FAST, stdin="What is in this image?\n")
    assert status == 0, err
    assert added(err) == ["photo.jpg"] and out.strip()


def test_words_that_are_not_image_paths_stay_text(cwd, capsys):
    # No "./" inside the text, a URL, a sentence ending in a file name: text for the model, no image attached
    # (the text-only model would refuse an image).
    for words in (
        ["describe photo.jpg in one word"],
        ["what is at https://example.com/a.png"],
        ["is", "https://example.com/a.png", "big"],
        ["what is in nothere.png"],
    ):
        status, _out, err = run(capsys, "text-only", *words, *FAST)
        assert status == 0, (words, err)
        assert added(err) == [], (words, err)


@pytest.mark.parametrize(
    "words, message",
    [
        (["What is in this image?", "./nothere.jpg"], "image file not found: ./nothere.jpg"),
        (["What is in this image?", "nothere.png"], "image file not found: nothere.png"),
        (["What is in ./nothere.webp?"], "image file not found: ./nothere.webp"),
        (["Compare ./photo.jpg with /no/such/dir/x.jpeg"], "image file not found: /no/such/dir/x.jpeg"),
        (["What is in", "folder.png"], "not an image file: folder.png is a directory"),
    ],
)
def test_a_missing_image_is_an_error(cwd, capsys, words, message):
    status, out, err = run(capsys, "vis", *words, *FAST)
    assert status == 1 and out == ""
    assert err.strip().splitlines() == [f"Error: {message}"]


def test_a_model_without_a_projector_refuses_images(cwd, capsys):
    status, out, err = run(capsys, "text-only", "What is in this image?", "./photo.jpg", *FAST)
    assert status == 1
    assert err.strip().splitlines()[-1] == 'Error: "text-only" does not support vision'
    assert "Traceback" not in err


def _session_env(store: Path, tmp_path: Path) -> Env:
    variables = {k: v for k, v in os.environ.items() if not k.startswith("LLAMANATIVE_MODELS")}
    variables.update(LLAMANATIVE_MODELS=str(store), TERM="dumb", COLUMNS="200")
    return Env(tmp_path, variables)


def test_interactive_image_command_and_paths(store, tmp_path):
    shutil.copy(PHOTO, tmp_path / "photo.jpg")
    absolute = tmp_path / "photo.jpg"
    t = Pty(_session_env(store, tmp_path), "run", "vis", "-p", "num_predict", "2", "-p", "num_ctx", "2048")
    try:
        t.expect(">>> ")
        t.send("/?")
        help_text = t.expect(">>> ")
        assert "/image <path>   Attach an image to the next message" in help_text
        assert "Use ./path/to/file to include .jpg, .png, or .webp images." in help_text
        t.send("/set verbose")
        t.expect(">>> ")
        t.send("What is in this image?")
        text_only = prompt_count(t.expect(">>> "))

        t.send("/image ./nothere.png")  # reported; the session goes on, nothing attached
        assert "Error: image file not found: ./nothere.png" in t.expect(">>> ")
        t.send("/image")
        assert "Usage:\n  /image <path>" in t.expect(">>> ")
        t.send("/clear")
        t.expect(">>> ")
        t.send("/image photo.jpg")
        assert "Attached image 'photo.jpg' to the next message" in t.expect(">>> ")
        t.send("What is in this image?")
        turn = t.expect(">>> ")
        assert "Added image 'photo.jpg'" in turn
        # The system prompt and the turn's start come from the cache: what is new is the image and a few words.
        assert prompt_count(turn) >= IMAGE_TOKENS > text_only

        # The attachment went with that message only; a path typed in a message is taken too, even first on the
        # line (an absolute path is not a slash command).
        t.send("/clear")
        t.expect(">>> ")
        t.send(f"{absolute} What is in this image?")
        turn = t.expect(">>> ")
        assert "Unknown command" not in turn and f"Added image '{absolute}'" in turn
        t.send("Tell me about ./nothere.jpg")  # a missing file: reported, nothing sent
        assert "Error: image file not found: ./nothere.jpg" in t.expect(">>> ")
        t.send("/bye")
        assert t.close() == 0
    finally:
        if t.proc.poll() is None:
            t.proc.kill()


def test_interactive_text_only_model_refuses_an_image(store, tmp_path):
    shutil.copy(PHOTO, tmp_path / "photo.jpg")
    t = Pty(_session_env(store, tmp_path), "run", "text-only", "-p", "num_predict", "2")
    try:
        t.expect(">>> ")
        t.send("/image photo.jpg")
        t.expect(">>> ")
        t.send("What is in this image?")
        assert 'Error: "text-only" does not support vision' in t.expect(">>> ")
        t.send("Say hi.")  # the session goes on, without the image
        assert "Error" not in t.expect(">>> ")
        t.send("/bye")
        assert t.close() == 0
    finally:
        if t.proc.poll() is None:
            t.proc.kill()
