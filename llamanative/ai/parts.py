"""``Part``: one piece of a message or document (Genkit's part union).

A part is exactly one of: text, media, data, a tool request, a tool
response, reasoning, custom data or a resource reference, plus optional
``metadata``. Its JSON is Genkit's (``{"text": ...}``, ``{"media": {"url",
"contentType"}}``, ``{"toolRequest": {"name", "ref", "input"}}`` ...).

>>> p = new_tool_request_part(ToolRequest(name="add", input={"a": 1}))
>>> p.is_tool_request(), p.to_dict()
(True, {'toolRequest': {'name': 'add', 'input': {'a': 1}}})
>>> Part.model_validate({"media": {"url": "data:image/png;base64,AA", "contentType": "image/png"}}).is_image()
True
"""

from __future__ import annotations

import base64
import json
from typing import Any

from ._wire import WireModel
from .errors import InvalidPart

__all__ = [
    "Media",
    "Part",
    "ResourceRef",
    "ToolRequest",
    "ToolResponse",
    "is_audio_content_type",
    "is_image_content_type",
    "is_video_content_type",
    "new_custom_part",
    "new_data_part",
    "new_json_part",
    "new_media_part",
    "new_partial_tool_response_part",
    "new_reasoning_part",
    "new_resource_part",
    "new_response_for_tool_request",
    "new_text_part",
    "new_tool_request_part",
    "new_tool_response_part",
]


class Media(WireModel):
    """A media reference: a URL (``https:``, ``gs:``, or a ``data:`` URL) and its MIME type."""

    url: str
    """Where the media is: an http(s) URL or a ``data:<type>;base64,...`` URL; for local models also a
    ``file:`` URL or a path (see :mod:`llamanative.ai.media`)."""

    content_type: str | None = None
    "The MIME type, e.g. ``image/png`` (JSON ``contentType``)."


class ToolRequest(WireModel):
    """A model's request to run a tool."""

    name: str
    "The tool's name."

    ref: str | None = None
    "Identifies this call among the calls of one message; the loop fills in a UUID when the model gave none."

    input: Any = None
    "The tool's input (JSON data)."

    partial: bool | None = None
    "True while the request is still being streamed."


class ToolResponse(WireModel):
    """A tool's result, sent back to the model."""

    name: str
    "The tool's name."

    ref: str | None = None
    "The ``ref`` of the request this answers."

    output: Any = None
    "The tool's output (JSON data)."

    content: list[Part] | None = None
    "Extra content parts (multipart tools)."


class ResourceRef(WireModel):
    """A reference to a registered resource, expanded into its content before the model sees it."""

    uri: str
    "The resource's URI."


_KINDS = ("media", "tool_request", "tool_response", "resource", "custom", "reasoning", "data", "text")


class Part(WireModel):
    """One piece of content; set exactly one of the content fields (plus ``metadata`` if wanted)."""

    text: str | None = None
    "Plain text."

    media: Media | None = None
    "An image, audio or video reference."

    data: Any = None
    "Structured data (any JSON value but ``null``)."

    tool_request: ToolRequest | None = None
    "A model's request to run a tool (JSON ``toolRequest``)."

    tool_response: ToolResponse | None = None
    "A tool's result (JSON ``toolResponse``)."

    reasoning: str | None = None
    "The model's reasoning (thinking) text."

    custom: dict[str, Any] | None = None
    "Provider-specific content."

    resource: ResourceRef | None = None
    'A resource reference (``{"uri": ...}``).'

    metadata: dict[str, Any] | None = None
    "Free-form metadata (``purpose``, ``interrupt``, ``pendingOutput`` ...)."

    @property
    def kind(self) -> str | None:
        """The content kind: ``"text"``, ``"media"``, ``"data"``, ``"tool_request"``, ``"tool_response"``,
        ``"reasoning"``, ``"custom"``, ``"resource"``, or None for an empty part."""
        for k in _KINDS:
            if getattr(self, k) is not None:
                return k
        return None

    # -- predicates (Go's Part.Is*) --------------------------------------------------------
    def is_text(self) -> bool:
        return self.kind == "text"

    def is_media(self) -> bool:
        return self.kind == "media"

    def is_data(self) -> bool:
        return self.kind == "data"

    def is_tool_request(self) -> bool:
        return self.kind == "tool_request"

    def is_tool_response(self) -> bool:
        return self.kind == "tool_response"

    def is_reasoning(self) -> bool:
        return self.kind == "reasoning"

    def is_custom(self) -> bool:
        return self.kind == "custom"

    def is_resource(self) -> bool:
        return self.kind == "resource"

    def is_interrupt(self) -> bool:
        """A tool request that a tool interrupted (``metadata["interrupt"]`` is set)."""
        return self.is_tool_request() and (self.metadata or {}).get("interrupt") is not None

    def is_partial(self) -> bool:
        """A partial tool response streamed while the tool runs (``metadata["partial"] is True``)."""
        return self.is_tool_response() and (self.metadata or {}).get("partial") is True

    def is_image(self) -> bool:
        """A media part whose content type is an image type, or whose URL is a ``data:image/`` URL (Go's rule)."""
        return self.media is not None and (
            is_image_content_type(self.media.content_type) or _has_prefix(self.media.url, "data:image/")
        )

    def is_video(self) -> bool:
        """A media part whose content type is a video type, or whose URL is a ``data:video/`` URL."""
        return self.media is not None and (
            is_video_content_type(self.media.content_type) or _has_prefix(self.media.url, "data:video/")
        )

    def is_audio(self) -> bool:
        """A media part whose content type is an audio type, or whose URL is a ``data:audio/`` URL."""
        return self.media is not None and (
            is_audio_content_type(self.media.content_type) or _has_prefix(self.media.url, "data:audio/")
        )

    def text_content(self) -> str:
        """The text a part carries for character counts: text, reasoning, the media URL, or JSON of data."""
        if self.text is not None:
            return self.text
        if self.reasoning is not None:
            return self.reasoning
        if self.media is not None:
            return self.media.url
        if self.data is not None:
            return json.dumps(self.data, ensure_ascii=False)
        return ""

    def clone(self) -> Part:
        """A deep copy."""
        return self.model_copy(deep=True)


