""".prompt files from file system objects: load_prompt_dir_from_fs / load_prompt_from_fs (Go's LoadPromptDirFromFS /
LoadPromptFromFS) over importlib.resources (a package on disk, a zipped package), zipfile.Path and fsspec file
systems (memory, zip), checked against load_prompt_dir on the same files, and one run on the local model."""

from __future__ import annotations

import importlib
import importlib.resources
import shutil
import sys
import uuid
import zipfile
from pathlib import Path

import fsspec
import pytest

from llamanative.ai import Genkit
from llamanative.ai.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError
from llamanative.ai.prompts import (
    DotPrompt,
    FileSystemLike,
    environment,
    load_prompt_dir,
    load_prompt_dir_from_fs,
    load_prompt_from_fs,
)

PROMPTS = Path(__file__).parent / "data" / "prompts"
FILES = sorted(p.relative_to(PROMPTS).as_posix() for p in PROMPTS.rglob("*.prompt"))
KEYS = ["assistant", "describe", "story", "story.short"]
INPUTS = {
    "assistant": {"question": "Why is the sky blue?"},
    "describe": {"imageUrl": "https://example.com/cat.png", "kind": "photo", "tags": ["cat", "sofa"]},
    "story": {"subject": "a lighthouse"},
    "story.short": {"subject": "a lighthouse"},
}


def rendered(registry) -> dict[str, list[dict]]:
    """Every prompt of ``registry`` rendered with its test input: the messages, as Genkit JSON."""
    out = {}
    for key in KEYS:
        name, _, variant = key.partition(".")
        p = registry.lookup_prompt(name, variant or None)
        out[key] = [m.to_dict() for m in p.render_messages(INPUTS[key])]
    return out


@pytest.fixture(scope="module")
def from_disk() -> dict[str, list[dict]]:
    """The reference: the test prompts loaded with load_prompt_dir and rendered."""
    with Genkit() as registry:
        load_prompt_dir(registry, PROMPTS)
        return rendered(registry)


def make_zip(path: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for rel in FILES:
            zf.write(PROMPTS / rel, prefix + rel)
    return path


def check_loaded(registry, loaded, from_disk, where: str) -> None:
    assert sorted(p.key for p in loaded) == KEYS
    assert all(isinstance(p, DotPrompt) for p in loaded)
    assert environment(registry).has_partial("persona")  # _persona.prompt
    assert rendered(registry) == from_disk  # the same prompts as from disk, partial and defaults included
    assert all(where in p.source_path for p in loaded)
    assert registry.lookup_prompt("assistant").source_path.endswith("chat/assistant.prompt")  # a subdirectory


# -- importlib.resources ----------------------------------------------------------------------------------
def test_a_package_s_resources(tmp_path, monkeypatch, from_disk):
    pkg = f"promptpkg_{uuid.uuid4().hex[:8]}"
    (tmp_path / pkg).mkdir()
    (tmp_path / pkg / "__init__.py").write_text("")
    shutil.copytree(PROMPTS, tmp_path / pkg / "prompts")
    monkeypatch.syspath_prepend(str(tmp_path))
    files = importlib.resources.files(importlib.import_module(pkg))
    with Genkit() as registry:
        loaded = load_prompt_dir_from_fs(registry, files, "prompts")
        check_loaded(registry, loaded, from_disk, pkg)
    with Genkit() as registry:  # the package's own folder as the root, a namespace
        loaded = load_prompt_dir_from_fs(registry, files.joinpath("prompts"), namespace="pkg")
        assert sorted(p.key for p in loaded) == [f"pkg/{k}" for k in KEYS]


def test_a_zipped_package_s_resources(tmp_path, monkeypatch, from_disk):
    pkg = f"zippedpkg_{uuid.uuid4().hex[:8]}"
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"{pkg}/__init__.py", "")
        for rel in FILES:
            zf.write(PROMPTS / rel, f"{pkg}/prompts/{rel}")
    monkeypatch.syspath_prepend(str(archive))
    files = importlib.resources.files(importlib.import_module(pkg))
    assert not isinstance(files, Path)  # a Traversable of the zip, not a path on disk
    try:
        with Genkit() as registry:
            loaded = load_prompt_dir_from_fs(registry, files, "prompts")
            check_loaded(registry, loaded, from_disk, "bundle.zip")
            one = load_prompt_from_fs(registry, files, "prompts/chat", "assistant.prompt", namespace="one")
            assert one.key == "one/assistant"
    finally:
        sys.modules.pop(pkg, None)


def test_zipfile_path(tmp_path, from_disk):
    archive = make_zip(tmp_path / "prompts.zip", prefix="bundle/")
    root = zipfile.Path(archive)
    with Genkit() as registry:
        loaded = load_prompt_dir_from_fs(registry, root, "bundle")
        check_loaded(registry, loaded, from_disk, "prompts.zip")
        short = load_prompt_from_fs(registry, root, "bundle", "story.short.prompt", namespace="z")
        assert (short.key, short.name, short.variant) == ("z/story.short", "z/story", "short")


