"""Media bytes: ``Projector.load_media`` and ``tokenize``, and the client's image and audio inputs.

An input's first byte is its control byte, the rest its payload:

- bits 0-1, the mode: 0 the payload is the file; 1 the payload is a program
  (``FuzzedDataProvider``) that writes a file (``media_files.py``: PNG,
  JPEG, BMP, GIF, PNM, TGA, HDR, PSD, PIC, WAV, FLAC, MP3, from fields it
  picks, or one of the files the seeds hold) and then edits it: a header
  field of the format (PNG's IHDR width, height, bit depth, colour type and
  interlace, a chunk's length, CRC or type, chunks removed, repeated or
  added, the image data's zlib stream cut or longer; JPEG's SOF size,
  precision, components and sampling factors, its markers (SOF0 to SOF15,
  DHT, DQT, SOS, DRI), restart markers and fill bytes in the entropy data;
  BMP's header size, width, negative and zero heights, bit count,
  compression, palette size and masks; GIF's logical screen and its frames'
  sizes and places; WAV's format, channels, rates, block align, bit depth
  and data size; FLAC's STREAMINFO and frame headers; MP3 frame headers, a
  Xing frame count, an ID3 size), raw byte flips and overwrites, a cut
  anywhere, a splice of two files; 2 and 3 the file of mode 0 or 1 given
  to the client's types instead (``Image``/``Audio`` as bytes, bytearray,
  base64 text, a path string or ``Path``) and through
  ``PromptPipeline.completion``, as ``generate(images=...)`` runs it;
- bit 2: the projector with small limits (4096 pixels, one second of audio)
  instead of the defaults (``MAX_IMAGE_PIXELS``, ``MAX_AUDIO_SECONDS``);
- bits 3-4: ``kind`` (None, ``"image"``, ``"audio"``, None);
- bits 5-6: audio is tokenized when both are 0 (a clip's mel spectrogram
  takes 0.1 s, an image's tokens 1 ms: a quarter of the clips keep the
  harness's speed);
- bit 7, with the payload's length, picks the prompt the media goes into
  (once or twice, with text and special tokens around it or alone).

The projector is the tests' omni pair (``make_test_projector.py --kind
both``: SmolLM2 with SmolVLM's image tokens, a tiny Idefics3 vision encoder
and a tiny Ultravox audio encoder), written once (``models.projector_pair``).

Contract: ``load_media`` gives a ``Media`` or a ``MediaError``/``ValueError``;
a Media is of the kind asked for, is audio exactly when the bytes start as
libmtmd's helper takes audio (RIFF/WAVE, ID3, an MPEG sync word, fLaC), has
the SHA-256 of the bytes as its id, and holds what its size says: an image
positive width and height, width x height within the projector's
``max_image_pixels`` and three bytes a pixel; a clip at least two samples at
the projector's rate, no longer than ``max_audio_seconds``, four bytes a
sample. Tokenizing a prompt with it (once or twice) gives chunks whose media
tokens are positive, one media run per chunk, text ids inside the
vocabulary (or a typed error). A base file left unedited (each is valid)
decodes, but for a Softimage PIC, which ``load_media`` refuses. The client's
forms give back the file's bytes, and its path a ``Prompt`` with the media
counted, or a 400. Nothing aborts, hangs or takes memory past the run's
``-rss_limit_mb``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import struct
import tempfile
import zlib
from pathlib import Path

import atheris
import media_files as mf
from contract import call, check
from models import projector_pair

from llamanative import _core
from llamanative.errors import StatusError
from llamanative.prompting import media as media_lib
from llamanative.prompting.pipeline import PromptPipeline
from llamanative.types import Audio, Image

TARGETS = [
    "llamanative/prompting/media.py",
    "llamanative/types/images.py",
    "llamanative/types/audio.py",
    "llamanative/prompting/pipeline.py",
]
STRICT_PIXELS = 4096
STRICT_SECONDS = 1.0
KINDS = (None, "image", "audio", None)
PROMPTS = ("Describe {m}.", "{m}", "{m}{m} Compare them.", "<|im_start|>user\n{m}\nWhat is it?<|im_end|>\n")

_INTS = [
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    9,
    15,
    16,
    17,
    31,
    32,
    63,
    64,
    65,
    127,
    128,
    129,
    255,
    256,
    1000,
    4095,
    4096,
    4097,
    5792,
    5793,
    8191,
    8192,
    8193,
    16383,
    16384,
    32767,
    32768,
    65535,
    65536,
    1 << 24,
    (1 << 24) + 1,
    2**31 - 1,
    2**31,
    2**32 - 1,
]

# What the inputs came to (reported by the corpus replay of run.py --coverage).
STATS = {
    "inputs": 0,
    "image": 0,
    "audio": 0,
    "refused": 0,
    "tokenized": 0,
    "tokenize refused": 0,
    "client prompt": 0,
    "client 400": 0,
    "client type refused": 0,
}

_model: _core.Model | None = None
_projectors: dict[bool, _core.Projector] = {}
_pipeline: PromptPipeline | None = None
_tmpdir: Path | None = None
BASES: list[bytes] = []
_BASE_SET: set[bytes] = set()


def bases() -> list[bytes]:
    """The files the structured inputs start from (and the raw seeds hold): every writer of ``media_files``
    with a few settings each, all small."""
    out = [
        mf.png(16, 12),
        mf.png(13, 7, bit_depth=1, colour_type=0),
        mf.png(9, 9, bit_depth=2, colour_type=3, palette=4),
        mf.png(9, 9, bit_depth=4, colour_type=3, palette=16, trns=True),
        mf.png(8, 8, colour_type=3, palette=256),
        mf.png(17, 11, bit_depth=16, colour_type=6, interlace=1, idat_parts=3),
        mf.png(5, 5, colour_type=4),
        mf.png(6, 4, bit_depth=16, colour_type=0, trns=True),
        mf.png(7, 3, colour_type=2, trns=True, extra=[(b"gAMA", struct.pack(">I", 45455))]),
        mf.png(3, 9, bit_depth=8, colour_type=6, interlace=1),
        mf.jpeg(33, 17),
        mf.jpeg(16, 16, components=1),
        mf.jpeg(24, 24, sampling=((1, 1), (1, 1), (1, 1)), restart=2),
        mf.jpeg(40, 24, sampling=((2, 1), (1, 1), (1, 1))),
        mf.jpeg(24, 40, sampling=((1, 2), (1, 1), (1, 1))),
        mf.jpeg(20, 20, progressive=True),
        mf.jpeg(16, 16, components=4, adobe=2, jfif=False),
        mf.jpeg(16, 8, components=3, adobe=0, jfif=False, sampling=((1, 1), (1, 1), (1, 1))),
        mf.bmp(7, 5),
        mf.bmp(7, 5, bpp=8),
        mf.bmp(9, 3, bpp=1, header=12),
        mf.bmp(9, 3, bpp=4, colours=5),
        mf.bmp(6, 6, bpp=16),
        mf.bmp(6, 6, bpp=16, compression=3, masks=(0xF800, 0x7E0, 0x1F, 0)),
        mf.bmp(6, 6, bpp=32, header=124, top_down=True, compression=3),
        mf.bmp(6, 6, bpp=32, header=108),
        mf.bmp(5, 4, bpp=24, header=56, top_down=True),
        mf.gif(10, 8),
        mf.gif(10, 8, colour_bits=1, frames=[(0, 0, 4, 4), (2, 2, 8, 6)], transparent=0, disposal=2),
        mf.gif(12, 12, global_table=False, local_table=True, interlace=True),
        mf.gif(6, 6, colour_bits=4, frames=[(1, 1, 3, 3)], disposal=3, version=b"87a"),
        mf.pnm(5, 4),
        mf.pnm(5, 4, channels=1, maxval=1000),
        mf.tga(5, 4),
        mf.tga(40, 2, image_type=10, top_down=True),
        mf.tga(4, 4, image_type=1, bpp=8, colormap=16),
        mf.tga(4, 4, image_type=3, bpp=8),
        mf.tga(3, 3, image_type=2, bpp=16),
        mf.hdr(5, 4),
        mf.hdr(20, 3, rle=True),
        mf.psd(5, 4),
        mf.psd(6, 3, rle=True),
        mf.psd(3, 3, depth=16, channels=4),
        mf.pic(5, 4),
        mf.pic(3, 3, alpha=True),
        mf.wav(1600),
        mf.wav(800, channels=2, bits=8, rate=8000),
        mf.wav(400, fmt=3, bits=32, rate=44100),
        mf.wav(300, fmt=3, bits=64, rate=22050),
        mf.wav(500, fmt=6, bits=8, rate=8000),
        mf.wav(500, fmt=7, bits=8),
        mf.wav(2000, fmt=0x11),
        mf.wav(700, bits=24, extensible=True),
        mf.wav(700, bits=32, channels=2),
        mf.flac(),
        mf.flac(3, channels=2, verbatim=False, bps=24, rate=44100),
        mf.flac(2, bps=8, block_size=256),
        mf.mp3(),
        mf.mp3(5, id3=True, xing=5),
        mf.mp3(4, mono=False, bitrate_index=5, rate_index=1),
    ]
    return out


def setup() -> None:
    global _model, _pipeline, _tmpdir
    _core.set_log_level("CRITICAL")
    logging.getLogger("llamanative.native").addHandler(logging.NullHandler())
    logging.getLogger("llamanative.native").propagate = False
    model_path, projector_path = projector_pair("both")
    _model = _core.Model(str(model_path))
    _projectors[False] = _core.Projector(str(projector_path), _model, n_threads=1)
    _projectors[True] = _core.Projector(
        str(projector_path), _model, n_threads=1, max_image_pixels=STRICT_PIXELS, max_audio_seconds=STRICT_SECONDS
    )
    _pipeline = PromptPipeline(_model, _projectors[False])
    _tmpdir = Path(tempfile.mkdtemp(prefix="fuzz-media-"))
    BASES[:] = bases()
    _BASE_SET.update(BASES)


# -- structured inputs ---------------------------------------------------------------------------------------
def _value(fdp: atheris.FuzzedDataProvider, current: int, bits: int) -> int:
    choice = fdp.ConsumeIntInRange(0, 5)
    if choice == 0:
        v = current + fdp.PickValueInList([-2, -1, 1, 2])
    elif choice == 1:
        v = fdp.PickValueInList([current * 2, current // 2, -current, current << 8])
    elif choice == 2:
        v = fdp.ConsumeInt(8)
    else:
        v = fdp.PickValueInList(_INTS)
    return v & ((1 << bits) - 1)


def _field(fdp: atheris.FuzzedDataProvider, data: bytearray, pos: int, size: int, big: bool) -> None:
    """Set the ``size``-byte integer at ``pos``."""
    if pos < 0 or pos + size > len(data):
        return
    current = int.from_bytes(data[pos : pos + size], "big" if big else "little")
    data[pos : pos + size] = _value(fdp, current, 8 * size).to_bytes(size, "big" if big else "little")


def _edit_png(fdp: atheris.FuzzedDataProvider, data: bytes) -> bytes:
    chunks = mf.png_chunks(data)
    if not chunks:
        return data
    op = fdp.ConsumeIntInRange(0, 9)
    i = fdp.ConsumeIntInRange(0, len(chunks) - 1)
    kind, body = chunks[i]
    if op <= 2:  # an IHDR field
        ihdr = next((j for j, (k, _) in enumerate(chunks) if k == b"IHDR"), None)
        if ihdr is not None:
            b = bytearray(chunks[ihdr][1])
            pos, size = fdp.PickValueInList([(0, 4), (4, 4), (8, 1), (9, 1), (10, 1), (11, 1), (12, 1)])
            _field(fdp, b, pos, size, True)
            chunks[ihdr] = (b"IHDR", bytes(b))
    elif op == 3:
        del chunks[i]
    elif op == 4:
        chunks.insert(fdp.ConsumeIntInRange(0, len(chunks)), chunks[i])
    elif op == 5:  # a new chunk
        new = fdp.PickValueInList([b"PLTE", b"tRNS", b"IDAT", b"IHDR", b"CgBI", b"tEXt", b"ABCD", b"IEND", b"iCCP"])
        chunks.insert(fdp.ConsumeIntInRange(0, len(chunks)), (new, fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 800))))
    elif op == 6 and kind == b"IDAT":  # the zlib stream of all image data again, cut or longer, another level
        try:
            raw = zlib.decompress(b"".join(b for k, b in chunks if k == b"IDAT"))
        except zlib.error:  # an earlier edit broke the stream
            raw = b""
        n = fdp.ConsumeIntInRange(0, len(raw) + 64)
        raw = raw[:n] + bytes(max(0, n - len(raw)))
        z = zlib.compress(raw, fdp.ConsumeIntInRange(0, 9))
        chunks = [c for c in chunks if c[0] != b"IDAT"]
        chunks.insert(min(i, len(chunks)), (b"IDAT", z))
    elif op == 7:  # the type
        chunks[i] = (fdp.ConsumeBytes(4).ljust(4, b"a"), body)
    out = bytearray(mf.png_from_chunks(chunks))
    if op >= 8 and chunks:  # a length or CRC field, or the first byte of a body (IDAT's: the zlib header)
        i = min(i, len(chunks) - 1)
        at = len(mf.PNG_SIGNATURE) + sum(12 + len(b) for _, b in chunks[:i])
        n = len(chunks[i][1])
        pos, size = fdp.PickValueInList([(at, 4), (at + 8 + n, 4), (at + 8, 1), (at + 9, 1)])
        _field(fdp, out, pos, size, True)
    return bytes(out)


_SOF_MARKERS = [0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF]


def _edit_jpeg(fdp: atheris.FuzzedDataProvider, data: bytes) -> bytes:
    segs = mf.jpeg_segments(data)
    if not segs:
        return data
    op = fdp.ConsumeIntInRange(0, 9)
    i = fdp.ConsumeIntInRange(0, len(segs) - 1)
    marker, body = segs[i]
    sof = next((j for j, (m, _) in enumerate(segs) if m in _SOF_MARKERS), None)
    if op <= 2 and sof is not None:  # a SOF field: precision, height, width, components, a component's fields
        b = bytearray(segs[sof][1])
        pos, size = fdp.PickValueInList([(0, 1), (1, 2), (3, 2), (5, 1), (6, 1), (7, 1), (8, 1), (10, 1), (13, 1)])
        _field(fdp, b, pos, size, True)
        segs[sof] = (segs[sof][0], bytes(b))
    elif op == 3 and sof is not None:  # another SOF type (extended, progressive, lossless, arithmetic)
        segs[sof] = (fdp.PickValueInList(_SOF_MARKERS), segs[sof][1])
    elif op == 4 and marker != 0:  # a field of any segment (DHT counts, DQT precision, SOS selectors, DRI)
        b = bytearray(body)
        if b:
            _field(fdp, b, fdp.ConsumeIntInRange(0, len(b) - 1), 1, True)
        segs[i] = (marker, bytes(b))
    elif op == 5 and marker != 0:
        del segs[i]
    elif op == 6 and marker != 0:
        segs.insert(fdp.ConsumeIntInRange(0, len(segs) - 1), segs[i])
    elif op == 7:  # a new segment before the scan
        new = fdp.PickValueInList([0xDD, 0xDB, 0xC4, 0xEE, 0xE0, 0xFE, *_SOF_MARKERS[:3]])
        segs.insert(fdp.ConsumeIntInRange(0, len(segs) - 1), (new, fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 80))))
    elif op >= 8:  # the entropy data: a restart or other marker, fill bytes, a cut
        entropy = bytearray(segs[-1][1])
        if entropy:
            pos = fdp.ConsumeIntInRange(0, len(entropy))
            what = fdp.PickValueInList([b"\xff\xd0", b"\xff\xd7", b"\xff\xff\xff", b"\xff\xd9", b"\xff\xda", b""])
            entropy[pos:pos] = what
            if not what:
                del entropy[pos:]
        segs[-1] = (0, bytes(entropy))
    return mf.jpeg_from_segments(segs)


def _edit_gif(fdp: atheris.FuzzedDataProvider, data: bytes) -> bytes:
    out = bytearray(data)
    frames = []  # positions of image descriptors
    pos = 13 + (3 * (2 << (data[10] & 7)) if len(data) > 10 and data[10] & 0x80 else 0)
    while pos < len(data) and len(frames) < 8:
        if data[pos] == 0x21 and pos + 2 < len(data):  # an extension: its sub-blocks
            pos += 2
            while pos < len(data) and data[pos]:
                pos += data[pos] + 1
            pos += 1
        elif data[pos] == 0x2C and pos + 10 < len(data):
            frames.append(pos)
            pos += 10 + (3 * (2 << (data[pos + 9] & 7)) if data[pos + 9] & 0x80 else 0)
            pos += 1
            while pos < len(data) and data[pos]:
                pos += data[pos] + 1
            pos += 1
        else:
            break
    if frames and fdp.ConsumeBool():
        at = fdp.PickValueInList(frames)
        # left, top, width, height, flags, the LZW code size, the first sub-block's length
        off, size = fdp.PickValueInList([(1, 2), (3, 2), (5, 2), (7, 2), (9, 1), (10, 1), (11, 1)])
        _field(fdp, out, at + off, size, False)
    else:
        off, size = fdp.PickValueInList([(3, 3), (6, 2), (8, 2), (10, 1), (11, 1)])  # version, screen, flags
        _field(fdp, out, off, size, False)
    return bytes(out)


def _edit_fixed(fdp: atheris.FuzzedDataProvider, data: bytes, fields: list[tuple[int, int]], big: bool) -> bytes:
    out = bytearray(data)
    pos, size = fdp.PickValueInList(fields)
    _field(fdp, out, pos, size, big)
    return bytes(out)


_BMP_FIELDS = [
    (2, 4),
    (10, 4),
    (14, 4),
    (18, 4),
    (22, 4),
    (18, 2),
    (20, 2),
    (22, 2),
    (24, 2),
    (26, 2),
    (28, 2),
    (30, 4),
    (34, 4),
    (46, 4),
    (54, 4),
    (58, 4),
    (62, 4),
    (66, 4),
]
_TGA_FIELDS = [(0, 1), (1, 1), (2, 1), (3, 2), (5, 2), (7, 1), (12, 2), (14, 2), (16, 1), (17, 1)]
_PSD_FIELDS = [(4, 2), (12, 2), (14, 4), (18, 4), (22, 2), (24, 2), (26, 4), (30, 4), (34, 4), (38, 2), (40, 2)]
_PIC_FIELDS = [(92, 2), (94, 2), (100, 2), (104, 1), (105, 1), (106, 1), (107, 1), (108, 1), (109, 1), (111, 1)]
_FLAC_FIELDS = [(4, 1), (5, 3), (8, 2), (10, 2), (12, 3), (15, 3), (18, 1), (19, 1), (20, 1), (21, 1), (22, 4)]


def _edit_wav(fdp: atheris.FuzzedDataProvider, data: bytes) -> bytes:
    out = bytearray(data)
    fields = [(4, 4), (16, 4), (20, 2), (22, 2), (24, 4), (28, 4), (32, 2), (34, 2), (36, 2), (38, 2), (40, 4), (44, 2)]
    d = data.find(b"data", 12)
    if d > 0:
        fields.append((d + 4, 4))
    pos, size = fdp.PickValueInList(fields)
    _field(fdp, out, pos, size, False)
    return bytes(out)


def _edit_frames(fdp: atheris.FuzzedDataProvider, data: bytes, sync: bytes, fields: list[tuple[int, int]]) -> bytes:
    """A field of one of the frames that start with ``sync`` (FLAC's, MP3's), or of the header."""
    starts = [m.start() for m in re.finditer(re.escape(sync), data)][:16]
    out = bytearray(data)
    if starts and fdp.ConsumeBool():
        at = fdp.PickValueInList(starts)
        _field(fdp, out, at + fdp.ConsumeIntInRange(1, 5), 1, True)
    else:
        pos, size = fdp.PickValueInList(fields)
        _field(fdp, out, pos, size, True)
    return bytes(out)


def _edit_format(fdp: atheris.FuzzedDataProvider, data: bytes) -> bytes:
    """One edit of a header field, by the format the bytes start as."""
    if data.startswith(mf.PNG_SIGNATURE):
        return _edit_png(fdp, data)
    if data.startswith(b"\xff\xd8"):
        return _edit_jpeg(fdp, data)
    if data.startswith(b"GIF"):
        return _edit_gif(fdp, data)
    if data.startswith(b"BM"):
        return _edit_fixed(fdp, data, _BMP_FIELDS, False)
    if data.startswith(b"8BPS"):
        return _edit_fixed(fdp, data, _PSD_FIELDS, True)
    if data.startswith(b"\x53\x80\xf6\x34"):
        return _edit_fixed(fdp, data, _PIC_FIELDS, True)
    if data.startswith(b"RIFF"):
        return _edit_wav(fdp, data)
    if data.startswith(b"fLaC"):
        return _edit_frames(fdp, data, b"\xff\xf8", _FLAC_FIELDS)
    if data.startswith((b"ID3", b"\xff\xfb")):
        return _edit_frames(fdp, data, b"\xff\xfb", [(3, 1), (6, 4), (2, 1), (36, 4)])
    if data.startswith((b"P5", b"P6", b"#?RADIANCE")):  # the numbers of a text header
        head, body = data[:64], data[64:]
        nums = list(re.finditer(rb"\d+", head))
        if nums:
            m = fdp.PickValueInList(nums)
            v = str(_value(fdp, int(m.group()), 32) - (fdp.ConsumeIntInRange(0, 1) << 31)).encode()
            head = head[: m.start()] + v + head[m.end() :]
        return head + body
    return _edit_fixed(fdp, data, _TGA_FIELDS, False)  # TGA has no magic: the rest is taken as one


def _edit_raw(fdp: atheris.FuzzedDataProvider, data: bytes) -> bytes:
    out = bytearray(data)
    op = fdp.ConsumeIntInRange(0, 6)
    pos = fdp.ConsumeIntInRange(0, max(len(out) - 1, 0))
    if op == 0 and out:
        out[pos] ^= 1 << fdp.ConsumeIntInRange(0, 7)
    elif op == 1:
        patch = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 8))
        out[pos : pos + len(patch)] = patch
    elif op == 2:
        size = fdp.PickValueInList([2, 4])
        _field(fdp, out, pos, size, fdp.ConsumeBool())
    elif op == 3:
        out[pos:pos] = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 64))
    elif op == 4:
        del out[pos : pos + fdp.ConsumeIntInRange(1, 64)]
    elif op == 5:  # a cut
        del out[pos:]
    else:  # a splice: the start of this file, the rest of another
        other = fdp.PickValueInList(BASES)
        out = out[:pos] + other[fdp.ConsumeIntInRange(0, len(other)) :]
    return bytes(out)


_SIZES = [1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 100, 127, 128, 129, 200, 300]


def _written(fdp: atheris.FuzzedDataProvider) -> bytes:
    """A new small file from fields the input picks (most combinations valid, some not)."""
    w, h = fdp.PickValueInList(_SIZES), fdp.PickValueInList(_SIZES)
    if w * h > 20000:
        h = max(1, 20000 // w)
    seed = fdp.ConsumeIntInRange(0, 255)
    kind = fdp.ConsumeIntInRange(0, 11)
    if kind == 0:
        ct = fdp.PickValueInList([0, 2, 3, 4, 6])
        depth = fdp.PickValueInList({0: [1, 2, 4, 8, 16], 3: [1, 2, 4, 8]}.get(ct, [8, 16]))
        return mf.png(
            w,
            h,
            bit_depth=depth,
            colour_type=ct,
            interlace=fdp.ConsumeIntInRange(0, 1),
            palette=fdp.PickValueInList([0, 1, 2, 16, 256, 257]) if ct == 3 else 0,
            trns=fdp.ConsumeBool(),
            seed=seed,
            idat_parts=fdp.ConsumeIntInRange(1, 4),
        )
    if kind == 1:
        comps = fdp.PickValueInList([1, 3, 3, 4])
        factors = [(1, 1), (2, 1), (1, 2), (2, 2), (3, 1), (4, 4), (1, 4)]
        sampling = tuple(fdp.PickValueInList(factors) for _ in range(comps))
        return mf.jpeg(
            w,
            h,
            components=comps,
            sampling=sampling,
            progressive=fdp.ConsumeBool(),
            restart=fdp.PickValueInList([0, 0, 1, 3]),
            adobe=fdp.PickValueInList([None, 0, 1, 2]),
            jfif=fdp.ConsumeBool(),
            seed=seed,
            ac=fdp.ConsumeIntInRange(0, 8),
        )
    if kind == 2:
        bpp = fdp.PickValueInList([1, 4, 8, 16, 24, 32])
        return mf.bmp(
            w,
            h,
            bpp=bpp,
            header=fdp.PickValueInList([12, 40, 56, 108, 124]),
            top_down=fdp.ConsumeBool(),
            compression=fdp.PickValueInList([0, 3]) if bpp in (16, 32) else 0,
            colours=fdp.PickValueInList([None, 0, 1, 2]) if bpp <= 8 else None,
            seed=seed,
        )
    if kind == 3:
        frames = [
            (
                fdp.ConsumeIntInRange(0, w),
                fdp.ConsumeIntInRange(0, h),
                fdp.ConsumeIntInRange(0, w),
                fdp.ConsumeIntInRange(0, h),
            )
            for _ in range(fdp.ConsumeIntInRange(1, 3))
        ]
        return mf.gif(
            w,
            h,
            frames=frames,
            colour_bits=fdp.ConsumeIntInRange(1, 8),
            global_table=fdp.ConsumeBool(),
            local_table=fdp.ConsumeBool(),
            interlace=fdp.ConsumeBool(),
            transparent=fdp.PickValueInList([None, 0, 1]),
            disposal=fdp.ConsumeIntInRange(0, 3),
            seed=seed,
        )
    if kind == 4:
        return mf.pnm(
            w, h, channels=fdp.PickValueInList([1, 3]), maxval=fdp.PickValueInList([1, 255, 256, 65535]), seed=seed
        )
    if kind == 5:
        it = fdp.PickValueInList([1, 2, 3, 9, 10, 11])
        return mf.tga(
            w,
            h,
            image_type=it,
            bpp=fdp.PickValueInList([8, 15, 16, 24, 32]),
            colormap=fdp.PickValueInList([2, 256]) if it in (1, 9) else 0,
            top_down=fdp.ConsumeBool(),
            seed=seed,
        )
    if kind == 6:
        return mf.hdr(w, h, rle=fdp.ConsumeBool(), seed=seed)
    if kind == 7:
        return mf.psd(
            w,
            h,
            channels=fdp.ConsumeIntInRange(1, 5),
            depth=fdp.PickValueInList([8, 16]),
            rle=fdp.ConsumeBool(),
            seed=seed,
        )
    if kind == 8:
        return mf.pic(w, h, alpha=fdp.ConsumeBool(), seed=seed)
    if kind == 9:
        fmt = fdp.PickValueInList([1, 1, 3, 6, 7, 0x11])
        bits = {3: [32, 64], 6: [8], 7: [8], 0x11: [4]}.get(fmt, [8, 16, 24, 32])
        return mf.wav(
            fdp.PickValueInList([0, 1, 2, 3, 100, 1600, 8000]),
            rate=fdp.PickValueInList([1, 8000, 11025, 16000, 44100, 48000, 96000, 384000]),
            channels=fdp.PickValueInList([1, 2, 6]),
            bits=fdp.PickValueInList(bits),
            fmt=fmt,
            extensible=fdp.ConsumeBool(),
            seed=seed,
        )
    if kind == 10:
        return mf.flac(
            fdp.ConsumeIntInRange(0, 4),
            block_size=fdp.PickValueInList([16, 192, 1024, 4608]),
            rate=fdp.PickValueInList([1, 8000, 16000, 44100, 655350]),
            channels=fdp.ConsumeIntInRange(1, 8),
            bps=fdp.PickValueInList([8, 12, 16, 20, 24]),
            verbatim=fdp.ConsumeBool(),
            seed=seed,
        )
    return mf.mp3(
        fdp.ConsumeIntInRange(0, 6),
        bitrate_index=fdp.ConsumeIntInRange(1, 14),
        rate_index=fdp.ConsumeIntInRange(0, 2),
        mono=fdp.ConsumeBool(),
        id3=fdp.ConsumeBool(),
        xing=fdp.PickValueInList([None, 0, 1, 5, 2**32 - 1]),
    )


def structured(payload: bytes) -> bytes:
    fdp = atheris.FuzzedDataProvider(payload)
    data = _written(fdp) if fdp.ConsumeIntInRange(0, 2) == 0 else fdp.PickValueInList(BASES)
    for _ in range(fdp.ConsumeIntInRange(0, 4)):
        data = _edit_format(fdp, data) if fdp.ConsumeIntInRange(0, 2) else _edit_raw(fdp, data)
    return data


def is_pic(data: bytes) -> bool:
    """stb_image's test for a Softimage PIC file, which ``load_media`` refuses (stb_image crashes on a bad one)."""
    return data[:4] == b"\x53\x80\xf6\x34" and data[88:92] == b"PICT"


