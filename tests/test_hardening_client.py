"""Misuse of the client API fails loudly, and the package runs where its platforms say it does.

- A misspelled keyword (``Client(hots=...)``, ``chat(..., optoins=...)``) is a ``TypeError``, as with
  ollama-python, not a request run with the defaults; the keywords ollama-python and httpx take are
  accepted (and mean nothing in process).
- ``stream`` is typed by overloads: a type checker sees ``ChatResponse`` or ``Iterator[ChatResponse]``.
- ollama-python's module paths (``ollama._types``, ``ollama._client``, ``ollama._utils``) exist.
- The store's file locks work without ``fcntl`` at import time (Windows has none).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import httpx
import pytest
from test_client import ask

import llamanative
from llamanative import AsyncClient, Client, ProgressResponse
from llamanative.store import filelock

REPO = Path(__file__).resolve().parents[1]
# Subprocesses start here, not in the checkout: there, the checkout's llamanative (without its
# compiled extension) would shadow the installed one.
NEUTRAL_DIR = Path(__file__).resolve().parent
GREEDY = {"temperature": 0, "num_predict": 4}


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=NEUTRAL_DIR,
        env={**os.environ, **env},
    )


# -- item 5: keywords -------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [Client, AsyncClient])
def test_a_misspelled_client_keyword_is_a_type_error(cls, tmp_path):
    with pytest.raises(TypeError, match="'hots'"):
        cls(hots="http://localhost:11434", models_dir=tmp_path)


@pytest.mark.parametrize("cls", [Client, AsyncClient])
def test_the_client_takes_ollama_python_and_httpx_keywords(cls, model_store):
    httpx_keywords = {
        name
        for name, p in inspect.signature(httpx.Client.__init__).parameters.items()
        if name != "self" and p.kind is p.KEYWORD_ONLY
    }
    assert {"verify", "proxy", "transport", "auth"} <= httpx_keywords
    c = cls(
        "http://localhost:11434",
        follow_redirects=False,
        timeout=5.0,
        headers={"x-test": "1"},
        models_dir=model_store,
        **dict.fromkeys(httpx_keywords - {"follow_redirects", "timeout", "headers"}),
    )
    if cls is Client:
        with c:
            assert {m.model for m in c.list().models} >= {"smol:latest", "gemma:latest", "mini:latest"}
    else:

        async def main():
            try:
                return await c.list()
            finally:
                await c.close()

        assert {m.model for m in asyncio.run(main()).models} >= {"smol:latest", "gemma:latest", "mini:latest"}


@pytest.mark.parametrize(
    ("call", "word"),
    [
        (lambda c: c.chat("smol", ask("Hi"), optoins=GREEDY), "optoins"),
        (lambda c: c.chat("smol", ask("Hi"), strem=True), "strem"),
        (lambda c: c.generate("smol", "Hi", sytem="Be brief."), "sytem"),
        (lambda c: c.generate("smol", "Hi", keepalive=0), "keepalive"),
        (lambda c: c.embed("mini", "a cat", dimension=8), "dimension"),
        (lambda c: c.embeddings("mini", prmpt="a cat"), "prmpt"),
        (lambda c: c.create("smol-copy", from_model="smol"), "from_model"),
        (lambda c: c.pull("smol", insecur=True), "insecur"),
        (lambda c: c.show("smol", verbos=True), "verbos"),
    ],
)
def test_a_misspelled_method_keyword_is_a_type_error(client, call, word):
    with pytest.raises(TypeError, match=repr(word)):
        call(client)
    assert "smol-copy:latest" not in {m.model for m in client.list().models}


def test_a_misspelled_async_method_keyword_is_a_type_error(model_store):
    async def main():
        async with AsyncClient(models_dir=model_store) as c:
            for call, word in [
                (lambda: c.chat("smol", ask("Hi"), optoins=GREEDY), "optoins"),
                (lambda: c.generate("smol", "Hi", sytem="x"), "sytem"),
                (lambda: c.embed("mini", "a cat", dimension=8), "dimension"),
                (lambda: c.create("x", from_model="smol"), "from_model"),
                (lambda: c.pull("smol", insecur=True), "insecur"),
            ]:
                with pytest.raises(TypeError, match=repr(word)):
                    await call()

    asyncio.run(main())


def test_the_documented_extension_keywords_are_taken(client):
    r = client.chat("smol", ask("Hi"), truncate=True, shift=True, tool_choice="auto", _debug_render_only=True)
    assert "Hi" in r.debug_info.rendered_template
    g = client.generate("smol", "Hi", truncate=True, shift=False, options=GREEDY)
    assert g.done


def test_a_streamed_create_yields_progress(tmp_path, smollm2_path):
    with Client(models_dir=tmp_path) as c:
        updates = list(c.create("one", from_=str(smollm2_path), stream=True))
        assert [type(u) for u in updates] == [ProgressResponse]
        assert updates[-1].status == "success"
        assert c.create("two", from_="one").status == "success"
        assert {m.model for m in c.list().models} == {"one:latest", "two:latest"}

        async def main():
            async with AsyncClient(models_dir=tmp_path) as ac:
                return [u async for u in await ac.create("three", from_="one", stream=True)]

        assert [u.status for u in asyncio.run(main())] == ["success"]
        assert "three:latest" in {m.model for m in c.list().models}


TYPED = """
from collections.abc import AsyncIterator, Iterator

