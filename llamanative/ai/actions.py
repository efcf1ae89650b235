"""The registry of actions: what is registered under which kind and name, resolvers, lookups.

This is the bottom layer of :class:`~llamanative.ai.Genkit`: it knows the
kinds of actions and how names are found (this registry, then its parents,
then a resolver for ``<namespace>/<id>``), and nothing about running them.
The generate loop, prompts and streams work on an :class:`ActionRegistry`;
:mod:`.definitions` adds the ``define_*`` forms on top, and
:mod:`.registry` the ``Genkit`` entry points (generate, embed, ...).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ._wire import WireModel
from .embedder import Embedder
from .errors import AlreadyExistsError, InvalidArgumentError, NotFoundError
from .evaluator import Evaluator
from .formats import BUILTIN_FORMATS, Formatter
from .model import BackgroundModel, Model
from .resource import Resource, ResourceInput
from .retriever import Retriever
from .tools import Tool

if TYPE_CHECKING:
    from .prompt import Prompt

__all__ = ["KINDS", "ActionDesc", "ActionRegistry", "Resolver", "action_key"]

Resolver = Callable[[str, str], Any]
"""A dynamic provider: ``resolver(kind, name) -> action | None`` (kind ``"model"``, ``"embedder"`` ...)."""

KINDS = (
    "model",
    "background-model",
    "embedder",
    "reranker",
    "retriever",
    "evaluator",
    "tool",
    "prompt",
    "format",
    "resource",
    "schema",
    "util",
)
"The kinds of actions a registry holds (``util``: the generate action, see ``define_generate_action``)."

_ACTION_TYPES = {"prompt": "executable-prompt"}
"Genkit's action type where it differs from the kind (a prompt is an ``executable-prompt`` action)."


def action_key(kind: str, name: str) -> str:
    """An action's key, Genkit's ``/<type>/<name>``: ``/model/llamanative/smol``, ``/executable-prompt/greet``.

    >>> action_key("prompt", "greet.short")
    '/executable-prompt/greet.short'
    >>> action_key("util", "generate")
    '/util/generate'
    """
    return f"/{_ACTION_TYPES.get(kind, kind)}/{name}"


class ActionDesc(WireModel):
    """A descriptor of an action, Go's ``api.ActionDesc``: what a tool listing actions (Genkit's Dev UI, a
    reflection API) shows of it. Its JSON is Genkit's (``inputSchema``, ``outputSchema`` ...)."""

    type: str
    "Genkit's action type: ``executable-prompt``, ``util``, ``model`` ..."

    key: str
    "``/<type>/<name>`` (see :func:`action_key`); :meth:`ActionRegistry.lookup_action` finds the action by it."

    name: str
    description: str = ""
    input_schema: dict[str, Any] | None = None
    "The JSON schema of the action's input, registered schema names resolved."

    output_schema: dict[str, Any] | None = None
    "The JSON schema of the action's output."

    stream_schema: dict[str, Any] | None = None
    "The JSON schema of the chunks it streams (None: it does not stream)."

    metadata: dict[str, Any] = {}
    "The action's metadata (for a prompt, ``metadata['prompt']`` holds its definition)."


_T = TypeVar("_T")
_R = TypeVar("_R", bound="ActionRegistry")


