"""The Modelfile parser: every instruction, quoting, comments, errors with line numbers, round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamanative import Client
from llamanative.store.modelfile import (
    Modelfile,
    ModelfileError,
    parse_commands,
    parse_modelfile,
    quote,
    read_modelfile,
)

FULL = '''# A Modelfile with every instruction
  # an indented comment
from smollm2:135m
PARAMETER temperature 0.3
parameter num_ctx 2048
PARAMETER stop "<|im_end|>"
PARAMETER stop <|endoftext|>
PARAMETER use_mmap false
PARAMETER seed 7
PARAMETER seed 8
TEMPLATE """{{ .System }}
{{ .Prompt }}"""
System """You are a pirate.
  Answer "briefly"."""
LICENSE MIT
license "Second license, # not a comment"
MESSAGE user Hello there
MESSAGE Assistant "Arr, hello!"
REQUIRES 0.14.0
'''


def test_every_instruction():
    mf = parse_modelfile(FULL)
    assert mf.from_ == "smollm2:135m"  # not a file: a model name
    assert mf.parameters == {
        "temperature": 0.3,
        "num_ctx": 2048,
        "stop": ["<|im_end|>", "<|endoftext|>"],
        "use_mmap": False,
        "seed": 8,
    }  # stop collects; the last seed wins
    assert mf.template == "{{ .System }}\n{{ .Prompt }}"
    assert mf.system == 'You are a pirate.\n  Answer "briefly".'
    assert mf.license == ["MIT", "Second license, # not a comment"]
    assert mf.messages == [{"role": "user", "content": "Hello there"}, {"role": "assistant", "content": "Arr, hello!"}]
    assert mf.requires == "0.14.0" and any("REQUIRES" in w for w in mf.warnings)


def test_create_kwargs_match_client_create():
    kw = parse_modelfile(FULL).create_kwargs()
    assert kw == {
        "from_": "smollm2:135m",
        "template": "{{ .System }}\n{{ .Prompt }}",
        "system": 'You are a pirate.\n  Answer "briefly".',
        "parameters": {
            "temperature": 0.3,
            "num_ctx": 2048,
            "stop": ["<|im_end|>", "<|endoftext|>"],
            "use_mmap": False,
            "seed": 8,
        },
        "license": ["MIT", "Second license, # not a comment"],
        "messages": [{"role": "user", "content": "Hello there"}, {"role": "assistant", "content": "Arr, hello!"}],
    }
    assert parse_modelfile("FROM x").create_kwargs() == {"from_": "x"}


@pytest.mark.parametrize(
    "text, value",
    [
        ("SYSTEM plain words  ", "plain words"),  # bare: to the end of the line, trimmed
        ('SYSTEM "  kept spaces "', "  kept spaces "),  # quotes keep the spaces
        ('SYSTEM ""', ""),  # an empty value
        ('SYSTEM "say "hi" twice"', 'say "hi" twice'),  # inner quotes: the value ends at the line's last one
        ('SYSTEM """one\ntwo\n"""', "one\ntwo\n"),  # triple quotes span lines
        ('SYSTEM "one\ntwo"', "one\ntwo"),  # so do plain quotes
        ('SYSTEM """a """ b\nc"""', 'a """ b\nc'),  # a """ inside a line does not close
        ("SYSTEM #not a comment", "#not a comment"),  # '#' only starts a comment at a line's start
    ],
)
def test_quoting(text, value):
    assert parse_modelfile(f"FROM m\n{text}").system == value


def test_bom_and_crlf():
    mf = parse_modelfile('\ufeffFROM m\r\nSYSTEM """a\r\nb"""\r\n')
    assert (mf.from_, mf.system) == ("m", "a\nb")


