"""``Audio``: an audio clip given as a path, raw bytes or base64 text (a llamanative extension).

Ollama's API takes no audio; llamanative takes it beside the images, in a
message's (or a generate request's) ``audio`` list, for models whose
projector has an audio encoder. The input forms are an :class:`Image`'s:

- ``bytes`` (or any bytes-like object): the raw file (WAV, MP3 or FLAC);
- a :class:`pathlib.Path`: a file, which must exist;
- a ``str``: the path of an existing file, or else base64 text. A string that
  ends in an audio extension (``.wav``, ``.mp3``, ``.flac``, ``.ogg``,
  ``.m4a``, ``.opus``, any case) but names no file is an error, not base64.
"""

from __future__ import annotations

from typing import ClassVar

from .images import EncodedMedia

__all__ = ["Audio"]

_AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg", ".m4a", ".opus")


class Audio(EncodedMedia):
    """An audio clip for a model whose projector takes audio.

    >>> Audio(b"RIFF").to_base64()
    'UklGRg=='
    >>> Audio("UklGRg==").to_bytes()
    b'RIFF'

    Raises:
        ValueError: (as pydantic's ``ValidationError``, a ``ValueError``) for
            a missing file or text that is neither a file nor base64.
    """

    _suffixes: ClassVar[tuple[str, ...]] = _AUDIO_SUFFIXES
    _kind: ClassVar[str] = "audio"
