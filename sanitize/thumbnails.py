"""Small thumbnails of damaged images: what still decodes, with the undecoded tail greyed out."""

from __future__ import annotations

import base64
import contextlib
import io
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFile
from tqdm import tqdm

from sanitize.executors import LocalPool, is_worker_death

log = logging.getLogger(__name__)

# Damage that leaves a decodable header, so a partial decode can show what survived. The other
# types never reach a decoder here: nothing to see (empty, missing), not an image, or unsafe
# (too_large is a decompression bomb; decoder_crash killed a worker process once already).
DECODABLE = frozenset({"zero_filled", "truncated", "checksum", "corrupt_data"})
BOX = (192, 96)
WEBP_QUALITY = 60
# What a partial decode leaves in the rows it never reached: Pillow zeroes a new image's
# memory (PNG); libjpeg fills the rest of a cut scan with mid-grey (JPEG).
_UNDECODED_FILL = {"PNG": 0, "JPEG": 128}
_GLYPHS = {
    "missing": "missing",
    "unreadable": "unreadable",
    "empty": "0 bytes",
    "too_large": "too large to decode",
    "decoder_crash": "crashes the decoder",
}
_SNIFF_BYTES = 512
_BATCH = 16  # files per worker task: amortises the round trip, keeps the bar moving


@dataclass(frozen=True, slots=True)
class Thumbnail:
    """What the page shows for one damaged file: an image, or a short glyph label instead."""

    image: str | None = None  # data URI of a small WebP
    glyph: str | None = None  # "HTML page", "0 bytes", ... when nothing decodes
    decoded: float | None = None  # share of rows that decoded, top down (an estimate)
    note: str | None = None  # "changed since the scan"


def thumbnail(path: str, error_type: str, mtime_ns: int | None = None) -> Thumbnail:
    """The thumbnail of one damaged file; never raises, never decodes a bomb or a crasher."""
    if error_type == "not_an_image":
        return Thumbnail(glyph=_sniff(path))
    if error_type not in DECODABLE:
        return Thumbnail(glyph=_GLYPHS.get(error_type, error_type))
    try:
        stat = os.stat(path)
    except OSError:
        return Thumbnail(glyph="gone since the scan")
    note = None if mtime_ns in (None, stat.st_mtime_ns) else "changed since the scan"
    try:
        image, decoded = _partial_decode(path)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        return Thumbnail(glyph="too large to decode", note=note)
    except Exception:  # Pillow raises anything on damaged data; the glyph says it all
        return Thumbnail(glyph="nothing decodes", note=note)
    if not decoded:
        return Thumbnail(glyph="nothing decodes", decoded=0.0, note=note)
    return Thumbnail(image=_data_uri(image), decoded=decoded, note=note)


def make_thumbnails(
    tasks: Sequence[tuple[str, str, int | None]], jobs: int, progress: bool = True
) -> list[Thumbnail]:
    """`thumbnail(*task)` for each (path, error_type, mtime_ns), in order, in worker processes.

    Batches go to the scan's loky pool as futures, not through `joblib.Parallel`: a decoder
    that kills its worker costs its batch a retry, not the whole page.
    """
    pool = LocalPool(jobs)
    batches = [list(tasks[i : i + _BATCH]) for i in range(0, len(tasks), _BATCH)]
    futures = [pool.submit(thumbnail_batch, batch) for batch in batches]
    made: list[Thumbnail] = []
    with tqdm(total=len(tasks), desc="thumbnails", unit="img", disable=not progress) as bar:
        for batch, future in zip(batches, futures, strict=True):
            made += _batch_result(pool, batch, future)
            bar.update(len(batch))
    return made


def thumbnail_batch(tasks: list[tuple[str, str, int | None]]) -> list[Thumbnail]:
    """Worker task: the thumbnails of a few files."""
    return [thumbnail(*task) for task in tasks]


