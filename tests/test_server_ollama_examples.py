"""ollama-python's own example programs, unchanged, with the real ``ollama`` package against the server.

The programs are in tests/data/ollama_python_examples, copied byte for byte
(its README says from where). Each test copies one into pytest's tmp_path and
runs it there as a subprocess, ``python <example>.py``, with only
``OLLAMA_HOST`` pointing at a server on 127.0.0.1 (Uvicorn in a thread,
``tests/http_server.py``, over an AsyncClient on a store of its own): the
program talks to it as it talks to Ollama.

The examples ask for models by the names of Ollama's library. The store holds
the small test models under those names, as an Ollama user gets them: pulled
(``gemma3`` from a loopback registry), created from a GGUF with a few
``PARAMETER`` lines, and copied under the other names (``ollama cp``); see
:data:`STORED` and :data:`ALIASES`. The text models are greedy (``temperature 0``), so what an
example prints is compared, as far as it is the model's, with what an
in-process :class:`llamanative.Client` on the same store answers to the same
request: the test checks the wire and the program's view of it, not the
model's wisdom. Where the program itself adds randomness (cities or
temperatures drawn by ``random``), the output's structure is checked.

Examples that cannot run here are in :data:`NOT_RUN` with the reason, as skips;
every ``*.py`` of the folder is either run by a test here or listed there.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gguf
import pytest

ollama = pytest.importorskip("ollama")
pytest.importorskip("starlette")

from conftest import REPO  # noqa: E402
from gguf_edit import with_fim_tokens  # noqa: E402
from http_server import running  # noqa: E402
from ollama._utils import convert_function_to_tool  # noqa: E402
from test_pull import MODEL, PARAMS, Published, Server, publish  # noqa: E402

from llamanative import AsyncClient, Client  # noqa: E402
from llamanative.server import create_app  # noqa: E402

EXAMPLES = REPO / "tests" / "data" / "ollama_python_examples"
PHOTO = REPO / "vendor" / "llama.cpp" / "tools" / "mtmd" / "test-1.jpeg"
PROJECTOR = "application/vnd.ollama.image.projector"
EXAMPLE_TIMEOUT_S = 300

NOT_RUN: dict[str, str] = {
    "generate-image.py": "image generation (x/z-image-turbo, experimental in Ollama and macOS only): llamanative "
    "generates text, not images",
    "multimodal-generate.py": "downloads an xkcd comic from xkcd.com before it asks the model: needs the network",
    "web-search.py": "web_search and web_fetch are ollama.com's cloud API (an OLLAMA_API_KEY and the network), "
    "not a route of a local server",
    "web-search-gpt-oss.py": "ollama.com's cloud web_search and web_fetch (an OLLAMA_API_KEY and the network), "
    "through web_search_gpt_oss_helper.py (not vendored: this program is its only user)",
    "web-search-mcp.py": "an MCP stdio server for ollama.com's cloud web_search and web_fetch (an OLLAMA_API_KEY, "
    "the network and the mcp package); it serves an MCP client on stdin and does not end by itself",
}
"""The examples that cannot run against a local server, and why."""

STORED: dict[str, str] = {
    "gemma3": "the test vision pair (SmolLM2 with SmolVLM's image tokens and a tiny random Idefics3 projector), "
    "published as library/gemma3 on a loopback registry and pulled from it",
    "smollm2": "SmolLM2-135M-Instruct (its template has no tool syntax: tools take the generic, grammar-enforced form)",
    "smollm2-qwen3-style": "SmolLM2 with a Qwen3-style template (tools and thinking)",
    "smollm2-fim": "SmolLM2 whose vocabulary names three of its unused special tokens (<jupyter_start>, "
    "<jupyter_text>, <jupyter_code>) as its fill-in-the-middle tokens",
    "all-minilm": "the MiniLM embedding model",
}
"""The test models in the store, by the name they are pulled or created as."""

ALIASES: dict[str, str] = {
    "llama3.1": "smollm2",
    "llama3.1:8b": "smollm2",
    "qwen3": "smollm2-qwen3-style",
    "deepseek-r1": "smollm2-qwen3-style",
    "gpt-oss:20b": "smollm2-qwen3-style",
    "llama3.2": "all-minilm",  # embed.py asks llama3.2 for embeddings
    "codellama:7b-code": "smollm2-fim",
}
"""The other model names the examples use, each a copy (``ollama cp``) of a stored model."""

# PARAMETER lines of the created models: greedy, bounded. The vision pair's text model repeats itself without a
# repeat penalty until its context is full (its image embeddings are random; see test_ollama_python_examples.py).
TEXT = {"temperature": 0, "num_predict": 512, "num_ctx": 4096}
THINKING = {**TEXT, "num_predict": 256}  # the stand-in thinks until num_predict: a shorter bound
VISION = {"temperature": 0, "repeat_penalty": 1.3, "num_predict": 1024, "num_ctx": 4096}
FIM_TOKENS = (11, 12, 13)  # SmolLM2's <jupyter_start>, <jupyter_text>, <jupyter_code>

SKY = [{"role": "user", "content": "Why is the sky blue?"}]
SUM = [{"role": "user", "content": "What is 10 + 23?"}]


# -- the store, the registry, the server ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def registry(vision_pair) -> Iterator[tuple[Server, Published]]:
    """A loopback Ollama registry serving ``library/gemma3:latest``: the vision pair and its parameters."""
    model, projector = vision_pair
    server = Server()
    try:
        layers = [(MODEL, model), (PROJECTOR, projector), (PARAMS, json.dumps(VISION).encode())]
        yield server, publish(server, "library/gemma3", "latest", layers)
    finally:
        server.close()


@pytest.fixture(scope="module")
def store(registry, tmp_path_factory, smollm2_path, minilm_path, qwen3_style_path) -> Iterator[Path]:
    """The store the server runs on: :data:`STORED` and :data:`ALIASES`. The registry variable stays set
    while the module runs: the pull examples pull gemma3 again."""
    root = tmp_path_factory.mktemp("examples-store")
    tokens = gguf.GGUFReader(smollm2_path).get_field("tokenizer.ggml.tokens").contents()
    assert [tokens[i] for i in FIM_TOKENS] == ["<jupyter_start>", "<jupyter_text>", "<jupyter_code>"]
    fim = with_fim_tokens(smollm2_path, tmp_path_factory.mktemp("fim") / "smollm2-fim.gguf", *FIM_TOKENS)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLAMANATIVE_REGISTRY", registry[0].url)
        mp.delenv("LLAMANATIVE_REGISTRY_TOKEN", raising=False)
        with Client(models_dir=root) as c:
            assert c.pull("gemma3").status == "success"
            c.create("smollm2", from_=str(smollm2_path), parameters=TEXT)
            c.create("smollm2-qwen3-style", from_=str(qwen3_style_path), parameters=THINKING)
            c.create("smollm2-fim", from_=str(fim), parameters=TEXT)
            c.create("all-minilm", from_=str(minilm_path))
            for alias, stored in ALIASES.items():
                c.copy(stored, alias)
        yield root


@pytest.fixture(scope="module")
def url(store) -> Iterator[str]:
    client = AsyncClient(models_dir=store)
    try:
        with running(create_app(client)) as base:
            yield base
    finally:
        asyncio.run(client.close())


@pytest.fixture(scope="module")
def local(store) -> Iterator[Client]:
    """The in-process answers to compare with."""
    with Client(models_dir=store) as c:
        yield c


# -- running an example ----------------------------------------------------------------------------------------
def run_example(name: str, url: str, cwd: Path, stdin: str = "", rc: int = 0) -> subprocess.CompletedProcess:
    """Run the example ``name``, copied unchanged into ``cwd``, with ``OLLAMA_HOST`` = ``url``; check its exit
    status."""
    program = cwd / name
    shutil.copyfile(EXAMPLES / name, program)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "LLAMANATIVE_"))}
    env["OLLAMA_HOST"] = url
    proc = subprocess.run(
        [sys.executable, program.name],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=EXAMPLE_TIMEOUT_S,
    )
    assert proc.returncode == rc, f"{name} exited {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc


def definitions(name: str) -> dict[str, Any]:
    """The example's imports, functions, classes and literal constants, executed without its other statements
    (which call the server): the tools and schemas it sends, to build the same request in process."""
    tree = ast.parse((EXAMPLES / name).read_text(), name)

    def kept(node: ast.stmt) -> bool:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return True
        if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
            try:
                ast.literal_eval(node.value)
            except ValueError:
                return False
            return True
        return False

    # a module of its own, so that pydantic resolves the classes' annotations in it
    module = types.ModuleType("example_" + re.sub(r"\W", "_", name.removesuffix(".py")))
    sys.modules[module.__name__] = module
    try:
        exec(compile(ast.Module([n for n in tree.body if kept(n)], []), name, "exec"), module.__dict__)  # noqa: S102
    finally:
        del sys.modules[module.__name__]
    return module.__dict__


def wire_tools(tools: list[Any]) -> list[dict]:
    """Tools as the ollama package sends them: Python functions through its own converter."""
    return [convert_function_to_tool(t).model_dump(exclude_none=True) if callable(t) else t for t in tools]


def calls(message: Any) -> list[tuple[str, dict]]:
    return [(c.function.name, dict(c.function.arguments)) for c in message.tool_calls or ()]


def words(text: str) -> str:
    """``text`` with its whitespace normalised (rich's print wraps lines at the console's width)."""
    return " ".join(text.split())


# -- the inventory ---------------------------------------------------------------------------------------------
RUN = {
    "async-chat.py",
    "async-generate.py",
    "async-structured-outputs.py",
    "async-tools.py",
    "chat-logprobs.py",
    "chat-stream.py",
    "chat-with-history.py",
    "chat.py",
    "create.py",
    "embed.py",
    "fill-in-middle.py",
    "generate-logprobs.py",
    "generate-stream.py",
    "generate.py",
    "gpt-oss-tools-stream.py",
    "gpt-oss-tools.py",
    "list.py",
    "multi-tool.py",
    "multimodal-chat.py",
    "ps.py",
    "pull.py",
    "show.py",
    "structured-outputs-image.py",
    "structured-outputs.py",
    "thinking-generate.py",
    "thinking-levels.py",
    "thinking.py",
    "tools.py",
}


def test_every_example_is_run_or_listed_with_its_reason():
    programs = {p.name for p in EXAMPLES.glob("*.py")}
    assert programs == RUN | set(NOT_RUN), (programs - RUN - set(NOT_RUN), (RUN | set(NOT_RUN)) - programs)
    assert not RUN & set(NOT_RUN)
    for name in programs:  # unchanged: ollama-python's, importing ollama, naming no llamanative
        text = (EXAMPLES / name).read_text()
        assert "from ollama import" in text or "import ollama" in text, name
        assert "llamanative" not in text, name


def test_the_store_has_every_model_name_the_examples_use():
    used = set()
    for name in RUN:
        text = (EXAMPLES / name).read_text()
        used |= set(re.findall(r"""(?:model\s*=\s*|from_=|(?:chat|generate|pull|show)\(\s*)'([^']+)'""", text))
    assert used == {"gemma3", "my-assistant", *ALIASES}  # my-assistant: made by create.py


