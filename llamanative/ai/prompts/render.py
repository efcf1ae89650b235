"""Rendering dotprompt templates into messages.

A template is Handlebars (no HTML escaping) with the dotprompt helpers:

- ``{{role "system"}}`` (``"user"``, ``"model"``, ``"tool"``) starts a message;
  hash arguments become the message's metadata (``{{role "user" purpose="preamble"}}``);
- ``{{history}}`` puts the caller's messages there, each tagged
  ``metadata.purpose = "history"``; the text after it belongs to a ``model`` message
  until the next ``{{role}}``;
- ``{{media url=... contentType=...}}`` a media part;
- ``{{section "name"}}`` a pending part (``metadata: {purpose: name, pending: true}``);
- ``{{json value indent=2}}`` JSON text;
- ``{{#ifEquals a b}}...{{else}}...{{/ifEquals}}`` and ``{{#unlessEquals a b}}`` (strict equality).

The helpers emit markers (``<<<dotprompt:role:user>>>``); the rendered text is
split at them into messages and parts. Text and media from the input and
context cannot produce markers: marker syntax in those values is kept as
literal text. Whitespace-only pieces between markers are dropped; other text
is kept as written. When caller messages are given and the template has no
``{{history}}``, they go before the last message if that is a user message,
else at the end.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from ..retrieval._compat import Media, Message, Part, as_message, invalid_argument, to_wire

if TYPE_CHECKING:
    from dotpromptz_handlebars import HelperOptions

__all__ = ["MARKER_PREFIX", "PromptEnvironment", "to_messages"]

MARKER_PREFIX = "<<<dotprompt:"
ROLE_PREFIX = MARKER_PREFIX + "role:"
HISTORY_PREFIX = MARKER_PREFIX + "history"
MEDIA_PREFIX = MARKER_PREFIX + "media:"
SECTION_PREFIX = MARKER_PREFIX + "section"
ROLE_AND_HISTORY = re.compile(r"(<<<dotprompt:(?:role:[a-z]+(?: [^>]+)?|history))>>>")
MEDIA_AND_SECTION = re.compile(r"(<<<dotprompt:(?:media:url|section).*?)>>>")

HelperFn = Callable[[list[Any], "HelperOptions"], Any]


# -- the dotprompt helpers ---------------------------------------------------------------------
def _role(args: list[Any], options: HelperOptions) -> str:
    if not args:
        return ""
    meta = "".join(f" {quote(str(k), safe='')}={quote(str(v), safe='')}" for k, v in options.hash.items())
    return f"{ROLE_PREFIX}{args[0]}{meta}>>>"


def _history(args: list[Any], options: HelperOptions) -> str:
    return HISTORY_PREFIX + ">>>"


def _section(args: list[Any], options: HelperOptions) -> str:
    return f"{SECTION_PREFIX} {args[0]}>>>" if args else ""


def _media(args: list[Any], options: HelperOptions) -> str:
    url = options.hash.get("url")
    if not url:
        return ""
    ct = options.hash.get("contentType")
    return f"{MEDIA_PREFIX}url {url}{' ' + str(ct) if ct else ''}>>>"


def _json(args: list[Any], options: HelperOptions) -> str:
    if not args:
        return ""
    indent = options.hash.get("indent") or 0
    value = args[0]
    if indent:
        text = json.dumps(value, indent=int(indent), ensure_ascii=False, default=str)
    else:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return text


def _strict_equal(a: Any, b: Any) -> bool:
    """JavaScript's ``===`` on JSON values: no bool/number mixing, numbers by value."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return a is b
    return type(a) is type(b) and a == b


def _if_equals(args: list[Any], options: HelperOptions) -> Any:
    a, b = (list(args) + [None, None])[:2]
    return options.fn(options.context) if _strict_equal(a, b) else options.inverse(options.context)


def _unless_equals(args: list[Any], options: HelperOptions) -> Any:
    a, b = (list(args) + [None, None])[:2]
    return options.inverse(options.context) if _strict_equal(a, b) else options.fn(options.context)


