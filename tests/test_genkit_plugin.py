"""The Genkit plugin (``llamanative.genkit``) in the official Genkit Python SDK, on real local models.

Its own test job: it needs ``genkit>=0.12,<0.13`` (``llamanative[genkit]``)
and is skipped where that is not installed.
"""

from __future__ import annotations

import asyncio
from importlib import metadata

import jsonschema
import pytest

pytest.importorskip("genkit")
if not metadata.version("genkit").startswith("0.12."):
    pytest.skip(f"the plugin targets genkit 0.12.x, found {metadata.version('genkit')}", allow_module_level=True)

from genkit import Genkit  # noqa: E402
from genkit.plugin_api import ActionKind  # noqa: E402
from pydantic import BaseModel, Field  # noqa: E402

from llamanative.genkit import LlamaNative  # noqa: E402


class Pet(BaseModel):
    name: str = Field(max_length=20)
    legs: int = Field(ge=0, le=8)


@pytest.fixture
def plugin(client):
    return LlamaNative(models=["smol"], embedders=["llamanative/mini"], client=client)


@pytest.fixture
def ai(plugin):
    return Genkit(plugins=[plugin], model="llamanative/smol")


def run(coro):
    return asyncio.run(coro)


def test_generate_with_a_local_model(ai):
    resp = run(ai.generate(prompt="Say hello.", config={"maxOutputTokens": 8, "temperature": 0}))
    assert resp.text and resp.finish_reason in ("stop", "length")
    assert 0 < resp.usage.output_tokens <= 8 and resp.usage.input_tokens > 0


def test_streaming_chunks_add_up_to_the_response(ai):
    async def go():
        result = ai.generate_stream(prompt="Count from one to five.", config={"maxOutputTokens": 16, "temperature": 0})
        chunks = [c.text async for c in result.stream]
        return chunks, await result.response

    chunks, resp = run(go())
    assert len(chunks) > 1 and "".join(chunks) == resp.text


def test_structured_output_is_constrained(ai):
    resp = run(ai.generate(prompt="Invent a pet.", output_schema=Pet, config={"maxOutputTokens": 60, "temperature": 0}))
    jsonschema.validate(
        resp.output if isinstance(resp.output, dict) else resp.output.model_dump(), Pet.model_json_schema()
    )


def test_tool_requests_come_back_well_formed(ai):
    @ai.tool()
    async def get_weather(city: str) -> str:
        """Get the current weather in a city."""
        return f"Sunny in {city}"

    resp = run(
        ai.generate(
            prompt="What is the weather in Paris?",
            tools=["get_weather"],
            tool_choice="required",
            return_tool_requests=True,
            config={"maxOutputTokens": 48, "temperature": 0},
        )
    )
    (part,) = resp.tool_requests
    assert part.tool_request.name == "get_weather" and part.tool_request.input and part.tool_request.ref


def test_embedder(ai):
    embeddings = run(ai.embed(embedder="llamanative/mini", content="a cat"))
    assert len(embeddings) == 1 and len(embeddings[0].embedding) == 384


def test_resolve_and_list_actions(plugin):
    assert run(plugin.resolve(ActionKind.MODEL, "other/smol")) is None
    assert run(plugin.resolve(ActionKind.MODEL, "llamanative/not-in-store")) is None
    action = run(plugin.resolve(ActionKind.MODEL, "llamanative/smol"))
    assert action.name == "llamanative/smol" and action.metadata["model"]["supports"]["tools"]
    listed = {(a.name, a.action_type) for a in run(plugin.list_actions())}
    # Every model of the store: the generative ones as models, MiniLM (BERT) as an embedder.
    models = {("llamanative/smol", ActionKind.MODEL), ("llamanative/gemma", ActionKind.MODEL)}
    assert listed == models | {("llamanative/mini", ActionKind.EMBEDDER)}
