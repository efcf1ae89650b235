"""Tool calling and thinking, end to end with real weights.

Two paths:
- *generic*: SmolLM2 and Gemma 3 carry templates without tool syntax, so tools
  go through the generic JSON form (``llamanative.prompting.generic_tools``),
  where a grammar makes every call well-formed;
- *native*: SmolLM2's weights with a Qwen3-style template
  (``tests/data/qwen3_style.jinja``), rendered and parsed by llama.cpp's
  ``common`` (``<tools>``, ``<tool_call>``, ``<think>``).
"""

from __future__ import annotations

import json
import re
from typing import Literal

import jsonschema
import pytest

from llamanative import ChatResponse, StatusError
from llamanative.prompting import OutputParser
from llamanative.types import tool_from_function

THINK_TAGS = re.compile(r"</?think>")


def get_weather(city: str, days: int, unit: Literal["celsius", "fahrenheit"] = "celsius") -> str:
    """Get the weather forecast for a city.

    Args:
        city: The city name.
        days: How many days ahead.
        unit: The temperature unit.
    """
    return json.dumps({"city": city, "days": days, "forecast": "sunny", "temperature": 22, "unit": unit})


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


WEATHER_SCHEMA = tool_from_function(get_weather).function.parameters.model_dump(by_alias=True, exclude_none=True)
ASK = [{"role": "user", "content": "What will the weather be in Paris over the next 3 days?"}]


@pytest.fixture(scope="module")
def client(client, qwen3_style_path):
    """conftest.py's Client, and SmolLM2 with a Qwen3-style template as ``qwen-style`` (for this module only)."""
    client.create("qwen-style", from_=str(qwen3_style_path))
    yield client
    client.delete("qwen-style")


def test_capabilities_come_from_the_template(client):
    assert "tools" not in client.show("smol").capabilities
    assert "thinking" not in client.show("smol").capabilities
    assert {"completion", "tools", "thinking"} <= set(client.show("qwen-style").capabilities)


# -- the generic form ---------------------------------------------------------------------


@pytest.mark.parametrize("model,seeds", [("smol", 4), ("gemma", 2)])
def test_generic_tool_calls_always_match_the_schema(client, model, seeds):
    for seed in range(seeds):
        r = client.chat(
            model,
            ASK,
            tools=[get_weather],
            tool_choice="required",
            options={"temperature": 1.0, "seed": seed, "num_predict": 400},
        )
        assert r.done_reason == "stop", r.message.content
        assert r.message.content == "" and r.message.tool_calls
        for call in r.message.tool_calls:
            assert call.function.name == "get_weather" and call.id.startswith("call_")
            jsonschema.validate(dict(call.function.arguments), WEATHER_SCHEMA)
            assert isinstance(call.function.arguments["days"], int)
            get_weather(**call.function.arguments)  # the arguments call the function as declared


def test_generic_stream_shows_no_json_and_the_calls_arrive_complete(client):
    opts = {"temperature": 0, "num_predict": 128}
    chunks = list(client.chat("smol", ASK, tools=[get_weather], tool_choice="required", stream=True, options=opts))
    assert all(c.message.content == "" for c in chunks)  # a tool call is never streamed as text
    calls = [tc for c in chunks for tc in (c.message.tool_calls or [])]
    assert chunks[-1].done and calls == chunks[-1].message.tool_calls
    joined = client.chat("smol", ASK, tools=[get_weather], tool_choice="required", options=opts)
    assert [(c.function.name, c.function.arguments) for c in joined.message.tool_calls] == [
        (c.function.name, c.function.arguments) for c in calls
    ]


def test_generic_plain_answer_streams_only_the_response_text(client):
    msgs = [{"role": "user", "content": "Say hello to Ada."}]
    opts = {"temperature": 0, "num_predict": 64}
    chunks = list(client.chat("smol", msgs, tools=[add], stream=True, options=opts))
    text = "".join(c.message.content for c in chunks)
    assert chunks[-1].done and not chunks[-1].message.tool_calls  # the model chose to answer
    assert text and '"response"' not in text and not text.lstrip().startswith("{")


def test_tool_choice_names_one_function(client):
    r = client.chat(
        "smol",
        [{"role": "user", "content": "What is 2 plus 3?"}],
        tools=[get_weather, add],
        tool_choice={"type": "function", "function": {"name": "add"}},
        options={"temperature": 0, "num_predict": 128},
    )
    assert [c.function.name for c in r.message.tool_calls] and {c.function.name for c in r.message.tool_calls} == {
        "add"
    }
    with pytest.raises(StatusError) as e:
        client.chat("smol", ASK, tools=[add], tool_choice={"type": "function", "function": {"name": "nope"}})
    assert e.value.status_code == 400 and "nope" in str(e.value)


def test_generic_round_trip(client):
    tools = {"get_weather": get_weather}
    first = client.chat(
        "smol", ASK, tools=[get_weather], tool_choice="required", options={"temperature": 0, "num_predict": 128}
    )
    (call,) = first.message.tool_calls[:1]
    result = tools[call.function.name](**call.function.arguments)
    history = ASK + [first.message, {"role": "tool", "tool_name": call.function.name, "content": result}]
    rendered = client.chat(
        "smol", history, tools=[get_weather], tool_choice="none", _debug_render_only=True
    ).debug_info.rendered_template
    assert '"tool_calls": [{"name": "get_weather"' in rendered and '"tool_response"' in rendered
    assert json.dumps(result)[1:-1] in rendered  # the result reaches the model
    answer = client.chat(
        "smol", history, tools=[get_weather], tool_choice="none", options={"temperature": 0, "num_predict": 48}
    )
    assert answer.message.content and not answer.message.tool_calls


