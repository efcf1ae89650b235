"""What the fuzzers (``fuzz/``) found, one test each: every input gives a result or a typed error.

Before their fixes, several of these ended the process (a GGML_ASSERT, a C++
exception crossing llama.h's C API, a stack overflow in ``common``'s Jinja
engine or JSON-schema converter): those run in a child process, which must
exit normally and print what it got. The GGUFs are the test models' own
headers with one edit (``fuzz/gguf_header.py``), the tensor data left as a
sparse hole of the original size, so they load with ``vocab_only=True``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from llamanative import _core
from llamanative.errors import MediaError, StatusError
from llamanative.store import direct
from llamanative.store.modelfile import ModelfileError, parse_modelfile, read_modelfile
from llamanative.store.names import parse_name
from llamanative.store.store import ModelStore
from llamanative.types import Audio, Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))
import gguf_header  # noqa: E402  (the fuzzers' GGUF header codec)
import media_files  # noqa: E402  (the fuzzers' image and audio writers)
from gguf_header import ARRAY, BOOL, KV, STRING, U32  # noqa: E402


def edited(src: Path, dst: Path, edit: Callable[[gguf_header.Header], None]) -> Path:
    """``dst``: the header of ``src`` after ``edit``, then a hole as long as ``src``'s tensor data."""
    header = gguf_header.read_header(src)
    edit(header)
    gguf_header.write_file(dst, header.encode(), header.data_size)
    return dst


def set_kv(key: bytes, kind: int, value) -> Callable[[gguf_header.Header], None]:
    def edit(h: gguf_header.Header) -> None:
        h.kvs = [kv for kv in h.kvs if kv.key != key] + [KV(key, kind, value)]

    return edit


def edit_tokens(change: Callable[[list[bytes]], None]) -> Callable[[gguf_header.Header], None]:
    def edit(h: gguf_header.Header) -> None:
        for i, kv in enumerate(h.kvs):
            if kv.key == b"tokenizer.ggml.tokens":
                tokens = list(kv.value[1])
                change(tokens)
                h.kvs[i] = KV(kv.key, ARRAY, (STRING, tokens))

    return edit


def run_isolated(tmp_path: Path, code: str) -> str:
    """Run ``code`` in a child Python; it must exit normally (no abort, no segfault). Its stdout."""
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(code))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, f"the process ended with {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc.stdout


# -- GGUF headers -------------------------------------------------------------------------------------------
def test_tensor_name_that_is_not_utf8_is_read_with_a_replacement(smollm2_path, tmp_path):
    def rename(h: gguf_header.Header) -> None:
        t = h.tensors[0]
        h.tensors[0] = gguf_header.TensorInfo(b"tok\xffembd", t.dims, t.ggml_type, t.offset)

    path = edited(smollm2_path, tmp_path / "m.gguf", rename)
    assert _core.read_gguf_tensors(path)[0][0] == "tok\ufffdembd"  # was UnicodeDecodeError


@pytest.mark.parametrize(
    "change",
    [
        lambda toks: toks.__setitem__(1, toks[0]),  # two tokens with the same text
        lambda toks: toks.__setitem__(5, toks[4] + b"\x00tail"),  # the same text up to a NUL byte
        lambda toks: (toks.__setitem__(7, b""), toks.__setitem__(8, b"[EMPTY_7]")),  # llama.cpp's name for empty
    ],
    ids=["repeated", "nul", "empty"],
)
def test_vocabulary_with_repeated_token_texts_is_refused(smollm2_path, tmp_path, change):
    path = edited(smollm2_path, tmp_path / "m.gguf", edit_tokens(change))
    out = run_isolated(
        tmp_path,
        f"""
        from llamanative import _core
        from llamanative.errors import ModelLoadError
        try:
            _core.Model({str(path)!r}, vocab_only=True)
        except ModelLoadError as e:
            print("REFUSED", e)
        """,
    )  # llama.cpp: GGML_ASSERT(id_to_token.size() == token_to_id.size()), the process ended
    assert "REFUSED" in out and "same text as an earlier token" in out


