"""Saved states are checked before llama.cpp reads them (scripts/sanitize.sh found the need).

A whole-context state, and a session file after its tokens, begins with the
model's architecture name (a uint32 length, then the name). llama.cpp reads
the name into a buffer of that length before checking it: a length of 0
passed NULL to memcpy (UndefinedBehaviorSanitizer's report), and a corrupt
length allocated up to 4 GiB. The core refuses any state that does not begin
with its model's architecture, before the call.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import pytest

from llamanative import _core
from llamanative.errors import StateError


def _state(model: _core.Model) -> bytes:
    ctx = _core.Context(model, n_ctx=256)
    batch = _core.Batch(16)
    batch.add_sequence(model.vocab.tokenize("Hello there"), pos0=0, seq_id=0)
    ctx.decode(batch)
    state = ctx.save_state()
    del batch
    ctx.close()
    return state


def test_a_state_with_an_empty_architecture_name_is_refused_before_llama_cpp(smollm2):
    ctx = _core.Context(smollm2, n_ctx=256)
    with pytest.raises(StateError, match="architecture"):
        ctx.load_state(b"\x00" * 64)
    with pytest.raises(StateError, match="too short"):
        ctx.load_state(b"\x05\x00")
    ctx.close()


def test_a_state_of_another_architecture_is_refused(smollm2, gemma3):
    state = _state(gemma3)
    ctx = _core.Context(smollm2, n_ctx=256)
    with pytest.raises(StateError, match="architecture \\('llama'\\)"):
        ctx.load_state(state)
    ctx.load_state(_state(smollm2))  # its own model's state still loads
    ctx.close()


def test_a_session_file_is_checked_before_llama_cpp(tmp_path, smollm2):
    ctx = _core.Context(smollm2, n_ctx=256)
    toks = smollm2.vocab.tokenize("Hello there")
    path = tmp_path / "s.bin"
    ctx.save_state_file(path, toks)
    assert ctx.load_state_file(path).tolist() == toks.tolist()
    good = path.read_bytes()
    magic, version, n = struct.unpack_from("=III", good)
    cases = {
        "wrong_magic.bin": (struct.pack("=III", 0x12345678, version, n) + good[12:], "not a llama.cpp session file"),
        "too_many_tokens.bin": (struct.pack("=III", magic, version, 10**6) + good[12:], "more than this context"),
        "short.bin": (good[:8], "too short"),
        "no_arch.bin": (good[: 12 + 4 * n] + b"\x00" * 64, "architecture"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(StateError, match=message):
            ctx.load_state_file(tmp_path / name)
    ctx.close()


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB is Linux's")
def test_a_corrupt_architecture_length_allocates_nothing(tmp_path, smollm2_path):
    """A length field of 0xFFFFFFFF: refused without the 4 GiB buffer llama.cpp would zero-fill first."""
    code = r"""
import json, resource, struct, sys
from llamanative import _core
from llamanative.errors import StateError
model = _core.Model(sys.argv[1])
ctx = _core.Context(model, n_ctx=256)
ctx.save_state_file(sys.argv[2], [])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
errors = []
for load in (lambda: ctx.load_state(b"\xff\xff\xff\xff" + b"x" * 64), lambda: ctx.load_state_file(sys.argv[3])):
    try:
        load()
    except StateError as e:
        errors.append(str(e))
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"errors": errors, "grown_kib": grown}))
"""
    session = tmp_path / "s.bin"
    corrupt = tmp_path / "corrupt.bin"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLAMANATIVE_")}
    # The session file of an empty context: header, no tokens, then the state; its length field is overwritten.
    prep = code.replace(
        "errors = []",
        "data = bytearray(open(sys.argv[2], 'rb').read()); data[12:16] = b'\\xff' * 4\n"
        "open(sys.argv[3], 'wb').write(data)\nerrors = []",
    )
    proc = subprocess.run(
        [sys.executable, "-c", prep, str(smollm2_path), str(session), str(corrupt)],
        env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.splitlines()[-1])
    assert len(out["errors"]) == 2 and all("architecture" in e for e in out["errors"])
    assert out["grown_kib"] < 512 * 1024
