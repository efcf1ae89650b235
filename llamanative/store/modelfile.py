r'''Modelfiles: Ollama's recipe for a model, read and written.

A Modelfile names the weights to start from and what to store with them::

    # a comment: a line that starts with '#' (a '#' after a value is part of the value)
    # FROM: a GGUF file, or the name of a stored model
    FROM ./SmolLM2-135M-Instruct.Q4_1.gguf
    PARAMETER temperature 0.2
    # stop collects every value; for the other parameters the last one wins
    PARAMETER stop "<|im_end|>"
    PARAMETER stop "<|endoftext|>"
    SYSTEM """You are a terse assistant.
    Answer in one sentence."""
    MESSAGE user Hello
    MESSAGE assistant "Hi! How can I help?"
    LICENSE Apache-2.0

Grammar (the one of Ollama's ``parser`` package): one instruction per line,
its name in any case, then a value. A value runs to the end of the line;
in ``"..."`` or ``"""..."""`` it may span lines: it ends at the first line
end where the text so far closes the quote. Leading and trailing spaces
outside the quotes are dropped. ``FROM`` paths are relative to the
Modelfile's directory (``~`` is expanded); a ``FROM`` that is not a file is
the name of a model in the store. A second ``FROM`` names a projector GGUF
(a vision/audio encoder, llama.cpp's ``mmproj`` file: ``general.architecture``
``clip``), as in Ollama; the two lines may come in either order (the file
whose header says ``clip`` is the projector)::

    FROM ./SmolVLM-256M-Instruct-Q8_0.gguf
    FROM ./mmproj-SmolVLM-256M-Instruct-F16.gguf

``ADAPTER`` names a LoRA adapter GGUF for the model (relative paths as for
``FROM``; repeatable: the adapters are stored in order, and a request's
``lora`` option names them by index)::

    FROM ./SmolLM2-135M-Instruct.Q4_1.gguf
    ADAPTER ./smollm2-lora.gguf

``DRAFT`` names a draft model GGUF for speculative decoding: a smaller model
with the same vocabulary (relative paths as for ``FROM``; one at most).
Requests then draft with it (``spec_type`` ``draft-simple``) unless their
options say otherwise. Ollama reserves the instruction; llamanative runs it::

    FROM ./big-model.gguf
    DRAFT ./small-model-same-vocabulary.gguf

``CONTROLVECTOR`` names a control vector GGUF for the model (llama.cpp's
``cvector-generator`` writes them; relative paths as for ``FROM``;
repeatable: the vectors are stored in order, a request's
``control_vectors`` option names them by index, and by default every one
is added at scale 1.0, as llama-server's ``--control-vector``). Ollama has no
such instruction; llamanative runs it::

    FROM ./SmolLM2-135M-Instruct.Q4_1.gguf
    CONTROLVECTOR ./smollm2-happy.gguf

Instructions: ``FROM``, ``ADAPTER``, ``DRAFT``, ``CONTROLVECTOR``, ``PARAMETER <name> <value>``,
``TEMPLATE``, ``SYSTEM``, ``LICENSE`` (repeatable), ``MESSAGE
<system|user|assistant> <text>``, ``REQUIRES <version>`` (Ollama's minimum
server version: checked for form, then ignored). ``RENDERER`` and ``PARSER``
are Ollama features llamanative does not have: they are errors.
An ``ADAPTER`` that is a safetensors folder (which Ollama converts) is an
error too: convert it to GGUF with llama.cpp's ``convert_lora_to_gguf.py``.

>>> mf = parse_modelfile('FROM smollm2\nPARAMETER num_ctx 2048\nSYSTEM "Be brief."')
>>> mf.create_kwargs()
{'from_': 'smollm2', 'system': 'Be brief.', 'parameters': {'num_ctx': 2048}}
'''

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import StatusError
from ..types import LEGACY_OPTIONS, Options, format_params
from .names import parse_name

__all__ = ["Command", "Modelfile", "ModelfileError", "parse_commands", "parse_modelfile", "quote", "read_modelfile"]

