"""Decode-and-verify one image: the verdict the sanitizer records is the one training sees.

`verify_file` (sanitizer) and `decode_file` (training's loader) share `inspect_bytes`: Pillow
opens, loads and converts to RGB exactly as training does, and strict container checks
(`structure`) catch the damage Pillow lets through (bad IDAT CRCs, a zero-filled tail after
the last image row, a missing IEND or EOI).

When no pixels are wanted, plain PNGs take a fast path that inflates the image data with
zlib-ng instead of decoding it through Pillow. It only ever says "clean" for a stream that is
perfect (ends exactly after height x (rowbytes + 1) bytes, every filter byte valid); any doubt
falls back to the full Pillow decode, so its verdicts equal Pillow's (see tests/test_fastpath.py).
"""

from __future__ import annotations

import io
import os
import re
import struct
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from sanitize.structure import (
    JPEG_SOI,
    PNG_SIGNATURE,
    PngLayout,
    Problem,
    walk_jpeg,
    walk_png,
    zero_tail_start,
)

try:
    from zlib_ng import zlib_ng as _zlib
except ImportError:  # pragma: no cover - zlib-ng is a dependency; plain zlib is only slower
    import zlib as _zlib

# The fixed vocabulary of `error_type`, in the order in which the first match wins.
ERROR_TYPES = (
    "missing",
    "unreadable",
    "empty",
    "not_an_image",
    "too_large",
    "zero_filled",
    "truncated",
    "checksum",
    "corrupt_data",
    "decoder_crash",  # the decoder killed its worker process (found by the scan's isolation)
)
# A zero run this long ending the file is an interrupted write, not the image's own bytes.
ZERO_RUN_MIN = 8
_PNG_FILTER_TYPES = bytes(range(5))
_BYTESIO_NAME = re.compile(r" <_io\.BytesIO object at 0x[0-9a-fA-F]+>")
# Pillow frees image memory back to the OS unless it may keep blocks; keeping a few saves
# about a thousand page faults per image (same knob as the PILLOW_BLOCKS_MAX variable).
_BLOCKS_MAX = 16
_pillow_configured = False


@dataclass(frozen=True, slots=True)
class Verdict:
    """One file's verdict: `error_type` is None for a clean image."""

    error_type: str | None = None
    error: str | None = None
    format: str | None = None
    mode: str | None = None
    width: int | None = None
    height: int | None = None

    @property
    def ok(self) -> bool:
        return self.error_type is None


class ImageDamaged(Exception):
    """Raised by `decode_file` for an image training must not use; carries the verdict."""

    def __init__(self, path: str, verdict: Verdict) -> None:
        super().__init__(f"{verdict.error_type}: {verdict.error}")
        self.path = path
        self.verdict = verdict


def configure_pillow() -> None:
    """Let Pillow keep freed image blocks (once per process) unless the user chose already."""
    global _pillow_configured
    if not _pillow_configured and "PILLOW_BLOCKS_MAX" not in os.environ:
        Image.core.set_blocks_max(_BLOCKS_MAX)
    _pillow_configured = True


def verify_file(path: str, *, fast: bool = True) -> Verdict:
    """Read `path` once and return its verdict (no pixels kept)."""
    data, verdict = _read(path)
    if verdict is not None:
        return verdict
    return inspect_bytes(data, pixels=False, fast=fast)[0]


def verify_file_pillow(path: str) -> Verdict:
    """`verify_file` without the zlib-ng fast path: every image through Pillow's decoder."""
    return verify_file(path, fast=False)


def decode_file(path: str) -> Image.Image:
    """Training's loader: the RGB image at `path`, or `ImageDamaged` with the verdict."""
    data, verdict = _read(path)
    if verdict is None:
        verdict, image = inspect_bytes(data, pixels=True)
        if image is not None:
            return image
    raise ImageDamaged(path, verdict)