@pytest.mark.parametrize("name", sorted(NOT_RUN))
def test_not_run(name):
    text = (EXAMPLES / name).read_text()
    premise = {
        "generate-image.py": "response.image",
        "multimodal-generate.py": "https://xkcd.com",
        "web-search.py": "web_search",
        "web-search-gpt-oss.py": "from web_search_gpt_oss_helper import",
        "web-search-mcp.py": "mcp.server",
    }[name]
    assert premise in text  # the reason still holds for the vendored program
    pytest.skip(f"{name}: {NOT_RUN[name]}")


# -- chat and generate -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["chat.py", "async-chat.py"])
def test_chat(name, url, local, tmp_path):
    want = local.chat("gemma3", SKY).message.content
    assert want.strip()
    assert run_example(name, url, tmp_path).stdout == want + "\n"


def test_chat_stream(url, local, tmp_path):
    assert run_example("chat-stream.py", url, tmp_path).stdout == local.chat("gemma3", SKY).message.content


@pytest.mark.parametrize("name", ["generate.py", "async-generate.py"])
def test_generate(name, url, local, tmp_path):
    want = local.generate("gemma3", "Why is the sky blue?").response
    assert want.strip()
    assert run_example(name, url, tmp_path).stdout == want + "\n"


def test_generate_stream(url, local, tmp_path):
    want = local.generate("gemma3", "Why is the sky blue?").response
    assert run_example("generate-stream.py", url, tmp_path).stdout == want


