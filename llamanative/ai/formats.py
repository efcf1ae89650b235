"""Output formats: ``text``, ``json``, ``jsonl``, ``array``, ``enum``, ``media``, and user-defined ones.

Their names are the ``OUTPUT_FORMAT_*`` constants (Go's ``OutputFormat*``).

A :class:`Formatter` makes a :class:`FormatHandler` for a schema. The handler
says what to ask of the model (``config()``: format, schema, whether the
format can be constrained; ``instructions()``: the text injected when it is
not constrained) and how to read what comes back: the final message
(``parse_message``, inside the loop; ``parse_output``, for
``response.output()``) and the stream (``parse_chunk``, for
``chunk.output()``). One handler serves one generate call, so it may keep
streaming state (see :class:`BaseFormatHandler`).

The rules are Go Genkit's (v1.12):

- json: constrained; instructions only with a schema; the final text is taken
  from a markdown fence if any, validated, and becomes one JSON text part;
  chunks give the whole partial value so far.
- jsonl: not constrained; the schema must be an array of objects; chunks give
  the objects whose line completed since the previous chunk.
- array: constrained; array-of-objects schema; chunks give the objects
  completed since the previous chunk; ``output()`` gives the objects.
- enum: constrained; the schema needs an ``enum`` (top level or a property);
  quotes are stripped and the value must be exactly one of them.
- text: passthrough; chunks give the accumulated text.
- media: not constrained, no instructions; ``output()`` is the first media
  part of the message (a :class:`~.parts.Media`: ``url`` and
  ``content_type``), None without one; chunks give their first media part.
  Go declares ``OutputFormatMedia`` without a formatter; this one is
  JavaScript Genkit's reading of it, for models that answer with media.
"""

from __future__ import annotations

import json
from typing import Any, Protocol, TypeGuard, runtime_checkable

from . import _json
from .errors import InvalidArgumentError, InvalidOutput, InvalidSchema
from .messages import Message, Role
from .model_types import ModelOutputConfig, ModelResponseChunk
from .parts import Part, new_text_part
from .schema import SchemaValidationError, validate

__all__ = [
    "BUILTIN_FORMATS",
    "OUTPUT_FORMAT_ARRAY",
    "OUTPUT_FORMAT_ENUM",
    "OUTPUT_FORMAT_JSON",
    "OUTPUT_FORMAT_JSONL",
    "OUTPUT_FORMAT_MEDIA",
    "OUTPUT_FORMAT_TEXT",
    "ArrayFormat",
    "BaseFormatHandler",
    "EnumFormat",
    "FormatHandler",
    "Formatter",
    "JsonFormat",
    "JsonlFormat",
    "MediaFormat",
    "TextFormat",
    "inject_instructions",
]

OUTPUT_FORMAT_TEXT = "text"
"Plain text, the default (Go's ``OutputFormatText``)."
OUTPUT_FORMAT_JSON = "json"
"A JSON value; each chunk gives the whole value so far (``OutputFormatJSON``)."
OUTPUT_FORMAT_JSONL = "jsonl"
"JSON lines; each chunk gives the objects completed since the last (``OutputFormatJSONL``)."
OUTPUT_FORMAT_MEDIA = "media"
"A media part: an image, audio ... (``OutputFormatMedia``)."
OUTPUT_FORMAT_ARRAY = "array"
"A JSON array; each chunk gives the items completed since the last (``OutputFormatArray``)."
OUTPUT_FORMAT_ENUM = "enum"
"One of the schema's enum strings (``OutputFormatEnum``)."


@runtime_checkable
class FormatHandler(Protocol):
    """Reads a model's output in one format, for one generate call."""

    def instructions(self) -> str:
        """Text appended to the prompt when output is not constrained ("" for none)."""

    def config(self) -> ModelOutputConfig:
        """The output config: format, schema, content type, and whether it can be constrained."""

    def parse_message(self, message: Message | None) -> Message | None:
        """The final model message (None when the model returned none), checked and normalised (raise
        :class:`InvalidOutput` if it does not fit)."""

    def parse_output(self, message: Message) -> Any:
        """The structured output of a final message."""

    def parse_chunk(self, chunk: ModelResponseChunk) -> Any:
        """The output of a streamed chunk (called once per chunk, in order)."""