def cut_vocabulary(n: int, *extra: tuple[bytes, int, object]) -> Callable[[gguf_header.Header], None]:
    """Keep the first ``n`` tokens (their scores and types too), then set ``extra`` key/values."""

    def edit(h: gguf_header.Header) -> None:
        for i, kv in enumerate(h.kvs):
            if kv.key in (b"tokenizer.ggml.tokens", b"tokenizer.ggml.scores", b"tokenizer.ggml.token_type"):
                h.kvs[i] = KV(kv.key, ARRAY, (kv.value[0], kv.value[1][:n]))
        for key, kind, value in extra:
            set_kv(key, kind, value)(h)

    return edit


# A special token id past a cut vocabulary, and llama.cpp's default id past it too: the token is unset.
UNSET_SPECIALS = {
    "spm": ("gemma3", cut_vocabulary(1)),  # adds BOS (default id 1)
    "bpe": (
        "smollm2",
        cut_vocabulary(11, (b"tokenizer.ggml.bos_token_id", U32, 10**7), (b"tokenizer.ggml.add_bos_token", BOOL, True)),
    ),  # asked to add BOS (default id 11)
    "wpm": ("minilm", cut_vocabulary(100)),  # always adds [CLS] and [SEP] (default ids 101, 102)
}


@pytest.mark.parametrize("kind", list(UNSET_SPECIALS))
def test_add_special_without_the_token_the_vocabulary_adds_is_refused(
    smollm2_path, gemma3_path, minilm_path, tmp_path, kind
):
    name, edit = UNSET_SPECIALS[kind]
    src = {"smollm2": smollm2_path, "gemma3": gemma3_path, "minilm": minilm_path}[name]
    path = edited(src, tmp_path / "m.gguf", edit)
    out = run_isolated(
        tmp_path,
        f"""
        from llamanative import _core
        v = _core.Model({str(path)!r}, vocab_only=True).vocab
        try:
            v.tokenize("hello world", add_special=True)
        except ValueError as e:
            print("REFUSED", e)
        try:
            v.tokenize_many(["hello"], add_special=True)
        except ValueError as e:
            print("REFUSED", e)
        """,
    )  # llama.cpp: GGML_ASSERT(special_..._id != LLAMA_TOKEN_NULL), the process ended
    assert out.count("REFUSED") == 2 and "cannot tokenize with add_special=True" in out


def test_vocabulary_without_an_unknown_token_cannot_return_minus_one(minilm_path, tmp_path):
    path = edited(minilm_path, tmp_path / "m.gguf", cut_vocabulary(100))  # [UNK] (id 100) is gone
    v = _core.Model(path, vocab_only=True).vocab
    assert v.tokenize("[PAD]", add_special=False, parse_special=True).tolist() == [0]
    with pytest.raises(ValueError, match="no valid unknown token"):  # was [-1]
        v.tokenize("hello", add_special=False)
    with pytest.raises(ValueError, match="no valid unknown token"):
        v.tokenize_many(["[PAD]", "hello"], add_special=False)


def test_spm_vocabulary_without_byte_tokens_fails_with_an_error(gemma3_path, tmp_path):
    def drop_byte_tokens(toks: list[bytes]) -> None:
        for i, t in enumerate(toks):
            if t.startswith(b"<0x") and len(t) == 6:
                toks[i] = b"<no-byte-" + t[3:5] + b">"

    path = edited(gemma3_path, tmp_path / "m.gguf", edit_tokens(drop_byte_tokens))
    out = run_isolated(
        tmp_path,
        f"""
        from llamanative import _core
        v = _core.Model({str(path)!r}, vocab_only=True).vocab
        print("PLAIN", len(v.tokenize("hello", add_special=False)))
        try:
            v.tokenize("\\U000f0000", add_special=False)  # a private-use character: byte fallback
        except ValueError as e:
            print("REFUSED", e)
        """,
    )  # llama.cpp threw std::out_of_range (unordered_map::at) through llama_tokenize: std::terminate
    assert "PLAIN" in out and "REFUSED" in out and "unordered_map::at" in out


