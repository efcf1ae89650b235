"""Prompts: input schemas named by a registered schema (Go's WithInputSchemaName), descriptors (Desc), and
data prompts over existing prompts (AsDataPrompt / LookupDataPrompt, DataPrompt.Desc): through the public API,
on the real local model where a model runs."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from llamanative.ai import DataPrompt, Genkit, Prompt, as_data_prompt, lookup_data_prompt
from llamanative.ai.errors import InputTypeMismatch, InvalidArgumentError, InvalidOutput, InvalidSchema
from llamanative.ai.prompts import load_prompt_from_source

GREEDY = {"temperature": 0, "maxOutputTokens": 48}


class City(BaseModel):
    name: str
    country: str


class Topic(BaseModel):
    topic: str


CITY_PROMPT = """---
config:
  temperature: 0
  maxOutputTokens: 48
input:
  schema:
    country: string
output:
  schema:
    name: string
    country: string
---
Name a city in {{country}}."""


@pytest.fixture(scope="module")
def ai(client):
    return Genkit(model="llamanative/smol", client=client)


# -- input schemas by name ---------------------------------------------------------------------------------
def test_an_input_schema_name_resolves_when_the_prompt_renders(ai):
    p = ai.define_prompt("about", prompt="Write one sentence about {{topic}}.", input_schema="Subject", config=GREEDY)
    assert p.input_schema_name == "Subject" and p.input_schema is None
    with pytest.raises(InvalidSchema, match="'Subject' is not defined"):
        p.render({"topic": "tides"})
    with pytest.raises(InvalidSchema):
        p.execute({"topic": "tides"})
    ai.define_schema("Subject", Topic)  # defined after the prompt: found when it renders
    assert p.input_schema["required"] == ["topic"]
    assert p.render({"topic": "tides"}).messages[-1].content[0].text == "Write one sentence about tides."
    with pytest.raises(InputTypeMismatch, match="topic"):
        p.render({"subject": "tides"})
    resp = p.execute({"topic": "tides"})
    assert resp.text().strip() and resp.request.messages[-1].content[0].text == "Write one sentence about tides."
    # Genkit's JSON form of the same reference, and a data prompt with a named input schema.
    ref = ai.define_prompt("about_ref", prompt="{{topic}}", input_schema={"$ref": "genkit:Subject"})
    assert ref.input_schema_name == "Subject" and ref.input_schema == p.input_schema
    dp = ai.define_data_prompt("city_of", City, prompt="Name a city in {{topic}}.", input_schema="Subject")
    with pytest.raises(InputTypeMismatch):
        dp.render({})
    city, _ = dp.execute({"topic": "Spain"}, config=GREEDY)
    assert isinstance(city, City)
    for bad in ("", 3):
        with pytest.raises(InvalidArgumentError):
            ai.define_prompt(f"bad{bad!r}", prompt="x", input_schema=bad)  # type: ignore[arg-type]


def test_a_prompt_file_naming_a_schema_resolves_it_when_it_renders(ai):
    p = load_prompt_from_source(ai, "---\ninput:\n  schema: Later\n---\nTell me about {{topic}}.", "later")
    assert p.input_schema_name == "Later"
    with pytest.raises(InvalidSchema, match="Later"):
        p.render_messages({"topic": "x"})
    ai.define_schema("Later", Topic)
    assert p.render_messages({"topic": "owls"})[0].content[0].text == "Tell me about owls."
    with pytest.raises(InputTypeMismatch):
        p.render_messages({})


# -- descriptors --------------------------------------------------------------------------------------------------
def test_prompt_desc(ai):
    ai.define_schema("Place", City)
    p = ai.define_prompt(
        "trip",
        variant="short",
        model="llamanative/smol",
        config=GREEDY,
        description="Plans a trip.",
        prompt="Plan a trip to {{topic}}.",
        input_schema="Subject2",
        default_input={"topic": "Rome"},
        output_schema="Place",
        tools=["lookup"],
        tool_choice="auto",
        max_turns=2,
        metadata={"owner": "docs", "prompt": {"extra": 1}},
    )
    d = p.desc()
    assert (d.type, d.key, d.name, d.description) == (
        "executable-prompt",
        "/executable-prompt/trip.short",
        "trip.short",
        "Plans a trip.",
    )
    meta = d.metadata["prompt"]
    assert d.metadata["type"] == "executable-prompt" and d.metadata["owner"] == "docs" and meta["extra"] == 1
    assert (meta["name"], meta["variant"], meta["model"], meta["config"]) == (
        "trip",
        "short",
        "llamanative/smol",
        GREEDY,
    )
    assert (meta["defaultInput"], meta["tools"], meta["toolChoice"], meta["maxTurns"]) == (
        {"topic": "Rome"},
        ["lookup"],
        "auto",
        2,
    )
    assert meta["output"] == {"format": "json", "schema": ai.lookup_schema("Place")}  # a registered name resolved
    assert d.input_schema == meta["input"]["schema"] == {"$ref": "genkit:Subject2"}  # not registered yet
    ai.define_schema("Subject2", Topic)
    assert p.desc().input_schema == ai.lookup_schema("Subject2")
    assert "messages" in d.output_schema["properties"]  # a prompt renders to a GenerateActionOptions
    wire = d.to_dict()
    assert wire["inputSchema"] == {"$ref": "genkit:Subject2"} and "outputSchema" in wire
    assert p.metadata == {"owner": "docs", "prompt": {"extra": 1}}  # the prompt's own metadata is not changed
    # A .prompt file's descriptor has its template; a data prompt's has its type's schema.
    loaded = load_prompt_from_source(ai, CITY_PROMPT, "city_desc")
    lm = loaded.desc().metadata["prompt"]
    assert lm["template"] == "Name a city in {{country}}." and lm["output"]["schema"]["required"] == ["name", "country"]
    dp = ai.define_data_prompt("typed_desc", City, prompt="x")
    assert dp.desc().metadata["prompt"]["output"] == {"format": "json", "schema": City.model_json_schema()}
    assert as_data_prompt(loaded, City).desc() == loaded.desc()  # DataPrompt.desc: the wrapped prompt's


# -- data prompts over existing prompts ---------------------------------------------------------------------------
def test_as_data_prompt_types_the_output_of_a_loaded_prompt(ai):
    loaded = load_prompt_from_source(ai, CITY_PROMPT, "city")
    dp = as_data_prompt(loaded, City)
    assert isinstance(dp, DataPrompt) and isinstance(dp, Prompt) and dp.wrapped is loaded
    assert (dp.key, dp.output_type) == ("city", City) and ai.lookup_prompt("city") is loaded  # not re-registered
    assert dp.render({"country": "Italy"}).to_dict() == loaded.render({"country": "Italy"}).to_dict()
    city, resp = dp.execute({"country": "Italy"})
    assert isinstance(city, City) and city == City.model_validate_json(resp.text())
    assert resp.request.output.constrained  # the file's output schema made the model's output
    values = list(dp.stream({"country": "Italy"}))
    assert values[-1].done and values[-1].output == city  # greedy: the same city
    assert all(v.output is not None for v in values[:-1])
    with pytest.raises(InputTypeMismatch):
        dp.execute({"nation": "Italy"})


def test_lookup_data_prompt_and_text_output(ai):
    ai.define_prompt("hello", prompt="Say hello to {{name}}.", config=GREEDY)
    ai.define_prompt("hello", variant="formal", prompt="Greet {{name}} formally.", config=GREEDY)
    text, resp = lookup_data_prompt(ai, "hello").execute({"name": "Ada"})  # default output type: str, the text
    assert isinstance(text, str) and text == resp.text() and text.strip()
    formal = ai.lookup_data_prompt("hello", str, variant="formal")
    assert formal.key == "hello.formal" and formal.execute({"name": "Ada"})[0].strip()
    assert lookup_data_prompt(ai, "absent", City) is None and ai.lookup_data_prompt("hello", variant="x") is None
    assert as_data_prompt(None) is None
    with pytest.raises(InvalidArgumentError, match="needs a Prompt"):
        as_data_prompt("hello")  # type: ignore[call-overload]
    # A prompt without an output schema: the text does not read as the type.
    with pytest.raises(InvalidOutput):
        as_data_prompt(ai.lookup_prompt("hello"), City).execute({"name": "Ada"})


def test_define_data_prompt_with_str_output_is_plain_text(ai):
    dp = ai.define_data_prompt("plain", str, prompt="Say hello.", config=GREEDY)
    assert dp.render().output.json_schema is None and dp.render().output.format is None
    text, resp = dp.execute()
    assert text == resp.text() and not text.startswith('"')


def test_a_defined_data_prompt_streams_typed_output(ai):
    dp = ai.define_data_prompt("city_stream", City, prompt="Name a city in {{country}}.", config=GREEDY)
    assert dp.wrapped is None and dp.render({"country": "Spain"}).output.format == "json"
    values = list(dp.stream({"country": "Spain"}))
    assert values[-1].done and isinstance(values[-1].output, City)
    assert values[-1].output == City.model_validate_json(values[-1].response.text())
    city, _ = dp.execute({"country": "Spain"})
    assert city == values[-1].output  # greedy: the same answer
