"""Small image and audio files written from their fields: what the media harness starts from and edits.

Each writer takes the fields a decoder reads (sizes, bit depths, colour
types, sampling factors, sample rates, counts) and writes a file that
stb_image or miniaudio decodes, with pixel or sample values from a seed
(SHAKE-256, so the bytes depend on the arguments only). The writers do not
check their arguments: a header that declares what its data does not hold
is what the harness wants too. Helpers split a PNG into its chunks and a
JPEG into its segments, so that a field can be changed and the file written
again with its checksums (PNG's CRCs) right or wrong.

Images: PNG (every colour type and bit depth, Adam7, PLTE/tRNS), baseline
and progressive JPEG (grey, YCbCr with any sampling factors, CMYK with an
Adobe segment, restart intervals), BMP (core, info, V4/V5 headers, 1 to 32
bits, bit fields, top-down), GIF (global and local colour tables, frames,
interlace, transparency), and stb_image's other formats: PNM, TGA, HDR,
PSD, PIC. Audio: WAV (PCM 8 to 32 bits, float, A-law, mu-law, IMA ADPCM,
WAVE_FORMAT_EXTENSIBLE), FLAC (constant and verbatim subframes, with their
CRCs) and MP3 (silent MPEG frames, an ID3v2 tag, a Xing header).
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterable


def noise(seed: object, n: int) -> bytes:
    """``n`` bytes that depend only on ``seed``."""
    return hashlib.shake_256(repr(seed).encode()).digest(n) if n > 0 else b""


# -- PNG -----------------------------------------------------------------------------------------------------
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
# Adam7 passes: (x start, y start, x step, y step)
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def png_chunk(kind: bytes, body: bytes, crc: int | None = None) -> bytes:
    """One chunk: length, type, body, CRC (the right one unless ``crc`` is given)."""
    if crc is None:
        crc = zlib.crc32(kind + body)
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc & 0xFFFFFFFF)


def png_raw_size(width: int, height: int, bit_depth: int, colour_type: int, interlace: int) -> int:
    """Bytes of filtered scanlines the image data must inflate to."""
    bits = bit_depth * _PNG_CHANNELS.get(colour_type, 1)
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    total = 0
    for x0, y0, dx, dy in passes:
        w = (width - x0 + dx - 1) // dx if width > x0 else 0
        h = (height - y0 + dy - 1) // dy if height > y0 else 0
        if w and h:
            total += h * (1 + (w * bits + 7) // 8)
    return total


def png(
    width: int,
    height: int,
    *,
    bit_depth: int = 8,
    colour_type: int = 2,
    interlace: int = 0,
    palette: int = 0,
    trns: bool = False,
    seed: object = 0,
    idat_parts: int = 1,
    extra: Iterable[tuple[bytes, bytes]] = (),
) -> bytes:
    """A PNG of random scanlines (each row with filter type ``row % 5``); ``palette`` entries in a PLTE chunk
    (colour type 3 needs one), ``trns`` a tRNS chunk, ``extra`` more chunks before the image data."""
    rows = bytearray()
    bits = bit_depth * _PNG_CHANNELS.get(colour_type, 1)
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    pixels = noise(("png", seed), png_raw_size(width, height, bit_depth, colour_type, interlace))
    pos = row = 0
    for x0, y0, dx, dy in passes:
        w = (width - x0 + dx - 1) // dx if width > x0 else 0
        h = (height - y0 + dy - 1) // dy if height > y0 else 0
        if not (w and h):
            continue
        n = (w * bits + 7) // 8
        for _ in range(h):
            rows.append(row % 5)
            rows += pixels[pos : pos + n]
            pos += n + 1
            row += 1
    data = zlib.compress(bytes(rows), 6)
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, interlace)
    chunks = [(b"IHDR", ihdr), *extra]
    if palette:
        chunks.append((b"PLTE", noise(("plte", seed), 3 * palette)))
    if trns:
        if colour_type == 3:
            chunks.append((b"tRNS", noise(("trns", seed), max(palette // 2, 1))))
        elif colour_type == 0:
            chunks.append((b"tRNS", struct.pack(">H", 1)))
        else:
            chunks.append((b"tRNS", struct.pack(">HHH", 1, 2, 3)))
    step = max(1, -(-len(data) // max(idat_parts, 1)))
    chunks += [(b"IDAT", data[i : i + step]) for i in range(0, len(data), step)] or [(b"IDAT", b"")]
    chunks.append((b"IEND", b""))
    return PNG_SIGNATURE + b"".join(png_chunk(k, b) for k, b in chunks)


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]] | None:
    """The (type, body) chunks of a well-formed PNG, or None."""
    if not data.startswith(PNG_SIGNATURE):
        return None
    out, pos = [], len(PNG_SIGNATURE)
    while pos + 12 <= len(data):
        (n,) = struct.unpack_from(">I", data, pos)
        if pos + 12 + n > len(data):
            return None
        out.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]))
        pos += 12 + n
    return out if pos == len(data) else None


def png_from_chunks(chunks: Iterable[tuple[bytes, bytes]]) -> bytes:
    return PNG_SIGNATURE + b"".join(png_chunk(k, b) for k, b in chunks)


# -- JPEG ----------------------------------------------------------------------------------------------------
# One Huffman table of each kind, made for these files: every DC category (0..11) a 4-bit code, every AC
# symbol (EOB, ZRL, run/size for runs 0..15 and sizes 1..10) an 8-bit code. Any table a DHT segment defines
# is valid JPEG; these keep the writer short.
_DC_SYMBOLS = list(range(12))
_AC_SYMBOLS = [0x00, 0xF0] + [(r << 4) | s for r in range(16) for s in range(1, 11)]
_ZIGZAG_LEN = 64


def _huffman_codes(lengths: dict[int, int]) -> dict[int, tuple[int, int]]:
    """Canonical codes (code, length) for symbols of the given lengths, in symbol order within a length."""
    codes, code = {}, 0
    for n in range(1, 17):
        for sym in [s for s, ln in lengths.items() if ln == n]:
            codes[sym] = (code, n)
            code += 1
        code <<= 1
    return codes


_DC_CODES = _huffman_codes({s: 4 for s in _DC_SYMBOLS})
_AC_CODES = _huffman_codes({s: 8 for s in _AC_SYMBOLS})


def _dht(table_class: int, table_id: int, symbols: list[int], length: int) -> bytes:
    counts = [0] * 16
    counts[length - 1] = len(symbols)
    return bytes([(table_class << 4) | table_id, *counts, *symbols])


class _Bits:
    """Bits, most significant first; ``stuff``: a 0 byte after each 0xFF (JPEG's entropy data)."""

    def __init__(self, stuff: bool = True) -> None:
        self.stuff = stuff
        self.out = bytearray()
        self.acc = 0
        self.n = 0

    def put(self, value: int, n: int) -> None:
        for i in range(n - 1, -1, -1):
            self.acc = (self.acc << 1) | ((value >> i) & 1)
            self.n += 1
            if self.n == 8:
                self.out.append(self.acc)
                if self.acc == 0xFF and self.stuff:
                    self.out.append(0)  # byte stuffing
                self.acc = self.n = 0

    def flush(self) -> None:
        if self.n:
            self.put((1 << (8 - self.n)) - 1, 8 - self.n)  # pad with 1s


def _magnitude(v: int) -> tuple[int, int]:
    """(category, bits) of a coefficient as JPEG codes it."""
    s = abs(v).bit_length()
    return s, (v if v >= 0 else v + (1 << s) - 1)


def _segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def jpeg(
    width: int,
    height: int,
    *,
    components: int = 3,
    sampling: tuple[tuple[int, int], ...] | None = None,
    progressive: bool = False,
    restart: int = 0,
    adobe: int | None = None,
    jfif: bool = True,
    seed: object = 0,
    ac: int = 3,
) -> bytes:
    """A JPEG of blocks with a random DC value and ``ac`` random AC coefficients each (baseline), or only the
    DC scan of a progressive file (the AC bands left out, which decoders take as zero). ``sampling`` gives
    (h, v) per component (default 2x2 for Y, 1x1 for the others); ``restart`` MCUs per restart interval."""
    if sampling is None:
        sampling = ((2, 2),) + ((1, 1),) * (components - 1) if components == 3 else ((1, 1),) * components
    hmax = max(h for h, _ in sampling)
    vmax = max(v for _, v in sampling)
    rnd = noise(("jpeg", seed), 1 << 16)
    k = 0

    def r() -> int:
        nonlocal k
        k = (k + 1) % len(rnd)
        return rnd[k]

    out = bytearray(b"\xff\xd8")
    if jfif:
        out += _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    if adobe is not None:
        out += _segment(0xEE, b"Adobe" + struct.pack(">HHHB", 100, 0, 0, adobe))
    out += _segment(0xDB, bytes([0]) + bytes(range(1, 65)))  # one quantisation table, 8-bit
    out += _segment(
        0xC2 if progressive else 0xC0,
        struct.pack(">BHHB", 8, height, width, len(sampling))
        + b"".join(bytes([i + 1, (h << 4) | v, 0]) for i, (h, v) in enumerate(sampling)),
    )
    out += _segment(0xC4, _dht(0, 0, _DC_SYMBOLS, 4) + _dht(1, 0, _AC_SYMBOLS, 8))
    if restart:
        out += _segment(0xDD, struct.pack(">H", restart))
    se = 0 if progressive else 63
    out += _segment(
        0xDA, bytes([len(sampling)]) + b"".join(bytes([i + 1, 0x00]) for i in range(len(sampling))) + bytes([0, se, 0])
    )
    mcus_x = -(-width // (8 * hmax)) if width else 0
    mcus_y = -(-height // (8 * vmax)) if height else 0
    bits = _Bits()
    pred = [0] * len(sampling)
    n_mcu = 0
    for _ in range(mcus_y):
        for _ in range(mcus_x):
            if restart and n_mcu and n_mcu % restart == 0:
                bits.flush()
                bits.out += bytes([0xFF, 0xD0 + (n_mcu // restart - 1) % 8])
                pred = [0] * len(sampling)
            n_mcu += 1
            for c, (h, v) in enumerate(sampling):
                for _ in range(h * v):
                    dc = (r() - 128) // 4
                    s, b = _magnitude(dc - pred[c])
                    pred[c] = dc
                    code, n = _DC_CODES[s]
                    bits.put(code, n)
                    bits.put(b, s)
                    if progressive:
                        continue
                    pos = 0
                    for _ in range(ac):
                        run = r() % 4
                        if pos + run + 1 >= _ZIGZAG_LEN:
                            break
                        s, b = _magnitude(((r() % 31) - 15) or 1)
                        code, n = _AC_CODES[(run << 4) | s]
                        bits.put(code, n)
                        bits.put(b, s)
                        pos += run + 1
                    if pos < _ZIGZAG_LEN - 1:
                        code, n = _AC_CODES[0x00]  # EOB
                        bits.put(code, n)
    bits.flush()
    out += bits.out
    out += b"\xff\xd9"
    return bytes(out)


def jpeg_segments(data: bytes) -> list[tuple[int, bytes]] | None:
    """The (marker, body) segments of a JPEG up to its first scan's header, then (0, entropy data and the
    rest); None when it does not parse."""
    if not data.startswith(b"\xff\xd8"):
        return None
    out, pos = [], 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        (n,) = struct.unpack_from(">H", data, pos + 2)
        out.append((marker, data[pos + 4 : pos + 2 + n]))
        pos += 2 + n
        if marker == 0xDA:
            out.append((0, data[pos:]))
            return out
    return None


def jpeg_from_segments(segments: Iterable[tuple[int, bytes]]) -> bytes:
    out = bytearray(b"\xff\xd8")
    for marker, body in segments:
        out += body if marker == 0 else bytes([0xFF, marker]) + struct.pack(">H", (len(body) + 2) & 0xFFFF) + body
    return bytes(out)


# -- BMP -----------------------------------------------------------------------------------------------------
def bmp(
    width: int,
    height: int,
    *,
    bpp: int = 24,
    header: int = 40,
    top_down: bool = False,
    compression: int = 0,
    masks: tuple[int, int, int, int] | None = None,
    colours: int | None = None,
    seed: object = 0,
) -> bytes:
    """A BMP (``header``: 12 core, 40 info, 56, 108 V4, 124 V5); ``compression`` 3 (bit fields) with
    ``masks`` (R, G, B, A); a palette for 1 to 8 bits (``colours`` entries, default all)."""
    n_pal = (colours if colours is not None else 1 << bpp) if bpp <= 8 else 0
    palette = noise(("bmp-pal", seed), n_pal * (3 if header == 12 else 4))
    row = ((width * bpp + 31) // 32) * 4
    pixels = noise(("bmp", seed), row * abs(height))
    fields = b""
    if header == 12:
        info = struct.pack("<IHHHH", 12, width & 0xFFFF, height & 0xFFFF, 1, bpp)
    else:
        info = struct.pack(
            "<IiiHHIIiiII",
            header,
            width,
            -height if top_down else height,
            1,
            bpp,
            compression,
            len(pixels),
            2835,
            2835,
            colours or 0,
            0,
        )
        m = masks or (0x00FF0000, 0x0000FF00, 0x000000FF, 0xFF000000)
        if header >= 56:
            info += struct.pack("<IIII", *m)
        elif compression == 3:
            fields = struct.pack("<III", *m[:3])  # after a 40-byte header, the masks follow it
        if header >= 108:
            info += b"BGRs" + bytes(36 + 12)  # colour space, end points, gammas
        info = (info + bytes(header))[:header]
    offset = 14 + len(info) + len(fields) + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + fields + palette + pixels


# -- GIF -----------------------------------------------------------------------------------------------------
def _lzw(indices: bytes, min_size: int, colours: int) -> bytes:
    """LZW codes for ``indices`` that never grow the table: a clear code every few codes, so every code has
    ``min_size + 1`` bits (valid GIF data, and simple)."""
    clear, end = 1 << min_size, (1 << min_size) + 1
    width = min_size + 1
    every = max(1, (1 << min_size) - 3)
    acc = n = 0
    out = bytearray()

    def put(code: int) -> None:
        nonlocal acc, n
        acc |= code << n
        n += width
        while n >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            n -= 8

    put(clear)
    for i, ix in enumerate(indices):
        if i and i % every == 0:
            put(clear)
        put(ix % colours)
    put(end)
    if n:
        out.append(acc & 0xFF)
    return bytes(out)


def _sub_blocks(data: bytes) -> bytes:
    return b"".join(bytes([len(data[i : i + 255])]) + data[i : i + 255] for i in range(0, len(data), 255)) + b"\x00"


def gif(
    width: int,
    height: int,
    *,
    frames: Iterable[tuple[int, int, int, int]] | None = None,
    colour_bits: int = 8,
    global_table: bool = True,
    local_table: bool = False,
    interlace: bool = False,
    transparent: int | None = None,
    disposal: int = 0,
    seed: object = 0,
    version: bytes = b"89a",
) -> bytes:
    """A GIF: a logical screen of ``width`` x ``height``, then ``frames`` (left, top, width, height; default
    one frame over the screen), each with a graphic control extension when ``transparent`` or ``disposal``
    is set. Colour tables of ``2**colour_bits`` entries."""
    if frames is None:
        frames = [(0, 0, width, height)]
    size = 1 << colour_bits
    flags = (0x80 | (colour_bits - 1) | ((colour_bits - 1) << 4)) if global_table else 0
    out = bytearray(b"GIF" + version + struct.pack("<HHBBB", width, height, flags, 0, 0))
    if global_table:
        out += noise(("gif-pal", seed), 3 * size)
    out += b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    for i, (left, top, w, h) in enumerate(frames):
        if transparent is not None or disposal:
            packed = (disposal << 2) | (1 if transparent is not None else 0)
            out += b"!\xf9\x04" + struct.pack("<BHB", packed, 10, transparent or 0) + b"\x00"
        lflags = (0x80 | (colour_bits - 1) if local_table else 0) | (0x40 if interlace else 0)
        out += b"," + struct.pack("<HHHHB", left, top, w, h, lflags)
        if local_table:
            out += noise(("gif-local", seed, i), 3 * size)
        min_size = max(colour_bits, 2)
        out += bytes([min_size]) + _sub_blocks(_lzw(noise(("gif", seed, i), w * h), min_size, size))
    out += b";"
    return bytes(out)


# -- stb_image's other formats -------------------------------------------------------------------------------
def pnm(width: int, height: int, *, channels: int = 3, maxval: int = 255, seed: object = 0) -> bytes:
    """A binary PGM (P5, one channel) or PPM (P6, three), one or two bytes a sample by ``maxval``."""
    n = width * height * channels * (2 if maxval > 255 else 1)
    head = b"P6" if channels == 3 else b"P5"
    return head + f"\n# fuzz\n{width} {height}\n{maxval}\n".encode() + noise(("pnm", seed), n)


def tga(
    width: int,
    height: int,
    *,
    image_type: int = 2,
    bpp: int = 24,
    colormap: int = 0,
    seed: object = 0,
    top_down: bool = False,
) -> bytes:
    """A TGA: type 1/9 colour-mapped (``colormap`` entries of 24 bits), 2/10 true colour, 3/11 grey; RLE
    types (9, 10, 11) written as raw packets of up to 128 pixels."""
    header = struct.pack(
        "<BBBHHBHHHHBB",
        0,
        1 if colormap else 0,
        image_type,
        0,
        colormap,
        24 if colormap else 0,
        0,
        0,
        width,
        height,
        bpp,
        0x20 if top_down else 0,
    )
    cmap = noise(("tga-map", seed), 3 * colormap)
    px = (bpp + 7) // 8
    raw = noise(("tga", seed), width * height * px)
    if image_type >= 9:
        body = bytearray()
        for i in range(0, len(raw), 128 * px):
            part = raw[i : i + 128 * px]
            body.append(len(part) // px - 1)
            body += part
        raw = bytes(body)
    return header + cmap + raw


def hdr(width: int, height: int, *, rle: bool = False, seed: object = 0) -> bytes:
    """A Radiance HDR (RGBE): flat pixels, or the new run-length form (one raw run per row component)."""
    head = f"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y {height} +X {width}\n".encode()
    if not rle:
        return head + noise(("hdr", seed), 4 * width * height)
    rows = bytearray()
    for y in range(height):
        rows += bytes([2, 2, (width >> 8) & 0xFF, width & 0xFF])
        for c in range(4):
            vals = noise(("hdr", seed, y, c), width)
            for i in range(0, width, 128):
                part = vals[i : i + 128]
                rows.append(len(part))
                rows += part
    return head + bytes(rows)


def psd(width: int, height: int, *, channels: int = 3, depth: int = 8, rle: bool = False, seed: object = 0) -> bytes:
    """A Photoshop PSD in RGB mode: raw planes, or PackBits rows (literal runs)."""
    head = b"8BPS" + struct.pack(">H6xHIIHH", 1, channels, height, width, depth, 3)
    head += struct.pack(">III", 0, 0, 0)  # colour mode data, image resources, layers: empty
    bps = depth // 8
    planes = [noise(("psd", seed, c), width * height * bps) for c in range(channels)]
    if not rle:
        return head + struct.pack(">H", 0) + b"".join(planes)
    rows, counts = bytearray(), []
    for plane in planes:
        for y in range(height):
            line = plane[y * width : (y + 1) * width]
            packed = bytearray()
            for i in range(0, len(line), 128):
                part = line[i : i + 128]
                packed.append(len(part) - 1)
                packed += part
            counts.append(len(packed))
            rows += packed
    return head + struct.pack(">H", 1) + struct.pack(f">{len(counts)}H", *counts) + bytes(rows)


def pic(width: int, height: int, *, alpha: bool = False, seed: object = 0) -> bytes:
    """A Softimage PIC with one uncompressed packet of RGB (and an alpha packet)."""
    head = b"\x53\x80\xf6\x34" + struct.pack(">f", 3.71) + bytes(80) + b"PICT"
    head += struct.pack(">HHfHH", width, height, 1.0, 3, 0)
    packets = bytes([1 if alpha else 0, 8, 0, 0xE0])
    if alpha:
        packets += bytes([0, 8, 0, 0x10])
    n = width * height * (4 if alpha else 3)
    return head + packets + noise(("pic", seed), n)


# -- audio ---------------------------------------------------------------------------------------------------
def wav(
    frames: int,
    *,
    rate: int = 16000,
    channels: int = 1,
    bits: int = 16,
    fmt: int = 1,
    extensible: bool = False,
    declared: int | None = None,
    seed: object = 0,
) -> bytes:
    """A RIFF/WAVE file: ``fmt`` 1 PCM, 3 float, 6 A-law, 7 mu-law, 0x11 IMA ADPCM (256-byte blocks);
    ``declared`` overrides the data chunk's size field."""
    if fmt == 0x11:
        block = 256 * channels
        per_block = (block - 4 * channels) * 8 // (4 * channels) + 1
        n_blocks = -(-frames // per_block)
        data = bytearray(noise(("wav", seed), n_blocks * block))
        for b in range(n_blocks):  # each channel's block header: a predictor, a step index (0..88), a zero
            for c in range(channels):
                at = b * block + 4 * c
                data[at + 2 : at + 4] = bytes([data[at + 2] % 89, 0])
        data = bytes(data)
        body = struct.pack("<HHIIHHHH", fmt, channels, rate, rate * block // per_block, block, 4, 2, per_block)
    else:
        align = channels * bits // 8
        data = noise(("wav", seed), frames * align)
        if extensible:
            guid = struct.pack("<H", fmt) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
            body = struct.pack("<HHIIHHHHI", 0xFFFE, channels, rate, rate * align, align, bits, 22, bits, 0) + guid
        else:
            body = struct.pack("<HHIIHH", fmt, channels, rate, rate * align, align, bits)
    chunks = b"fmt " + struct.pack("<I", len(body)) + body
    size = len(data) if declared is None else declared
    chunks += b"data" + struct.pack("<I", size & 0xFFFFFFFF) + data + (b"\x00" if len(data) % 2 else b"")
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def _crc8(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _crc16(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def _utf8_number(n: int) -> bytes:
    """FLAC's 'UTF-8' coding of a frame number (up to 36 bits)."""
    if n < 0x80:
        return bytes([n])
    for length in range(2, 8):
        if n < 1 << (5 * length + 1):
            break
    out = [0x80 | ((n >> (6 * i)) & 0x3F) for i in range(length - 1)][::-1]
    first = ((0xFF << (8 - length)) & 0xFF) | (n >> (6 * (length - 1)))
    return bytes([first & 0xFF, *out])


def flac(
    blocks: int = 4,
    *,
    block_size: int = 1024,
    rate: int = 16000,
    channels: int = 1,
    bps: int = 16,
    total: int | None = None,
    verbatim: bool = True,
    seed: object = 0,
) -> bytes:
    """A FLAC of ``blocks`` fixed-size frames (a verbatim subframe of random samples, or a constant one, per
    channel), with right CRCs; ``total`` overrides STREAMINFO's sample count."""
    n = blocks * block_size if total is None else total
    info = struct.pack(">HH", block_size, block_size) + bytes(6)  # min/max block, min/max frame size unknown
    packed = (rate << 44) | ((channels - 1) << 41) | ((bps - 1) << 36) | (n & ((1 << 36) - 1))
    info += packed.to_bytes(8, "big") + bytes(16)  # MD5 unset
    out = bytearray(b"fLaC" + bytes([0x80, 0, 0, len(info)]) + info)  # the last (and only) metadata block
    bps_code = {8: 1, 12: 2, 16: 4, 20: 5, 24: 6}.get(bps, 0)
    for i in range(blocks):
        hdr = bytearray(b"\xff\xf8")
        hdr.append((7 << 4) | 0)  # block size: 16-bit value at the end of the header; rate from STREAMINFO
        hdr.append(((channels - 1) << 4) | (bps_code << 1))
        hdr += _utf8_number(i)
        hdr += struct.pack(">H", block_size - 1)
        hdr.append(_crc8(bytes(hdr)))
        bits = _Bits(stuff=False)
        for c in range(channels):
            if verbatim:
                bits.put(0b00000010, 8)  # pad bit, type VERBATIM, no wasted bits
                samples = noise(("flac", seed, i, c), block_size * 2)
                for j in range(block_size):
                    bits.put(
                        ((samples[2 * j] << 8) | samples[2 * j + 1]) >> (16 - bps)
                        if bps <= 16
                        else samples[2 * j] << (bps - 8),
                        bps,
                    )
            else:
                bits.put(0b00000000, 8)  # CONSTANT
                bits.put(noise(("flac", seed, i, c), 4)[0], bps)
        if bits.n:
            bits.put(0, 8 - bits.n)
        frame = bytes(hdr) + bytes(bits.out)
        out += frame + struct.pack(">H", _crc16(frame))
    return bytes(out)


# MPEG-1 Layer III bit rates (kbps) by index; sample rates (Hz) by index and version.
_MP3_KBPS = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def mp3(
    frames: int = 8,
    *,
    bitrate_index: int = 9,
    rate_index: int = 0,
    mono: bool = True,
    id3: bool = False,
    xing: int | None = None,
) -> bytes:
    """``frames`` silent MPEG-1 Layer III frames (side information and main data all zeros: silence);
    an ID3v2.3 tag first, and a Xing header frame declaring ``xing`` frames."""
    rate = _MP3_RATES[3][rate_index]
    length = 144 * _MP3_KBPS[bitrate_index] * 1000 // rate
    header = struct.pack(">I", 0xFFFB0000 | (bitrate_index << 12) | (rate_index << 10) | ((3 if mono else 0) << 6))
    frame = header + bytes(length - 4)
    out = bytearray()
    if id3:
        tag = b"TIT2" + struct.pack(">IH", 5, 0) + b"\x00fuzz"
        out += b"ID3\x03\x00\x00" + bytes([0, 0, (len(tag) >> 7) & 0x7F, len(tag) & 0x7F]) + tag
    if xing is not None:
        side = 17 if mono else 32
        info = b"Xing" + struct.pack(">II", 1, xing & 0xFFFFFFFF)
        out += header + bytes(side) + info + bytes(length - 4 - side - len(info))
    out += frame * frames
    return bytes(out)