def test_bytes_that_are_no_code_point_fail_with_an_error_on_the_real_vocabularies(tmp_path):
    out = run_isolated(
        tmp_path,
        """
        from llamanative import _core
        from llamanative.fetch import fetch_model
        for name in ("smollm2", "minilm"):
            v = _core.Model(fetch_model(name, quiet=True), vocab_only=True).vocab
            try:
                v.tokenize(b"x\\xf4\\x90\\x80\\x80")  # UTF-8 form of a value past U+10FFFF
            except ValueError as e:
                print("REFUSED", name, e)
        """,
    )  # BPE and WPM pre-tokenizers throw std::invalid_argument("invalid codepoint"): std::terminate
    assert out.count("REFUSED") == 2 and "invalid codepoint" in out


def test_template_bytes_that_are_not_utf8_give_a_value_error(smollm2_path, tmp_path):
    path = edited(smollm2_path, tmp_path / "m.gguf", set_kv(b"tokenizer.chat_template", STRING, b"{{ x \xf5 }}"))
    model = _core.Model(path, vocab_only=True)
    with pytest.raises(ValueError, match="not valid UTF-8"):  # was UnicodeDecodeError from common's message
        _core.ChatTemplates(model)


# -- token ids ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("token", [2**31, 2**40, -(2**31) - 1, 2**70])
def test_token_id_past_32_bits_is_a_value_error(smollm2, token):
    v = smollm2.vocab
    for fn in (v.token_to_piece, v.token_text, v.token_score, v.token_attr, v.is_eog, v.is_control):
        with pytest.raises(ValueError, match="out of range"):  # was OverflowError
            fn(token)
    with pytest.raises(ValueError, match="out of range"):
        _core.Detokenizer(v).add(token)
    with pytest.raises(ValueError, match="out of range"):
        v.detokenize([1, token])


def test_token_ids_are_not_wrapped_or_truncated_into_other_ids(smollm2):
    v = smollm2.vocab
    with pytest.raises(ValueError, match="out of range"):
        v.detokenize(np.array([2**32 + 5], dtype=np.int64))  # numpy's cast gave token 5
    with pytest.raises(ValueError, match="out of range"):
        v.detokenize([2**63, -5])  # numpy reads this list as float64
    with pytest.raises(TypeError, match="integers"):
        v.detokenize([1.7])  # was token 1
    with pytest.raises(TypeError, match="integers"):
        v.detokenize(["3"])  # was token 3
    assert v.detokenize(np.array([9690], dtype=np.uint64)) == v.detokenize([9690])


def test_client_detokenize_of_an_id_past_32_bits_is_a_400(client):
    with pytest.raises(StatusError) as e:  # was a raw OverflowError
        client.detokenize("smol", [2**40])
    assert e.value.status_code == 400


# -- chat templates and JSON schemas ----------------------------------------------------------------------------
# Built in the child process too (RECURSIVE_CODE): the sources are hundreds of kilobytes.
RECURSIVE_CODE = """
RECURSIVE = {
    "macro": "{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}",
    "mutual": "{% macro a() %}{{ b() }}{% endmacro %}{% macro b() %}{{ a() }}{% endmacro %}{{ a() }}",
    "alias": "{% macro r() %}{{ f() }}{% endmacro %}{% set f = r %}{{ r() }}",
    "brackets": "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}",
    "blocks": "{% if x %}" * 12000 + "a" + "{% endif %}" * 12000,
    "expression": "{{ " + "not " * 120000 + "x }}",
}
"""
NAMES = ["macro", "mutual", "alias", "brackets", "blocks", "expression"]


def test_templates_that_would_overflow_the_stack_are_refused(tmp_path):
    out = run_isolated(
        tmp_path,
        RECURSIVE_CODE
        + """
from llamanative import _core
for name, source in RECURSIVE.items():
    try:
        _core.ChatTemplates(None, source)
    except ValueError as e:
        print("REFUSED", name)
""",
    )  # common's Jinja engine segfaulted (stack overflow) while parsing or probing the template
    assert out.split() == [w for name in NAMES for w in ("REFUSED", name)]