from typing_extensions import assert_type

from llamanative import AsyncClient, ChatResponse, Client, GenerateResponse, ProgressResponse, StatusResponse


def sync(c: Client, flag: bool) -> None:
    assert_type(c.chat("m", []), ChatResponse)
    assert_type(c.chat("m", [], stream=False), ChatResponse)
    assert_type(c.chat("m", [], stream=True), Iterator[ChatResponse])
    assert_type(c.chat("m", [], stream=flag), ChatResponse | Iterator[ChatResponse])
    assert_type(c.generate("m", "p"), GenerateResponse)
    assert_type(c.generate("m", "p", stream=True), Iterator[GenerateResponse])
    assert_type(c.pull("m"), ProgressResponse)
    assert_type(c.pull("m", stream=True), Iterator[ProgressResponse])
    assert_type(c.create("m", from_="x"), StatusResponse)
    assert_type(c.create("m", from_="x", stream=True), Iterator[ProgressResponse])


async def asynchronous(c: AsyncClient) -> None:
    assert_type(await c.chat("m", []), ChatResponse)
    assert_type(await c.chat("m", [], stream=True), AsyncIterator[ChatResponse])
    assert_type(await c.generate("m", "p"), GenerateResponse)
    assert_type(await c.generate("m", "p", stream=True), AsyncIterator[GenerateResponse])
    assert_type(await c.pull("m", stream=True), AsyncIterator[ProgressResponse])
    assert_type(await c.create("m", from_="x", stream=True), AsyncIterator[ProgressResponse])