ToolResponse.model_rebuild()


# -- content types (Go's IsImageContentType, IsVideoContentType, IsAudioContentType) ------------
def _has_prefix(value: str | None, prefix: str) -> bool:
    # MIME types are case-insensitive (RFC 2045), so "Image/PNG" is an image too; Go compares as given.
    return value is not None and value[: len(prefix)].lower() == prefix


def is_image_content_type(content_type: str | None) -> bool:
    """Whether ``content_type`` names an image: ``image/...``, or a ``data:image/...`` URL given as the type.

    >>> [is_image_content_type(t) for t in ("image/png", "data:image/png;base64,...", "video/mp4", "")]
    [True, True, False, False]
    """
    return _has_prefix(content_type, "image/") or _has_prefix(content_type, "data:image/")


def is_video_content_type(content_type: str | None) -> bool:
    """Whether ``content_type`` names a video: ``video/...`` or ``data:video/...``.

    >>> is_video_content_type("video/mp4"), is_video_content_type("image/png")
    (True, False)
    """
    return _has_prefix(content_type, "video/") or _has_prefix(content_type, "data:video/")


def is_audio_content_type(content_type: str | None) -> bool:
    """Whether ``content_type`` names audio: ``audio/...`` or ``data:audio/...``.

    >>> is_audio_content_type("audio/mpeg"), is_audio_content_type("video/mp4")
    (True, False)
    """
    return _has_prefix(content_type, "audio/") or _has_prefix(content_type, "data:audio/")


# -- typed access to a part of a known kind ----------------------------------------------------
def tool_request_of(part: Part) -> ToolRequest:
    """``part.tool_request`` of a tool-request part.

    Raises:
        InvalidPart: the part carries no tool request.
    """
    if part.tool_request is None:
        raise InvalidPart("part is not a tool request")
    return part.tool_request


def tool_response_of(part: Part) -> ToolResponse:
    """``part.tool_response`` of a tool-response part.

    Raises:
        InvalidPart: the part carries no tool response.
    """
    if part.tool_response is None:
        raise InvalidPart("part is not a tool response")
    return part.tool_response


def media_of(part: Part) -> Media:
    """``part.media`` of a media part.

    Raises:
        InvalidPart: the part carries no media.
    """
    if part.media is None:
        raise InvalidPart("part is not a media part")
    return part.media


# -- constructors (Go's New*Part) ------------------------------------------------------------
def new_text_part(text: str, metadata: dict[str, Any] | None = None) -> Part:
    """A text part."""
    return Part(text=text, metadata=metadata)


def new_json_part(text: str) -> Part:
    """A text part holding JSON text (what output parsing puts in the final message)."""
    return Part(text=text)


def new_media_part(content_type: str | None, url: str) -> Part:
    """A media part (Go's argument order: the MIME type, then the URL or ``data:`` URL)."""
    return Part(media=Media(url=url, content_type=content_type or None))


def new_data_part(data: Any) -> Part:
    """A structured-data part."""
    return Part(data=data)


def new_tool_request_part(request: ToolRequest | dict[str, Any]) -> Part:
    """A tool-request part."""
    return Part(tool_request=ToolRequest.model_validate(request) if isinstance(request, dict) else request)


def new_tool_response_part(response: ToolResponse | dict[str, Any]) -> Part:
    """A tool-response part."""
    return Part(tool_response=ToolResponse.model_validate(response) if isinstance(response, dict) else response)


def new_response_for_tool_request(part: Part, output: Any) -> Part:
    """A tool response answering ``part`` (its name and ref) with ``output``."""
    req = tool_request_of(part)
    return Part(tool_response=ToolResponse(name=req.name, ref=req.ref, output=output))


def new_partial_tool_response_part(response: ToolResponse) -> Part:
    """A partial tool response (``metadata.partial = True``): streamed progress, never put in the history."""
    return Part(tool_response=response, metadata={"partial": True})


def new_reasoning_part(text: str, signature: bytes | None = None) -> Part:
    """A reasoning part; a provider's ``signature`` goes into ``metadata.signature`` (base64)."""
    meta = {"signature": base64.b64encode(signature).decode()} if signature else None
    return Part(reasoning=text, metadata=meta)


def new_custom_part(custom: dict[str, Any]) -> Part:
    """A provider-specific part."""
    return Part(custom=custom)


def new_resource_part(uri: str) -> Part:
    """A resource reference, replaced by the matching resource's content before the model is called."""
    return Part(resource=ResourceRef(uri=uri))
