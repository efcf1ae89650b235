"""Image paths in a prompt, taken as ``ollama run`` takes them.

Two places name images:

- a prompt argument that is a path ending in ``.jpg``, ``.jpeg``, ``.png`` or
  ``.webp`` (any case), as in ``llamanative run MODEL "What is in this
  image?" ./photo.jpg``: the whole argument is the path (relative or
  absolute; spaces need no escaping there, the shell already split the
  words);
- a path inside the message text, as Ollama's chat finds them: it starts
  the text or follows a space, a quote, ``(``, ``[`` or ``,``; it begins
  with ``/``, ``./``, ``../`` or ``~/`` (on Windows also with backslashes,
  after a drive letter or not); it may hold escaped (``\\ ``) or plain
  spaces, or be quoted (``'./my photo.jpg'``); it ends in one of those
  extensions. A path is removed from the text and its file becomes one of
  the message's images.

A path that looks like an image but names no file is an error
(:class:`~llamanative.cli._common.CliError`), not text sent to the model:
Ollama skips such a path silently, which leaves a typo unnoticed. A word
without the leading ``./`` or ``/`` inside the text (``describe
photo.jpg``) stays text.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import TextIO

from ._common import CliError

__all__ = ["IMAGE_SUFFIXES", "extract_images", "file_argument", "read_images", "starts_with_image_path", "take_images"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
"Extensions that make a word an image path (compared in lower case), those of ``ollama run``."

# Where a path may begin: the text's start, or after a space, a quote, an opening bracket or a comma
# (so that "1/2" or a URL's "//host/x.png" is not taken as a path).
_BOUNDARY = r"(?<![^\s'\"(\[,])"
# A drive letter and backslashes only on Windows: elsewhere "\.png" in a regex is not a path.
_START = r"(?:[a-zA-Z]:)?(?:\.{0,2}[/\\]|~[/\\])" if os.name == "nt" else r"(?:\.\./|\./|~/|/)"
# Ollama's pattern: the shortest run of non-space characters, backslashes and spaces up to an image
# extension at a word's end. It over-matches ("/a and ./b.png"): a match that names no file is retried
# from each later place where a path may begin.
_PATH = re.compile(_BOUNDARY + _START + r"[\S\\ ]*?\.(?i:jpg|jpeg|png|webp)\b")
_CANDIDATE_START = re.compile(_BOUNDARY + _START)

# The shell escapes a terminal pastes or drags in (Ollama's normalizeFilePath): "\ " is a space, ...
_UNESCAPE = re.compile(r"\\([ ()\[\]{}$&;'\\*?~])")


def _unescape(text: str) -> str:
    return _UNESCAPE.sub(r"\1", text.replace("'\\''", "'"))


def _file(text: str) -> Path | None:
    """The existing file ``text`` names (escapes undone, ``~`` expanded), or ``None``."""
    try:
        path = Path(_unescape(text)).expanduser()
        return path if path.is_file() else None
    except (OSError, ValueError):  # a name too long, an embedded NUL
        return None


def _missing(text: str) -> CliError:
    path = Path(_unescape(text)).expanduser()
    if path.is_dir():
        return CliError(f"not an image file: {text} is a directory")
    return CliError(f"image file not found: {text}")


def take_images(words: list[str]) -> tuple[str, list[Path]]:
    """The prompt of ``run``'s words, without its image paths: ``(the words joined with spaces, image files)``.

    A word is a path when it ends in an image extension and either names a
    file or holds no whitespace (a sentence ending in ``photo.jpg`` is
    text, and a URL too); other words are searched for paths as
    :func:`extract_images` does. The images keep the order of the words.

    Raises:
        CliError: a path, as a word or in one, names no file.
    """
    texts: list[str] = []
    images: list[Path] = []
    for word in words:
        name = word.strip()
        if name.lower().endswith(IMAGE_SUFFIXES) and "://" not in name:
            if (path := _file(name)) is not None:
                images.append(path)
                continue
            if not any(c.isspace() for c in name):
                raise _missing(name)
        text, found = extract_images(word)
        images += found
        if text or not found:
            texts.append(text)
    return " ".join(texts), images


def extract_images(text: str) -> tuple[str, list[Path]]:
    """Take the image paths out of a message's text: ``(the text without them, image files)``.

    A text with images is returned stripped (the paths leave spaces); one
    without is returned as it is.

    Raises:
        CliError: a path in the text that ends in an image extension names no file.
    """
    images: list[Path] = []
    pieces: list[str] = []
    pos = 0
    for match in _PATH.finditer(text):
        start, end, path = _resolve(text, match.start(), match.end())
        if start > 0 and text[start - 1] == " " and text[end : end + 1] == " ":
            end += 1  # "compare ./a.png and ./b.png" -> "compare and", one space left
        pieces.append(text[pos:start])
        images.append(path)
        pos = end
    if not images:
        return text, images
    pieces.append(text[pos:])
    return "".join(pieces).strip(), images


def starts_with_image_path(line: str) -> bool:
    """Whether an input line that starts with ``/`` is a message beginning with an image path, not a command."""
    match = _PATH.match(line)
    if match is None:
        return False
    try:
        _resolve(line, match.start(), match.end())
    except CliError:
        return False
    return True


def _resolve(text: str, start: int, end: int) -> tuple[int, int, Path]:
    """The file the match ``text[start:end]`` names, with the span to cut (quotes around it included).

    The match is tried whole, then from each later place where a path may
    begin (the first match of "a /b and ./c.png" is "/b and ./c.png").
    """
    starts = [start] + [m.start() for m in _CANDIDATE_START.finditer(text, start + 1, end)]
    for s in starts:
        if (path := _file(text[s:end])) is not None:
            return (*_with_quotes(text, s, end), path)
    raise _missing(text[starts[-1] : end])


def _with_quotes(text: str, start: int, end: int) -> tuple[int, int]:
    """Widen the span over the quotes that enclose it (``'./my photo.jpg'``)."""
    if start > 0 and end < len(text) and text[start - 1] in "'\"" and text[end] == text[start - 1]:
        return start - 1, end + 1
    return start, end


def file_argument(text: str) -> Path:
    """The file a typed path argument names (``/image PATH``): quotes around it and shell escapes undone.

    Any extension is taken (the model's image decoder judges the content).

    Raises:
        CliError: it names no file.
    """
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    path = _file(text)
    if path is None:
        raise _missing(text)
    return path


def read_images(paths: list[Path], err: TextIO | None = None) -> list[bytes]:
    """Read the image files, saying ``Added image 'PATH'`` for each on ``err`` (stderr) as ``ollama run`` does.

    Raises:
        OSError: a file cannot be read (no permission, ...).
    """
    err = err or sys.stderr
    data = []
    for path in paths:
        data.append(path.read_bytes())
        print(f"Added image '{path}'", file=err)
    return data
