"""Images and audio in prompts: markers in the rendered text, media runs in the tokens.

A message's images and then its audio clips go into its text as one media
marker each, before the message's content and in order (as Ollama prepends
its image tags and llama.cpp's ``llama-mtmd-cli`` prepends its markers); the
chat template then places the message, markers and all. The projector splits the rendered
prompt at the markers into text chunks and media chunks (libmtmd's
``mtmd_tokenize``).

The engine's prompt is one int32 array: text chunks as their token ids, and
each media chunk as a *media run*, ``n_tokens`` copies of one negative id.
The id is derived from the media's content hash and its place among the
prompt's media, so that the prompt-prefix cache compares an image by its
content (a follow-up turn about the same image reuses its KV cells instead of
encoding it again, as llama-server keys image chunks by their hash) and two
neighbouring runs never merge.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from .. import _core
from ..errors import MediaError

Tokens = npt.NDArray[np.int32]


@dataclass(frozen=True)
class MediaPrompt:
    """A tokenized prompt with media: the engine's tokens and the chunks of its media runs."""

    tokens: Tokens
    media: dict[int, _core.MediaChunk]  # position of each media run -> its chunk
    image_count: int
    audio_count: int


def media_run_id(content_id: str, ordinal: int) -> int:
    """The negative id of the ``ordinal``-th media of a prompt whose file hashes to ``content_id``."""
    digest = hashlib.sha256(f"{ordinal}:{content_id}".encode()).digest()
    return -1 - (int.from_bytes(digest[:4], "little") & 0x7FFFFFFE)


def load_media(
    projector: _core.Projector, data: Sequence[bytes], kind: Literal["image", "audio"] = "image"
) -> list[_core.Media]:
    """Decode each file, all of ``kind`` (libmtmd, GIL released); MediaError names the bad one."""
    out = []
    for i, d in enumerate(data):
        try:
            out.append(projector.load_media(d, kind))
        except MediaError as exc:
            raise MediaError(f"{kind} {i}: {exc}" if len(data) > 1 else str(exc)) from exc
    return out


def tokenize(
    projector: _core.Projector,
    text: str,
    media: Sequence[_core.Media],
    *,
    add_special: bool = True,
    parse_special: bool = True,
) -> MediaPrompt:
    """``text`` (with one marker per media) as the engine's tokens with media runs.

    Raises:
        ValueError: markers and media differ in number, or the projector does
            not match the vocabulary (see ``Projector.tokenize``).
        MediaError: libmtmd could not preprocess a media.
    """
    chunks = projector.tokenize(text, media, add_special=add_special, parse_special=parse_special)
    parts: list[Tokens] = []
    runs: dict[int, _core.MediaChunk] = {}
    pos = ordinal = 0
    for c in chunks:
        if c.kind == "text":
            assert c.tokens is not None  # a text chunk always has its ids
            parts.append(c.tokens)
            pos += len(c.tokens)
            continue
        runs[pos] = c
        parts.append(np.full(c.n_tokens, media_run_id(c.id, ordinal), np.int32))
        pos += c.n_tokens
        ordinal += 1
    # Counted by media, not by chunk: libmtmd may split one image into several chunks (tiles).
    images = sum(m.kind == "image" for m in media)
    audios = len(media) - images
    tokens = np.concatenate(parts) if parts else np.empty(0, np.int32)
    return MediaPrompt(tokens.astype(np.int32, copy=False), runs, images, audios)