def test_chat_with_history(url, local, tmp_path):
    """Two turns typed at its prompt, each sent with the whole history; the end of input ends the program the
    only way it ends (EOFError at ``input()``, as Ctrl-D in a terminal)."""
    history = definitions("chat-with-history.py")["messages"]
    typed = ["Hello! My name is Ada.", "What is my name?"]
    expected = ""
    for line in typed:
        answer = local.chat("gemma3", [*history, {"role": "user", "content": line}]).message.content
        history += [{"role": "user", "content": line}, {"role": "assistant", "content": answer}]
        expected += f"Chat with history: {answer}\n\n"
    proc = run_example("chat-with-history.py", url, tmp_path, "".join(f"{t}\n" for t in typed), rc=1)
    assert proc.stdout == expected + "Chat with history: "
    assert proc.stderr.rstrip().endswith("EOFError: EOF when reading a line")


@pytest.mark.parametrize(("name", "kind"), [("chat-logprobs.py", "chat"), ("generate-logprobs.py", "generate")])
def test_logprobs(name, kind, url, local, tmp_path):
    """The answer and, for each of its tokens, its log-probability and the other two of the top three."""
    if kind == "chat":
        messages = definitions(name)["messages"]
        r = local.chat("gemma3", messages, logprobs=True, top_logprobs=3)
        text, head = r.message.content, "Chat response: "
    else:
        r = local.generate("gemma3", "hi! be concise.", logprobs=True, top_logprobs=3)
        text, head = r.response, "Generate response: "
    assert r.logprobs and all(len(e.top_logprobs) == 3 for e in r.logprobs)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):  # the example's own printing of the in-process logprobs
        definitions(name)["print_logprobs"]([e.model_dump() for e in r.logprobs], f"{kind} logprobs")
    out = run_example(name, url, tmp_path).stdout
    assert out == f"{head}{text}\n{printed.getvalue()}"
    assert len(re.findall(r"^  token=", out, re.M)) == len(r.logprobs)


