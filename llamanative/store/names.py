"""Model names, Ollama's rules: ``[host/][namespace/]model[:tag]``.

Defaults: host ``registry.ollama.ai``, namespace ``library``, tag ``latest``.
Every part is checked so that a name can never point outside the store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import StatusError

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"

_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,252}(:[0-9]{1,5})?$")


@dataclass(frozen=True)
class ModelName:
    host: str
    namespace: str
    model: str
    tag: str

    @property
    def display(self) -> str:
        """The short form Ollama shows: ``model:tag``, or with namespace/host when not default."""
        prefix = ""
        if self.host != DEFAULT_HOST:
            prefix = f"{self.host}/{self.namespace}/"
        elif self.namespace != DEFAULT_NAMESPACE:
            prefix = f"{self.namespace}/"
        return f"{prefix}{self.model}:{self.tag}"

    def parts(self) -> tuple[str, str, str, str]:
        return (self.host, self.namespace, self.model, self.tag)


def parse_name(name: str) -> ModelName:
    """Parse and validate a model name.

    Raises:
        StatusError: 400 with the reason (empty, bad characters, ``..``, too many parts).
    """
    if not isinstance(name, str) or not name.strip():
        raise StatusError.bad_request("model name is required")
    rest, tag = name, DEFAULT_TAG
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        rest, tag = rest[: len(rest) - len(last)] + last.split(":", 1)[0], last.split(":", 1)[1]
    parts = rest.split("/")
    if len(parts) == 1:
        host, namespace, model = DEFAULT_HOST, DEFAULT_NAMESPACE, parts[0]
    elif len(parts) == 2:
        host, (namespace, model) = DEFAULT_HOST, parts
    elif len(parts) == 3:
        host, namespace, model = parts
    else:
        raise StatusError.bad_request(f"invalid model name {name!r}: at most host/namespace/model:tag")
    for label, value, rx in (
        ("model", model, _PART),
        ("namespace", namespace, _PART),
        ("tag", tag, _PART),
        ("host", host, _HOST),
    ):
        if not rx.fullmatch(value) or ".." in value:  # fullmatch: "$" alone lets a trailing newline through
            raise StatusError.bad_request(
                f"invalid model name {name!r}: bad {label} {value!r} (letters, digits, '_', '-', '.'; no '..')"
            )
    return ModelName(host, namespace, model, tag)