def test_a_local_path_or_pathlib_path(from_disk):
    for fs in (str(PROMPTS), PROMPTS, PROMPTS.parent):
        with Genkit() as registry:
            loaded = load_prompt_dir_from_fs(registry, fs, "" if fs != PROMPTS.parent else "prompts")
            check_loaded(registry, loaded, from_disk, str(PROMPTS))


# -- fsspec ---------------------------------------------------------------------------------------------------
@pytest.fixture
def memory_fs():
    """An fsspec memory file system holding the test prompts under /<unique>/prompts."""
    fs = fsspec.filesystem("memory")
    root = f"/t{uuid.uuid4().hex[:8]}"
    for rel in FILES:
        fs.pipe_file(f"{root}/prompts/{rel}", (PROMPTS / rel).read_bytes())
    yield fs, root
    fs.rm(root, recursive=True)


def test_an_fsspec_memory_file_system(memory_fs, from_disk):
    fs, root = memory_fs
    assert isinstance(fs, FileSystemLike)
    with Genkit() as registry:
        loaded = load_prompt_dir_from_fs(registry, fs, f"{root}/prompts")
        check_loaded(registry, loaded, from_disk, root)
        story = load_prompt_from_fs(registry, fs, f"{root}/prompts", "story.prompt", namespace="m")
        assert story.key == "m/story" and story.source_path == f"{root}/prompts/story.prompt"
        assert (
            story.render({"subject": "a cat"}).to_dict()
            == registry.lookup_prompt("story").render({"subject": "a cat"}).to_dict()
        )


def test_an_fsspec_zip_file_system(tmp_path, from_disk):
    fs = fsspec.filesystem("zip", fo=str(make_zip(tmp_path / "p.zip")))
    with Genkit() as registry:
        loaded = load_prompt_dir_from_fs(registry, fs)  # "" is the root of the file system
        check_loaded(registry, loaded, from_disk, "")
        assert registry.lookup_prompt("story").source_path == "story.prompt"


# -- errors -----------------------------------------------------------------------------------------------------
def test_errors(tmp_path, memory_fs):
    fs, root = memory_fs
    archive = zipfile.Path(make_zip(tmp_path / "p.zip"))
    with Genkit() as registry:
        for where, directory in ((fs, f"{root}/absent"), (archive, "absent"), (tmp_path, "absent")):
            with pytest.raises(NotFoundError, match="absent"):
                load_prompt_dir_from_fs(registry, where, directory)
        with pytest.raises(NotFoundError):  # a file is not a directory
            load_prompt_dir_from_fs(registry, fs, f"{root}/prompts/story.prompt")
        with pytest.raises(InvalidArgumentError, match="Traversable"):
            load_prompt_dir_from_fs(registry, 42)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="not a .prompt file"):
            load_prompt_from_fs(registry, archive, "", "notes.txt")
        with pytest.raises(InvalidArgumentError, match="file name"):
            load_prompt_from_fs(registry, archive, "", "chat/assistant.prompt")
        for where, directory in ((fs, f"{root}/prompts"), (archive, ""), (tmp_path, "")):
            with pytest.raises(NotFoundError, match="cannot read"):
                load_prompt_from_fs(registry, where, directory, "missing.prompt")
        fs.pipe_file(f"{root}/bad/latin1.prompt", "caf\xe9".encode("latin-1"))
        with pytest.raises(InvalidArgumentError, match="not UTF-8"):
            load_prompt_dir_from_fs(registry, fs, f"{root}/bad")
        fs.pipe_file(f"{root}/frontmatter/broken.prompt", b"---\ninput: [\n---\nHi")
        with pytest.raises(InvalidArgumentError):
            load_prompt_dir_from_fs(registry, fs, f"{root}/frontmatter")
        load_prompt_dir_from_fs(registry, archive)
        with pytest.raises(AlreadyExistsError):
            load_prompt_dir_from_fs(registry, fs, f"{root}/prompts")


# -- a loaded prompt runs ---------------------------------------------------------------------------------------
def test_a_prompt_from_a_zip_runs_on_the_local_model(tmp_path, client):
    archive = tmp_path / "run.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(
            "prompts/capital.prompt",
            "---\nmodel: llamanative/smol\nconfig:\n  temperature: 0\n  maxOutputTokens: 16\n"
            "input:\n  schema:\n    country: string\n---\nWhat is the capital of {{country}}? Answer in one word.",
        )
    with Genkit(client=client) as registry:
        (capital,) = load_prompt_dir_from_fs(registry, zipfile.Path(archive), "prompts")
        resp = capital.execute({"country": "France"})
        assert resp.text().strip() and resp.finish_reason in ("stop", "length")
        assert resp.request.messages[-1].content[0].text == "What is the capital of France? Answer in one word."
        assert resp.usage.input_tokens > 0 and resp.usage.output_tokens > 0