# -- structured outputs ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["structured-outputs.py", "async-structured-outputs.py"])
def test_structured_outputs(name, url, local, tmp_path):
    """The program validates the answer with its own pydantic schema and prints the parsed object."""
    ns = definitions(name)
    ask = [
        {
            "role": "user",
            "content": "I have two friends. The first is Ollama 22 years old busy saving the world, and the second "
            "is Alonso 23 years old and wants to hang out. Return a list of friends in JSON format",
        }
    ]
    schema = ns["FriendList"].model_json_schema()
    want = ns["FriendList"].model_validate_json(
        local.chat("llama3.1:8b", ask, format=schema, options={"temperature": 0}).message.content
    )
    out = run_example(name, url, tmp_path).stdout
    assert out == f"{want}\n"
    assert out.startswith("friends=[FriendInfo(name=")


# -- tools -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["tools.py", "async-tools.py"])
def test_tools(name, url, local, tmp_path):
    """A Python function and a hand-written tool: the model's calls are run and their results sent back."""
    ns = definitions(name)
    tools = wire_tools([ns["add_two_numbers"], ns["subtract_two_numbers_tool"]])
    messages: list[Any] = [{"role": "user", "content": "What is three plus one?"}]
    r = local.chat("llama3.1", messages, tools=tools)
    expected = "Prompt: What is three plus one?\n"
    if r.message.tool_calls:
        messages.append(r.message)
        for fn, args in calls(r.message):
            assert fn in ("add_two_numbers", "subtract_two_numbers"), f"the model called {fn}"
            output = ns[fn](**args)  # the example's available_functions: its two functions by name
            expected += f"Calling function: {fn}\nArguments: {args}\nFunction output: {output}\n"
            messages.append({"role": "tool", "content": str(output), "tool_name": fn})
        expected += f"Final response: {local.chat('llama3.1', messages).message.content}\n"
    else:
        expected += "No tool calls returned from model\n"
    assert run_example(name, url, tmp_path).stdout == expected


