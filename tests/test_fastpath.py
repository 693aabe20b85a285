"""The zlib-ng fast path for plain PNGs gives exactly the verdict of the full Pillow decode."""

from __future__ import annotations

import io
import random
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from sanitize.check import inspect_bytes
from sanitize.structure import PngLayout, walk_png
from tests.pngbuild import VALID_DEPTHS, build_png, row_bytes
from tests.testdata import pngsuite_files


def pillow_accepts(data: bytes) -> bool:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
        image.convert("RGB")
    except Exception:
        return False
    return True


def assert_fast_equals_full(data: bytes) -> None:
    fast = inspect_bytes(data, fast=True)[0]
    full = inspect_bytes(data, fast=False)[0]
    assert fast == full
    # The full path is Pillow's decode plus the strict chunk walk, nothing else.
    assert full.ok == (pillow_accepts(data) and isinstance(walk_png(data), PngLayout))


@st.composite
def png_files(draw: st.DrawFn) -> bytes:
    """Plain PNGs whose chunks are all well formed, with the image stream itself perturbed."""
    color_type = draw(st.sampled_from(sorted(VALID_DEPTHS)))
    bit_depth = draw(st.sampled_from(VALID_DEPTHS[color_type]))
    width = draw(st.integers(1, 40))
    height = draw(st.integers(1, 24))
    rng = random.Random(draw(st.integers(0, 2**32)))
    stride = row_bytes(width, bit_depth, color_type)
    rows = draw(st.sampled_from([height, height, height, height - 1, height + 1]))
    bad_filter_row = draw(st.sampled_from([None, None, None, rng.randrange(max(rows, 1))]))
    raw = bytearray()
    for r in range(max(rows, 0)):
        flt = rng.randrange(5, 256) if r == bad_filter_row else rng.randrange(5)
        raw += bytes([flt]) + rng.randbytes(stride)
    raw = raw[: len(raw) - draw(st.sampled_from([0, 0, 0, 1, stride]))]  # partial last row
    level = draw(st.integers(0, 9))
    stream = zlib.compress(bytes(raw), level)
    stream = _perturb_stream(draw, rng, stream)
    chunks = draw(st.integers(1, 4))
    sizes = sorted(rng.randrange(len(stream) + 1) for _ in range(chunks - 1))
    idat_sizes = [b - a for a, b in zip([0, *sizes], [*sizes, len(stream)], strict=True)]
    after = draw(st.sampled_from([[], [], [(b"tEXt", b"Comment\0after the image")]]))
    return build_png(width, height, bit_depth, color_type, stream, idat_sizes, extra_after=after)


def _perturb_stream(draw: st.DrawFn, rng: random.Random, stream: bytes) -> bytes:
    how = draw(st.sampled_from(["none", "none", "junk", "cut", "adler", "flip", "twice"]))
    if how == "junk":  # bytes after the end of the zlib stream
        return stream + rng.randbytes(rng.randrange(1, 8))
    if how == "cut":  # stream ends early: missing adler32 or more
        return stream[: max(2, len(stream) - rng.randrange(1, 12))]
    if how == "adler":
        tail = bytearray(stream[-4:])
        tail[rng.randrange(4)] ^= 1 << rng.randrange(8)
        return stream[:-4] + bytes(tail)
    if how == "flip" and len(stream) > 6:
        data = bytearray(stream)
        data[rng.randrange(2, len(data))] ^= 1 << rng.randrange(8)
        return bytes(data)
    if how == "twice":  # a second, complete stream appended
        return stream + stream
    return stream


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(png_files())
def test_fast_path_verdict_equals_full_decode(data: bytes) -> None:
    assert_fast_equals_full(data)


@settings(max_examples=150, deadline=None)
@given(png_files(), st.data())
def test_fast_path_equals_full_decode_under_disk_damage(data: bytes, extra: st.DataObject) -> None:
    offset = extra.draw(st.integers(8, len(data) - 1))
    damage = extra.draw(st.sampled_from(["zeros", "cut", "flip"]))
    if damage == "zeros":
        data = data[:offset] + bytes(len(data) - offset)
    elif damage == "cut":
        data = data[:offset]
    else:
        data = data[:offset] + bytes([data[offset] ^ 0x10]) + data[offset + 1 :]
    assert_fast_equals_full(data)


def test_fast_path_is_taken_for_a_clean_plain_png(monkeypatch: pytest.MonkeyPatch) -> None:
    """Guard the guard: the property tests mean nothing if the fast path never runs."""
    image = Image.frombytes("RGB", (64, 32), random.Random(1).randbytes(64 * 32 * 3))
    buf = io.BytesIO()
    image.save(buf, "PNG")
    monkeypatch.setattr(ImageFile.ImageFile, "load", _no_load)
    verdict = inspect_bytes(buf.getvalue(), fast=True)[0]
    assert verdict.ok and (verdict.width, verdict.height, verdict.mode) == (64, 32, "RGB")
    full = inspect_bytes(buf.getvalue(), fast=False)[0]
    assert not full.ok and "Pillow decode called" in full.error


def _no_load(self: Image.Image) -> None:
    raise AssertionError("Pillow decode called on the fast path")


@pytest.mark.parametrize("path", pngsuite_files(), ids=lambda p: p.name)
def test_fast_path_equals_full_decode_on_conformance_files(path) -> None:
    assert_fast_equals_full(path.read_bytes())