def is_base(data: bytes) -> bool:
    """Whether ``data`` is one of the base files, unedited: a valid file, which must decode (but PIC)."""
    return data in _BASE_SET and not is_pic(data)


# -- the checks ----------------------------------------------------------------------------------------------
def looks_audio(data: bytes) -> bool:
    """libmtmd's helper's audio test (``is_audio_file``): what it decodes as audio rather than an image."""
    if len(data) < 12:
        return False
    return (
        (data[:4] == b"RIFF" and data[8:12] == b"WAVE")
        or data[:3] == b"ID3"
        or (data[0] == 0xFF and data[1] & 0xE0 == 0xE0)
        or data[:4] == b"fLaC"
    )


def check_media(p: _core.Projector, data: bytes, m: _core.Media, kind: str | None) -> None:
    check(m.kind in ("image", "audio"), f"media kind {m.kind!r}")
    check(kind is None or m.kind == kind, f"asked for {kind}, got {m.kind}")
    check((m.kind == "audio") == looks_audio(data), f"a {m.kind} from bytes starting {data[:12]!r}")
    check(m.id == hashlib.sha256(data).hexdigest(), "the media id is not the SHA-256 of the bytes")
    if m.kind == "image":
        check(m.width > 0 and m.height > 0, f"an image of {m.width}x{m.height}")
        check(
            m.width * m.height <= p.max_image_pixels,
            f"an image of {m.width}x{m.height} pixels decoded past max_image_pixels={p.max_image_pixels}",
        )
        check(m.nbytes == 3 * m.width * m.height, f"{m.nbytes} bytes for {m.width}x{m.height} RGB")
        check(m.sample_rate == 0 and m.duration == 0.0, "an image with a sample rate")
    else:
        check(m.width >= 2 and m.height == 1, f"a clip of {m.width}x{m.height} samples")
        check(m.sample_rate == p.audio_sample_rate, f"sample rate {m.sample_rate}")
        check(m.duration <= p.max_audio_seconds, f"a clip of {m.duration} s past {p.max_audio_seconds} s")
        check(m.nbytes == 4 * m.width, f"{m.nbytes} bytes for {m.width} float samples")