@runtime_checkable
class Formatter(Protocol):
    """A named output format (register your own with ``define_format``)."""

    name: str

    def handler(self, schema: dict[str, Any] | None) -> FormatHandler:
        """A handler for ``schema`` (raise :class:`InvalidSchema` if the schema does not suit the format)."""


class BaseFormatHandler:
    """A handler base: passthrough ``parse_message`` and text accumulation per message index."""

    def __init__(self, instructions: str = "", config: ModelOutputConfig | None = None) -> None:
        self._instructions = instructions
        self._config = config or ModelOutputConfig()
        self._text = ""
        self._index = 0
        self._cursor = 0

    def instructions(self) -> str:
        return self._instructions

    def config(self) -> ModelOutputConfig:
        return self._config.model_copy()

    def parse_message(self, message: Message | None) -> Message | None:
        return message

    def parse_output(self, message: Message) -> Any:
        return message.text()

    def parse_chunk(self, chunk: ModelResponseChunk) -> Any:
        return self.accumulate(chunk)

    def accumulate(self, chunk: ModelResponseChunk) -> str:
        """The text of the chunk's message so far (reset when the chunk index changes)."""
        if chunk.index != self._index:
            self._text, self._index, self._cursor = "", chunk.index, 0
        self._text += chunk.text()
        return self._text

    @property
    def schema(self) -> dict[str, Any] | None:
        return self._config.schema_


def _split_text(message: Message) -> tuple[str, list[Part]]:
    text = "".join(p.text or "" for p in message.content if p.is_text())
    return text, [p for p in message.content if not p.is_text()]


def _require_content(message: Message | None) -> Message:
    """The message, if it has content (else InvalidOutput)."""
    if message is None:
        raise InvalidOutput("message is empty")
    if not message.content:
        raise InvalidOutput("message has no content")
    return message


def _schema_json(schema: Any) -> str:
    return json.dumps(schema, separators=(",", ":"), ensure_ascii=False)


def _is_array_schema(schema: dict[str, Any] | None) -> TypeGuard[dict[str, Any]]:
    return schema is not None and schema.get("type") == "array" and isinstance(schema.get("items"), dict)


# -- text -------------------------------------------------------------------------------------
class _TextHandler(BaseFormatHandler):
    pass


class TextFormat:
    name = "text"

    def handler(self, schema: dict[str, Any] | None) -> FormatHandler:
        return _TextHandler(config=ModelOutputConfig(content_type="text/plain"))


# -- json -------------------------------------------------------------------------------------
class _JsonHandler(BaseFormatHandler):
    def parse_output(self, message: Message) -> Any:
        value = _parse_json(message.text())
        if self.schema is not None:
            try:
                validate(value, self.schema)
            except SchemaValidationError as exc:
                raise InvalidOutput(str(exc)) from exc
        return value

    def parse_chunk(self, chunk: ModelResponseChunk) -> Any:
        return _parse_json(self.accumulate(chunk))

    def parse_message(self, message: Message | None) -> Message:
        message = _require_content(message)
        raw, others = _split_text(message)
        text = _json.extract_json_from_markdown(raw)
        if not text and not others:
            raise InvalidOutput("message has no content to parse as JSON")
        parts: list[Part] = []
        if text:
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise InvalidOutput(f"message is not valid JSON: {exc}") from exc
            if self.schema is not None:
                try:
                    validate(value, self.schema)
                except SchemaValidationError as exc:
                    raise InvalidOutput(str(exc)) from exc
            parts.append(new_text_part(text))
        message.content = parts + others
        return message


