"""Strict container checks Pillow skips: PNG chunk framing, CRCs and IEND; JPEG markers to EOI."""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

try:  # zlib-ng's CRC is several times faster than the system zlib's
    from zlib_ng.zlib_ng import crc32
except ImportError:  # pragma: no cover - zlib-ng is a dependency, this is a safety net
    from zlib import crc32

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8\xff"

# Channels per PNG colour type (IHDR byte 9).
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_CHUNK_HEAD = struct.Struct(">I4s")
_IHDR = struct.Struct(">IIBBBBB")
# A JPEG marker inside entropy-coded data: 0xFF then neither a stuffed 0x00, a restart
# marker (D0-D7) nor another fill byte.
_JPEG_MARKER = re.compile(rb"\xff[\x01-\xcf\xd8-\xfe]")
_JPEG_STANDALONE = frozenset([0x01, *range(0xD0, 0xD8)])


@dataclass(frozen=True, slots=True)
class Problem:
    """Where and how a container breaks; `end` bounds the region the break lies in."""

    kind: str  # "truncated", "checksum" or "corrupt"
    offset: int
    end: int
    message: str


@dataclass(frozen=True, slots=True)
class PngLayout:
    """What a clean chunk walk learned: enough to inflate the image without Pillow."""

    width: int
    height: int
    bit_depth: int
    color_type: int
    interlace: int
    idat: tuple[tuple[int, int], ...]  # (start, end) of each IDAT body, in file order
    plain: bool  # IDATs consecutive, only IEND after them, no APNG frames

    @property
    def row_bytes(self) -> int:
        channels = _PNG_CHANNELS.get(self.color_type, 0)
        return (self.width * self.bit_depth * channels + 7) // 8


def walk_png(data: bytes) -> PngLayout | Problem:
    """Walk every chunk: framing, CRC and a final IEND. Bytes after IEND are ignored."""
    n = len(data)
    view = memoryview(data)
    pos = len(PNG_SIGNATURE)
    ihdr: tuple[int, ...] | None = None
    idat: list[tuple[int, int]] = []
    idat_run_ended = False
    plain = True
    while True:
        if pos + 8 > n:
            where = "before IEND" if pos == n else f"inside a chunk header at offset {pos}"
            return Problem("truncated", pos, n, f"PNG ends {where} ({n} bytes)")
        length, ctype = _CHUNK_HEAD.unpack_from(data, pos)
        end = pos + 12 + length
        if length > 0x7FFFFFFF or not ctype.isalpha():
            return Problem(
                "corrupt",
                pos,
                min(end, n),
                f"PNG chunk header at offset {pos} is invalid {ctype!r}",
            )
        name = ctype.decode("ascii")
        if end > n:
            return Problem(
                "truncated",
                pos,
                n,
                f"PNG chunk {name} at offset {pos} needs {length} bytes, file ends at {n}",
            )
        stored = int.from_bytes(view[end - 4 : end], "big")
        computed = crc32(view[pos + 4 : end - 4])
        if stored != computed:
            return Problem(
                "checksum",
                pos,
                end,
                f"PNG chunk {name} at offset {pos}: CRC mismatch "
                f"(stored {stored:08x}, computed {computed:08x})",
            )
        if ihdr is None:
            if ctype != b"IHDR" or length != _IHDR.size:
                return Problem("corrupt", pos, end, f"PNG starts with {name}, not IHDR")
            ihdr = _IHDR.unpack_from(data, pos + 8)
        elif ctype == b"IDAT":
            if idat_run_ended:
                plain = False
            idat.append((pos + 8, end - 4))
        elif ctype == b"IEND":
            break
        else:
            if idat:
                idat_run_ended = True
                plain = False  # Pillow parses chunks after the image data: let it
            if ctype in (b"acTL", b"fcTL", b"fdAT"):
                plain = False
        pos = end
    if not idat:
        return Problem("corrupt", pos, pos + 12, "PNG has no IDAT chunk")
    width, height, bit_depth, color_type, compression, filtering, interlace = ihdr
    plain = plain and compression == 0 and filtering == 0 and color_type in _PNG_CHANNELS
    return PngLayout(width, height, bit_depth, color_type, interlace, tuple(idat), plain)


def walk_jpeg(data: bytes) -> Problem | None:
    """Follow JPEG segments and scans from SOI to EOI. Bytes after EOI are ignored."""
    n = len(data)
    pos = 2
    while True:
        if pos >= n:
            return Problem("truncated", pos, n, f"JPEG ends without EOI ({n} bytes)")
        if data[pos] != 0xFF:
            return Problem("corrupt", pos, n, f"JPEG: no marker at offset {pos}")
        while pos < n and data[pos] == 0xFF:  # fill bytes may precede a marker
            pos += 1
        if pos >= n:
            return Problem("truncated", pos, n, f"JPEG ends without EOI ({n} bytes)")
        marker = data[pos]
        pos += 1
        if marker == 0xD9:
            return None
        if marker in _JPEG_STANDALONE:
            continue
        if marker in (0x00, 0xD8):
            return Problem("corrupt", pos - 2, n, f"JPEG: invalid marker {marker:02x} at {pos - 2}")
        if pos + 2 > n:
            return Problem("truncated", pos, n, f"JPEG ends inside a segment at offset {pos}")
        seg_len = int.from_bytes(data[pos : pos + 2], "big")
        if seg_len < 2:
            return Problem("corrupt", pos, n, f"JPEG segment length {seg_len} at offset {pos}")
        if pos + seg_len > n:
            return Problem(
                "truncated",
                pos,
                n,
                f"JPEG segment {marker:02x} at offset {pos} needs {seg_len} bytes, ends at {n}",
            )
        pos += seg_len
        if marker == 0xDA:  # start of scan: entropy-coded data runs to the next marker
            found = _JPEG_MARKER.search(data, pos)
            if found is None:
                return Problem("truncated", pos, n, f"JPEG ends inside scan data ({n} bytes)")
            pos = found.start()


def zero_tail_start(data: bytes) -> int:
    """Offset where the run of zero bytes that ends the file begins (len(data) if none)."""
    return len(data.rstrip(b"\0"))