def test_multi_tool(url, local, tmp_path):
    """Streamed thinking, content and tool calls of a thinking model; the cities are the program's random draw."""
    ns = definitions("multi-tool.py")
    out = run_example("multi-tool.py", url, tmp_path).stdout
    m = re.match(
        r"----- Prompt: (What is the temperature in (.+)\? and what are the weather conditions in (.+)\?) \n\n", out
    )
    assert m, out
    assert {m[2], m[3]} <= set(ns["cities"])
    ask = [{"role": "user", "content": m[1]}]
    tools = wire_tools([ns["get_temperature"], ns["get_conditions"]])
    first = local.chat("qwen3", ask, tools=tools, think=True)
    assert first.message.thinking  # the stand-in thinks
    body = out[m.end() :]
    streamed, sep, rest = body.partition("----- Sending result back to model \n")
    assert sep, out
    assert streamed.startswith(first.message.thinking + (first.message.content or ""))
    if first.message.tool_calls:
        for fn, args in calls(first.message):
            assert f"\nCalling function: {fn} with arguments: {args}\n> Function output: " in streamed
        assert rest.startswith("\n") and "No tool calls returned" not in rest
    else:
        assert streamed == first.message.thinking + (first.message.content or "")
        assert rest == "\nNo tool calls returned\n"


@pytest.mark.parametrize("name", ["gpt-oss-tools.py", "gpt-oss-tools-stream.py"])
def test_gpt_oss_tools(name, url, local, tmp_path):
    """The loop of a model that may call tools while it thinks, printed with rich; it ends when a turn has no
    calls. The weather is the program's random draw, so after a call only the structure is checked."""
    ns = definitions(name)
    ask = [{"role": "user", "content": "What is the weather like in London? What are the conditions in Toronto?"}]
    tools = wire_tools([ns["get_weather"], ns["get_weather_conditions"]])
    first = local.chat("gpt-oss:20b", ask, tools=tools).message
    assert first.thinking or first.content
    out = words(run_example(name, url, tmp_path).stdout)
    said = words((first.thinking or "") + " " + (first.content or ""))
    if name == "gpt-oss-tools.py":
        if first.thinking:
            assert "Thinking: " in out
        if first.content:
            assert "Content: " in out
    assert words(first.thinking or first.content or "")[:200] in out
    if first.tool_calls:
        fn = first.tool_calls[0].function.name
        marker = "Result from tool call name: " if name == "gpt-oss-tools.py" else "Calling tool: "
        assert f"{marker}{fn}" in out and "not found" not in out
    else:  # one turn: nothing but what the model said
        stripped = out.replace("Thinking: ", "").replace("Content: ", "")
        assert words(stripped) == said