def check_tokens(p: _core.Projector, m: _core.Media, template: str) -> None:
    """The prompt ``template`` with ``m`` at each ``{m}``, as the engine's tokens (``media.tokenize``)."""
    media = [m] * template.count("{m}")
    mp, err = call(media_lib.tokenize, p, template.replace("{m}", p.marker), media)
    if mp is None:
        STATS["tokenize refused"] += 1
        return
    STATS["tokenized"] += 1
    check(
        (mp.image_count, mp.audio_count) == ((len(media), 0) if m.kind == "image" else (0, len(media))),
        f"{mp.image_count} images and {mp.audio_count} clips counted for {len(media)} {m.kind}",
    )
    check(len(mp.media) >= len(media), f"{len(mp.media)} media chunks for {len(media)} media")
    text = mp.tokens.copy()
    for pos, c in mp.media.items():
        check(c.kind == m.kind and c.id == m.id, f"a {c.kind} chunk {c.id[:12]} for the {m.kind} {m.id[:12]}")
        check(c.n_tokens > 0 and c.n_pos == c.n_tokens, f"a media chunk of {c.n_tokens} tokens, {c.n_pos} positions")
        run = mp.tokens[pos : pos + c.n_tokens]
        check(len(run) == c.n_tokens and (run < 0).all() and (run == run[0]).all(), "a media run is not one id")
        text[pos : pos + c.n_tokens] = 0
    check(((text >= 0) & (text < p.model.vocab.n_vocab)).all(), "text ids outside the vocabulary")


