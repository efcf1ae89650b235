"""``ModelRef``: a model name with a bundled config (Go's ``NewModelRef``), in generate calls and prompts.

Go's rules: the reference's config is used when the call gives none, and is
never merged with a given one; a prompt defined with a reference and no
config takes the reference's; ``execute(model=ref)`` without a config
replaces the prompt's config with the reference's.
"""

from __future__ import annotations

import pytest
from ai_models import define

from llamanative.ai import GenerationCommonConfig, Genkit, InvalidArgumentError, ModelRef, model_ref
from llamanative.ai.prompts import load_prompt_from_source


@pytest.fixture
def ai():
    return Genkit()


# -- the rules, with a model function -----------------------------------------------------------------
def test_the_bundled_config_is_used_when_the_call_gives_none(ai):
    m = define(ai, ["a", "b", "c"])
    ref = model_ref("test/scripted", {"temperature": 0.1, "topK": 3})
    ai.generate(model=ref, prompt="x")
    ai.generate(model=ref, prompt="x", config={"maxOutputTokens": 9})  # replaces the whole config: no merge
    ai.generate(model=model_ref("test/scripted"), prompt="x")  # a reference without config fills nothing
    assert [r.config for r in m.requests] == [{"temperature": 0.1, "topK": 3}, {"maxOutputTokens": 9}, None]


def test_a_typed_config_travels_as_is(ai):
    m = define(ai, ["a"])
    cfg = GenerationCommonConfig(temperature=0.5, max_output_tokens=7)
    ai.generate(model=model_ref("test/scripted", cfg), prompt="x")
    assert m.requests[0].config == cfg


def test_a_reference_names_the_model_in_every_generate_form(ai):
    define(ai, ['{"n": 1}'], repeat_last=True)
    ref = model_ref("test/scripted", {"temperature": 0})
    assert ai.generate_text(model=ref, prompt="x") == '{"n": 1}'
    assert ai.generate_data({"type": "object"}, model=ref, prompt="x")[0] == {"n": 1}
    final = [v for v in ai.generate_stream(model=ref, prompt="x") if v.done][0].response
    assert final.request.config == {"temperature": 0}


def test_prompts_take_the_reference_config_by_go_rules(ai):
    m = define(ai, ["a"], repeat_last=True)
    ref = model_ref("test/scripted", {"temperature": 0.2})
    ai.define_prompt("plain", model=ref, prompt="hi")
    ai.define_prompt("own", model=ref, config={"topP": 0.9}, prompt="hi")
    ai.lookup_prompt("plain").execute()
    ai.lookup_prompt("own").execute()
    ai.lookup_prompt("own").execute(model=model_ref("test/scripted", {"topK": 2}))  # replaces the prompt's
    ai.lookup_prompt("own").execute(model=model_ref("test/scripted"))  # nothing to replace with
    ai.lookup_prompt("own").execute(model=ref, config={"seed": 4})  # the call's config wins
    assert [r.config for r in m.requests] == [
        {"temperature": 0.2},
        {"topP": 0.9},
        {"topK": 2},
        {"topP": 0.9},
        {"seed": 4},
    ]
    assert ai.lookup_prompt("plain").render().config == {"temperature": 0.2}
    assert ai.lookup_prompt("plain").render().model == "test/scripted"


def test_wire_form_and_validation():
    ref = model_ref("llamanative/smollm2", {"temperature": 0})
    assert ref.to_dict() == {"name": "llamanative/smollm2", "config": {"temperature": 0}}
    assert ModelRef.model_validate("llamanative/smollm2") == ModelRef(name="llamanative/smollm2")
    assert ModelRef.model_validate({"name": "m", "config": {"topK": 1}}).config == {"topK": 1}
    assert ref.with_config(None).config is None and ref.config == {"temperature": 0}
    with pytest.raises(InvalidArgumentError):
        model_ref("")


# -- a real local model -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local(client):
    return Genkit(client=client)


STORY = "Write a long story about a dragon who learns to sing."


def test_bundled_config_drives_a_local_model(local):
    short = model_ref("llamanative/smol", {"temperature": 0, "maxOutputTokens": 4})
    a = local.generate(model=short, prompt=STORY)
    b = local.generate(model=short, prompt=STORY)
    assert a.finish_reason == "length" and a.usage.output_tokens == 4
    assert a.text() == b.text() and a.text()  # temperature 0: greedy, the same text twice
    longer = local.generate(model=short, prompt=STORY, config={"temperature": 0, "maxOutputTokens": 10})
    assert longer.usage.output_tokens == 10 and longer.request.config == {"temperature": 0, "maxOutputTokens": 10}
    assert longer.text().startswith(a.text())  # same greedy path, just further


def test_bundled_config_in_local_prompts(local):
    short = model_ref("llamanative/smol", {"temperature": 0, "maxOutputTokens": 3})
    p = local.define_prompt("dragon", model=short, prompt=STORY)
    assert p.execute().usage.output_tokens == 3
    assert p.execute(config={"temperature": 0, "maxOutputTokens": 6}).usage.output_tokens == 6
    dp = load_prompt_from_source(
        local,
        "---\nmodel: llamanative/smol\nconfig:\n  temperature: 0\n  maxOutputTokens: 8\n---\n" + STORY,
        "dragon_file",
    )
    assert dp.execute().usage.output_tokens == 8
    resp = dp.execute(model=model_ref("llamanative/smol", {"temperature": 0, "maxOutputTokens": 2}))
    assert resp.usage.output_tokens == 2 and resp.request.config == {"temperature": 0, "maxOutputTokens": 2}