def test_real_templates_and_macros_still_render(smollm2):
    source = (Path(__file__).parent / "data" / "qwen3_style.jinja").read_text()
    helper = (  # one macro calling another is no recursion
        "{% macro item(x) %}[{{ x }}]{% endmacro %}"
        "{% macro items(xs) %}{% for x in xs %}{{ item(x) }}{% endfor %}{% endmacro %}"
        "{{ items(messages | map(attribute='content') | list) }}"
    )
    for src in (source, helper, smollm2.chat_template):
        out = _core.ChatTemplates(None, src).apply({"messages": [{"role": "user", "content": "hi"}]})
        assert "hi" in out["prompt"]


def test_generate_with_a_recursive_template_fails_without_crashing(smollm2_path, tmp_path):
    out = run_isolated(
        tmp_path,
        f"""
        from llamanative import Client
        from llamanative.errors import ResponseError
        with Client(models_dir={str(tmp_path / "store")!r}) as c:
            c.create("smol", from_={str(smollm2_path)!r})
            try:
                c.generate("smol", "hi", template="{{% macro r(n) %}}{{{{ r(n + 1) }}}}{{% endmacro %}}{{{{ r(0) }}}}")
            except (ValueError, ResponseError) as e:
                print("REFUSED", type(e).__name__)
        """,
    )  # the template of a generate request went to common's Jinja engine: a segfault
    assert "REFUSED" in out


def test_deep_request_to_a_template_is_a_value_error(smollm2):
    args: dict = {}
    cur = args
    for _ in range(5000):
        cur["a"] = {}
        cur = cur["a"]
    call = {"type": "function", "function": {"name": "f", "arguments": args}}
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "", "tool_calls": [call]}]
    with pytest.raises(ValueError, match="nested too deeply"):  # was RecursionError
        _core.ChatTemplates(smollm2).apply({"messages": messages})


def test_schema_nested_deeper_than_the_converter_can_recurse_is_refused(tmp_path):
    out = run_isolated(
        tmp_path,
        """
        from llamanative import _core
        deep = '{"type": "array", "items": ' * 100000 + '{"type": "string"}' + "}" * 100000
        try:
            _core.json_schema_to_grammar(deep)
        except ValueError as e:
            print("REFUSED", e)
        """,
    )  # common's converter segfaulted (stack overflow)
    assert "REFUSED" in out and "nested" in out


@pytest.mark.parametrize("key", ["a\x00b", "a]", "x\\y"])
@pytest.mark.parametrize("extra", [True, {"type": "integer"}])
def test_property_names_the_converter_cannot_write_are_refused(smollm2, key, extra):
    schema = {"type": "object", "properties": {key: {"type": "string"}, "b": {}}, "additionalProperties": extra}
    # The converter wrote the name raw into a character class: a grammar that failed to parse when sampling
    # started (a 500 from the client).
    with pytest.raises(ValueError, match="property name"):
        _core.json_schema_to_grammar(schema)
    with pytest.raises(ValueError, match="property name"):
        _core.json_schema_to_grammar(json.dumps(schema))
    tool = {"type": "function", "function": {"name": "f", "parameters": schema}}
    templates = _core.ChatTemplates(None, (Path(__file__).parent / "data" / "qwen3_style.jinja").read_text())
    for request in ({"json_schema": schema}, {"tools": [tool]}):
        with pytest.raises(ValueError, match="property name"):
            templates.apply({"messages": [{"role": "user", "content": "hi"}], **request})
    # the same names are fine where no other key is allowed
    del schema["additionalProperties"]
    _core.Sampler(smollm2).grammar(_core.json_schema_to_grammar(schema))


def test_schema_grammars_the_grammar_parser_would_refuse_are_refused_at_conversion(smollm2):
    for schema in ({"type": "string", "minLength": 3000}, {"type": "array", "maxItems": 5000}):
        with pytest.raises(ValueError, match="repetitions"):
            _core.json_schema_to_grammar(schema)
    # within the limits the grammar compiles
    _core.Sampler(smollm2).grammar(_core.json_schema_to_grammar({"type": "string", "maxLength": 2000}))


