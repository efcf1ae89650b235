"""Prompts from ``.prompt`` files (dotprompt), registered in a ``Genkit`` registry.

A ``.prompt`` file is YAML frontmatter plus a Handlebars template::

    ---
    model: llamanative/smollm2
    config: {temperature: 0.2}
    input:
      schema:
        topic: string
        style?: string, how to write
      default: {style: plain}
    output:
      format: json
      schema: {title: string, points(array): string}
    tools: [lookup]
    maxTurns: 3
    ---
    {{role "system"}}You are concise.
    {{role "user"}}Write about {{topic}} in a {{style}} style.

Loading follows Genkit Go (``LoadPromptDir``): the directory and its
subdirectories; ``_name.prompt`` is the partial ``name``; ``name.variant.prompt``
is the variant ``variant`` of ``name``; the registry key is
``[namespace/]name[.variant]``. Honoured frontmatter: ``model``, ``config``,
``description``, ``metadata``, ``tools``, ``input.schema`` / ``input.default``,
``output.format`` / ``output.schema`` (the format defaults to ``json`` when a
schema is given; schemas may be Picoschema and may name registered schemas),
``maxTurns``, ``returnToolRequests``, ``use``, and ``toolChoice`` (a string:
Go's loader drops it; here it is kept). Dotted keys are in ``ext``, all keys in ``raw``.

A loaded prompt is a :class:`DotPrompt`, an ``ai`` :class:`~llamanative.ai.prompt.Prompt`:
``execute``, ``stream`` and ``render`` (to ``GenerateActionOptions``) are the
layer's; the caller's ``messages`` go where the template has ``{{history}}``,
else before its last message when that is a user message, else at the end.
The input, merged over ``input.default``, is validated against the input schema.
"""

from __future__ import annotations

import mimetypes
import os
import threading
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..actions import ActionRegistry
from ..errors import NotFoundError
from ..prompt import Prompt
from ..retrieval._compat import Media, Message, Part, as_document, invalid_argument
from .parse import ParsedPrompt, parse_document
from .picoschema import PicoschemaError, picoschema
from .render import HelperFn, PromptEnvironment

__all__ = [
    "DotPrompt",
    "define_helper",
    "define_partial",
    "environment",
    "load_prompt",
    "load_prompt_dir",
    "load_prompt_from_source",
    "lookup_prompt",
    "prompt_from_source",
    "prompt_key",
]

DEFAULT_PROMPT_DIR = "prompts"


def prompt_key(name: str, variant: str | None = None, namespace: str | None = None) -> str:
    """The registry key of a prompt: ``[namespace/]name[.variant]``."""
    key = f"{name}.{variant}" if variant else name
    return f"{namespace}/{key}" if namespace else key


# -- one Handlebars environment per registry tree ----------------------------------------------------
_ENVIRONMENTS: weakref.WeakKeyDictionary[Any, PromptEnvironment] = weakref.WeakKeyDictionary()
_ENV_LOCK = threading.Lock()


def _root(registry: ActionRegistry) -> ActionRegistry:
    while registry.parent is not None:
        registry = registry.parent
    return registry


def environment(registry: ActionRegistry) -> PromptEnvironment:
    """The registry's template environment (partials, helpers), created on first use.

    It also becomes the registry's ``template_renderer`` (unless one is set),
    so the string templates of prompts defined in code get Handlebars and the
    dotprompt helpers too (their text; roles and media need a ``.prompt`` file).
    """
    root = _root(registry)
    with _ENV_LOCK:
        env = _ENVIRONMENTS.get(root)
        if env is None:
            env = _ENVIRONMENTS[root] = PromptEnvironment()
            if getattr(root, "template_renderer", None) is None:
                root.template_renderer = env.render_text
        return env


def define_partial(registry: ActionRegistry, name: str, source: str) -> None:
    """Register a partial for ``{{> name}}`` (Go's ``DefinePartial``)."""
    environment(registry).define_partial(name, source)


def define_helper(registry: ActionRegistry, name: str, fn: HelperFn) -> None:
    """Register a Handlebars helper ``fn(args, options) -> str`` (Go's ``DefineHelper``).

    ``args`` are the positional arguments, ``options.hash`` the named ones;
    a block helper renders ``options.fn(options.context)`` / ``options.inverse(...)``.
    """
    environment(registry).define_helper(name, fn)


