"""The prompting layer: prompts rendered with the model's chat template, output parsed back.

(The design's "chat" layer; ``llamanative.chat`` is the module-level chat function.)

Both directions go through llama.cpp's ``common`` (its Jinja chat templates,
its tool-call and reasoning parsers, its JSON-schema-to-grammar converter),
reached through ``_core``.

- :mod:`.pipeline` — :class:`PromptPipeline`, one per loaded model: messages
  in, a :class:`Prompt` (tokens, grammar, stops, output parser) out.
- :mod:`.render` — rendering with a chat template; ``common``'s grammar as sampler settings.
- :mod:`.parse` — the output as content, thinking and tool calls, while it streams.
- :mod:`.generic_tools` — tool calling for templates that have no tool syntax.
- :mod:`.messages` — the request's messages and ``format`` in ``common``'s shapes.
- :mod:`.schema_check` — JSON-schema keywords the grammar would not enforce.
- :mod:`.logprobs` — the engine's token log probabilities as ``Logprob`` objects.
"""

from .messages import json_schema_of, oai_messages
from .parse import OutputParser, ReplyParser
from .pipeline import Prompt, PromptPipeline
from .render import Rendered, render_chat, template_caps

__all__ = [
    "OutputParser",
    "Prompt",
    "PromptPipeline",
    "Rendered",
    "ReplyParser",
    "json_schema_of",
    "oai_messages",
    "render_chat",
    "template_caps",
]
