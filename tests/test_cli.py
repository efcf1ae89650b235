"""The ``llamanative`` command, driven as a user drives it: in subprocesses, with a real model.

Every command runs as ``python -m llamanative ...`` from a temporary working
directory (the source tree must not shadow the installed package) against a
temporary store (``LLAMANATIVE_MODELS``). Answers are kept short with
``num_predict`` so the file runs in well under a minute.
"""

from __future__ import annotations

import io
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from llamanative import __version__
from llamanative.cli import main
from llamanative.store.modelfile import parse_modelfile

# Runs the command with Ctrl-C (SIGINT) raising KeyboardInterrupt, as in a terminal, even when the
# test run itself was started with SIGINT ignored (a background job of a non-interactive shell).
_LAUNCH = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'llamanative'; runpy.run_module('llamanative', run_name='__main__')"
)

MODELFILE = '''# a pirate, from the SmolLM2 GGUF next to this file
FROM ./smollm2.gguf
PARAMETER num_predict 8
# one thread: on a busy machine, threads that wait for each other make every step many times slower
PARAMETER num_thread 1
PARAMETER temperature 0
PARAMETER stop "<|im_end|>"
SYSTEM """You are a pirate.
Answer briefly."""
LICENSE """Apache License 2.0
Second line
Third line"""
'''


@dataclass
class Env:
    cwd: Path
    vars: dict[str, str]

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-c", _LAUNCH, *args]

    def run(self, *args: str, stdin: str = "", timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.argv(*args), cwd=self.cwd, env=self.vars, input=stdin, capture_output=True, text=True, timeout=timeout
        )


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    assert "Traceback" not in r.stderr
    return r


def one_error_line(r: subprocess.CompletedProcess, text: str) -> None:
    """Failed with status 1 and exactly one ``Error: ...`` line on stderr, no traceback."""
    assert r.returncode == 1, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and text in lines[0], r.stderr


@pytest.fixture(scope="module")
def env(tmp_path_factory, smollm2_path) -> Env:
    """A working directory with a Modelfile, and a store holding the model it creates (``pirate``)."""
    cwd = tmp_path_factory.mktemp("cli")
    (cwd / "smollm2.gguf").symlink_to(smollm2_path)
    (cwd / "Modelfile").write_text(MODELFILE)
    variables = {k: v for k, v in os.environ.items() if not k.startswith("LLAMANATIVE_MODELS")}
    variables.update(LLAMANATIVE_MODELS=str(cwd / "store"), TERM="dumb", COLUMNS="200")
    e = Env(cwd, variables)
    r = ok(e.run("create", "pirate", "-f", "Modelfile"))
    assert r.stderr.strip().endswith("success")
    return e


def test_list(env):
    out = ok(env.run("list")).stdout.splitlines()
    assert re.match(r"^NAME\s+ID\s+SIZE\s+MODIFIED$", out[0])
    row = next(line for line in out if line.startswith("pirate:latest"))
    assert re.match(
        r"^pirate:latest\s+[0-9a-f]{12}\s+\d+ MB\s+(Less than a second|\d+ seconds?|About a minute) ago$", row
    ), row
    assert ok(env.run("ls", "nomatch")).stdout.split() == ["NAME", "ID", "SIZE", "MODIFIED"]  # a prefix filter


def test_show(env):
    out = ok(env.run("show", "pirate")).stdout
    assert "  Model\n    architecture        llama\n    parameters          135M\n" in out
    assert re.search(r"    context length      \d+\n    embedding length    576\n    quantization        Q4_1\n", out)
    assert "  Capabilities\n    completion\n" in out
    assert re.search(r"  Parameters\n    num_predict\s+8\n", out)
    assert "  System\n    You are a pirate.\n    Answer briefly.\n" in out
    assert "  License\n    Apache License 2.0\n    Second line\n    ...\n" in out  # the first two lines only