INSTRUCTIONS = (
    "from",
    "parameter",
    "template",
    "system",
    "license",
    "message",
    "requires",
    "adapter",
    "draft",
    "controlvector",
    "renderer",
    "parser",
)
MESSAGE_ROLES = ("system", "user", "assistant")

# Ollama instructions that need features llamanative does not have: why, and what to do instead.
_UNSUPPORTED = {
    "renderer": "RENDERER is not supported: it names one of Ollama's built-in Go prompt renderers; "
    "llamanative renders prompts with the GGUF's own chat template",
    "parser": "PARSER is not supported: it names one of Ollama's built-in Go output parsers; "
    "llamanative parses output with the GGUF's own chat template",
}
_SEMVER = re.compile(r"^v?\d+(\.\d+(\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?)?)?$")
_NAME = re.compile(r"^([A-Za-z]+)(?=[ \t]|$)")
_PARAM = re.compile(r"^([A-Za-z0-9_]+)(?=[ \t]|$)")


class ModelfileError(ValueError):
    """A Modelfile that cannot be read, with the line it is about.

    ``line`` is 1-based (``None`` for the file as a whole); ``str(e)`` reads
    ``Modelfile, line 3: unknown parameter 'foo' ...``.
    """

    def __init__(self, message: str, line: int | None = None, source: str = "Modelfile") -> None:
        self.message, self.line, self.source = message, line, source
        where = f"{source}, line {line}" if line else source
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Command:
    """One instruction as written: ``name`` lower case; ``key`` is the parameter name or message role."""

    name: str
    value: str
    line: int
    key: str | None = None


