"""The Modelfile parser: random Modelfile text, files and values.

Text is built from instruction lines (any case, known and unknown names,
``PARAMETER`` with known and unknown names and values of every type,
``MESSAGE`` roles, ``FROM`` paths and names, quoted, triple-quoted and
unclosed values over several lines, comments, a BOM, CR/CRLF line ends) or
is raw bytes, read through ``read_modelfile`` from a file.

Contract: ``parse_modelfile`` gives a ``Modelfile`` or a ``ModelfileError``;
``read_modelfile`` also ``FileNotFoundError``; ``to_text()`` of a parsed
Modelfile parses back to an equal one (or raises ``ValueError`` for a value
no quoting carries); ``quote(value)`` reads back as ``value``; nothing else
escapes (an ``OSError`` from a path, a ``UnicodeDecodeError`` from the
file's bytes, an ``IndexError`` ... are findings).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import atheris
from contract import call, check

from llamanative.store.modelfile import (
    INSTRUCTIONS,
    Modelfile,
    ModelfileError,
    _read_value,
    parse_modelfile,
    quote,
    read_modelfile,
)
from llamanative.types import Options

TARGETS = ["llamanative/store/modelfile.py", "llamanative/store/names.py"]
PARAMS = [
    *sorted(Options.model_fields),
    "stop",
    "num_ctx",
    "temperature",
    "seed",
    "mirostat",
    "penalize_newline",
    "nope",
    "Temperature",
    "num_gpu",
    "",
    "1",
]
VALUES = [
    "0",
    "1",
    "-1",
    "0.5",
    "1e400",
    "nan",
    "inf",
    "true",
    "false",
    "True",
    "yes",
    "",
    "abc",
    '"',
    '""',
    '"""',
    '"a"',
    '"""a"""',
    '"a',
    'a"',
    "9" * 30,
    "0x10",
    " 1 ",
    "<|im_end|>",
    "\\n",
    "[1, 2]",
    "{}",
    "\u00e9",
    "\x00",
]
FROMS = [
    "smollm2",
    "smollm2:135m",
    "./model.gguf",
    "model.gguf",
    "../x.gguf",
    "~/x.gguf",
    "/",
    ".",
    "hf.co/a/b:Q4",
    "a/b/c/d",
    "a..b",
    "x" * 300,
    "y" * 300 + ".gguf",
    "/" + "z" * 5000,
    "a:" + "t" * 200,
    "-",
    "\x00",
    "sub",
    "sub/",
    "file.gguf",
    "C:\\m.gguf",
    ".\\m.gguf",
]

_base: Path | None = None


def setup() -> None:
    global _base
    _base = Path(tempfile.mkdtemp(prefix="fuzz-modelfile-"))
    (_base / "file.gguf").write_bytes(b"GGUF")
    (_base / "sub").mkdir()


def _value(fdp: atheris.FuzzedDataProvider) -> str:
    kind = fdp.ConsumeIntInRange(0, 4)
    if kind == 0:
        return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 30))
    if kind == 1:
        return '"""' + fdp.ConsumeUnicodeNoSurrogates(20) + "\n" + fdp.ConsumeUnicodeNoSurrogates(10) + '"""'
    return fdp.PickValueInList(VALUES)


def _line(fdp: atheris.FuzzedDataProvider) -> str:
    kind = fdp.ConsumeIntInRange(0, 9)
    name = fdp.PickValueInList([*INSTRUCTIONS, "FROM", "From", "PARAM", "#", "", "message", "PARAMETER"])
    if fdp.ConsumeIntInRange(0, 4) == 0:
        name = name.upper()
    if kind == 0:
        return "# " + fdp.ConsumeUnicodeNoSurrogates(20)
    if kind == 1:
        return f"{name} {fdp.PickValueInList(FROMS)}"
    if kind <= 3:
        return f"PARAMETER {fdp.PickValueInList(PARAMS)} {_value(fdp)}"
    if kind == 4:
        role = fdp.PickValueInList(["user", "assistant", "system", "USER", "tool", "", "x"])
        return f"MESSAGE {role} {_value(fdp)}"
    if kind == 5:
        return f"{name}{fdp.PickValueInList([' ', '  ', chr(9), ''])}{_value(fdp)}"
    if kind == 6:
        return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 40))
    return f"{name} {_value(fdp)}"


def _text(fdp: atheris.FuzzedDataProvider) -> str:
    lines = [_line(fdp) for _ in range(fdp.ConsumeIntInRange(0, 8))]
    if fdp.ConsumeIntInRange(0, 2):
        lines.insert(fdp.ConsumeIntInRange(0, len(lines)), f"FROM {fdp.PickValueInList(FROMS)}")
    end = fdp.PickValueInList(["\n", "\r\n", "\r", "\n\n"])
    text = end.join(lines)
    return ("\ufeff" if fdp.ConsumeIntInRange(0, 7) == 0 else "") + text


def _check_round_trip(mf: Modelfile) -> None:
    text, err = call(mf.to_text)
    if text is None:
        check(isinstance(err, ValueError), f"to_text raised {err!r}")
        return
    again, err = call(parse_modelfile, text, base_dir=_base)
    check(err is None, f"to_text() of a parsed Modelfile does not parse: {err!r}\n{text!r}")
    check(again == mf, f"to_text() does not read back:\n{mf!r}\n{again!r}\n{text!r}")


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    kind = fdp.ConsumeIntInRange(0, 5)
    assert _base is not None
    if kind == 0:  # a file of raw bytes
        path = _base / "Modelfile"
        path.write_bytes(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 400)))
        mf, err = call(read_modelfile, path)
        check(err is None or isinstance(err, ModelfileError), f"read_modelfile raised {err!r}")
        if mf is not None:
            _check_round_trip(mf)
    elif kind == 1:  # quote() reads back as its value
        value = fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 40))
        text, err = call(quote, value)
        if text is not None:
            first, *more = text.split("\n")
            it = iter(enumerate(more, 2))
            back, err = call(_read_value, first, it, 1, "")
            check(back == value and next(it, None) is None, f"quote({value!r}) = {text!r} reads back as {back!r}")
    else:
        text = _text(fdp)
        mf, err = call(parse_modelfile, text, base_dir=_base)
        check(err is None or isinstance(err, ModelfileError), f"parse_modelfile raised {err!r}")
        if mf is not None:
            check(isinstance(mf.create_kwargs(), dict), "create_kwargs")
            _check_round_trip(mf)
        if kind == 2:  # the same text from a file in another folder, relative FROMs resolved there
            path = Path(tempfile.gettempdir()) / f"fuzz-modelfile-{os.getpid()}"
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
            call(read_modelfile, path)
