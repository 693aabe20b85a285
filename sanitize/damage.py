"""Byte-level damage as it happens to real dataset files: bytes in, damaged bytes out."""

from __future__ import annotations

import hashlib
import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHUNK_HEAD = struct.Struct(">I4s")
# Zeroing this many deflate bytes (and what follows) leaves Pillow able to finish every row on
# all of the demo's RGB maps; a fraction of the last IDAT (up to 64 KiB) is not that reliable.
LATE_ZERO_BYTES = 16


def png_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, start, end) of each chunk of a well-formed PNG; `end` includes the CRC."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG (no signature)")
    chunks = []
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, ctype = _CHUNK_HEAD.unpack_from(data, pos)
        end = pos + 12 + length
        if end > len(data):
            raise ValueError(f"chunk {ctype!r} at offset {pos} runs past the end of the data")
        chunks.append((ctype, pos, end))
        if ctype == b"IEND":
            break
        pos = end
    return chunks


def zero_fill_tail(data: bytes, start: int) -> bytes:
    """Same length, zeros from `start` on: a write or extraction interrupted after allocation."""
    if not 0 <= start <= len(data):
        raise ValueError(f"start {start} outside 0..{len(data)}")
    return data[:start] + bytes(len(data) - start)


def zero_fill_in_last_idat(data: bytes, fraction: float | None = None) -> bytes:
    """Zero-fill from late in the last IDAT body to the end of the file.

    By default the zeros start LATE_ZERO_BYTES bytes of deflate data before the stream's
    Adler-32: the inflater decodes the zeros into the last pixels, so Pillow loads the image
    without error (garbage last rows) and only a CRC walk sees the damage. `fraction` starts
    them that far through the body instead; from 0.9 on a large body, the zeros often decode
    too slowly to finish the rows and Pillow fails (broken PNG file).
    """
    idats = [(start, end) for ctype, start, end in png_chunks(data) if ctype == b"IDAT"]
    if not idats:
        raise ValueError("PNG has no IDAT chunk")
    start, end = idats[-1]
    body_start, body_end = start + 8, end - 4
    if fraction is None:
        fill = max(body_start, body_end - 4 - LATE_ZERO_BYTES)  # the stream ends with Adler-32
    elif 0.0 <= fraction < 1.0:
        fill = body_start + int(fraction * (body_end - body_start))
    else:
        raise ValueError(f"fraction {fraction} outside [0, 1)")
    return zero_fill_tail(data, fill)


def truncate(data: bytes, length: int) -> bytes:
    """The first `length` bytes: a download or copy that stopped early."""
    if not 0 <= length <= len(data):
        raise ValueError(f"length {length} outside 0..{len(data)}")
    return data[:length]


def flip_bit(data: bytes, offset: int, bit: int = 0) -> bytes:
    """One bit flipped at `offset` (bit 0 is the least significant): bad RAM, disk or cable."""
    if not 0 <= offset < len(data) or not 0 <= bit < 8:
        raise ValueError(f"no bit {bit} at offset {offset} in {len(data)} bytes")
    out = bytearray(data)
    out[offset] ^= 1 << bit
    return bytes(out)


def fix_png_crcs(data: bytes) -> bytes:
    """Recompute every chunk CRC, so only a decoder (not a CRC walk) sees damaged content."""
    out = bytearray(data)
    for _ctype, start, end in png_chunks(data):
        struct.pack_into(">I", out, end - 4, zlib.crc32(out[start + 4 : end - 4]))
    return bytes(out)


def html_page(title: str = "Download quota exceeded") -> bytes:
    """An error page a mirror or proxy served instead of the image, saved under the image name."""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:sans-serif;margin:4em auto;max-width:38em;color:#333}}</style>
</head>
<body>
<h1>{title}</h1>
<p>Too many users have viewed or downloaded this file recently. Please try accessing the
file again later. If the file you are trying to access is particularly large or is shared
with many people, it may take up to 24 hours to be able to view or download the file.</p>
<p><a href="/login?next=%2Fdatasets%2Fstructured3d">Sign in</a> to download with your
account quota.</p>
</body>
</html>
""".encode()


def lfs_pointer(oid: str | None = None, size: int = 1_183_742) -> bytes:
    """The git-lfs pointer a clone without `git lfs pull` leaves in place of the image."""
    if oid is None:  # deterministic stand-in for the real object's hash
        oid = hashlib.sha256(f"structured3d-demo-{size}".encode()).hexdigest()
    if len(oid) != 64 or any(c not in "0123456789abcdef" for c in oid):
        raise ValueError(f"oid must be 64 lowercase hex digits, got {oid!r}")
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


def decompression_bomb_png(width: int = 20000, height: int = 10000) -> bytes:
    """A blank 1-bit PNG with more pixels than Pillow opens (a few KB on disk)."""
    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then all-black pixels
    compressor = zlib.compressobj(9)
    rows_per_block = max(1, (1 << 22) // len(row))  # stream it: the raw image is ~25 MB
    parts = []
    for first in range(0, height, rows_per_block):
        parts.append(compressor.compress(row * min(rows_per_block, height - first)))
    parts.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"".join(
        [PNG_SIGNATURE, _chunk(b"IHDR", ihdr), _chunk(b"IDAT", b"".join(parts)), _chunk(b"IEND")]
    )


def _chunk(ctype: bytes, body: bytes = b"") -> bytes:
    crc = zlib.crc32(ctype + body)
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", crc)