def _batch_result(pool: LocalPool, batch: list, future: Future) -> list[Thumbnail]:
    """The batch's thumbnails; after a worker death, each file again on its own."""
    try:
        return future.result()
    except Exception as exc:
        if not is_worker_death(exc):
            raise
    made = []
    for task in batch:  # a dead worker breaks the pool; loky starts a fresh one on submit
        try:
            made += pool.submit(thumbnail_batch, [task]).result()
        except Exception as exc:
            if not is_worker_death(exc):
                raise
            log.warning("decoding killed its worker on %s", task[0])
            made.append(Thumbnail(glyph="crashes the decoder"))
    return made


@contextlib.contextmanager
def _truncated_images_allowed() -> Iterator[None]:
    """Let Pillow keep what it decoded before the damage, for this call only.

    The flag is process-wide and joblib reuses its workers: left on, a later scan in the same
    worker would call truncated images clean.
    """
    before = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = before


def _partial_decode(path: str) -> tuple[Image.Image, float]:
    """The thumbnail-sized image of what decodes, and the share of rows that did."""
    with warnings.catch_warnings(), _truncated_images_allowed():
        # Over Pillow's pixel limit: refuse, as training would, instead of decoding a bomb.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as image:
            if image.format == "JPEG":  # libjpeg decodes at 1/2..1/8 scale: far less work
                image.draft("RGB", (BOX[0] * 2, BOX[1] * 2))
            image.load()
            decoded = _decoded_rows(image)
            share = decoded / image.height if image.height else 0.0
            small = _displayable(image)
    small.thumbnail(BOX, Image.Resampling.BILINEAR, reducing_gap=2.0)
    if decoded < image.height:
        _grey_out(small, round(share * small.height))
    return small, share


def _decoded_rows(image: Image.Image) -> int:
    """Rows before the trailing run that holds only the decoder's fill value.

    A heuristic: an image whose real last rows are exactly that value counts them undecoded.
    """
    fill = _UNDECODED_FILL.get(image.format or "")
    if fill is None:
        return image.height
    rows = np.asarray(image).reshape(image.height, -1)
    reached = np.flatnonzero((rows != fill).any(axis=1))
    return int(reached[-1]) + 1 if reached.size else 0


def _displayable(image: Image.Image) -> Image.Image:
    """8-bit RGB or L for the eye: 16-bit and float maps (depth) stretched to their range."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        values = np.asarray(image, dtype=np.float32)
        top = float(values.max()) or 1.0
        return Image.fromarray((np.clip(values, 0, None) * (255 / top)).astype(np.uint8))
    return image.convert("L" if image.mode in ("1", "L", "LA") else "RGB")


def _grey_out(image: Image.Image, top: int) -> None:
    """Hatch the rows from `top` down in grey and draw a red line where decoding stopped."""
    draw = ImageDraw.Draw(image)
    width, height = image.size
    grey, dark, red = (150, 150, 150), (120, 120, 120), (220, 40, 40)
    if image.mode == "L":
        grey, dark, red = 150, 120, 90
    draw.rectangle((0, top, width, height), fill=grey)
    for x in range(-height, width, 8):  # diagonal hatching: "missing", not "grey pixels"
        draw.line((x, height, x + height - top, top), fill=dark)
    draw.line((0, top, width, top), fill=red, width=2)


def _data_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", quality=WEBP_QUALITY, method=4)
    return "data:image/webp;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _sniff(path: str) -> str:
    """Name what a non-image file holds, from its first bytes."""
    try:
        with open(path, "rb") as f:
            head = f.read(_SNIFF_BYTES)
    except OSError:
        return "gone since the scan"
    lowered = head.lstrip().lower()
    if lowered.startswith(b"version https://git-lfs"):
        return "LFS pointer"
    if lowered.startswith((b"<!doctype html", b"<html")) or b"<html" in lowered:
        return "HTML page"
    if head and not head.strip(b"\0"):
        return "all zeros"
    if head and all(32 <= b < 127 or b in b"\t\r\n" for b in head):
        return "text"
    return "not an image"