# -- thinking ----------------------------------------------------------------------------------------------------
def test_thinking(url, local, tmp_path):
    r = local.chat("deepseek-r1", SUM, think=True).message
    assert r.thinking
    want = f"Thinking:\n========\n\n{r.thinking}\n\nResponse:\n========\n\n{r.content}\n"
    assert run_example("thinking.py", url, tmp_path).stdout == want


def test_thinking_generate(url, local, tmp_path):
    r = local.generate("deepseek-r1", "why is the sky blue", think=True)
    assert r.thinking
    want = f"Thinking:\n========\n\n{r.thinking}\n\nResponse:\n========\n\n{r.response}\n"
    assert run_example("thinking-generate.py", url, tmp_path).stdout == want


def test_thinking_levels(url, local, tmp_path):
    want = ""
    for i, level in enumerate(("low", "medium", "high")):
        r = local.chat("gpt-oss:20b", SUM, think=level).message
        assert r.thinking
        title = f"Thinking ({level})"
        want += f"{title}\n{'=' * len(title)}\n{r.thinking}\n\n\nResponse\n========\n{r.content}\n\n\n"
        if i < 2:
            want += "-" * 20 + "\n\n\n"
    assert run_example("thinking-levels.py", url, tmp_path).stdout == want


# -- fill in the middle, embeddings ------------------------------------------------------------------------------
def test_fill_in_middle(url, local, tmp_path):
    ns = definitions("fill-in-middle.py")
    options = {"num_predict": 128, "temperature": 0, "top_p": 0.9, "stop": ["<EOT>"]}
    want = local.generate("codellama:7b-code", ns["prompt"], suffix=ns["suffix"], options=options)
    assert want.eval_count
    assert run_example("fill-in-middle.py", url, tmp_path).stdout == want.response + "\n"


def test_embed(url, local, tmp_path):
    printed = ast.literal_eval(run_example("embed.py", url, tmp_path).stdout)
    want = local.embed("llama3.2", "Hello, world!").embeddings
    assert len(printed) == 1 and len(printed[0]) == 384
    assert printed[0] == pytest.approx(list(want[0]), abs=1e-6)


# -- images ------------------------------------------------------------------------------------------------------
def test_multimodal_chat(url, local, tmp_path):
    """A chat about an image given as a path relative to the working directory, typed at the prompt."""
    shutil.copyfile(PHOTO, tmp_path / "photo.jpeg")
    ask = [{"role": "user", "content": "What is in this image? Be concise.", "images": [PHOTO.read_bytes()]}]
    want = local.chat("gemma3", ask).message.content
    out = run_example("multimodal-chat.py", url, tmp_path, "photo.jpeg\n").stdout
    assert out == f"Please enter the path to the image: {want}\n"


def test_structured_outputs_image(url, local, tmp_path):
    ns = definitions("structured-outputs-image.py")
    shutil.copyfile(PHOTO, tmp_path / "photo.jpeg")
    ask = [
        {
            "role": "user",
            "content": "Analyze this image and return a detailed JSON description including objects, scene, colors "
            "and any text detected. If you cannot determine certain details, leave those fields empty.",
            "images": [PHOTO.read_bytes()],
        }
    ]
    schema = ns["ImageDescription"].model_json_schema()
    r = local.chat("gemma3", ask, format=schema, options={"temperature": 0})
    want = ns["ImageDescription"].model_validate_json(r.message.content)
    out = run_example("structured-outputs-image.py", url, tmp_path, "photo.jpeg\n").stdout
    assert out == f"Enter the path to your image: {want}\n"