# -- media in rendered prompts ---------------------------------------------------------------------
def _media_type(media: Any) -> str:
    """The content type of a template's media part (Genkit Go's rules, plus a guess from a file name)."""
    url, ct = media.url, media.content_type
    if not url:
        raise invalid_argument("found empty URI in media part")
    if url.startswith(("gs://", "http")):
        if not ct:
            raise invalid_argument("must supply contentType when using media from gs:// or http(s):// URLs")
        return ct
    if url.startswith("data:"):
        head, comma, _ = url[5:].partition(",")
        if not comma:
            raise invalid_argument("failed to parse data URI: missing comma")
        return ct or head.split(";", 1)[0] or "text/plain"
    guessed = ct or mimetypes.guess_type(url)[0]
    if not guessed:
        raise invalid_argument(f"media content type not found for {url[:60]!r}: give contentType")
    return guessed


def _with_media_types(message: Message) -> Message:
    if not any(p.media is not None for p in message.content):
        return message
    parts = [
        Part(media=Media(url=p.media.url, content_type=_media_type(p.media)), metadata=p.metadata)
        if p.media is not None
        else p
        for p in message.content
    ]
    return Message(role=message.role, content=parts, metadata=message.metadata)


# -- the prompt ------------------------------------------------------------------------------------
class DotPrompt(Prompt):
    """A prompt whose messages come from a dotprompt template (a ``.prompt`` file).

    ``template``, ``ext``, ``raw`` and ``source_path`` keep what the file said.
    """

    def __init__(
        self,
        registry: ActionRegistry,
        name: str,
        template: str,
        *,
        variant: str | None = None,
        namespace: str | None = None,
        ext: Mapping[str, Any] | None = None,
        raw: Mapping[str, Any] | None = None,
        source_path: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(registry, f"{namespace}/{name}" if namespace else name, variant=variant, **options)
        self.template = template
        self.base_name = name
        self.namespace = namespace or None
        self.ext = dict(ext or {})
        self.raw = dict(raw) if raw is not None else None
        self.source_path = source_path
        self._frontmatter = {
            "name": name,
            "variant": variant,
            "description": self.description,
            "model": options.get("model"),
            "config": options.get("config"),
            "tools": list(options.get("tools") or ()),
            "metadata": self.metadata,
            "input": {"schema": self.input_schema, "default": self.default_input},
            "output": {"format": options.get("output_format"), "schema": options.get("output_schema")},
            "ext": self.ext,
        }

    def _render(
        self, variables: dict[str, Any], history: Sequence[Any] | None, docs: Any, context: Mapping[str, Any] | None
    ) -> list[Message]:
        docs_list = [as_document(d) for d in docs] if docs else None
        msgs = environment(self.registry).render(
            self.template,
            variables,
            messages=history,
            docs=docs_list,
            context=context,
            prompt_metadata=self._frontmatter,
        )
        return [_with_media_types(m) for m in msgs]

    def render_messages(
        self,
        input: Any = None,
        *,
        messages: Sequence[Any] | None = None,
        docs: Sequence[Any] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> list[Message]:
        """The messages the template renders to with ``input`` (merged over the defaults).

        Args:
            messages: the conversation so far (placed at ``{{history}}``, see the module doc).
            docs: context documents (``{{@metadata.docs}}`` in the template).
            context: values for ``{{@key}}`` (``@state``, ``@auth`` ...).

        Raises:
            InputTypeMismatch: the input does not match the input schema.
            InvalidArgumentError: the template does not render.
        """
        _, variables = self._input(input)
        return self._render(variables, messages, docs, context)

    def _kwargs(self, input: Any, overrides: dict[str, Any]) -> dict[str, Any]:
        history = overrides.get("messages")
        kw = super()._kwargs(input, {k: v for k, v in overrides.items() if k != "messages"})
        _, variables = self._input(input)
        kw["messages"] = self._render(variables, history, kw.get("docs"), overrides.get("context"))
        return kw


# -- loading -----------------------------------------------------------------------------------------
def prompt_from_source(
    registry: ActionRegistry,
    source: str,
    name: str,
    *,
    variant: str | None = None,
    namespace: str | None = None,
    source_path: str | None = None,
) -> DotPrompt:
    """A prompt parsed from ``.prompt`` source, not registered.

    Raises:
        InvalidArgumentError: the frontmatter or a schema is invalid.
    """
    parsed = parse_document(source)
    return _prompt(registry, parsed, name, variant, namespace, source_path)


def load_prompt_from_source(
    registry: ActionRegistry, source: str, name: str, *, variant: str | None = None, namespace: str | None = None
) -> DotPrompt:
    """Parse ``.prompt`` source and register it as ``[namespace/]name[.variant]``.

    Raises:
        AlreadyExistsError: a prompt with that key is already registered.
    """
    p = prompt_from_source(registry, source, name, variant=variant, namespace=namespace)
    return registry.register("prompt", p.key, p)


def load_prompt(registry: ActionRegistry, path: str | os.PathLike, *, namespace: str | None = None) -> DotPrompt:
    """Load and register one ``.prompt`` file: ``name.prompt``, or ``name.variant.prompt`` for a variant."""
    p = Path(path)
    if not p.name.endswith(".prompt"):
        raise invalid_argument(f"{p} is not a .prompt file")
    name, _, variant = p.name[: -len(".prompt")].partition(".")
    try:
        source = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise NotFoundError(f"cannot read prompt file {p}: {exc}") from exc
    prompt = prompt_from_source(
        registry, source, name, variant=variant or None, namespace=namespace, source_path=str(p)
    )
    return registry.register("prompt", prompt.key, prompt)


def load_prompt_dir(
    registry: ActionRegistry, directory: str | os.PathLike | None = None, *, namespace: str | None = None
) -> list[DotPrompt]:
    """Load every ``.prompt`` file under ``directory`` (default ``./prompts``), subdirectories included.

    Files starting with ``_`` are partials (``_header.prompt`` → ``{{> header}}``,
    registered first, source as is); the others are prompts, registered under
    their file name (a subdirectory does not change the key). A missing
    default directory loads nothing; a missing directory given explicitly is an error.

    Raises:
        NotFoundError: ``directory`` does not exist.
        AlreadyExistsError: two prompts with the same key.
    """
    root = Path(directory if directory is not None else DEFAULT_PROMPT_DIR)
    if not root.is_dir():
        if directory is None:
            return []
        raise NotFoundError(f"prompt directory {str(root)!r} not found")
    partials: list[Path] = []
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fn in sorted(filenames):
            if fn.endswith(".prompt"):
                (partials if fn.startswith("_") else files).append(Path(dirpath) / fn)
    for p in partials:
        define_partial(registry, p.name[1 : -len(".prompt")], p.read_text(encoding="utf-8"))
    return [load_prompt(registry, p, namespace=namespace) for p in files]


def lookup_prompt(registry: ActionRegistry, name: str, variant: str | None = None) -> Prompt | None:
    """The registered prompt ``[namespace/]name`` (or its ``variant``), None when not defined."""
    return registry.lookup_prompt(name, variant)


def _prompt(
    registry: ActionRegistry,
    parsed: ParsedPrompt,
    name: str,
    variant: str | None,
    namespace: str | None,
    source_path: str | None,
) -> DotPrompt:
    raw = parsed.raw or {}
    where = source_path or name
    environment(registry)  # the registry's partials and helpers render this prompt

    def schema(value: Any, what: str) -> dict[str, Any] | None:
        try:
            return picoschema(value, registry.lookup_schema)
        except PicoschemaError as exc:
            raise invalid_argument(f"{where}: {what}: {exc}") from exc

    default_input = parsed.input.get("default")
    if default_input is not None and not isinstance(default_input, Mapping):
        raise invalid_argument(f"{where}: input.default must be a mapping")
    max_turns = raw.get("maxTurns")
    if max_turns is not None and (isinstance(max_turns, bool) or not isinstance(max_turns, int) or max_turns < 0):
        raise invalid_argument(f"{where}: maxTurns must be a non-negative integer")
    rtr = raw.get("returnToolRequests")
    if rtr is not None and not isinstance(rtr, bool):
        raise invalid_argument(f"{where}: returnToolRequests must be true or false")
    tool_choice = raw.get("toolChoice")
    use = raw.get("use")
    output_schema = schema(parsed.output.get("schema"), "output.schema")
    return DotPrompt(
        registry,
        name,
        parsed.template,
        variant=variant,
        namespace=namespace,
        ext=parsed.ext,
        raw=parsed.raw,
        source_path=source_path,
        model=parsed.model,
        config=parsed.config or None,
        description=parsed.description,
        metadata=parsed.metadata or None,
        tools=parsed.tools or None,
        tool_choice=str(tool_choice) if tool_choice is not None else None,
        max_turns=max_turns or None,
        return_tool_requests=rtr,
        input_schema=schema(parsed.input.get("schema"), "input.schema"),
        default_input=dict(default_input) if default_input else None,
        output_schema=output_schema,
        output_format=parsed.output.get("format") or ("json" if output_schema is not None else None),
        use=list(use) if isinstance(use, list) else ([use] if use else None),
    )
