"""Build PNG files byte by byte, with valid CRCs, so tests control every detail of the stream."""

from __future__ import annotations

import struct
import zlib

CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
VALID_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}


def chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def row_bytes(width: int, bit_depth: int, color_type: int) -> int:
    return (width * bit_depth * CHANNELS[color_type] + 7) // 8


def build_png(
    width: int,
    height: int,
    bit_depth: int,
    color_type: int,
    stream: bytes,
    idat_sizes: list[int] | None = None,
    interlace: int = 0,
    extra_before: list[tuple[bytes, bytes]] = (),
    extra_after: list[tuple[bytes, bytes]] = (),
) -> bytes:
    """A PNG around an already compressed `stream`, split into IDATs of `idat_sizes`."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, interlace)
    parts = [b"\x89PNG\r\n\x1a\n", chunk(b"IHDR", ihdr)]
    if color_type == 3:
        parts.append(chunk(b"PLTE", bytes(range(256)) * 3))
    parts += [chunk(t, b) for t, b in extra_before]
    sizes = idat_sizes or [len(stream)]
    pos = 0
    for size in sizes:
        parts.append(chunk(b"IDAT", stream[pos : pos + size]))
        pos += size
    if pos < len(stream):
        parts.append(chunk(b"IDAT", stream[pos:]))
    parts += [chunk(t, b) for t, b in extra_after]
    parts.append(chunk(b"IEND", b""))
    return b"".join(parts)
