"""Rendering a conversation with the model's chat template, through llama.cpp's ``common``.

Rendering goes through llama.cpp's own Jinja chat-template code (``common``,
via ``_core.ChatTemplates``) from the template in the GGUF, exactly as
llama-server renders. Besides the prompt, ``common`` returns what generation
needs (a grammar for tool calls or a JSON schema, extra stop strings) and the
parameters its output parser reads back (:mod:`.parse`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import _core
from ..errors import StatusError
from ..types import ThinkValue, Tool
from .schema_check import for_grammar, unsupported_patterns


@dataclass
class Rendered:
    """A rendered chat prompt and what generation and parsing need from ``common``."""

    prompt: str
    params: dict
    grammar: dict = field(default_factory=dict)  # SamplingParams grammar fields
    stops: tuple[str, ...] = ()


def template_caps(template: str) -> dict[str, bool]:
    """What a chat template supports (``supports_tools``, ``supports_thinking``, ...), parsed without a model."""
    return _core.ChatTemplates(None, template).caps()


def render_chat(
    templates: _core.ChatTemplates,
    vocab: _core.Vocab,
    messages: list[dict],
    tools: list[Tool] | None,
    tool_choice: Any,
    schema: dict | None,
    think: ThinkValue | None,
) -> Rendered:
    """Render with the model's template; map ``common``'s grammar to sampler settings.

    ``think`` switches the template's thinking on or off (``enable_thinking``);
    a level ("low", "medium", "high") also reaches the template as
    ``reasoning_effort``, the variable templates with effort levels read.

    ``schema`` and the tools' parameter schemas reach ``common`` with their
    patterns rewritten for its converter (:func:`.schema_check.for_grammar`);
    the template shows the tools so.

    Raises:
        StatusError: 400 for a conversation the template rejects, or a
            pattern in ``schema`` or a tool's parameters that the grammar
            cannot enforce.
    """
    req: dict = {"messages": messages}
    if tools:
        req["tools"] = tool_dumps(tools)
        if tool_choice:
            req["tool_choice"] = tool_choice
    if schema is not None:
        req["json_schema"] = _for_grammar(schema)
    if think is not None:
        req["enable_thinking"] = think.bool()
        if think.is_string():
            req["chat_template_kwargs"] = {"reasoning_effort": think.string()}
    try:
        params = templates.apply(req)
    except ValueError as exc:
        raise StatusError.bad_request(str(exc)) from exc
    except RuntimeError as exc:
        raise StatusError.bad_request(f"the chat template failed on this conversation: {exc}") from exc
    return Rendered(params["prompt"], params, grammar_fields(params, vocab), tuple(params["additional_stops"]))


def grammar_fields(params: dict, vocab: _core.Vocab) -> dict:
    """``common``'s grammar (tool calls or a JSON schema) as ``SamplingParams`` fields."""
    if not params.get("grammar"):
        return {}
    fields: dict = {"grammar": params["grammar"], "grammar_lazy": bool(params.get("grammar_lazy"))}
    if fields["grammar_lazy"]:
        fields["grammar_trigger_patterns"] = tuple(t["pattern"] for t in params["grammar_triggers"] if t.get("pattern"))
        fields["grammar_trigger_tokens"] = tuple(
            t["token"] for t in params["grammar_triggers"] if t["type"] == "token" and t["token"] >= 0
        )
    if params.get("grammar_prefill") and params.get("generation_prompt"):
        # The grammar starts with the generation prompt: the sampler must see
        # those tokens first, as common_sampler_init does.
        toks = vocab.tokenize(params["generation_prompt"], add_special=False, parse_special=True)
        fields["grammar_prefill"] = tuple(int(t) for t in toks)
    return fields


def tool_dumps(tools: list[Tool]) -> list[dict]:
    """The tools as ``common`` reads them, each function's parameter patterns in its converter's form.

    Raises:
        StatusError: 400 naming every tool parameter pattern the grammar cannot enforce.
    """
    out, problems = [], []
    for tool in tools:
        dump = tool.model_dump(by_alias=True, exclude_none=True)
        fn = dump.get("function")
        if isinstance(fn, dict) and fn.get("parameters") is not None:
            found = unsupported_patterns(fn["parameters"])
            problems += [f"tool {fn.get('name')!r}: {p}" for p in found]
            if not found:
                fn["parameters"] = for_grammar(fn["parameters"])
        out.append(dump)
    if problems:
        raise StatusError.bad_request("tools: the grammar cannot enforce these patterns: " + "; ".join(problems))
    return out


def _for_grammar(schema: dict) -> dict:
    try:
        return for_grammar(schema)
    except ValueError as exc:
        raise StatusError.bad_request(f"format: {exc}") from exc


def schema_grammar(schema: dict) -> dict:
    """A JSON schema compiled to a grammar by ``common``, as ``SamplingParams`` fields (for untemplated prompts).

    Its patterns are rewritten for the converter first (:func:`.schema_check.for_grammar`).

    Raises:
        StatusError: 400 for a schema ``common`` cannot compile, or a pattern the grammar cannot enforce.
    """
    schema = _for_grammar(schema)
    try:
        return {"grammar": _core.json_schema_to_grammar(schema)}
    except ValueError as exc:
        raise StatusError.bad_request(f"invalid format schema: {exc}") from exc