# -- the store ---------------------------------------------------------------------------------------------------
def test_list(url, local, tmp_path):
    want = ""
    for m in local.list().models:
        want += f"Name: {m.model}\n  Size (MB): {(m.size / 1024 / 1024):.2f}\n"
        d = m.details
        assert d is not None
        want += f"  Format: {d.format}\n  Family: {d.family}\n  Parameter Size: {d.parameter_size}\n"
        want += f"  Quantization Level: {d.quantization_level}\n\n\n"
    out = run_example("list.py", url, tmp_path).stdout
    assert out == want
    names = {*STORED, *ALIASES}
    assert {f"Name: {n}" if ":" in n else f"Name: {n}:latest" for n in names} <= set(out.splitlines())


def test_show(url, local, tmp_path):
    """The fields of show, as ollama's ShowResponse prints them, equal the in-process Client's."""
    shown = ollama.ShowResponse.model_validate(local.show("gemma3").model_dump(mode="json", by_alias=True))
    out = run_example("show.py", url, tmp_path).stdout
    want = (
        "Model Information:\n"
        f"Modified at:   {shown.modified_at}\n"
        f"Template:      {shown.template}\n"
        f"Modelfile:     {shown.modelfile}\n"
        f"License:       {shown.license}\n"
        f"Details:       {shown.details}\n"
        f"Model Info:    {shown.modelinfo}\n"
        f"Parameters:    {shown.parameters}\n"
        f"Capabilities:  {shown.capabilities}\n"
    )
    assert out == want
    assert "Capabilities:  ['completion', 'vision']\n" in out
    assert "family='llama'" in out and "repeat_penalty" in out


def test_create(url, local, tmp_path):
    """A model made from gemma3 with a system prompt; it has gemma3's weights and projector."""
    try:
        assert run_example("create.py", url, tmp_path).stdout == "success\n"
        made, base = local.show("my-assistant"), local.show("gemma3")
        assert made.system == "You are mario from Super Mario Bros."
        assert made.capabilities == base.capabilities and made.details == base.details
        r = local.chat("my-assistant", [{"role": "user", "content": "Who are you?"}], options={"num_predict": 8})
        assert r.done
    finally:
        with contextlib.suppress(Exception):
            local.delete("my-assistant")


def layer_digests(registry) -> list[str]:
    return [d for media, d, _ in registry[1].layers]


def test_pull(url, registry, local, tmp_path):
    """gemma3 pulled again from the registry: tqdm bars per layer on stderr, the other statuses on stdout."""
    proc = run_example("pull.py", url, tmp_path)
    assert proc.stdout.splitlines() == ["pulling manifest", "verifying sha256 digest", "writing manifest", "success"]
    for d in layer_digests(registry):
        assert re.search(rf"pulling {d[7:19]}: 100%", proc.stderr), proc.stderr
    digest = {m.model: m.digest for m in local.list().models}["gemma3:latest"]
    assert digest.removeprefix("sha256:") == hashlib.sha256(registry[1].manifest).hexdigest()  # the registry's


def test_ps(url, registry, local, tmp_path):
    """Pull, a chat that loads gemma3, then the loaded models."""
    out = run_example("ps.py", url, tmp_path).stdout
    statuses, sep, rest = out.partition("\n\n\nWaiting for model to load... \n\n")
    assert sep, out
    pulled = [f"pulling {d[7:19]}" for d in layer_digests(registry)]
    assert statuses.splitlines() == [
        "pulling manifest",
        *pulled,
        "verifying sha256 digest",
        "writing manifest",
        "success",
    ]
    blocks = [b for b in rest.split("\n\n\n") if b.strip()]
    models = {re.match(r"Model:  (\S+)", b)[1]: b for b in blocks}  # type: ignore[index]
    assert "gemma3:latest" in models, rest
    digest = {m.model: m.digest for m in local.list().models}["gemma3:latest"]
    block = models["gemma3:latest"]
    for field in ("Digest", "Expires at", "Size", "Size vram", "Details", "Context length"):
        assert f"\n  {field}:  " in block, block
    assert f"  Digest:  {digest}\n" in block and "  Context length:  4096" in block
    assert "family='llama'" in block
