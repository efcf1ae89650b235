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

Loading follows Genkit Go (``LoadPromptDir``, ``LoadPromptDirFromFS``): the
directory and its subdirectories, on disk (:func:`load_prompt_dir`) or in a
file system object (:func:`load_prompt_dir_from_fs`: a package's resources
through ``importlib.resources``, a zip file, an fsspec file system);
``_name.prompt`` is the partial ``name``; ``name.variant.prompt`` is the
variant ``variant`` of ``name``; the registry key is
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

import functools
import mimetypes
import os
import posixpath
import sys
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

if sys.version_info >= (3, 11):
    from importlib.resources.abc import Traversable
else:  # pragma: no cover (3.10)
    from importlib.abc import Traversable

from ..actions import ActionRegistry
from ..errors import NotFoundError
from ..prompt import Prompt
from ..retrieval._compat import Media, Message, Part, as_document, invalid_argument
from .parse import ParsedPrompt, parse_document
from .picoschema import SCALAR_TYPES, PicoschemaError, picoschema
from .render import HelperFn, PromptEnvironment

__all__ = [
    "DotPrompt",
    "FileSystemLike",
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

    def _metadata_now(self) -> dict[str, Any]:
        """The frontmatter as templates see it (``@metadata.prompt``), the input schema as registered now."""
        return {**self._frontmatter, "input": {"schema": self.input_schema, "default": self.default_input}}

    def _prompt_metadata(self) -> dict[str, Any]:
        """The descriptor's definition of the prompt, with the file's ``template`` (as Go's loader records it)."""
        return {**super()._prompt_metadata(), "template": self.template}

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
            prompt_metadata=self._metadata_now(),
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
    """Load and register one ``.prompt`` file: ``name.prompt``, or ``name.variant.prompt`` for a variant.

    Raises:
        InvalidArgumentError: not a ``.prompt`` file, not UTF-8, or invalid frontmatter.
        NotFoundError: the file cannot be read.
        AlreadyExistsError: a prompt with that key is already registered.
    """
    p = Path(path)
    return _register_file(registry, _File(p.name, str(p), lambda: p.read_text(encoding="utf-8")), namespace)


def load_prompt_dir(
    registry: ActionRegistry, directory: str | os.PathLike | None = None, *, namespace: str | None = None
) -> list[DotPrompt]:
    """Load every ``.prompt`` file under ``directory`` (default ``./prompts``), subdirectories included.

    Files starting with ``_`` are partials (``_header.prompt`` → ``{{> header}}``,
    registered first, source as is); the others are prompts, registered under
    their file name (a subdirectory does not change the key). A missing
    default directory loads nothing; a missing directory given explicitly is an error.
    :func:`load_prompt_dir_from_fs` does the same in a package's resources, a zip file or an fsspec file system.

    Raises:
        NotFoundError: ``directory`` does not exist.
        AlreadyExistsError: two prompts with the same key.
    """
    root = Path(directory if directory is not None else DEFAULT_PROMPT_DIR)
    if not root.is_dir():
        if directory is None:
            return []
        raise NotFoundError(f"prompt directory {str(root)!r} not found")
    files: list[_File] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fn in sorted(filenames):
            f = Path(dirpath) / fn
            files.append(_File(fn, str(f), functools.partial(f.read_text, encoding="utf-8")))
    return _load_files(registry, files, namespace)


# -- loading from a file system object ---------------------------------------------------------------
@runtime_checkable
class FileSystemLike(Protocol):
    """What the loaders use of an fsspec file system (``fsspec.filesystem("memory")``, ``"zip"``, ``"s3"``
    ...): ``ls(path, detail=True)`` (entries with ``name`` and ``type``), ``cat_file(path)`` and ``isdir``."""

    def ls(self, path: str, detail: bool = True) -> Any: ...

    def cat_file(self, path: str) -> bytes: ...

    def isdir(self, path: str) -> bool: ...


PromptFS = Traversable | FileSystemLike | str | os.PathLike[str]
"""Where :func:`load_prompt_dir_from_fs` and :func:`load_prompt_from_fs` read: an ``importlib.resources``
Traversable (``importlib.resources.files("mypkg")``, a ``zipfile.Path``, a ``pathlib.Path``), an fsspec-like
file system (:class:`FileSystemLike`), or a local path."""


class _File:
    """A ``.prompt`` file found by a loader: its name, where it is (for messages), and how to read it."""

    __slots__ = ("name", "read", "where")

    def __init__(self, name: str, where: str, read: Callable[[], str | bytes]) -> None:
        self.name, self.where, self.read = name, where, read

    def source(self) -> str:
        try:
            data = self.read()
            return data.decode("utf-8") if isinstance(data, bytes) else data
        except UnicodeDecodeError as exc:
            raise invalid_argument(f"prompt file {self.where} is not UTF-8 text: {exc}") from exc
        except (OSError, KeyError) as exc:  # KeyError: a zip member that is not there
            raise NotFoundError(f"cannot read prompt file {self.where}: {exc}") from exc


def _register_file(registry: ActionRegistry, file: _File, namespace: str | None) -> DotPrompt:
    if not file.name.endswith(".prompt"):
        raise invalid_argument(f"{file.where} is not a .prompt file")
    name, _, variant = file.name[: -len(".prompt")].partition(".")
    prompt = prompt_from_source(
        registry, file.source(), name, variant=variant or None, namespace=namespace, source_path=file.where
    )
    return registry.register("prompt", prompt.key, prompt)


def _load_files(registry: ActionRegistry, files: Sequence[_File], namespace: str | None) -> list[DotPrompt]:
    """Register the partials (``_name.prompt``) of ``files``, then the prompts, in order; other files are
    ignored."""
    found = [f for f in files if f.name.endswith(".prompt")]
    for f in found:
        if f.name.startswith("_"):
            define_partial(registry, f.name[1 : -len(".prompt")], f.source())
    return [_register_file(registry, f, namespace) for f in found if not f.name.startswith("_")]


def _is_traversable(fs: Any) -> bool:
    return all(hasattr(fs, a) for a in ("iterdir", "joinpath", "is_dir", "read_text", "name"))


def _is_fsspec(fs: Any) -> bool:
    return all(callable(getattr(fs, a, None)) for a in ("ls", "cat_file", "isdir"))


def _parts(directory: str) -> list[str]:
    return [p for p in directory.replace("\\", "/").split("/") if p not in ("", ".")]


class _TraversableSource:
    """Files of an ``importlib.resources`` Traversable (a package's files, a ``zipfile.Path``, a ``Path``)."""

    def __init__(self, root: Traversable) -> None:
        self.root = root

    def node(self, directory: str) -> Traversable:
        parts = _parts(directory)
        return self.root.joinpath(*parts) if parts else self.root

    def file(self, directory: str, filename: str) -> _File:
        node = self.node(directory).joinpath(filename)
        return _File(filename, str(node), functools.partial(node.read_text, encoding="utf-8"))

    def walk(self, directory: str) -> list[_File]:
        top = self.node(directory)
        if not top.is_dir():
            raise NotFoundError(f"prompt directory {directory!r} not found in {self.root}")
        out: list[_File] = []

        def visit(node: Traversable) -> None:
            children = sorted(node.iterdir(), key=lambda c: c.name)
            subdirs = []
            for child in children:
                if child.is_dir():
                    # a symlinked directory of a local tree is not descended into (as os.walk does not)
                    if not (isinstance(child, Path) and child.is_symlink()):
                        subdirs.append(child)
                elif child.name.endswith(".prompt"):
                    out.append(_File(child.name, str(child), functools.partial(child.read_text, encoding="utf-8")))
            for sub in subdirs:
                visit(sub)

        visit(top)
        return out


class _FsspecSource:
    """Files of an fsspec-like file system (see :class:`FileSystemLike`)."""

    def __init__(self, fs: FileSystemLike) -> None:
        self.fs = fs

    def path(self, directory: str) -> str:
        parts = _parts(directory)
        root = str(getattr(self.fs, "root_marker", "") or "")
        if not parts:
            return root or ""
        lead = "/" if directory.startswith("/") or root == "/" else ""
        return lead + "/".join(parts)

    def file(self, directory: str, filename: str) -> _File:
        base = self.path(directory)
        path = posixpath.join(base, filename) if base else filename
        return _File(filename, path, functools.partial(self.fs.cat_file, path))

    def walk(self, directory: str) -> list[_File]:
        top = self.path(directory)
        if not self.fs.isdir(top):
            raise NotFoundError(f"prompt directory {directory!r} not found in {type(self.fs).__name__}")
        out: list[_File] = []

        def visit(path: str) -> None:
            entries = []
            for e in self.fs.ls(path, detail=True):
                info = e if isinstance(e, Mapping) else {"name": str(e), "type": "file"}
                full = str(info["name"]).rstrip("/")
                if full == path.rstrip("/"):  # some file systems list a directory in itself
                    continue
                entries.append((posixpath.basename(full), full, info.get("type") == "directory"))
            entries.sort()
            for name, full, is_dir in entries:
                if not is_dir and name.endswith(".prompt"):
                    out.append(_File(name, full, functools.partial(self.fs.cat_file, full)))
            for _, full, is_dir in entries:
                if is_dir:
                    visit(full)

        visit(top)
        return out


def _source(fs: PromptFS) -> _TraversableSource | _FsspecSource:
    if isinstance(fs, (str, os.PathLike)):
        return _TraversableSource(Path(fs))
    if _is_traversable(fs):
        return _TraversableSource(fs)  # type: ignore[arg-type]  # checked by its methods, as importlib does
    if _is_fsspec(fs):
        return _FsspecSource(fs)  # type: ignore[arg-type]
    raise invalid_argument(
        "a prompt file system is an importlib.resources Traversable (files('pkg'), zipfile.Path, "
        f"pathlib.Path), an fsspec file system or a path; got {type(fs).__name__}"
    )


def load_prompt_dir_from_fs(
    registry: ActionRegistry, fs: PromptFS, directory: str = "", *, namespace: str | None = None
) -> list[DotPrompt]:
    """Load the ``.prompt`` files under ``directory`` of a file system object (Go's ``LoadPromptDirFromFS``).

    ``fs`` is an ``importlib.resources`` Traversable (prompts shipped in a
    package: ``importlib.resources.files("mypkg")``; a ``zipfile.Path``; a
    ``pathlib.Path``), an fsspec file system (``fsspec.filesystem("memory")``,
    ``"zip"``, ``"s3"`` ...; anything with ``ls``, ``cat_file`` and ``isdir``),
    or a local path. ``directory`` is a ``/``-separated path in it (``""``:
    its root). As :func:`load_prompt_dir`: subdirectories included, ``_name.prompt``
    files are partials (registered first), ``name.variant.prompt`` a variant;
    the key is ``[namespace/]name[.variant]``; each prompt's ``source_path``
    says where it came from.

    Raises:
        NotFoundError: ``directory`` is not a directory of ``fs``, or a file cannot be read.
        InvalidArgumentError: ``fs`` is none of the above, a file is not UTF-8, or its frontmatter is invalid.
        AlreadyExistsError: two prompts with the same key.
    """
    return _load_files(registry, _source(fs).walk(directory), namespace)


def load_prompt_from_fs(
    registry: ActionRegistry, fs: PromptFS, directory: str, filename: str, *, namespace: str | None = None
) -> DotPrompt:
    """Load and register the prompt file ``directory/filename`` of a file system object (Go's
    ``LoadPromptFromFS``); ``fs`` and ``directory`` are as in :func:`load_prompt_dir_from_fs`.
    ``name.variant.prompt`` is the variant ``variant`` of ``name``.

    Raises:
        InvalidArgumentError: ``filename`` is not a ``.prompt`` file, the file is not UTF-8, or its
            frontmatter is invalid.
        NotFoundError: the file cannot be read.
        AlreadyExistsError: a prompt with that key is already registered.
    """
    if not filename or "/" in filename.strip("/"):
        raise invalid_argument(f"filename {filename!r} must be a file name; give its folder as directory")
    return _register_file(registry, _source(fs).file(directory, filename.strip("/")), namespace)


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

    def schema(value: Any, what: str) -> dict[str, Any] | str | None:
        if isinstance(value, str) and "," not in value and value.strip() not in SCALAR_TYPES:
            # a registered schema's name (Go's $ref "genkit:<name>"): looked up when the prompt runs
            return value.strip()
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