def test_show_flags(env):
    generated = parse_modelfile(ok(env.run("show", "pirate", "--modelfile")).stdout)
    assert generated.system == "You are a pirate.\nAnswer briefly."
    assert generated.parameters == {"num_predict": 8, "num_thread": 1, "temperature": 0.0, "stop": ["<|im_end|>"]}
    assert ok(env.run("show", "pirate", "--system")).stdout == "You are a pirate.\nAnswer briefly.\n"
    assert ok(env.run("show", "pirate", "--license")).stdout.startswith("Apache License 2.0\nSecond line\n")
    assert re.match(r"num_predict\s+8\n", ok(env.run("show", "pirate", "--parameters")).stdout)
    assert "<|im_start|>" in ok(env.run("show", "pirate", "--template")).stdout
    verbose = ok(env.run("show", "pirate", "--verbose")).stdout
    assert "  Metadata\n" in verbose and re.search(r"\n    general\.architecture\s+llama\n", verbose)
    assert env.run("show", "pirate", "--system", "--license").returncode == 2  # one part at a time


def test_run_one_shot_verbose(env):
    r = ok(env.run("run", "pirate", "Say hello.", "--verbose", "-p", "num_predict", "4"))
    assert r.stdout.strip()
    stats = dict(line.split(":", 1) for line in r.stderr.splitlines())
    assert {
        "total duration",
        "load duration",
        "prompt eval count",
        "prompt eval rate",
        "eval count",
        "eval duration",
        "eval rate",
    } <= set(stats)
    assert 1 <= int(stats["eval count"].split()[0]) <= 4  # -p num_predict 4 overrides the model's 8
    assert re.match(r"^\s+\d+\.\d\d tokens/s$", stats["eval rate"])


def test_run_reads_the_prompt_from_stdin(env):
    prompt = " ".join(["banana"] * 60)  # far longer than the system prompt: visible in the prompt count
    r = ok(env.run("run", "pirate", "--verbose", stdin=prompt))
    assert r.stdout.strip()
    count = int(re.search(r"prompt eval count:\s+(\d+)", r.stderr).group(1))
    assert count > 60
    one_error_line(env.run("run", "pirate", stdin=""), "no prompt")


