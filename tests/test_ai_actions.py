"""Actions by their Genkit key (Go's LookupAction) and the generate action, /util/generate (Go's
DefineGenerateAction): through the public API, on the real local model."""

from __future__ import annotations

import asyncio
import json

import pytest
from pydantic import BaseModel

from llamanative.ai import (
    ActionDesc,
    GenerateAction,
    GenerateActionOptions,
    Genkit,
    Model,
    action_key,
    define_generate_action,
)
from llamanative.ai.actions import ActionRegistry
from llamanative.ai.errors import AlreadyExistsError, InvalidArgumentError, InvalidInput, ModelNotFound

GREEDY = {"temperature": 0, "maxOutputTokens": 48}


class City(BaseModel):
    name: str
    country: str


@pytest.fixture(scope="module")
def ai(client):
    return Genkit(model="llamanative/smol", client=client)


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": [{"text": text}]}]


# -- actions by key -----------------------------------------------------------------------------------------
def test_lookup_action_by_genkit_key(ai):
    assert action_key("prompt", "greet.short") == "/executable-prompt/greet.short"
    assert isinstance(ai.lookup_action("/util/generate"), GenerateAction)
    model = ai.lookup_action("/model/llamanative/smol")  # resolved as lookup_model does
    assert isinstance(model, Model) and model is ai.lookup_model("llamanative/smol")
    p = ai.define_prompt("keyed", prompt="Hi")
    assert ai.lookup_action("/executable-prompt/keyed") is p and ai.lookup_action(action_key("prompt", "keyed")) is p
    assert ai.lookup_action("/executable-prompt/absent") is None
    assert ai.lookup_action("/flow/keyed") is None  # a type this registry does not hold
    for bad in ("util/generate", "/util", "/util/", "", "/"):
        with pytest.raises(InvalidArgumentError, match="/<type>/<name>"):
            ai.lookup_action(bad)


# -- the generate action ----------------------------------------------------------------------------------------
def test_every_genkit_object_defines_the_generate_action(ai):
    action = ai.lookup_action("/util/generate")
    assert action.key == "/util/generate" and action.registry is ai
    with pytest.raises(AlreadyExistsError):
        define_generate_action(ai)
    child = ai.new_child()
    assert child.lookup_action("/util/generate") is action  # a child sees its parent's
    bare = ActionRegistry()  # a registry that is not a Genkit object has none until it is defined
    assert bare.lookup_action("/util/generate") is None
    defined = define_generate_action(bare)
    assert isinstance(defined, GenerateAction) and bare.lookup_action("/util/generate") is defined
    desc = defined.desc()
    assert isinstance(desc, ActionDesc) and (desc.type, desc.key, desc.name) == ("util", "/util/generate", "generate")
    assert {"messages", "model", "output"} <= set(desc.input_schema["properties"])
    assert "finishReason" in desc.output_schema["properties"] and desc.stream_schema is not None
    assert desc.to_dict()["inputSchema"] == desc.input_schema  # Genkit's JSON keys


def test_the_generate_action_runs_a_request_on_the_local_model(ai):
    action = ai.lookup_action("/util/generate")
    request = {"model": "llamanative/smol", "messages": user("Say hi."), "config": GREEDY}
    chunks = []
    resp = action.run(request, on_chunk=chunks.append)
    assert resp.text().strip() and resp.finish_reason in ("stop", "length")
    assert "".join(c.text() for c in chunks) == resp.text()
    # The same request as GenerateActionOptions, as JSON text, and through generate_with_request: one answer.
    options = GenerateActionOptions.model_validate(request)
    assert ai.generate_with_request(options).text() == resp.text()
    assert action(json.dumps(request)).text() == resp.text()
    assert json.loads(action.run_json(request))["message"]["content"][0]["text"] == resp.text()
    # Without a model the registry's default model answers.
    assert action.run({"messages": user("Say hi."), "config": GREEDY}).text() == resp.text()


def test_the_generate_action_streams_and_takes_an_output_format(ai):
    action = ai.lookup_action("/util/generate")
    request = {
        "messages": user("Name a city in France."),
        "config": GREEDY,
        "output": {"format": "json", "jsonSchema": City.model_json_schema(), "constrained": True},
    }
    values = list(action.stream(request))
    assert values[-1].done and not any(v.done for v in values[:-1]) and len(values) >= 2
    resp = values[-1].response
    assert "".join(v.chunk.text() for v in values[:-1]) == resp.text()
    city = resp.output(City)  # constrained by the registry's json format: a grammar on the local model
    assert isinstance(city, City) and city.name
    assert resp.request.output.constrained and resp.request.output.format == "json"


def test_the_generate_action_async(ai):
    action = ai.lookup_action("/util/generate")
    resp = asyncio.run(action.arun({"messages": user("Say hi."), "config": GREEDY}))
    assert resp.text() == action.run({"messages": user("Say hi."), "config": GREEDY}).text() != ""


def test_the_generate_action_refuses_bad_input(ai):
    action = ai.lookup_action("/util/generate")
    for bad in ({"messages": "not a list"}, "{not json", b"[1, 2]", 42, None):
        with pytest.raises(InvalidInput, match="/util/generate"):
            action.run(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        action.stream({"messages": 5})  # validated before it starts
    with pytest.raises(ModelNotFound):
        action.run({"model": "nowhere/nothing", "messages": user("Hi")})
