"""The rest of the documented ``ai`` API, through the public surface, on the real local models."""

from __future__ import annotations

import json

import pytest

from llamanative.ai import Genkit


@pytest.fixture(scope="module")
def ai(client):
    return Genkit(model="llamanative/smol", client=client)


def test_json_output_without_schema_is_constrained_on_a_local_model(ai):
    # Without a schema the format is not "constrained" in Genkit's sense (there is no schema to send), but a
    # local model still gets the JSON grammar, as Client.chat(format="json") does: the output always parses.
    resp = ai.generate(
        prompt='Reply with a JSON object with one key "color" set to a color name.',
        output_format="json",
        config={"maxOutputTokens": 64, "temperature": 0},
    )
    assert resp.request.output.format == "json" and not resp.request.output.constrained
    value = resp.output()
    assert isinstance(value, dict) and json.loads(resp.text()) == value
