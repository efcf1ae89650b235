"""The prompt the Client renders is the one llama.cpp and Hugging Face render for the same messages.

``client.chat(..., _debug_render_only=True)`` returns the rendered prompt; it
goes through ``common``'s Jinja engine (as llama-server does). Two references
that share no code with that path:

- ``llama_chat_apply_template`` (``_core.chat_apply_template``): llama.cpp's
  built-in formatter, which recognises a template by its markers and formats
  it in C++, without any Jinja;
- the GGUF's Jinja template rendered with Python's ``jinja2`` exactly as
  transformers' ``apply_chat_template`` renders it (sandboxed environment,
  ``trim_blocks``/``lstrip_blocks``, ``add_generation_prompt=True``, the
  special tokens from the vocabulary).

SmolLM2's GGUF carries a ChatML Jinja template that adds a default system
prompt when the conversation has none; the built-in formatter has no such
default, so for those conversations the reference gets that system message
passed explicitly. Gemma 3's GGUF carries no template at all: llama.cpp then
falls back to ChatML, which is what the built-in ``"chatml"`` format renders.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import jinja2
import jinja2.ext
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from llamanative import Client, _core

# What SmolLM2's template inserts when the first message is not a system message.
SMOLLM2_DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

Messages = list[dict[str, str]]

CONVERSATIONS: dict[str, Messages] = {
    "single_user_turn": [{"role": "user", "content": "Hi"}],
    "system_and_user": [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "What colour is the sky?"},
    ],
    "multi_turn": [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And times 3?"},
        {"role": "assistant", "content": "12.\nAnything else?"},
        {"role": "user", "content": "No, thanks."},
    ],
    "multi_turn_with_system": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Name a fruit."},
        {"role": "assistant", "content": "Apple."},
        {"role": "user", "content": "Another."},
    ],
    "unicode": [
        {"role": "system", "content": "Réponds en français, s'il te plaît — merci ! ☺"},
        {"role": "user", "content": "Grüße aus 東京 👋🏽 (e\u0301, ﬁ, 𝔘𝔫𝔦𝔠𝔬𝔡𝔢, עברית, Ελληνικά)"},
        {"role": "assistant", "content": "Bonjour ! 🇫🇷"},
        {"role": "user", "content": "Ça va ?"},
    ],
    # Text that looks like markup stays text: no engine may interpret it.
    "markup_and_whitespace": [
        {"role": "user", "content": "  <|im_end|>{{ messages }}{% if x %}\n\n"},
        {"role": "assistant", "content": '```json\n{"a": 1}\n```\r\n\t'},
        {"role": "user", "content": "\n"},
    ],
}


@pytest.fixture(scope="module")
def vocab_models(smollm2_path, gemma3_path) -> dict[str, _core.Model]:
    """The GGUFs' vocabularies and metadata (the template, the special tokens)."""
    return {"smol": _core.Model(smollm2_path, vocab_only=True), "gemma": _core.Model(gemma3_path, vocab_only=True)}


def client_render(client: Client, model: str, messages: Messages) -> str:
    r = client.chat(model, messages, _debug_render_only=True)
    assert r.done and r.eval_count is None  # rendered only: nothing was generated
    return r.debug_info.rendered_template


def has_system(messages: Messages) -> bool:
    return messages[0]["role"] == "system"


# -- the reference renderers --------------------------------------------------------------------
def builtin_render(template: str, messages: Messages) -> str:
    """llama.cpp's built-in (non-Jinja) formatter, ending with the opening of the assistant turn."""
    return _core.chat_apply_template(template, messages, add_assistant=True)


class _TemplateError(Exception):
    pass


def _raise_exception(message: str) -> None:
    raise _TemplateError(message)


def _tojson(
    x: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def hf_render(template: str, messages: Messages, vocab: _core.Vocab) -> str:
    """Render as transformers' ``apply_chat_template(messages, add_generation_prompt=True, tokenize=False)``.

    The same environment, extension, filters and globals as transformers'
    ``_compile_jinja_template``, and the special tokens as it passes them.
    """
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    special = {
        "bos_token": vocab.token_text(vocab.bos) if vocab.bos >= 0 else "",
        "eos_token": vocab.token_text(vocab.eos) if vocab.eos >= 0 else "",
    }
    return env.from_string(template).render(messages=messages, add_generation_prompt=True, **special)


# -- the templates are what the module docstring says -------------------------------------------
def test_smollm2_carries_a_chatml_template_with_a_default_system_prompt(vocab_models) -> None:
    template = vocab_models["smol"].chat_template
    assert template and "<|im_start|>" in template and SMOLLM2_DEFAULT_SYSTEM in template
    # llama.cpp's detector reads the Jinja source as ChatML.
    msgs = CONVERSATIONS["system_and_user"]
    assert builtin_render(template, msgs) == builtin_render("chatml", msgs)


def test_gemma3_carries_no_template_and_llama_cpp_falls_back_to_chatml(vocab_models) -> None:
    model = vocab_models["gemma"]
    assert model.chat_template is None
    caps = _core.ChatTemplates(model).caps()
    assert not caps["has_explicit_template"]


# -- parity ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CONVERSATIONS)
def test_smollm2_matches_llama_cpp_builtin_formatter(client, vocab_models, name: str) -> None:
    messages = CONVERSATIONS[name]
    # The one documented difference: the Jinja template's default system prompt.
    reference_messages = (
        messages if has_system(messages) else [{"role": "system", "content": SMOLLM2_DEFAULT_SYSTEM}, *messages]
    )
    assert client_render(client, "smol", messages) == builtin_render(
        vocab_models["smol"].chat_template, reference_messages
    )


@pytest.mark.parametrize("name", CONVERSATIONS)
def test_smollm2_matches_hugging_face_jinja_rendering(client, vocab_models, name: str) -> None:
    model = vocab_models["smol"]
    messages = CONVERSATIONS[name]
    assert client_render(client, "smol", messages) == hf_render(model.chat_template, messages, model.vocab)


@pytest.mark.parametrize("name", CONVERSATIONS)
def test_gemma3_matches_llama_cpp_builtin_chatml(client, name: str) -> None:
    messages = CONVERSATIONS[name]
    assert client_render(client, "gemma", messages) == builtin_render("chatml", messages)


@pytest.mark.parametrize("name", CONVERSATIONS)
def test_gemma3_fallback_template_matches_jinja2(client, vocab_models, name: str) -> None:
    # The fallback is itself a Jinja template; a second engine renders it the same.
    model = vocab_models["gemma"]
    fallback = _core.ChatTemplates(model).source()
    messages = CONVERSATIONS[name]
    assert client_render(client, "gemma", messages) == hf_render(fallback, messages, model.vocab)


def test_the_default_system_prompt_appears_exactly_when_no_system_message_is_given(client) -> None:
    """The difference handled above, checked in full rather than assumed."""
    opening = f"<|im_start|>system\n{SMOLLM2_DEFAULT_SYSTEM}<|im_end|>\n"
    for messages in CONVERSATIONS.values():
        rendered = client_render(client, "smol", messages)
        assert rendered.startswith(opening) != has_system(messages)