BUILTIN_HELPERS: dict[str, HelperFn] = {
    "role": _role,
    "history": _history,
    "section": _section,
    "media": _media,
    "json": _json,
    "ifEquals": _if_equals,
    "unlessEquals": _unless_equals,
}


# -- keeping data out of the structure -----------------------------------------------------------
class _Guard:
    """Replaces marker syntax in runtime values by a token unique to one render, and back."""

    def __init__(self) -> None:
        self.token = f"__dotprompt_data_{secrets.token_hex(12)}__"

    def protect(self, value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(MARKER_PREFIX, self.token)
        if isinstance(value, Mapping):
            return {self.protect(k) if isinstance(k, str) else k: self.protect(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.protect(v) for v in value]
        return value

    def restore(self, text: str) -> str:
        return text.replace(self.token, MARKER_PREFIX)


# -- rendered text → messages --------------------------------------------------------------------
def _split(text: str, pattern: re.Pattern[str]) -> list[str]:
    return [s for s in pattern.split(text) if s.strip() != ""]


def _parse_role(piece: str, restore: Callable[[str], str]) -> tuple[str, dict[str, str] | None]:
    body = piece[len(ROLE_PREFIX) :]
    role, _, rest = body.partition(" ")
    if not rest:
        return role, None
    meta = {}
    for entry in rest.split(" "):
        key, eq, value = entry.partition("=")
        if eq:
            meta[restore(unquote(key))] = restore(unquote(value))
    return role, meta


def _to_parts(source: str, restore: Callable[[str], str]) -> list[Part]:
    parts = []
    for piece in _split(source, MEDIA_AND_SECTION):
        if piece.startswith(MEDIA_PREFIX):
            fields = piece.split(" ")
            url = restore(fields[1]) if len(fields) > 1 else ""
            ct = restore(fields[2]) if len(fields) > 2 and fields[2] else None
            parts.append(Part(media=Media(url=url, content_type=ct)))
        elif piece.startswith(SECTION_PREFIX):
            fields = piece.split(" ")
            purpose = restore(fields[1]) if len(fields) > 1 else None
            parts.append(Part(metadata={"purpose": purpose, "pending": True}))
        else:
            parts.append(Part(text=restore(piece)))
    return parts


def _with_purpose(m: Message, purpose: str) -> Message:
    return Message(role=m.role, content=list(m.content), metadata={**(m.metadata or {}), "purpose": purpose})


def to_messages(
    rendered: str, history: Sequence[Any] | None = None, restore: Callable[[str], str] = lambda s: s
) -> list[Message]:
    """Split rendered template text at the role/history markers into messages (dotprompt's ``toMessages``)."""
    hist = [as_message(m) for m in history or []]
    sources: list[dict[str, Any]] = [{"role": "user", "source": ""}]
    current = sources[0]
    for piece in _split(rendered, ROLE_AND_HISTORY):
        if piece.startswith(ROLE_PREFIX):
            role, meta = _parse_role(piece, restore)
            if current["source"].strip():
                current = {"role": role, "source": ""}
                if meta:
                    current["metadata"] = meta
                sources.append(current)
            else:
                current["role"] = role
                if meta:
                    current["metadata"] = {**current.get("metadata", {}), **meta}
        elif piece.startswith(HISTORY_PREFIX):
            sources.extend({"message": _with_purpose(m, "history")} for m in hist)
            current = {"role": "model", "source": ""}
            sources.append(current)
        else:
            current["source"] += piece
    messages: list[Message] = []
    for s in sources:
        if "message" in s:
            messages.append(s["message"])
        elif s["source"]:
            parts = _to_parts(s["source"], restore)
            if parts:
                messages.append(Message(role=s["role"], content=parts, metadata=s.get("metadata")))
    return insert_history(messages, hist)


def insert_history(messages: list[Message], history: list[Message]) -> list[Message]:
    """Caller messages for a template without ``{{history}}``: before a final user message, else at the end."""
    if not history or any((m.metadata or {}).get("purpose") == "history" for m in messages):
        return messages
    if not messages:
        return list(history)
    if messages[-1].role == "user":
        return [*messages[:-1], *history, messages[-1]]
    return [*messages, *history]


# -- the environment -----------------------------------------------------------------------------
class PromptEnvironment:
    """A Handlebars environment with the dotprompt helpers, partials and custom helpers.

    Partials are templates included with ``{{> name}}``; custom helpers are
    functions ``fn(args, options)`` (``options.hash`` holds the named
    arguments, ``options.fn``/``options.inverse`` render a block's bodies).
    """

    def __init__(self) -> None:
        try:
            from dotpromptz_handlebars import EscapeFunction, Handlebars
        except ImportError as exc:  # the optional dependency of the ai extra
            raise ImportError(".prompt templates need dotpromptz-handlebars: pip install 'llamanative[ai]'") from exc
        self._hb = Handlebars(escape_fn=EscapeFunction.NO_ESCAPE)
        self._lock = threading.Lock()
        self._cache: dict[str, Callable[..., str]] = {}
        for name, fn in BUILTIN_HELPERS.items():
            self._hb.register_helper(name, fn)

    def define_partial(self, name: str, source: str) -> None:
        """Register a partial (its source is used as is: partials have no frontmatter)."""
        with self._lock:
            self._hb.register_partial(name, source)

    def has_partial(self, name: str) -> bool:
        return self._hb.has_partial(name)

    def define_helper(self, name: str, fn: HelperFn) -> None:
        """Register a helper ``fn(args: list, options) -> str`` (the built-in ones can be replaced too)."""
        with self._lock:
            self._hb.register_helper(name, fn)

    def compile(self, template: str) -> Callable[..., str]:
        with self._lock:
            fn = self._cache.get(template)
            if fn is None:
                try:
                    fn = self._hb.compile(template)
                except ValueError as exc:
                    raise invalid_argument(f"invalid template: {exc}") from exc
                if len(self._cache) > 256:
                    self._cache.clear()
                self._cache[template] = fn
            return fn

    def render(
        self,
        template: str,
        variables: Mapping[str, Any] | None = None,
        *,
        messages: Sequence[Any] | None = None,
        docs: Sequence[Any] | None = None,
        context: Mapping[str, Any] | None = None,
        prompt_metadata: Mapping[str, Any] | None = None,
    ) -> list[Message]:
        """Render ``template`` with ``variables`` into messages.

        Args:
            variables: the template's input (``{{name}}``).
            messages: the caller's conversation (``{{history}}``).
            docs: context documents (``{{@metadata.docs}}``).
            context: values available as ``{{@key}}`` (``@state``, ``@auth`` ...).
            prompt_metadata: the prompt's metadata (``{{@metadata.prompt.model}}``).

        Raises:
            InvalidArgumentError: the template does not compile or render (unknown helper or partial ...).
        """
        guard = _Guard()
        hist = [as_message(m) for m in messages or []]
        data = guard.protect(
            {
                "metadata": {
                    "prompt": dict(prompt_metadata or {}),
                    "docs": [to_wire(d) for d in docs or []],
                    "messages": [to_wire(m) for m in hist],
                },
                **dict(context or {}),
            }
        )
        fn = self.compile(template)
        try:
            text = fn(guard.protect(dict(variables or {})), data=data)
        except RecursionError as exc:
            raise invalid_argument(f"template rendering failed: {exc}") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise invalid_argument(f"template rendering failed: {exc}") from exc
        return to_messages(str(text), hist, guard.restore)

    def render_text(self, template: str, variables: Mapping[str, Any] | None = None) -> str:
        """Render ``template`` to text: the text parts of its messages, joined (roles and media are dropped).

        This is the registry's ``template_renderer`` for the string templates of prompts defined in code.
        """
        return "".join(p.text for m in self.render(template, variables) for p in m.content if p.text is not None)
