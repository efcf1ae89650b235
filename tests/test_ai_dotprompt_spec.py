"""The Dotprompt spec cases (``tests/data/dotprompt_spec``, from google/dotprompt) against ``llamanative.ai.prompts``.

Each case renders its template with its data and compares the messages, and
the frontmatter fields the case expects (config, ext, raw, model, Picoschema
input/output schemas, input defaults), with the spec's expectations, the
way the reference runners do (``js/test/spec.test.ts``):

- the case's ``data`` is merged over the suite's, shallowly;
- ``options`` override the template's metadata (here: ``input.default``);
- ``partials`` are registered; ``resolverPartials`` are served on demand by
  the reference runners, here they are registered up front (the same text
  renders either way);
- ``schemas`` are registered in the registry (``define_schema``), which is
  where Picoschema type names are looked up.

A second test runs the same cases through a loaded prompt
(``DotPrompt.render_messages``), where Genkit's own rules add two checks:
the input is validated against the input schema (a case that declares one
but renders without input gets :class:`InputTypeMismatch`), and a media part
with an http(s) URL needs a content type.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from llamanative.ai import Genkit, InputTypeMismatch, InvalidArgumentError
from llamanative.ai.prompts import (
    DotPrompt,
    define_partial,
    environment,
    parse_document,
    picoschema,
    prompt_from_source,
)

SPEC_DIR = Path(__file__).parent / "data" / "dotprompt_spec"

# Cases that fail because of the Handlebars dependency, not our code: {case id: reason}. None at present.
XFAIL: dict[str, str] = {}


def _cases() -> list[Any]:
    out = []
    for path in sorted(SPEC_DIR.rglob("*.yaml")):
        group = path.relative_to(SPEC_DIR).with_suffix("").as_posix()
        for suite in yaml.safe_load(path.read_text(encoding="utf-8")):
            for i, case in enumerate(suite["tests"]):
                case_id = f"{group}/{suite['name']}/{i}"
                marks = [pytest.mark.xfail(reason=XFAIL[case_id], strict=True)] if case_id in XFAIL else []
                out.append(pytest.param(suite, case, id=case_id, marks=marks))
    return out


CASES = _cases()


def _registry(suite: dict[str, Any]) -> Genkit:
    ai = Genkit()
    for name, source in {**(suite.get("partials") or {}), **(suite.get("resolverPartials") or {})}.items():
        define_partial(ai, name, source)
    for name, schema in (suite.get("schemas") or {}).items():
        ai.define_schema(name, schema)
    return ai


def _data(suite: dict[str, Any], case: dict[str, Any]) -> dict[str, Any]:
    return {**(suite.get("data") or {}), **(case.get("data") or {})}


def _defaults(parsed: Any, case: dict[str, Any]) -> dict[str, Any]:
    options = case.get("options") or {}
    return (options.get("input") or {}).get("default") or parsed.input.get("default") or {}


def test_the_spec_cases_are_all_here():
    assert len(CASES) == 117
    assert {Path(p).stem for p in SPEC_DIR.rglob("*.yaml")} >= {
        "history",
        "ifEquals",
        "json",
        "media",
        "role",
        "section",
        "unlessEquals",
        "metadata",
        "partials",
        "picoschema",
        "variables",
        "whitespace",
    }


@pytest.mark.parametrize("suite,case", CASES)
def test_spec_case(suite, case):
    ai = _registry(suite)
    parsed = parse_document(suite["template"])
    data = _data(suite, case)
    variables = {**_defaults(parsed, case), **(data.get("input") or {})}
    messages = environment(ai).render(
        parsed.template, variables, messages=data.get("messages"), docs=data.get("docs"), context=data.get("context")
    )
    expect = case["expect"]
    assert [m.to_dict() for m in messages] == expect.get("messages", [])
    fields = {"config": parsed.config, "ext": parsed.ext, "model": parsed.model, "raw": parsed.raw}
    for key in ("config", "ext", "model", "raw"):
        if key in expect:
            assert fields[key] == expect[key], key
    for key in ("input", "output"):
        if "schema" in (expect.get(key) or {}):
            assert picoschema(getattr(parsed, key).get("schema"), ai.lookup_schema) == expect[key]["schema"], key
    if "default" in (expect.get("input") or {}):
        assert _defaults(parsed, case) == expect["input"]["default"]


def _needs_content_type(data: dict[str, Any], template: str) -> bool:
    """Genkit's rule for prompts: media from an http(s) URL must name its content type."""
    url = (data.get("input") or {}).get("url", "")
    return "{{media" in template and url.startswith("http") and "contentType" not in template


@pytest.mark.parametrize("suite,case", CASES)
def test_spec_case_through_a_loaded_prompt(suite, case):
    ai = _registry(suite)
    data = _data(suite, case)
    prompt = prompt_from_source(ai, suite["template"], "spec_case")
    options = case.get("options") or {}
    if "input" in options:  # metadata overrides: the prompt as if its frontmatter said so
        prompt = DotPrompt(ai, "spec_case", prompt.template, default_input=options["input"].get("default"))

    def render():
        return prompt.render_messages(
            data.get("input"),
            messages=data.get("messages"),  # noqa: E731
            docs=data.get("docs"),
            context=data.get("context"),
        )

    expect = case["expect"]
    if _needs_content_type(data, suite["template"]):
        with pytest.raises(InvalidArgumentError, match="contentType"):
            render()
    elif prompt.input_schema is not None and data.get("input") is None:
        with pytest.raises(InputTypeMismatch):
            render()
    else:
        assert [m.to_dict() for m in render()] == expect.get("messages", [])
    if "schema" in (expect.get("input") or {}):
        assert prompt.input_schema == expect["input"]["schema"]
    for key in ("ext", "raw"):
        if key in expect:
            assert getattr(prompt, key) == expect[key], key