def inspect_bytes(
    data: bytes, *, pixels: bool = False, fast: bool = True
) -> tuple[Verdict, Image.Image | None]:
    """Verdict for an image's bytes, plus the RGB image when `pixels` and it is clean."""
    configure_pillow()
    if not data:
        return Verdict("empty", "file is empty (0 bytes)"), None
    if data.startswith(PNG_SIGNATURE):
        layout = walk_png(data)
    elif data.startswith(JPEG_SOI):
        layout = walk_jpeg(data)
    else:
        layout = None
    problem = layout if isinstance(layout, Problem) else None
    checked = data.startswith((PNG_SIGNATURE, JPEG_SOI))

    try:
        with warnings.catch_warnings():  # over the limit is reported below, not warned
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        return Verdict("too_large", str(exc)), None
    except UnidentifiedImageError as exc:
        if not checked and b"IHDR" in data[8:16]:
            return Verdict("corrupt_data", f"PNG signature damaged: {data[:8]!r}"), None
        if not checked and zero_tail_start(data) > 0:
            return Verdict("not_an_image", f"no image signature (starts {data[:24]!r})"), None
        return _damaged(data, problem, exc, checked), None
    except Exception as exc:  # Pillow leaks SyntaxError, struct.error, ValueError...
        return _damaged(data, problem, exc, checked), None

    header = {"format": image.format, "mode": image.mode}
    width, height = image.size
    limit = Image.MAX_IMAGE_PIXELS
    if limit and width * height > limit:
        message = f"{width}x{height} = {width * height} pixels exceeds Pillow's limit of {limit}"
        return Verdict("too_large", message, **header, width=width, height=height), None

    if fast and not pixels and _plain_png(layout, image) and _inflates_cleanly(data, layout):
        return Verdict(**header, width=width, height=height), None
    try:
        image.load()
        rgb = image.convert("RGB")
    except Exception as exc:
        return _damaged(data, problem, exc, checked), None
    if problem is not None:
        return _damaged(data, problem, None, checked), None
    return Verdict(**header, width=width, height=height), (rgb if pixels else None)


def _read(path: str) -> tuple[bytes, Verdict | None]:
    try:
        with open(path, "rb") as f:
            return f.read(), None
    except FileNotFoundError:
        message = "dangling symlink" if os.path.islink(path) else "file vanished before reading"
        return b"", Verdict("missing", message)
    except OSError as exc:
        return b"", Verdict("unreadable", f"{type(exc).__name__}: {exc.strerror or exc}")


def _damaged(data: bytes, problem: Problem | None, exc: Exception | None, checked: bool) -> Verdict:
    """Name the damage: the strict check's diagnosis, else what Pillow's failure says."""
    zeros_from = zero_tail_start(data)
    zero_run = zeros_from == 0 or len(data) - zeros_from >= ZERO_RUN_MIN
    if zero_run and (zeros_from < problem.end if problem else not checked):
        error_type = "zero_filled"
    elif problem is not None:
        error_type = {"truncated": "truncated", "checksum": "checksum"}.get(
            problem.kind, "corrupt_data"
        )
    elif _is_truncation(exc):
        error_type = "truncated"
    else:
        error_type = "corrupt_data"
    parts = []
    if exc is not None:
        # Pillow names the BytesIO it read from; training reads the same bytes from a path.
        parts.append(f"{type(exc).__name__}: {_BYTESIO_NAME.sub('', str(exc))}")
    if problem is not None:
        parts.append(problem.message)
    if error_type == "zero_filled":
        parts.append(f"zero bytes from offset {zeros_from} to the end ({len(data)} bytes)")
    return Verdict(error_type, "; ".join(parts))


def _is_truncation(exc: Exception | None) -> bool:
    if isinstance(exc, (EOFError, struct.error)):
        return True
    return isinstance(exc, OSError) and "truncated" in str(exc).lower()


def _plain_png(layout: object, image: Image.Image) -> bool:
    return (
        isinstance(layout, PngLayout)
        and layout.plain
        and layout.interlace == 0
        and layout.width > 0
        and layout.height > 0
        and image.format == "PNG"
        and not getattr(image, "is_animated", False)
    )


def _inflates_cleanly(data: bytes, layout: PngLayout) -> bool:
    """True only for a perfect stream: exact length, clean end, valid filter bytes."""
    stride = layout.row_bytes + 1
    expected = layout.height * stride
    view = memoryview(data)
    if len(layout.idat) == 1:
        start, end = layout.idat[0]
        stream = view[start:end]
    else:
        stream = b"".join(view[start:end] for start, end in layout.idat)
    inflater = _zlib.decompressobj()
    try:
        rows = inflater.decompress(stream, expected + 1)
    except _zlib.error:
        return False
    if len(rows) != expected or not inflater.eof or inflater.unused_data:
        return False
    return not rows[::stride].translate(None, _PNG_FILTER_TYPES)
