"""Dotprompt: ``.prompt`` files (YAML frontmatter + Handlebars) as prompts of a ``Genkit`` registry.

    from llamanative.ai import Genkit
    from llamanative.ai.prompts import load_prompt_dir

    ai = Genkit()
    load_prompt_dir(ai, "prompts")               # _partials, name.variant.prompt, subdirectories
    p = ai.lookup_prompt("summarize", variant="short")
    p.render_messages({"text": "..."})           # the messages the template renders to
    p.execute({"text": "..."})                   # generate with the prompt's model

Schemas in the frontmatter may be Picoschema (:func:`picoschema`).
"""

from .parse import ParsedPrompt, parse_document
from .picoschema import PicoschemaError, picoschema
from .prompt import (
    DotPrompt,
    define_helper,
    define_partial,
    environment,
    load_prompt,
    load_prompt_dir,
    load_prompt_from_source,
    lookup_prompt,
    prompt_from_source,
    prompt_key,
)
from .render import PromptEnvironment, to_messages

__all__ = [
    "DotPrompt",
    "ParsedPrompt",
    "PicoschemaError",
    "PromptEnvironment",
    "define_helper",
    "define_partial",
    "environment",
    "load_prompt",
    "load_prompt_dir",
    "load_prompt_from_source",
    "lookup_prompt",
    "parse_document",
    "picoschema",
    "prompt_from_source",
    "prompt_key",
    "to_messages",
]