def test_quantified_non_ascii_character_of_a_pattern_is_a_value_error():
    # The converter quantified the last byte of "é": a grammar that is not UTF-8, and a UnicodeDecodeError.
    for pattern in ("^é?$", "^[^0-9]*é??$", "^aé+$"):
        with pytest.raises(ValueError, match="non-ASCII"):
            _core.json_schema_to_grammar({"type": "string", "pattern": pattern})
    assert _core.json_schema_to_grammar({"type": "string", "pattern": "^[é]?$"})


def test_inverted_repetition_is_refused_instead_of_hanging_the_grammar_parser(smollm2_path, tmp_path):
    out = run_isolated(
        tmp_path,
        f"""
        from llamanative import _core
        from llamanative.errors import GrammarError
        s = _core.Sampler(_core.Model({str(smollm2_path)!r}, vocab_only=True))
        for grammar in ('root ::= [0-9]{{3,2}}', 'root ::= "a" x\\nx ::= "b"{{16,15}}'):
            try:
                s.grammar(grammar)
            except GrammarError as e:
                print("REFUSED", e)
        s.grammar('root ::= "{{3,2}}" [0-9]{{2,3}}')  # in a literal, a count is text
        print("LITERAL OK")
        """,
    )  # llama.cpp's grammar parser looped (and filled memory) on a maximum below the minimum
    assert out.count("REFUSED") == 2 and "LITERAL OK" in out


@pytest.mark.parametrize("minimum", [2**52, 2**53 + 1, 10**18])
def test_integer_minimum_of_16_digits_is_refused(smollm2, minimum):
    # The converter writes integers of at most 16 digits: [0-9]{16,15}, on which the grammar parser hung.
    with pytest.raises(ValueError, match="16 digits"):
        _core.json_schema_to_grammar({"type": "integer", "minimum": minimum})
    _core.Sampler(smollm2).grammar(_core.json_schema_to_grammar({"type": "integer", "minimum": 10**14}))


def test_format_with_too_many_repetitions_is_a_400(client):
    with pytest.raises(StatusError) as e:  # was a 500: "invalid GBNF grammar" from the sampler
        client.chat(
            "smol",
            [{"role": "user", "content": "hi"}],
            format={"type": "string", "minLength": 3000},
            options={"num_predict": 1},
        )
    assert e.value.status_code == 400 and "repetitions" in e.value.error


# -- Modelfiles, names and store paths ---------------------------------------------------------------------------
def test_modelfile_that_is_not_utf8_is_a_modelfile_error(tmp_path):
    path = tmp_path / "Modelfile"
    path.write_bytes(b"FROM smollm2\nSYSTEM \xff\xfe\n")
    with pytest.raises(ModelfileError, match="not UTF-8") as e:  # was UnicodeDecodeError
        read_modelfile(path)
    assert e.value.line == 2


@pytest.mark.parametrize("line", ["\x0b", "\x0c", "\u2028", "\x1c", "FROM x\n\x0b"])
def test_modelfile_line_of_other_white_space_is_a_modelfile_error(line):
    with pytest.raises(ModelfileError, match="unknown instruction"):  # was IndexError
        parse_modelfile(line)


@pytest.mark.parametrize("value", ["y" * 300 + ".gguf", "./" + "z" * 300, "/" + "d" * 5000 + "/m.gguf"])
def test_modelfile_from_too_long_for_the_file_system_is_a_modelfile_error(tmp_path, value):
    with pytest.raises(ModelfileError, match="FROM"):  # was OSError: File name too long
        parse_modelfile(f"FROM {value}", base_dir=tmp_path)


