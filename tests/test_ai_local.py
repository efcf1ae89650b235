"""The ``ai`` layer on real local models (SmolLM2, Gemma 3, MiniLM) through ``llamanative/<name>``.

The tiny models pick tools and arguments poorly, so these tests assert the
mechanics (a tool ran with schema-valid input, its response was fed back,
the loop ended with a model message ...), not the quality of the answers.
Tool calls are always well-formed (the client's grammar), and constrained
output always parses.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import jsonschema
import numpy as np
import pytest
from pydantic import BaseModel, Field

from llamanative.ai import (
    Genkit,
    InvalidPart,
    MaxTurnsExceeded,
    Message,
    ModelNotFound,
    ToolContext,
    new_tool,
    respond_with,
    restart_with,
)

CFG = {"maxOutputTokens": 48, "temperature": 0}


@pytest.fixture(scope="module")
def ai(client):
    return Genkit(model="llamanative/smol", client=client)


def tool_choices(*choices):
    """A middleware setting the tool choice of each model call in turn (the last one repeats)."""
    calls = []

    def middleware(next_fn):
        def run(request, on_chunk):
            calls.append(request)
            choice = choices[min(len(calls), len(choices)) - 1]
            return next_fn(request.model_copy(update={"tool_choice": choice}), on_chunk)

        return run

    middleware.calls = calls
    return middleware


def test_generate_text_usage_and_history(ai):
    resp = ai.generate(system="You are terse.", prompt="Say hello.", config={"maxOutputTokens": 8, "temperature": 0})
    assert resp.text() and resp.finish_reason in ("stop", "length")
    assert 0 < resp.usage.output_tokens <= 8 and resp.usage.input_tokens > 5
    assert resp.usage.total_tokens == resp.usage.input_tokens + resp.usage.output_tokens
    assert resp.usage.input_characters == len("You are terse.Say hello.")
    assert [m.role for m in resp.history()] == ["system", "user", "model"]
    wire = resp.to_dict()
    assert wire["message"]["role"] == "model" and wire["usage"]["inputTokens"] == resp.usage.input_tokens
    info = ai.lookup_model("llamanative/smol").info.supports
    assert info.tools and info.multiturn and info.constrained == "all" and not info.media
    with pytest.raises(ModelNotFound):
        ai.generate(model="llamanative/not-in-the-store", prompt="x")


def test_tool_loop(ai):
    seen = []

    def get_weather(city: str) -> str:
        """Get the current weather in a city."""
        seen.append(city)
        return f"Sunny, 22 degrees in {city}"

    mw = tool_choices("required", "none")
    resp = ai.generate(
        prompt="What is the weather in Paris?", tools=[new_tool("get_weather", get_weather)], use=[mw], config=CFG
    )
    assert len(seen) == 1 and isinstance(seen[0], str) and seen[0]  # schema-valid input
    assert len(mw.calls) == 2
    history = resp.history()
    assert [m.role for m in history] == ["user", "model", "tool", "model"]
    call, result = history[1].tool_requests()[0], history[2].content[0]
    assert call.tool_request.name == "get_weather" and call.tool_request.ref
    assert result.tool_response.ref == call.tool_request.ref
    assert result.tool_response.output == f"Sunny, 22 degrees in {seen[0]}"
    assert mw.calls[1].messages[-1] == history[2]  # the response was fed back to the model
    assert resp.message.role == "model" and resp.text()


def test_max_turns_exhausted(ai):
    runs = []

    def add(a: int, b: int) -> int:
        """Add two integers."""
        runs.append((a, b))
        return a + b

    mw = tool_choices("required")
    with pytest.raises(MaxTurnsExceeded, match=r"\(1\)"):
        ai.generate(prompt="Add 2 and 3.", tools=[new_tool("add", add)], use=[mw], max_turns=1, config=CFG)
    assert len(runs) == 1 and len(mw.calls) == 2
    assert all(isinstance(v, int) for v in runs[0])


def transfer(ctx: ToolContext, amount: int) -> str:
    """Transfer an amount of money (asks the user first)."""
    if not ctx.is_resumed():
        ctx.interrupt({"confirm": amount})
    return f"transferred {amount} (was {ctx.original_input})"


def test_interrupt_respond_resume(ai):
    tool = new_tool("transfer", transfer)
    resp = ai.generate(prompt="Transfer 50 dollars to Bob.", tools=[tool], tool_choice="required", config=CFG)
    assert resp.finish_reason == "interrupted"
    (intr,) = resp.interrupts()
    assert intr.metadata["interrupt"] == {"confirm": intr.tool_request.input}
    final = ai.generate(
        messages=resp.history(),
        tools=[tool],
        tool_choice="none",
        config=CFG,
        tool_responses=[tool.respond_with(intr, "cancelled by the user")],
    )
    history = final.history()
    assert [m.role for m in history] == ["user", "model", "tool", "model"]
    assert history[2].metadata == {"resumed": True}
    assert history[2].content[0].tool_response.output == "cancelled by the user"
    assert history[1].content[0].metadata == {"resolvedInterrupt": {"confirm": intr.tool_request.input}}
    assert final.finish_reason in ("stop", "length") and final.message.role == "model"


def test_interrupt_restart_resume(ai):
    tool = new_tool("transfer", transfer)
    resp = ai.generate(prompt="Transfer 50 dollars to Bob.", tools=[tool], tool_choice="required", config=CFG)
    (intr,) = resp.interrupts()
    final = ai.generate(
        messages=resp.history(),
        tools=[tool],
        tool_choice="none",
        config=CFG,
        tool_restarts=[restart_with(intr, new_input=20)],
    )
    out = final.history()[2].content[0].tool_response.output
    assert out == f"transferred 20 (was {intr.tool_request.input})"
    assert final.message.role == "model"
    with pytest.raises(InvalidPart):  # the final message is text, not a tool request
        respond_with(final.message.content[0], "x")


PERSON = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "age", "tags"],
    "properties": {
        "name": {"type": "string", "maxLength": 24},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 3},
    },
}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_constrained_json_streams_and_validates(ai, seed):
    outs, final = [], None
    for v in ai.generate_stream(
        prompt="Invent a fictional person.",
        output_schema=PERSON,
        config={"maxOutputTokens": 120, "temperature": 0.9, "seed": seed},
    ):
        if v.done:
            final = v.response
        else:
            outs.append(v.chunk.output())
    assert final.request.output.constrained
    value = final.output()
    jsonschema.validate(value, PERSON)
    assert outs[-1] == value  # chunks carry the whole partial object so far
    partial = [o for o in outs if o]
    assert all(set(o) <= set(PERSON["properties"]) for o in partial)


ITEMS = {
    "type": "array",
    "minItems": 2,
    "maxItems": 3,
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["animal"],
        "properties": {"animal": {"type": "string", "maxLength": 16}},
    },
}


def collect(stream):
    chunks, final = [], None
    for v in stream:
        if v.done:
            final = v.response
        else:
            chunks.append(v.chunk.output())
    return chunks, final


def test_text_format_streams(ai):
    chunks, final = collect(
        ai.generate_stream(prompt="Name a color.", config={"maxOutputTokens": 12, "temperature": 0})
    )
    assert chunks[-1] == final.text() == final.output()
    assert all(final.text().startswith(c) for c in chunks)


def test_array_format_streams_complete_items_once(ai):
    chunks, final = collect(
        ai.generate_stream(
            prompt="List three animals.",
            output_format="array",
            output_schema=ITEMS,
            config={"maxOutputTokens": 80, "temperature": 0},
        )
    )
    items = [i for c in chunks for i in c]
    assert final.request.output.constrained
    assert 2 <= len(items) <= 3 and items == final.output()
    jsonschema.validate(items, ITEMS)


def test_jsonl_format_streams_complete_items_once(ai):
    # jsonl is not constrained (Go's rule): a one-shot example shows the tiny model the shape.
    example = [
        Message(role="user", content="List 2 colors."),
        Message(role="model", content='{"name": "red"}\n{"name": "blue"}\n'),
    ]
    schema = {
        "type": "array",
        "items": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
    }
    chunks, final = collect(
        ai.generate_stream(
            messages=example,
            prompt="List 2 animals.",
            output_format="jsonl",
            output_schema=schema,
            output_instructions="",
            config={"maxOutputTokens": 40, "temperature": 0, "stopSequences": ["\n\n"]},
        )
    )
    assert not final.request.output.constrained
    items = [i for c in chunks for i in c]
    assert len(items) >= 2 and items == final.output()
    assert sum(1 for c in chunks if c) == len(items)  # each chunk with items gave a new, complete one


def test_enum_format_streams(ai):
    chunks, final = collect(
        ai.generate_stream(
            prompt="Is the sky blue? Answer yes or no.",
            output_enums=["yes", "no"],
            config={"maxOutputTokens": 8, "temperature": 0},
        )
    )
    assert final.output() in ("yes", "no") and final.text() == final.output()
    assert chunks[-1] == final.output() and all(c in ("", final.output()) for c in chunks)


class Pet(BaseModel):
    name: str = Field(max_length=20)
    species: str = Field(max_length=20)
    legs: int = Field(ge=0, le=8)


@dataclass
class City:
    name: str
    country: str


def test_generate_data_into_pydantic_and_dataclass(ai):
    pet, resp = ai.generate_data(Pet, prompt="Invent a pet.", config={"maxOutputTokens": 80, "temperature": 0})
    assert isinstance(pet, Pet) and resp.finish_reason == "stop"
    city, _ = ai.generate_data(
        City, prompt="Name a city and its country.", config={"maxOutputTokens": 60, "temperature": 0}
    )
    assert isinstance(city, City) and city.name


def test_stopping_a_stream_aborts_generation(ai):
    produced = []
    stream = ai.generate_stream(
        prompt="Write a very long story about a dragon and a knight.",
        on_chunk=lambda c: produced.append(c),
        config={"maxOutputTokens": 400, "temperature": 0},
    )
    got = []
    for v in stream:
        got.append(v)
        if len(got) == 3:
            break
    stream.close()
    assert stream.wait(timeout=30)
    # Stopped long before its 400 tokens: the generation runs on another thread, so a few chunks may
    # come between the break and the close (how many depends on the scheduling, not on the code).
    assert len(produced) < 400 // 4 and not any(v.done for v in got)
    # The request let go of the model: unload, which waits for the requests holding it, returns.
    unloaded = threading.Event()
    threading.Thread(target=lambda: ai.client.unload("smol") and unloaded.set(), daemon=True).start()
    assert unloaded.wait(timeout=120)  # only stops a hang
    assert ai.generate_text(prompt="Hi", config={"maxOutputTokens": 4, "temperature": 0})


def test_local_embedder_batches_one_call(ai, monkeypatch):
    calls = []
    real = ai.client.embed

    def counting(*args, **kwargs):
        calls.append(kwargs.get("input"))
        return real(*args, **kwargs)

    monkeypatch.setattr(ai.client, "embed", counting)
    resp = ai.embed("llamanative/mini", ["a cat", "a kitten", "a truck"])
    matrix = resp.as_array()
    assert len(calls) == 1 and matrix.shape == (3, 384) and matrix.dtype == np.float32
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-3)
    sims = matrix @ matrix.T
    assert sims[0, 1] > sims[0, 2]  # cat is nearer to kitten than to truck
    assert len(resp.vectors()) == 3


def test_second_architecture_gemma(ai):
    city, resp = ai.generate_data(
        City,
        model="llamanative/gemma",
        system="Answer in JSON.",
        prompt="Name a city and its country.",
        config={"maxOutputTokens": 60, "temperature": 0},
    )
    assert isinstance(city, City) and resp.usage.output_tokens > 0
