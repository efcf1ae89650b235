"""llama.cpp's `common` chat code through the C++ bridge: rendering, parsing, schemas."""

from __future__ import annotations

import pytest

from llamanative import _core

HERMES = (
    "{%- for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{%- endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{%- endif %}"
)


def test_smollm2_renders_with_its_own_jinja_template(smollm2):
    t = _core.ChatTemplates(smollm2)
    assert t.caps()["has_explicit_template"] and not t.caps()["supports_tools"]
    out = t.apply({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]})
    assert out["prompt"] == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"
    )
    # SmolLM2's template adds its default system prompt when none is given.
    default = t.apply({"messages": [{"role": "user", "content": "Hi"}]})["prompt"]
    assert default.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert t.source() == smollm2.chat_template


def test_parser_round_trip(smollm2):
    t = _core.ChatTemplates(smollm2)
    params = t.apply({"messages": [{"role": "user", "content": "Hi"}]})
    msg = _core.ChatParser(params).parse("Hello! How can I help?")
    assert msg["content"] == "Hello! How can I help?" and msg["tool_calls"] == []


def test_template_override_and_errors(smollm2):
    t = _core.ChatTemplates(smollm2, HERMES)
    assert (
        t.apply({"messages": [{"role": "user", "content": "x"}]})["prompt"]
        == "<|im_start|>user\nx<|im_end|><|im_start|>assistant"
    )  # the {%- ... %} strip the newlines
    with pytest.raises(ValueError, match="template"):
        _core.ChatTemplates(smollm2, "{% for %}")
    with pytest.raises(ValueError):
        t.apply({"no_messages": []})
    with pytest.raises(ValueError):
        _core.ChatTemplates(None)


def test_json_schema_to_grammar_is_enforced_by_the_sampler(smollm2):
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 12}, "population": {"type": "integer"}},
        "required": ["city", "population"],
    }
    gbnf = _core.json_schema_to_grammar(schema)
    assert "root ::=" in gbnf
    import json

    from llamanative.engine import generate_step

    ctx = _core.Context(smollm2, n_ctx=512)
    sampler = _core.Sampler(smollm2).grammar(gbnf).greedy()
    toks = smollm2.vocab.tokenize("The largest city in France as JSON:")
    text = "".join(s.text for s in generate_step(ctx, sampler, toks, max_tokens=64))
    data = json.loads(text)
    assert isinstance(data["city"], str) and isinstance(data["population"], int)
    with pytest.raises(ValueError):
        _core.json_schema_to_grammar("{not json")


def test_llama_builtin_chat_formats():
    msgs = [{"role": "user", "content": "Hi"}]
    assert _core.chat_apply_template("chatml", msgs) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    with pytest.raises(ValueError, match="recognise"):
        _core.chat_apply_template("no-such-format", msgs)
    with pytest.raises(ValueError, match="role"):
        _core.chat_apply_template("chatml", [{"content": "x"}])