"""


def test_stream_is_typed_by_overloads(tmp_path):
    pytest.importorskip("mypy", reason="mypy is in the lint extra")
    src = tmp_path / "typed_calls.py"
    src.write_text(TYPED)
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--config-file", str(REPO / "pyproject.toml"), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stdout + out.stderr


# -- item 5: ollama-python's module paths -----------------------------------------------------------------
# ollama-python 0.6's ollama._types names that have a counterpart here (not its web search, web fetch and
# System One types, nor its private base classes).
OLLAMA_TYPES = """
ChatRequest ChatResponse CopyRequest CreateRequest DeleteRequest EmbedRequest EmbedResponse EmbeddingsRequest
EmbeddingsResponse GenerateRequest GenerateResponse Image ListResponse Logprob Message ModelDetails Options
ProcessResponse ProgressResponse PullRequest PushRequest RequestError ResponseError ShowRequest ShowResponse
StatusResponse SubscriptableBaseModel TokenLogprob Tool
""".split()


def test_ollama_python_module_paths():
    from llamanative import _client, _types, _utils

    for name in OLLAMA_TYPES:
        assert getattr(_types, name) is getattr(
            llamanative.types, name.replace("EmbeddingsRequest", "EmbeddingRequest")
        )
    assert _types.Message.ToolCall is llamanative.types.ToolCall
    assert _types.Tool.Function is llamanative.types.ToolFunction
    assert _types.ListResponse.Model is llamanative.types.ListModelResponse
    assert _types.ProcessResponse.Model is llamanative.types.ProcessModelResponse
    assert _client.Client is Client and _client.AsyncClient is AsyncClient

    def add(a: int, b: int) -> int:
        """Add two numbers.

        Args:
            a: the first
            b: the second
        """
        return a + b

    tool = _utils.convert_function_to_tool(add)
    assert tool.function.name == "add" and set(tool.function.parameters.properties) == {"a", "b"}


def test_the_module_functions_work_after_importing_ollama_python_paths(model_store):
    # ``import llamanative._client`` binds the submodule as an attribute of the package: the default client's
    # accessor must not be named like it.
    out = run_python(
        """
        import llamanative as ollama
        from llamanative._client import Client
        from llamanative._types import ChatResponse, Message, ResponseError, Tool

        r = ollama.chat("smol", [{"role": "user", "content": "Hi"}], options={"temperature": 0, "num_predict": 3})
        assert isinstance(r, ChatResponse), type(r)
        print(sorted(m.model for m in ollama.list().models))
        """,
        LLAMANATIVE_MODELS=str(model_store),
    )
    assert out.returncode == 0, out.stderr
    assert "smol:latest" in out.stdout


# -- item 8: a portable file lock ----------------------------------------------------------------------------
def test_the_package_imports_without_fcntl(tmp_path):
    out = run_python(
        f"""
        import sys
        sys.modules["fcntl"] = None  # as on Windows: `import fcntl` raises ImportError
        import llamanative
        import llamanative.store.download, llamanative.store.pull, llamanative.store.store
        from llamanative.store.store import ModelStore
        try:
            ModelStore({str(tmp_path)!r}).put_blob(__import__("pathlib").Path({__file__!r}))
        except ImportError as exc:
            print("lock needs", exc.name)
        """
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "lock needs fcntl"  # the platform's module is imported when a lock is taken


LOCKER = """
import os, sys
from llamanative.store import filelock
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
print(filelock.try_lock(fd))
"""


def other_process_can_lock(path: Path) -> bool:
    out = subprocess.run(
        [sys.executable, "-c", LOCKER, str(path)], capture_output=True, text=True, timeout=120, cwd=NEUTRAL_DIR
    )
    assert out.returncode == 0, out.stderr
    return {"True": True, "False": False}[out.stdout.strip()]


def test_the_file_lock_excludes_other_processes_until_released(tmp_path):
    path = tmp_path / "x.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        assert filelock.try_lock(fd)
        assert not other_process_can_lock(path)
        filelock.unlock(fd)
        assert other_process_can_lock(path)
        filelock.lock(fd)
        assert not other_process_can_lock(path)
    finally:
        os.close(fd)
    assert other_process_can_lock(path)  # closing releases it


def test_the_file_lock_excludes_another_open_file_in_this_process(tmp_path):
    path = tmp_path / "x.lock"
    first, second = os.open(path, os.O_RDWR | os.O_CREAT), os.open(path, os.O_RDWR)
    order: list[str] = []
    try:
        filelock.lock(first)
        assert not filelock.try_lock(second)
        waiter = threading.Thread(target=lambda: (filelock.lock(second), order.append("second locked")))
        waiter.start()
        order.append("first unlocks")
        filelock.unlock(first)
        waiter.join(timeout=60)
        assert not waiter.is_alive()
        assert order == ["first unlocks", "second locked"]
        assert not filelock.try_lock(first)
        filelock.unlock(second)
        assert filelock.try_lock(first)
    finally:
        os.close(first)
        os.close(second)


def test_store_writes_from_two_processes_are_serialised(tmp_path, smollm2_path):
    # Two processes create models in one store at once: both manifests land, each complete.
    code = """
    import sys
    from llamanative import Client
    with Client(models_dir=sys.argv[1]) as c:
        for i in range(5):
            c.create(f"{sys.argv[2]}{i}", from_=sys.argv[3])
    """
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code), str(tmp_path), prefix, str(smollm2_path)], cwd=NEUTRAL_DIR
        )
        for prefix in ("a", "b")
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    with Client(models_dir=tmp_path) as c:
        assert {m.model for m in c.list().models} == {f"{p}{i}:latest" for p in "ab" for i in range(5)}


def test_a_stored_model_whose_file_is_damaged_is_listed_and_only_using_it_fails(tmp_path, smollm2_path, minilm_path):
    """``list`` reads every stored model's header: one unreadable file must not fail the whole listing."""
    copy = tmp_path / "copy.gguf"
    copy.write_bytes(minilm_path.read_bytes())
    with Client(models_dir=str(tmp_path / "store")) as c:
        c.create("damaged", from_=str(copy))
        c.create("intact", from_=str(smollm2_path))
        copy.write_bytes(b"not a gguf any more")  # in place: the store's blob is this file (a hard link)
        listed = {m.model: m for m in c.list().models}
        assert set(listed) == {"damaged:latest", "intact:latest"}
        assert listed["intact:latest"].details.family == "llama"
        assert listed["damaged:latest"].details.family is None
        with pytest.raises(llamanative.ResponseError):
            c.embed("damaged", "Hi")
        assert c.generate("intact", "Hi", options={"num_predict": 1}).done