# -- the native form (Qwen3-style template through common) ----------------------------------


def test_native_tools_are_rendered_with_the_template_syntax(client):
    r = client.chat("qwen-style", ASK, tools=[get_weather], _debug_render_only=True)
    prompt = r.debug_info.rendered_template
    assert "<tools>" in prompt and '"name": "get_weather"' in prompt and "Respond in JSON" not in prompt
    history = ASK + [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}}],
        },
        {"role": "tool", "tool_name": "get_weather", "content": "sunny"},
    ]
    prompt = client.chat(
        "qwen-style", history, tools=[get_weather], _debug_render_only=True
    ).debug_info.rendered_template
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}\n</tool_call>' in prompt
    assert "<tool_response>\nsunny\n</tool_response>" in prompt


def test_native_output_is_parsed_while_streaming(qwen3_style_path):
    # The model's raw text, fed to the parser in 1-3 character pieces as tokens would arrive.
    from llamanative import _core

    model = _core.Model(str(qwen3_style_path), vocab_only=True)
    tools = [tool_from_function(get_weather).model_dump(by_alias=True, exclude_none=True)]
    params = _core.ChatTemplates(model).apply({"messages": ASK, "tools": tools})
    out = (
        "Paris, three days.\n</think>\n\nLet me look.\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city": "Paris", "days": 3, "unit": "celsius"}}\n</tool_call>'
    )
    parser = OutputParser(params)
    content = thinking = ""
    for i in range(0, len(out), 3):
        c, t, _ = parser.feed(out[i : i + 3])
        content += c
        thinking += t
    c, t, msg = parser.feed("", final=True)
    content += c
    thinking += t
    assert thinking.strip() == "Paris, three days." and content.strip() == "Let me look."
    assert "<" not in content + thinking
    (call,) = parser.tool_calls(msg)
    assert call.function.name == "get_weather" and call.function.arguments == {
        "city": "Paris",
        "days": 3,
        "unit": "celsius",
    }


def test_thinking_is_on_by_default_and_can_be_turned_off(client):
    def render(**kw):
        return client.chat("qwen-style", ASK, _debug_render_only=True, **kw).debug_info.rendered_template

    assert render().endswith("<|im_start|>assistant\n<think>\n")
    assert render(think=True) == render() == render(think="high")
    assert render(think=False).endswith("<think>\n\n</think>\n\n")


def test_thinking_streams_separately_without_tags(client):
    opts = {"temperature": 0, "num_predict": 40}
    chunks = list(client.chat("qwen-style", ASK, stream=True, options=opts))
    thinking = "".join(c.message.thinking or "" for c in chunks)
    content = "".join(c.message.content for c in chunks)
    assert thinking and not THINK_TAGS.search(thinking + content)
    joined = client.chat("qwen-style", ASK, options=opts)
    assert isinstance(joined, ChatResponse) and joined.message.thinking == thinking
    assert joined.message.content == content
    off = client.chat("qwen-style", ASK, think=False, options=opts)
    assert off.message.thinking is None and off.message.content and not THINK_TAGS.search(off.message.content)


def test_thinking_on_a_model_without_it_is_a_400(client):
    with pytest.raises(StatusError) as e:
        client.chat("smol", ASK, think=True)
    assert e.value.status_code == 400 and e.value.error == '"smol" does not support thinking'
    assert client.chat("smol", ASK, think=False, options={"num_predict": 2}).done


def test_structured_output_after_thinking(client):
    # Thinking runs unconstrained; the schema applies to the answer after it.
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    r = client.chat("qwen-style", ASK, format=schema, think=False, options={"temperature": 0, "num_predict": 64})
    assert r.done_reason == "stop"
    jsonschema.validate(json.loads(r.message.content), schema)
    chunks = list(
        client.chat("qwen-style", ASK, format=schema, options={"temperature": 0, "num_predict": 24}, stream=True)
    )
    assert "".join(c.message.thinking or "" for c in chunks)  # thinking first, free text
    assert not THINK_TAGS.search("".join(c.message.content for c in chunks))


def test_a_thinking_level_reaches_the_template_as_reasoning_effort(smollm2):
    from llamanative import _core
    from llamanative.prompting import render_chat
    from llamanative.types import ThinkValue

    templates = _core.ChatTemplates(
        smollm2, "{% for m in messages %}{{ m.content }}|{% endfor %}{{ reasoning_effort | default('unset') }}"
    )

    def render(think):
        return render_chat(
            templates, smollm2.vocab, [{"role": "user", "content": "hi"}], None, None, None, think
        ).prompt

    assert render(ThinkValue("high")) == "hi|high" and render(ThinkValue("low")) == "hi|low"
    assert render(ThinkValue(True)) == render(None) == "hi|unset"


def test_generate_separates_thinking_too(client):
    r = client.generate("qwen-style", "What is 2+2?", options={"temperature": 0, "num_predict": 24})
    assert r.thinking and not THINK_TAGS.search(r.thinking + r.response)
    chunks = list(
        client.generate("qwen-style", "What is 2+2?", stream=True, options={"temperature": 0, "num_predict": 24})
    )
    assert "".join(c.thinking or "" for c in chunks) and all(not THINK_TAGS.search(c.response) for c in chunks)
    off = client.generate("qwen-style", "What is 2+2?", think=False, options={"temperature": 0, "num_predict": 8})
    assert off.thinking is None and off.response