class ActionRegistry:
    """Actions by kind and name, with a parent chain and resolvers for ``<namespace>/<id>`` names.

    Args:
        model: the default model name, used when a call names none (a child's default is its parent's).
        parent: for a child registry (see :meth:`new_child`).
    """

    def __init__(self, *, model: str | None = None, parent: ActionRegistry | None = None) -> None:
        self.parent = parent
        self.default_model: str | None = model if model is not None else (parent.default_model if parent else None)
        self._lock = threading.RLock()
        self._actions: dict[str, dict[str, Any]] = {k: {} for k in KINDS}
        self._resolvers: dict[str, Resolver] = {}
        self.template_renderer: Callable[[str, dict[str, Any]], str] | None = None
        """Renders string templates of prompts (``system``/``prompt``) with their input; None = built-in
        ``{{name}}`` substitution. The prompts package sets a full renderer here."""
        if parent is None:
            for f in BUILTIN_FORMATS:
                self._actions["format"][f.name] = f

    def new_child(self: _R) -> _R:
        """A registry that sees this one's actions and adds its own (for one call's dynamic tools)."""
        return type(self)(parent=self)

    # -- registration ------------------------------------------------------------------------
    def register(self, kind: str, name: str, action: _T) -> _T:
        """Register ``action`` under ``kind``/``name`` and return it.

        Raises:
            AlreadyExistsError: that name is taken for that kind in this registry.
            InvalidArgumentError: unknown kind or empty name.
        """
        if kind not in self._actions:
            raise InvalidArgumentError(f"unknown action kind {kind!r}; one of {', '.join(KINDS)}")
        if not name:
            raise InvalidArgumentError(f"a {kind} needs a name")
        with self._lock:
            if name in self._actions[kind]:
                raise AlreadyExistsError(f"{kind} {name!r} is already defined")
            self._actions[kind][name] = action
        return action

    def register_resolver(self, namespace: str, resolver: Resolver) -> None:
        """Resolve names ``<namespace>/<id>`` on demand: ``resolver(kind, id)`` returns an action or None.

        A resolved action is registered (under its full name), so it is built once.
        """
        with self._lock:
            self._resolvers[namespace] = resolver

    # -- lookups -------------------------------------------------------------------------------
    def _lookup(self, kind: str, name: str) -> Any:
        reg: ActionRegistry | None = self
        while reg is not None:
            with reg._lock:
                found = reg._actions[kind].get(name)
            if found is not None:
                return found
            reg = reg.parent
        return self._resolve_dynamic(kind, name)

    def _root(self) -> ActionRegistry:
        reg = self
        while reg.parent is not None:
            reg = reg.parent
        return reg

    def _resolve_dynamic(self, kind: str, name: str) -> Any:
        if not name:
            return None
        root = self._root()
        namespace, _, rest = name.partition("/")
        if (
            namespace not in root._resolvers
            and kind in ("model", "embedder", "reranker")
            and name.endswith(".gguf")
            and Path(name).expanduser().is_file()
        ):
            namespace, rest = "llamanative", name  # a bare GGUF path
        resolver = root._resolvers.get(namespace)
        if resolver is None or not rest:
            return None
        with root._lock:
            found = root._actions[kind].get(name)
            if found is not None:
                return found
            action = resolver(kind, rest)
            if action is not None:
                root._actions[kind][name] = action
            return action

    def _resolve(self, kind: str, value: str | _T, cls: type[_T]) -> _T:
        """``value`` itself when it is a ``cls``, else the action of that kind it names.

        Raises:
            NotFoundError: no such action.
        """
        if isinstance(value, cls):
            return value
        found = self._lookup(kind, value) if isinstance(value, str) else None
        if found is None:
            raise NotFoundError(f"{kind} {value!r} not found")
        return found

    def lookup_model(self, name: str) -> Model | None:
        """A model by name (registered, or resolved: ``llamanative/<store name or .gguf path>``)."""
        return self._lookup("model", name)

    def lookup_background_model(self, name: str) -> BackgroundModel | None:
        return self._lookup("background-model", name)

    def lookup_embedder(self, name: str) -> Embedder | None:
        """An embedder by name (registered, or ``llamanative/<name>``)."""
        return self._lookup("embedder", name)

    def lookup_reranker(self, name: str) -> Any:
        """A reranker by name (registered, or ``llamanative/<name>``: a local reranker model); None if none.

        A reranker is an object with ``rerank(query, documents, options)`` or such a function.
        """
        return self._lookup("reranker", name)

    def lookup_retriever(self, name: str) -> Retriever | None:
        return self._lookup("retriever", name)

    def lookup_evaluator(self, name: str) -> Evaluator | None:
        return self._lookup("evaluator", name)

    def lookup_tool(self, name: str) -> Tool | None:
        return self._lookup("tool", name)

    def lookup_prompt(self, name: str, variant: str | None = None) -> Prompt | None:
        """A prompt by name (``name.variant`` when a variant is given)."""
        return self._lookup("prompt", f"{name}.{variant}" if variant else name)

    def lookup_format(self, name: str) -> Formatter | None:
        return self._lookup("format", name)

    def lookup_resource(self, name: str) -> Resource | None:
        return self._lookup("resource", name)

    def lookup_schema(self, name: str) -> dict[str, Any] | None:
        """A schema registered with ``define_schema``, None if none has that name."""
        return self._lookup("schema", name)

    def lookup_action(self, key: str) -> Any:
        """The action with Genkit's key ``/<type>/<name>`` (Go's ``LookupAction``), None when none has it.

        ``/util/generate`` is the generate action, ``/executable-prompt/<name>`` a prompt,
        ``/model/llamanative/<name>`` a model (resolved as :meth:`lookup_model` does) ...

        Raises:
            InvalidArgumentError: ``key`` is not of the form ``/<type>/<name>``.
        """
        atype, sep, name = key[1:].partition("/") if key.startswith("/") else ("", "", "")
        if not (atype and sep and name):
            raise InvalidArgumentError(f"action key {key!r} is not of the form /<type>/<name>")
        kind = next((k for k, t in _ACTION_TYPES.items() if t == atype), atype)
        if kind not in self._actions:
            return None
        return self._lookup(kind, name)

    def list_actions(self, kind: str | None = None) -> list[Any]:
        """The registered actions (of one kind, or all), this registry's and its parents'."""
        kinds = [kind] if kind else list(KINDS)
        out: list[Any] = []
        seen: set[tuple[str, str]] = set()
        reg: ActionRegistry | None = self
        while reg is not None:
            with reg._lock:
                for k in kinds:
                    for name, action in reg._actions[k].items():
                        if (k, name) not in seen:
                            seen.add((k, name))
                            out.append(action)
            reg = reg.parent
        return out

    def find_matching_resource(self, uri: str) -> tuple[Resource, ResourceInput] | None:
        """The first resource matching ``uri`` (this registry first) and its input, or None."""
        for res in self.list_actions("resource"):
            if res.matches(uri):
                return res, ResourceInput(uri=uri, variables=res.extract_variables(uri))
        return None