@dataclass
class Modelfile:
    """What a Modelfile says. Turn it into a model with ``client.create(name, **mf.create_kwargs())``.

    ``from_`` is an absolute GGUF path when ``FROM`` named an existing file,
    else a model name; ``projector`` the absolute path of the projector GGUF
    of a second ``FROM``; ``adapters`` the absolute paths of the ``ADAPTER``
    files, in order; ``draft`` the absolute path of the ``DRAFT`` model;
    ``control_vectors`` the absolute paths of the ``CONTROLVECTOR`` files, in order.
    ``parameters`` hold typed values (``stop`` a list).
    ``warnings`` tell about lines that were accepted but have no effect.
    """

    from_: str
    template: str | None = None
    system: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    license: list[str] = field(default_factory=list)
    messages: list[dict[str, str]] = field(default_factory=list)
    requires: str | None = None
    warnings: list[str] = field(default_factory=list, compare=False)
    projector: str | None = None
    adapters: list[str] = field(default_factory=list)
    draft: str | None = None
    control_vectors: list[str] = field(default_factory=list)

    def create_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :meth:`llamanative.Client.create` (all but the new model's name)."""
        kw: dict[str, Any] = {"from_": self.from_}
        if self.projector is not None:
            kw["projector"] = self.projector
        if self.adapters:
            kw["adapters"] = list(self.adapters)
        if self.draft is not None:
            kw["draft"] = self.draft
        if self.control_vectors:
            kw["control_vectors"] = list(self.control_vectors)
        if self.template is not None:
            kw["template"] = self.template
        if self.system is not None:
            kw["system"] = self.system
        if self.parameters:
            kw["parameters"] = {k: list(v) if isinstance(v, list) else v for k, v in self.parameters.items()}
        if self.license:
            kw["license"] = list(self.license)
        if self.messages:
            kw["messages"] = [dict(m) for m in self.messages]
        return kw

    def to_text(self) -> str:
        """The Modelfile text; parsing it gives back an equal :class:`Modelfile`.

        Raises:
            ValueError: a value that no quoting can carry (see :func:`quote`).
        """
        lines = [f"FROM {quote(self.from_)}"]
        if self.projector is not None:
            lines.append(f"FROM {quote(self.projector)}")
        lines.extend(f"ADAPTER {quote(path)}" for path in self.adapters)
        if self.draft is not None:
            lines.append(f"DRAFT {quote(self.draft)}")
        lines.extend(f"CONTROLVECTOR {quote(path)}" for path in self.control_vectors)
        if self.requires is not None:
            lines.append(f"REQUIRES {quote(self.requires)}")
        if self.template is not None:
            lines.append(f"TEMPLATE {quote(self.template)}")
        if self.system is not None:
            lines.append(f"SYSTEM {quote(self.system)}")
        for key, value in self.parameters.items():
            for v in value if isinstance(value, list) else [value]:
                lines.append(f"PARAMETER {key} {quote(_param_text(v))}")
        lines.extend(f"LICENSE {quote(text)}" for text in self.license)
        lines.extend(f"MESSAGE {m['role']} {quote(m['content'])}" for m in self.messages)
        return "\n".join(lines) + "\n"


def read_modelfile(path: str | os.PathLike) -> Modelfile:
    """Parse the Modelfile at ``path``; relative ``FROM`` paths are read from its directory.

    Raises:
        FileNotFoundError: no such file.
        ModelfileError: the file is not UTF-8 text, or not a valid Modelfile (the message names the line).
    """
    p = Path(path).expanduser()
    data = p.read_bytes()
    try:
        text = data.decode("utf-8-sig")  # a UTF-8 BOM, as some editors write, is dropped
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ModelfileError(f"not UTF-8 text (byte {data[exc.start : exc.start + 1]!r})", line, str(path)) from None
    return parse_modelfile(text, base_dir=p.resolve().parent, source=str(path))


def parse_modelfile(text: str, base_dir: str | os.PathLike | None = None, source: str = "Modelfile") -> Modelfile:
    """Parse Modelfile text. ``base_dir`` (default: the working directory) anchors relative ``FROM`` paths.

    Raises:
        ModelfileError: a syntax error, an unknown instruction or parameter, a
            bad value, an unsupported instruction, or no ``FROM``.
    """
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    from_: str | None = None
    projector: tuple[str, int] | None = None  # (value, line) of the second FROM
    mf = Modelfile(from_="")

    def fail(message: str, line: int | None) -> ModelfileError:
        return ModelfileError(message, line, source)

    for cmd in parse_commands(text, source):
        if cmd.name in _UNSUPPORTED:
            raise fail(_UNSUPPORTED[cmd.name], cmd.line)
        if cmd.name == "from":
            if projector is not None:
                raise fail("a third FROM: a model is built from one model and at most one projector GGUF", cmd.line)
            resolved = _resolve_from(cmd.value, base, cmd.line, source)
            if from_ is None:
                from_ = resolved
            else:
                projector = (resolved, cmd.line)
        elif cmd.name == "adapter":
            mf.adapters.append(_resolve_adapter(cmd.value, base, cmd.line, source))
        elif cmd.name == "draft":
            if mf.draft is not None:
                raise fail("a second DRAFT: a model has one draft model at most", cmd.line)
            mf.draft = _resolve_file("DRAFT", cmd.value, base, cmd.line, source, "draft models as GGUF files")
        elif cmd.name == "controlvector":
            mf.control_vectors.append(
                _resolve_file("CONTROLVECTOR", cmd.value, base, cmd.line, source, "control vectors as GGUF files")
            )
        elif cmd.name == "parameter":
            _add_parameter(mf, cmd, source)
        elif cmd.name == "template":
            mf.template = cmd.value
        elif cmd.name == "system":
            mf.system = cmd.value
        elif cmd.name == "license":
            mf.license.append(cmd.value)
        elif cmd.name == "message":
            mf.messages.append({"role": cmd.key or "", "content": cmd.value})
        elif cmd.name == "requires":
            if not _SEMVER.match(cmd.value):
                raise fail(f"REQUIRES must be a version like 0.14.0, not {cmd.value!r}", cmd.line)
            mf.requires = cmd.value.removeprefix("v")
            mf.warnings.append(
                f"line {cmd.line}: REQUIRES {mf.requires} is Ollama's minimum server version; llamanative ignores it"
            )
    if from_ is None:
        raise fail("no FROM line: say which model to start from (FROM <file.gguf> or FROM <model name>)", None)
    if projector is not None:
        second, line = projector
        if _is_clip(from_) and not _is_clip(second):  # the projector came first
            from_, second = second, from_
        if not os.path.isabs(second):
            raise fail(
                f"FROM {second}: a second FROM names a projector GGUF file (an mmproj file), not a model name",
                line,
            )
        mf.projector = second
    mf.from_ = from_
    return mf


def _is_clip(path: str) -> bool:
    """Whether ``path`` is a GGUF file whose ``general.architecture`` is ``clip`` (a projector)."""
    if not os.path.isabs(path):  # a model name
        return False
    from .store import gguf_architecture

    try:
        return gguf_architecture(path) == "clip"
    except (ValueError, OSError):
        return False


def parse_commands(text: str, source: str = "Modelfile") -> list[Command]:
    """The instructions of a Modelfile, unquoted, with their line numbers (no checks of the values).

    Raises:
        ModelfileError: an unknown instruction, a missing value, a bad
            parameter name or message role, or a quote that never closes.
    """
    lines = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    out: list[Command] = []
    it = iter(enumerate(lines, 1))
    for number, raw in it:
        line = raw.lstrip(" \t")
        if not line or line.startswith("#"):
            continue
        m = _NAME.match(line)
        name = m.group(1).lower() if m else ""
        if name not in INSTRUCTIONS:
            word = (line.split(None, 1) or [line])[0]  # a line of other white space (\v, \f, U+2028 ...) too
            raise ModelfileError(
                f"unknown instruction {word!r}: expected one of {', '.join(i.upper() for i in INSTRUCTIONS)}",
                number,
                source,
            )
        assert m is not None  # a line that does not match has no instruction name, raised above
        rest = line[m.end() :].lstrip(" \t")
        key = None
        if name in ("parameter", "message"):
            km = _PARAM.match(rest) if name == "parameter" else _NAME.match(rest)
            if not km:
                what = "a parameter name (letters, digits, '_')" if name == "parameter" else "a role"
                raise ModelfileError(f"{name.upper()} needs {what} and a value", number, source)
            key = km.group(1)
            rest = rest[km.end() :].lstrip(" \t")
            if name == "message":
                if key.lower() not in MESSAGE_ROLES:
                    raise ModelfileError(
                        f"message role must be one of {', '.join(MESSAGE_ROLES)}, not {key!r}", number, source
                    )
                key = key.lower()
        if not rest:  # an empty value is written "" (a bare name is a mistake, as in Ollama)
            what = f"{name.upper()} {key}" if key else name.upper()
            raise ModelfileError(f"{what} needs a value", number, source)
        value = _read_value(rest, it, number, source)
        out.append(Command(name, value, number, key))
    return out


def quote(value: str) -> str:
    """``value`` as a Modelfile value: bare when it reads back unchanged, else in ``"..."`` or ``\"\"\"...\"\"\"``.

    Raises:
        ValueError: no quoting reads back as ``value`` (a multi-line value
            with lines ending in ``"`` as well as ``\"\"\"``).
    """
    candidates = [value] if value and "\n" not in value else []
    candidates += [f'"""{value}"""', f'"{value}"'] if "\n" in value else [f'"{value}"']
    for text in candidates:
        first, *more = text.split("\n")
        try:
            it = iter(enumerate(more, 2))
            if _read_value(first, it, 1, "") == value and next(it, None) is None:
                return text
        except ModelfileError:
            continue
    raise ValueError(f"{value!r} cannot be written as a Modelfile value")


# -- helpers ---------------------------------------------------------------------------------


def _unquote(text: str) -> tuple[str, bool]:
    """(value, closed): the quotes removed, or closed=False while a quote is still open."""
    if text.startswith('"""'):
        return (text[3:-3], True) if len(text) >= 6 and text.endswith('"""') else ("", False)
    if text.startswith('"'):
        return (text[1:-1], True) if len(text) >= 2 and text.endswith('"') else ("", False)
    return text, True


def _read_value(first: str, lines: Iterator[tuple[int, str]], start: int, source: str) -> str:
    """A value starting with ``first``, taking more lines while a quote is open (Ollama's rule)."""
    buf = first
    while True:
        value, closed = _unquote(buf.strip())
        if closed:
            return value
        nxt = next(lines, None)
        if nxt is None:
            opener = '"""' if buf.strip().startswith('"""') else '"'
            raise ModelfileError(
                f"the {opener} opened here never closes (a closing {opener} must end a line)", start, source
            )
        buf += "\n" + nxt[1]


def _resolve_from(value: str, base: Path, line: int, source: str) -> str:
    """An absolute path for an existing file, else the value as a model name."""
    if not value:
        raise ModelfileError("FROM needs a GGUF path or a model name", line, source)
    try:
        path = Path(os.path.expanduser(value))
    except ValueError:  # a NUL in the ~user part: the user lookup refuses it, and no such file exists
        path = Path(value)
    if not path.is_absolute():
        path = base / path
    try:
        is_file, is_dir = path.is_file(), path.is_dir()
    except OSError:  # no path the system can look at (a name too long ...): not a file
        is_file = is_dir = False
    if is_file:
        return str(path.resolve())
    if is_dir:
        raise ModelfileError(
            f"FROM {value}: is a directory; llamanative imports single GGUF files "
            "(safetensors folders are not converted)",
            line,
            source,
        )
    if value.endswith(".gguf") or value.startswith(("/", "./", "../", "~", ".\\")):
        raise ModelfileError(f"FROM {value}: no such file (relative paths are read from {base})", line, source)
    try:
        parse_name(value)
    except StatusError as exc:
        raise ModelfileError(f"FROM {value}: not a file, and {exc.error_message}", line, source) from None
    return value


def _resolve_adapter(value: str, base: Path, line: int, source: str) -> str:
    """The absolute path of an ``ADAPTER`` file (relative to ``base``, ``~`` expanded)."""
    return _resolve_file(
        "ADAPTER",
        value,
        base,
        line,
        source,
        "LoRA adapters as GGUF files (convert a safetensors adapter with llama.cpp's convert_lora_to_gguf.py)",
    )


def _resolve_file(what: str, value: str, base: Path, line: int, source: str, takes: str) -> str:
    """The absolute path of the file an instruction ``what`` names (relative to ``base``, ``~`` expanded)."""
    try:
        path = Path(os.path.expanduser(value))
    except ValueError:  # a NUL in the ~user part
        path = Path(value)
    if not path.is_absolute():
        path = base / path
    try:
        is_file, is_dir = path.is_file(), path.is_dir()
    except OSError:
        is_file = is_dir = False
    if is_dir:
        raise ModelfileError(f"{what} {value}: is a directory; llamanative takes {takes}", line, source)
    if not is_file:
        raise ModelfileError(f"{what} {value}: no such file (relative paths are read from {base})", line, source)
    return str(path.resolve())


def _add_parameter(mf: Modelfile, cmd: Command, source: str) -> None:
    name = cmd.key or ""
    if name in LEGACY_OPTIONS:
        mf.warnings.append(f"line {cmd.line}: parameter {name} is not supported by llamanative and is ignored")
        return
    try:
        typed = format_params({name: [cmd.value]})
    except StatusError as exc:
        msg = exc.error_message
        known = sorted(k for k in Options.model_fields if k not in LEGACY_OPTIONS)
        if name not in known:
            msg += f" (known parameters: {', '.join(known)})"
        raise ModelfileError(msg, cmd.line, source) from None
    for key, value in typed.items():
        if isinstance(value, list):  # stop: every PARAMETER stop line adds one
            mf.parameters.setdefault(key, []).extend(value)
        else:
            mf.parameters[key] = value


def _param_text(value: Any) -> str:
    """A typed parameter value as Modelfile text (bools as Go writes them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)