def _parse_json(text: str) -> Any:
    """The (partial) JSON value in ``text``; None while nothing parses."""
    if not text:
        return None
    extracted = _json.extract_json_from_markdown(text)
    if not extracted:
        return None
    try:
        return _json.extract_json(extracted)
    except ValueError:
        return None


class JsonFormat:
    name = "json"

    def handler(self, schema: dict[str, Any] | None) -> FormatHandler:
        instructions = ""
        if schema is not None:
            instructions = (
                f"Output should be in JSON format and conform to the following schema:\n\n```{_schema_json(schema)}```"
            )
        return _JsonHandler(
            instructions,
            ModelOutputConfig(constrained=True, format="json", schema=schema, content_type="application/json"),
        )


# -- jsonl ------------------------------------------------------------------------------------
class _JsonlHandler(BaseFormatHandler):
    def parse_output(self, message: Message) -> Any:
        text, _ = _split_text(message)
        items, _ = self._parse(text, 0, streaming=False)
        if self.schema is not None:
            try:
                validate(items, self.schema)
            except SchemaValidationError as exc:
                raise InvalidOutput(str(exc)) from exc
        return items

    def parse_chunk(self, chunk: ModelResponseChunk) -> Any:
        items, self._cursor = self._parse(self.accumulate(chunk), self._cursor, streaming=True)
        return items

    @staticmethod
    def _parse(text: str, cursor: int, streaming: bool) -> tuple[list[Any], int]:
        """Objects of the lines after ``cursor``; while streaming, an unparsable last line waits."""
        if not text or cursor >= len(text):
            return [], cursor
        results: list[Any] = []
        lines = text[cursor:].split("\n")
        pos = cursor
        for i, line in enumerate(lines):
            last = i == len(lines) - 1
            trimmed = line.strip()
            if trimmed.startswith("{"):
                try:
                    value = json.loads(trimmed)
                except ValueError as exc:
                    if streaming and last:
                        break
                    raise InvalidOutput(f"invalid JSON on line {i + 1}: {exc}") from exc
                if value is not None:
                    results.append(value)
                if last:
                    pos += len(line)
            if not last:
                pos += len(line) + 1
        return results, pos


class JsonlFormat:
    name = "jsonl"

    def handler(self, schema: dict[str, Any] | None) -> FormatHandler:
        if not _is_array_schema(schema):
            raise InvalidSchema("schema must be an array of objects for JSONL format")
        instructions = (
            "Output should be JSONL format, a sequence of JSON objects (one per line) separated by a "
            "newline '\\n' character. Each line should be a JSON object conforming to the following "
            f"schema:\n\n```{_schema_json(schema['items'])}```"
        )
        return _JsonlHandler(
            instructions, ModelOutputConfig(format="jsonl", schema=schema, content_type="application/jsonl")
        )


# -- array ------------------------------------------------------------------------------------
class _ArrayHandler(BaseFormatHandler):
    def parse_output(self, message: Message) -> Any:
        items, _ = _json.extract_items(message.text(), 0)
        return items

    def parse_chunk(self, chunk: ModelResponseChunk) -> Any:
        items, self._cursor = _json.extract_items(self.accumulate(chunk), self._cursor)
        return items


class ArrayFormat:
    name = "array"

    def handler(self, schema: dict[str, Any] | None) -> FormatHandler:
        if not _is_array_schema(schema):
            raise InvalidSchema("schema must be an array of objects for array format")
        instructions = (
            "Output should be a JSON array conforming to the following schema:\n\n"
            f"```{_schema_json(schema['items'])}```"
        )
        return _ArrayHandler(
            instructions,
            ModelOutputConfig(constrained=True, format="array", schema=schema, content_type="application/json"),
        )