def test_from_path_is_relative_to_the_modelfile(tmp_path):
    (tmp_path / "sub").mkdir()
    gguf = tmp_path / "sub" / "model.gguf"
    gguf.write_bytes(b"GGUF")
    (tmp_path / "sub" / "Modelfile").write_text("FROM ./model.gguf\n")
    assert read_modelfile(tmp_path / "sub" / "Modelfile").from_ == str(gguf.resolve())
    assert parse_modelfile("FROM sub/model.gguf", base_dir=tmp_path).from_ == str(gguf.resolve())
    assert parse_modelfile(f"FROM {gguf}").from_ == str(gguf.resolve())


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("FROM m\nFROB x", 2, "unknown instruction 'FROB'"),
        ("FROM m\n\nPARAMETER nope 1", 3, "unknown parameter 'nope'"),
        ("FROM m\nPARAMETER num_ctx big", 2, "invalid int value"),
        ("FROM m\nPARAMETER top_k -1", 2, '"top_k" must be >= 0'),
        ("FROM m\nPARAMETER num_ctx", 2, "PARAMETER num_ctx needs a value"),
        ("FROM m\nMESSAGE tool hi", 2, "message role must be one of system, user, assistant"),
        ("FROM m\nSYSTEM\n", 2, "SYSTEM needs a value"),
        ('FROM m\nTEMPLATE """{{ .Prompt }}\n\nmore', 2, 'the """ opened here never closes'),
        ("FROM m\nADAPTER ./lora.gguf", 2, "ADAPTER ./lora.gguf: no such file"),
        ("FROM m\nADAPTER .", 2, "is a directory; llamanative takes LoRA adapters as GGUF files"),
        ("FROM m\nDRAFT small", 2, "DRAFT small: no such file"),
        ("FROM m\nDRAFT .", 2, "is a directory; llamanative takes draft models as GGUF files"),
        ("FROM m\nREQUIRES soon", 2, "REQUIRES must be a version"),
        ("FROM m\nFROM n", 2, "a second FROM"),
        ("FROM ./missing.gguf", 1, "no such file"),
        ("FROM bad name!", 1, "invalid model name"),
    ],
)
def test_errors_name_the_line(text, line, words):
    with pytest.raises(ModelfileError) as err:
        parse_modelfile(text, source="Modelfile")
    assert err.value.line == line
    assert words in str(err.value) and str(err.value).startswith(f"Modelfile, line {line}: ")


def test_missing_from():
    with pytest.raises(ModelfileError, match="no FROM line") as err:
        parse_modelfile("# nothing\nSYSTEM hi\n")
    assert err.value.line is None


def test_legacy_parameters_warn():
    mf = parse_modelfile("FROM m\nPARAMETER mirostat 2\n")
    assert mf.parameters == {} and "mirostat" in mf.warnings[0]


def test_commands_keep_line_numbers():
    cmds = parse_commands('FROM m\n\nSYSTEM """a\nb"""\nPARAMETER stop x')
    assert [(c.name, c.line, c.key) for c in cmds] == [("from", 1, None), ("system", 3, None), ("parameter", 5, "stop")]


@pytest.mark.parametrize(
    "value",
    ["plain", "", " lead", "trail ", '"quoted"', "a\nb", 'ends with "\nx"', "x\n", '{{ "a" }}\n"""x\nz', "tab\tinside"],
)
def test_quote_round_trips(value):
    assert parse_modelfile(f"FROM m\nSYSTEM {quote(value)}").system == value


def test_quote_refuses_what_cannot_be_written():
    with pytest.raises(ValueError, match="cannot be written"):
        quote('a"""\nb"\nc')


def test_text_round_trip():
    mf = parse_modelfile(FULL)
    again = parse_modelfile(mf.to_text())
    assert again == mf
    assert (
        Modelfile(from_="m", parameters={"stop": ["\n\n", " x"], "temperature": 1e-05}).to_text()
        == 'FROM m\nPARAMETER stop """\n\n"""\nPARAMETER stop " x"\nPARAMETER temperature 1e-05\n'
    )


def test_round_trip_through_the_store(smollm2_path, tmp_path):
    """A model created from a Modelfile; show's generated Modelfile recreates the same model."""
    (tmp_path / "Modelfile").write_text(
        f'FROM {smollm2_path}\nPARAMETER temperature 0.25\nPARAMETER stop "<|im_end|>"\nPARAMETER num_ctx 1024\n'
        'SYSTEM """You are a pirate.\nAnswer briefly."""\nLICENSE """Apache 2.0\nsecond line"""\n'
    )
    with Client(models_dir=str(tmp_path / "store")) as client:
        client.create("pirate", **read_modelfile(tmp_path / "Modelfile").create_kwargs())
        first = client.show("pirate")
        generated = parse_modelfile(first.modelfile)
        assert Path(generated.from_).samefile(client.store.resolve("pirate").path)
        assert generated.system == "You are a pirate.\nAnswer briefly."
        assert generated.parameters == {"temperature": 0.25, "stop": ["<|im_end|>"], "num_ctx": 1024}
        assert generated.license == ["Apache 2.0\nsecond line"]
        assert generated.template == first.template  # the GGUF's chat template, written out
        client.create("pirate2", **generated.create_kwargs())
        second = client.show("pirate2")
    for part in ("system", "parameters", "license", "template"):
        assert getattr(second, part) == getattr(first, part)
