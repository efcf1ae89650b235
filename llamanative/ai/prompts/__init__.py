"""Dotprompt: ``.prompt`` files (YAML frontmatter + Handlebars) as prompts of a ``Genkit`` registry.

    from llamanative.ai import Genkit
    from llamanative.ai.prompts import load_prompt_dir

    ai = Genkit()
    load_prompt_dir(ai, "prompts")               # _partials, name.variant.prompt, subdirectories
    load_prompt_dir_from_fs(ai, importlib.resources.files("mypkg"), "prompts")   # or a zip, an fsspec fs
    p = ai.lookup_prompt("summarize", variant="short")
    p.render_messages({"text": "..."})           # the messages the template renders to
    p.execute({"text": "..."})                   # generate with the prompt's model

Schemas in the frontmatter may be Picoschema (:func:`picoschema`).
"""

from .parse import ParsedPrompt, parse_document
from .picoschema import PicoschemaError, picoschema
from .prompt import (
    DotPrompt,
    FileSystemLike,
    PromptFS,
    define_helper,
    define_partial,
    environment,
    load_prompt,
    load_prompt_dir,
    load_prompt_dir_from_fs,
    load_prompt_from_fs,
    load_prompt_from_source,
    lookup_prompt,
    prompt_from_source,
    prompt_key,
)
from .render import PromptEnvironment, to_messages

__all__ = [
    "DotPrompt",
    "FileSystemLike",
    "ParsedPrompt",
    "PicoschemaError",
    "PromptEnvironment",
    "PromptFS",
    "define_helper",
    "define_partial",
    "environment",
    "load_prompt",
    "load_prompt_dir",
    "load_prompt_dir_from_fs",
    "load_prompt_from_fs",
    "load_prompt_from_source",
    "lookup_prompt",
    "parse_document",
    "picoschema",
    "prompt_from_source",
    "prompt_key",
    "to_messages",
]