# -- enum -------------------------------------------------------------------------------------
def object_enums(schema: dict[str, Any] | None) -> list[str]:
    """The string values of ``enum`` at the top level, else of the first property that has one."""
    if not schema:
        return []

    def strings(v: Any) -> list[str]:
        return [s for s in v if isinstance(s, str)] if isinstance(v, list) else []

    found = strings(schema.get("enum"))
    if found:
        return found
    for prop in (schema.get("properties") or {}).values():
        if isinstance(prop, dict):
            found = strings(prop.get("enum"))
            if found:
                return found
    return []


class _EnumHandler(BaseFormatHandler):
    def __init__(self, instructions: str, config: ModelOutputConfig, enums: list[str]) -> None:
        super().__init__(instructions, config)
        self.enums = enums

    def parse_enum(self, text: str) -> str:
        if not text:
            raise InvalidOutput(f"message has no enum value, want one of: {', '.join(self.enums)}")
        value = text.replace("'", "").replace('"', "").strip()
        if value not in self.enums:
            raise InvalidOutput(f"message {value} not in list of valid enums: {', '.join(self.enums)}")
        return value

    def parse_output(self, message: Message) -> Any:
        return self.parse_enum(message.text())

    def parse_chunk(self, chunk: ModelResponseChunk) -> Any:
        try:
            return self.parse_enum(self.accumulate(chunk))
        except InvalidOutput:
            return ""

    def parse_message(self, message: Message | None) -> Message:
        message = _require_content(message)
        text, others = _split_text(message)
        message.content = [new_text_part(self.parse_enum(text)), *others]
        return message


class EnumFormat:
    name = "enum"

    def handler(self, schema: dict[str, Any] | None) -> FormatHandler:
        enums = object_enums(schema)
        if not enums:
            raise InvalidSchema("schema must be an object with an 'enum' property for enum format")
        instructions = (
            "Output should be ONLY one of the following enum values. Do not output any additional "
            f"information or add quotes.\n\n```{chr(10).join(enums)}```"
        )
        return _EnumHandler(
            instructions,
            ModelOutputConfig(constrained=True, format="enum", schema=schema, content_type="text/enum"),
            enums,
        )


# -- media ------------------------------------------------------------------------------------
class _MediaHandler(BaseFormatHandler):
    def parse_output(self, message: Message) -> Any:
        media = message.media_parts()
        return media[0].media if media else None

    def parse_chunk(self, chunk: ModelResponseChunk) -> Any:
        media = [p for p in chunk.content if p.is_media()]
        return media[0].media if media else None


class MediaFormat:
    name = OUTPUT_FORMAT_MEDIA

    def handler(self, schema: dict[str, Any] | None) -> FormatHandler:
        return _MediaHandler(config=ModelOutputConfig(format=OUTPUT_FORMAT_MEDIA))


BUILTIN_FORMATS: tuple[Formatter, ...] = (
    TextFormat(),
    JsonFormat(),
    JsonlFormat(),
    ArrayFormat(),
    EnumFormat(),
    MediaFormat(),
)


def resolve_format_name(schema: dict[str, Any] | None, fmt: str | None) -> str:
    """The format to use: the given one, else json with a schema, text without."""
    if fmt:
        return fmt
    return "json" if schema is not None else "text"


def unknown_format(name: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"output format {name!r} is invalid")


def inject_instructions(messages: list[Message], instructions: str) -> list[Message]:
    """``messages`` with an output-instructions part (``metadata.purpose = "output"``) added.

    The part goes to the first system message, else the last user message; nothing
    is added if some part already has ``purpose: output`` or there is no target.
    The input list and its messages are not modified.
    """
    if not instructions:
        return messages
    if any((p.metadata or {}).get("purpose") == "output" for m in messages for p in m.content):
        return messages
    target = next((i for i, m in enumerate(messages) if m.role == Role.SYSTEM), -1)
    if target == -1:
        target = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].role == Role.USER), -1)
    if target == -1:
        return messages
    out = list(messages)
    msg = out[target]
    out[target] = msg.model_copy(update={"content": [*msg.content, new_text_part(instructions, {"purpose": "output"})]})
    return out