def direct(p: _core.Projector, data: bytes, kind: str | None, tokenize_audio: bool, template: str) -> None:
    m, err = call(p.load_media, data, kind)
    if m is None:
        STATS["refused"] += 1
        # a valid file of the kind asked for (and within the strict limits: all bases are) must decode
        expected = kind is None or kind == ("audio" if looks_audio(data) else "image")
        check(not (expected and is_base(data)), f"a valid file was refused: {err!r}")
        return
    STATS[m.kind] += 1
    check_media(p, data, m, kind)
    if m.kind == "image" or tokenize_audio:
        check_tokens(p, m, template)


def client(fdp: atheris.FuzzedDataProvider, data: bytes, kind: str | None) -> None:
    """``data`` in one of the client's input forms, through ``PromptPipeline.completion``."""
    assert _pipeline is not None and _tmpdir is not None
    if kind is None:
        kind = "audio" if looks_audio(data) else "image"
    cls = Audio if kind == "audio" else Image
    form = fdp.ConsumeIntInRange(0, 7)
    path = _tmpdir / f"media{fdp.PickValueInList(['', '.png', '.wav', '.jpg'])}"
    expect: bytes | None = data
    if form == 0:
        value: object = data
    elif form == 1:
        value = bytearray(data)
    elif form == 2:
        value = base64.b64encode(data).decode()
    elif form == 3:  # base64 with what a lenient decoder skips, or cut, or URL-safe
        text = base64.b64encode(data).decode()
        value = fdp.PickValueInList(
            [
                text + "\n",
                " " + text,
                text.rstrip("="),
                base64.urlsafe_b64encode(data).decode(),
                text[: len(text) // 2],
                f"data:image/png;base64,{text}",
            ]
        )
        expect = None
    elif form in (4, 5):
        path.write_bytes(data)
        value = str(path) if form == 4 else path
    elif form == 6:  # a missing file
        value = str(_tmpdir / f"missing{fdp.PickValueInList(['.png', '.JPG', '.wav', '.Flac', '.txt', ''])}")
        expect = None
    else:  # the bytes as text
        value = data.decode("utf-8", "surrogateescape")
        expect = None
    item, err = call(cls, value)
    if item is None:
        STATS["client type refused"] += 1
        check(form in (3, 6, 7) or not data, f"{cls.__name__} refused a {type(value).__name__}: {err!r}")
        return
    got, err = call(item.to_bytes, allow=(OSError,))
    if expect is not None:
        check(got == expect, f"{cls.__name__}({type(value).__name__}).to_bytes() is not the file")
    check(isinstance(item.to_base64(), str), "to_base64")
    media = {"images": [item]} if kind == "image" else {"audio": [item]}
    raw = fdp.ConsumeBool()
    prompt, err = call(
        _pipeline.completion,
        "Describe it.",
        raw=raw,
        template=None,
        system=None,
        history=[],
        context=None,
        schema=None,
        think=None,
        **media,
    )
    if prompt is None:
        STATS["client 400"] += 1
        check(isinstance(err, StatusError) and err.status_code == 400, f"not a 400: {err!r}")
        given = kind == ("audio" if looks_audio(data) else "image")
        check(not (given and expect is not None and is_base(data)), f"a valid file was refused: {err!r}")
        return
    STATS["client prompt"] += 1
    check((prompt.image_count, prompt.audio_count) == ((1, 0) if kind == "image" else (0, 1)), "media miscounted")
    check(bool(prompt.media), "a prompt with media has no media runs")
    n_vocab = _pipeline.n_vocab
    inside = prompt.tokens.copy()
    for pos, c in prompt.media.items():
        check(c.n_tokens > 0 and (prompt.tokens[pos : pos + c.n_tokens] < 0).all(), "a media run without its ids")
        inside[pos : pos + c.n_tokens] = 0
    check(((inside >= 0) & (inside < n_vocab)).all(), "text ids outside the vocabulary")


def test_one_input(data: bytes) -> None:
    if not data:
        return
    control, payload = data[0], data[1:]
    mode = control & 3
    strict = bool(control & 4)
    kind = KINDS[(control >> 3) & 3]
    tokenize_audio = (control >> 5) & 3 == 0
    template = PROMPTS[(control >> 7) | (len(payload) & 2)]
    STATS["inputs"] += 1
    if mode in (1, 3):
        fdp = atheris.FuzzedDataProvider(payload)
        file = structured(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, len(payload))))
        rest = fdp
    else:
        file, rest = payload, atheris.FuzzedDataProvider(hashlib.sha256(payload).digest())
    if mode < 2:
        direct(_projectors[strict], file, kind, tokenize_audio, template)
    else:
        client(rest, file, kind)


SEEDS = Path(__file__).resolve().parents[1] / "corpus" / "media"


def write_seeds(folder: Path = SEEDS) -> int:
    """Write the first seeds (``cd fuzz && python -c 'from harnesses.media import write_seeds; write_seeds()'``):
    every base file raw (once for the default projector, once for the strict one with a ``kind``), each
    through the client's path, and a few structured inputs; named by their SHA-1, as libFuzzer names inputs.
    ``run.py media --update-seeds`` then keeps those of them and of a run's corpus that hold its coverage."""
    folder.mkdir(parents=True, exist_ok=True)
    inputs = []
    for i, b in enumerate(bases()):
        inputs += [bytes([0]) + b, bytes([4 | (i % 3) << 3]) + b, bytes([2]) + b]
    inputs += [bytes([1]) + bytes([i, i * 7 % 256, 3, 1, i, 9, 2, 200, 5, 77, 1, 4]) for i in range(32)]
    for data in inputs:
        (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)
    return len(inputs)