@pytest.mark.parametrize("value", ["~\x00", "~a\x00b/m.gguf", '"""~\x00\n"""'])
def test_modelfile_from_with_a_nul_in_the_user_name_is_a_modelfile_error(tmp_path, value):
    with pytest.raises(ModelfileError, match="no such file"):  # was ValueError: embedded null byte (~user lookup)
        parse_modelfile(f"FROM {value}", base_dir=tmp_path)


@pytest.mark.parametrize("name", ["smollm2\n", "smollm2:latest\n", "library/smollm2\n:x", "a\n/b/c"])
def test_model_name_part_with_a_trailing_newline_is_refused(name):
    with pytest.raises(StatusError) as e:  # "$" matched before the newline: a manifest named "latest\n"
        parse_name(name)
    assert e.value.status_code == 400


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("~no-such-user-anywhere/m.gguf", 400),  # was RuntimeError: Could not determine home directory
        ("~:\x00.gguf", 400),  # was ValueError: embedded null byte (looking up the user)
        ("y" * 300 + ".gguf", 400),  # was OSError: File name too long
        ("h" * 250 + ":12345/ns/model:tag", 404),  # the host part is longer than a file name may be
    ],
)
def test_store_resolve_answers_400_or_404_for_any_name(tmp_path, name, status):
    (tmp_path / "manifests").mkdir()  # a path under it is looked at component by component
    with pytest.raises(StatusError) as e:
        ModelStore(tmp_path).resolve(name)
    assert e.value.status_code == status


def test_url_with_lone_surrogates_is_not_taken_as_a_url():
    assert direct.is_url("https://example.com/\udcdc.gguf") is False  # was UnicodeEncodeError from httpx


# -- media bytes ----------------------------------------------------------------------------------------------
def test_top_down_bmp_decodes_at_its_height_and_within_the_pixel_limit(vision_pair):
    model, projector = vision_pair
    m = _core.Model(str(model))
    with _core.Projector(str(projector), m, n_threads=2, max_image_pixels=100) as p:
        top_down = media_files.bmp(6, 5, top_down=True)  # a negative height in the header: rows top first
        media = p.load_media(top_down)  # was MediaError: "the image header gives a size of 6x-5 pixels"
        assert (media.kind, media.width, media.height) == ("image", 6, 5)
        with pytest.raises(MediaError, match="20x10 pixels, more than the limit of 100"):
            p.load_media(media_files.bmp(20, 10, top_down=True))
        lowest = bytearray(top_down)
        lowest[22:26] = (-(2**31)).to_bytes(4, "little", signed=True)  # no absolute value in 32 bits
        with pytest.raises(MediaError, match="6x0 pixels"):
            p.load_media(bytes(lowest))
    m.close()


def test_corrupt_softimage_pic_is_refused_instead_of_crashing(vision_pair, tmp_path):
    model, projector = vision_pair
    pic = media_files.pic(5, 4)
    bad = [pic[:110], pic[:104] + b"\x00\x07\x00\xe0" + pic[108:]]  # truncated; a packet of 7 bits a channel
    out = run_isolated(
        tmp_path,
        f"""
        from llamanative import _core
        from llamanative.errors import MediaError
        m = _core.Model({str(model)!r})
        p = _core.Projector({str(projector)!r}, m, n_threads=2)
        for data in {[pic, *bad]!r}:
            try:
                p.load_media(data)
            except MediaError as e:
                print("REFUSED", e)
        p.close()
        """,
    )  # stb_image's PIC loader converted a failed decode's NULL buffer to RGB: a segfault
    assert out.count("REFUSED") == 3 and "Softimage PIC images are not supported" in out


@pytest.mark.parametrize("wrap", [bytearray, memoryview])
@pytest.mark.parametrize("cls", [Image, Audio])
def test_media_from_a_bytes_like_object_is_its_raw_data(cls, wrap):
    data = b"abcd"  # UTF-8 text that is also base64
    assert cls(wrap(data)).to_bytes() == data  # bytearray: was b"i\xb7\x1d" (taken as base64); memoryview: refused
    assert cls(value=wrap(data)).to_bytes() == data
    assert cls(wrap(b"\x89PNG\xff")).to_bytes() == b"\x89PNG\xff"
