"""``Image``: an image given as a path, raw bytes or base64 text (ollama-python semantics).

(:class:`~llamanative.types.audio.Audio`, a llamanative extension, is the
same for audio clips, on the same base.)

On the wire (the spec's ``ImageData``) an image is base64 text. Input can be:

- ``bytes`` (or any bytes-like object): the raw image data;
- a :class:`pathlib.Path`: a file, which must exist;
- a ``str``: the path of an existing file, or else base64 text. A string that
  ends in an image extension (``.png``, ``.jpg``, ``.jpeg``, ``.webp``,
  ``.gif``, ``.bmp``, any case) but names no file is an error, not base64;
  so is text that decodes to nothing.

Unlike ollama-python, which checks only when serialising, the checks run when
the ``Image`` is made, so a bad image fails at the request, before any work.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_serializer, model_validator

__all__ = ["EncodedMedia", "Image"]

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")


def _existing_file(value: str) -> Path | None:
    try:
        path = Path(value)
        return path if path.is_file() else None
    except (OSError, ValueError):  # e.g. a long base64 text: "File name too long"
        return None


class EncodedMedia(BaseModel):
    """An encoded media file (an image, an audio clip) given as a path, raw bytes or base64 text.

    The base of :class:`Image` and :class:`~llamanative.types.audio.Audio`:
    a subclass names its file suffixes (a string ending in one that names no
    file is an error, not base64) and its kind for the error messages.

    Raises:
        ValueError: (as pydantic's ``ValidationError``, a ``ValueError``) for
            a missing file or text that is neither a file nor base64.
    """

    model_config = ConfigDict(frozen=True)

    _suffixes: ClassVar[tuple[str, ...]] = ()
    _kind: ClassVar[str] = "media"

    value: str | bytes | Path
    "A path, raw bytes, or base64 text."

    def __init__(self, value: Any = None, /, **data: Any) -> None:
        if value is not None:
            data["value"] = value
        super().__init__(**data)

    @model_validator(mode="before")
    @classmethod
    def _wrap(cls, data: Any) -> Any:
        # In a list of images, a bare path/bytes/str stands for Image(value=...).
        if isinstance(data, (str, bytes, bytearray, memoryview, Path)):
            data = {"value": data}
        if isinstance(data, dict) and isinstance(data.get("value"), (bytearray, memoryview)):
            # Raw data as bytes: left to pydantic, a bytearray of UTF-8 text would become a str (then read
            # as base64 or a path) and a memoryview would fail.
            data = {**data, "value": bytes(data["value"])}
        return data

    @model_validator(mode="after")
    def _check(self) -> EncodedMedia:
        value = self.value
        if isinstance(value, Path):
            if not value.is_file():
                raise ValueError(f"File {value} does not exist")
        elif isinstance(value, str) and _existing_file(value) is None:
            if value.lower().endswith(self._suffixes):
                raise ValueError(f"File {value} does not exist")
            try:
                data = base64.b64decode(value)  # lenient, as ollama-python: non-alphabet characters are skipped
            except (binascii.Error, ValueError):
                data = b""
            if not data:
                kind = self._kind
                raise ValueError(f"Invalid {kind} data, expected base64 string or path to {kind} file")
        return self

    def to_bytes(self) -> bytes:
        """The raw data (the file is read now)."""
        value = self.value
        if isinstance(value, bytes):
            return value
        if isinstance(value, Path):
            return value.read_bytes()
        path = _existing_file(value)
        return path.read_bytes() if path is not None else base64.b64decode(value)

    def to_base64(self) -> str:
        """The data as base64 text, its wire form."""
        if isinstance(self.value, str) and _existing_file(self.value) is None:
            return self.value
        return base64.b64encode(self.to_bytes()).decode()

    @model_serializer
    def _serialize(self) -> str:
        return self.to_base64()


class Image(EncodedMedia):
    """An image for a multimodal model.

    >>> Image(b"abc").to_base64()
    'YWJj'
    >>> Image("YWJj").to_bytes()
    b'abc'

    Raises:
        ValueError: (as pydantic's ``ValidationError``, a ``ValueError``) for
            a missing file or text that is neither a file nor base64.
    """

    _suffixes: ClassVar[tuple[str, ...]] = _IMAGE_SUFFIXES
    _kind: ClassVar[str] = "image"