class Pty:
    """A command on a pseudo-terminal: stdin is a tty, so ``run`` is interactive."""

    def __init__(self, env: Env, *args: str) -> None:
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(
            env.argv(*args), cwd=env.cwd, env=env.vars, stdin=slave, stdout=slave, stderr=slave, close_fds=True
        )
        os.close(slave)
        self.text, self.pos = "", 0

    def expect(self, wanted: str, timeout: float = 60) -> str:
        """Wait for ``wanted`` after what was already matched; return the text before it."""
        deadline = time.monotonic() + timeout
        while wanted not in self.text[self.pos :]:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.master], [], [], left)[0]:
                raise AssertionError(f"no {wanted!r} within {timeout}s; output:\n{self.text}")
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: the command exited and closed the terminal
                data = b""
            if not data:
                raise AssertionError(f"the command ended before {wanted!r}; output:\n{self.text}")
            self.text += data.decode("utf-8", "replace").replace("\r\n", "\n")
        start = self.pos
        self.pos = self.text.index(wanted, start) + len(wanted)
        return self.text[start : self.pos - len(wanted)]

    def send(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def close(self) -> int:
        try:
            return self.proc.wait(timeout=30)
        finally:
            os.close(self.master)


def test_interactive_session(env):
    t = Pty(env, "run", "pirate")
    try:
        t.expect(">>> ")
        t.send("/set parameter num_predict 5")
        assert "Set parameter 'num_predict' to '5'" in t.expect(">>> ")
        t.send("/set verbose")
        t.expect(">>> ")
        t.send('"""Tell me')  # a multi-line message
        t.expect("... ")
        t.send('a joke."""')
        answer = t.expect(">>> ")
        assert 1 <= int(re.search(r"\neval count:\s+(\d+) token", answer).group(1)) <= 5
        t.send("/show info")
        info = t.expect(">>> ")
        assert "architecture        llama" in info and "You are a pirate." in info
        t.send("/nope")
        assert "Unknown command '/nope'" in t.expect(">>> ")
        t.send("/set parameter num_predict 1000")
        t.expect(">>> ")
        t.send("Write a very long story about the sea.")
        t.expect(" ")  # the answer has started
        time.sleep(0.3)
        os.kill(t.proc.pid, signal.SIGINT)  # Ctrl-C: stops the answer, back to the prompt
        t.expect(">>> ", timeout=20)
        t.send("/bye")
        assert t.close() == 0
    finally:
        if t.proc.poll() is None:
            t.proc.kill()
    assert "Traceback" not in t.text


def test_ctrl_c_stops_a_one_shot_answer(env):
    p = subprocess.Popen(
        env.argv("run", "pirate", "-p", "num_predict", "1000", "Write a long story."),
        cwd=env.cwd,
        env=env.vars,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stdout.read(3)  # the answer is streaming
        p.send_signal(signal.SIGINT)
        _out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130 and "Traceback" not in err


def test_cp_and_rm(env):
    assert ok(env.run("cp", "pirate", "parrot")).stdout == "copied 'pirate' to 'parrot'\n"
    assert "parrot:latest" in ok(env.run("list")).stdout
    assert ok(env.run("rm", "parrot")).stdout == "deleted 'parrot'\n"
    assert "parrot" not in ok(env.run("list")).stdout
    one_error_line(env.run("rm", "parrot"), "model 'parrot:latest' not found")


def test_embed(env, minilm_path):
    out = env.cwd / "vectors.npy"
    r = ok(
        env.run("embed", str(minilm_path), "first text", "second text", "--output", str(out), "-p", "num_thread", "1")
    )
    assert "wrote 2 embeddings of 384 dimensions" in r.stderr
    matrix = np.load(out)
    assert matrix.shape == (2, 384) and matrix.dtype == np.float32
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1, atol=1e-5)
    lines = ok(
        env.run("embed", str(minilm_path), "-p", "num_thread", "1", stdin="first text\n\nsecond text\n")
    ).stdout.splitlines()
    vectors = np.array([json.loads(line) for line in lines], dtype=np.float32)  # one JSON array per line
    assert np.allclose(vectors, matrix, atol=1e-6)


def test_version(env):
    assert ok(env.run("version")).stdout.startswith(f"llamanative version is {__version__} (llama.cpp ")


def test_ps_and_stop_are_in_process(env):
    r = ok(env.run("ps"))
    assert re.match(r"^NAME\s+ID\s+SIZE\s+PROCESSOR\s+CONTEXT\s+UNTIL$", r.stdout.strip())
    assert "same process" in r.stderr
    r = ok(env.run("stop", "pirate"))
    assert "not loaded in this process" in r.stderr
    one_error_line(env.run("stop", "nope"), "model 'nope:latest' not found")


def test_ps_and_stop_see_this_process(smollm2_path, tmp_path, monkeypatch, capsys):
    """Called in one process, the commands share a Client: ps sees what run left loaded; stop unloads it."""
    monkeypatch.setenv("LLAMANATIVE_MODELS", str(tmp_path / "store"))
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal, nothing piped: the prompt is the argument
    model = str(smollm2_path)
    assert main(["run", model, "Hi", "-p", "num_predict", "2", "-p", "num_thread", "1"]) == 0
    capsys.readouterr()
    assert main(["ps"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert re.match(r"^NAME\s+ID\s+SIZE\s+PROCESSOR\s+CONTEXT\s+UNTIL$", header)
    assert re.match(rf"^{re.escape(model)}\s+-\s+\d+ MB\s+100% CPU\s+\d+\s+4 minutes from now$", row), row
    assert main(["stop", model]) == 0
    capsys.readouterr()
    assert main(["ps"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1  # the header only


def test_errors_are_one_line(env):
    one_error_line(env.run("run", "nope", "hi"), "model 'nope:latest' not found")
    one_error_line(env.run("show", "nope"), "model 'nope:latest' not found")
    (env.cwd / "Bad.modelfile").write_text("FROM ./smollm2.gguf\nPARAMETER temprature 0.5\n")
    one_error_line(
        env.run("create", "bad", "-f", "Bad.modelfile"), "Bad.modelfile, line 2: unknown parameter 'temprature'"
    )
    one_error_line(env.run("create", "bad", "-f", "Missing"), "no Modelfile at Missing")
    (env.cwd / "broken.gguf").write_bytes(b"not a model")
    one_error_line(env.run("run", "./broken.gguf", "hi"), "is not a GGUF file")
    one_error_line(env.run("run", "pirate", "hi", "-p", "num_ctx", "big"), "invalid int value")
    r = env.run("run")  # a usage error: argparse's message, status 2
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_pull_a_test_model(env):
    r = ok(env.run("pull", "smollm2:135m"))
    assert re.search(r"pulling [0-9a-f]{12}: 100% ", r.stderr)
    assert r.stderr.strip().endswith("success")
    assert "smollm2:135m" in ok(env.run("list")).stdout
