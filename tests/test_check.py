"""Each kind of damage gets its error_type; a clean image is never rejected."""

from __future__ import annotations

import io
import os
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sanitize import damage
from sanitize.check import ERROR_TYPES, ImageDamaged, decode_file, inspect_bytes, verify_file
from tests.pngbuild import build_png


def picture(size: tuple[int, int] = (256, 128), seed: int = 0) -> np.ndarray:
    """Gradient plus noise, like a rendered room: compresses like real images do."""
    w, h = size
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 200, w)[None, :, None] + np.linspace(0, 50, h)[:, None, None]
    return (ramp + rng.normal(0, 8, (h, w, 3))).clip(0, 255).astype(np.uint8)


def encode(image: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def png(size: tuple[int, int] = (256, 128), **params) -> bytes:
    return encode(Image.fromarray(picture(size)), "PNG", **params)


def jpeg(size: tuple[int, int] = (256, 128), **params) -> bytes:
    return encode(Image.fromarray(picture(size)), "JPEG", quality=90, **params)


def verdict_of(data: bytes):
    return inspect_bytes(data)[0]


def last_chunk_start(data: bytes, ctype: bytes) -> int:
    return [start for t, start, _ in damage.png_chunks(data) if t == ctype][-1]


def pillow_loads(data: bytes) -> bool:
    try:
        Image.open(io.BytesIO(data)).load()
    except Exception:
        return False
    return True


# -- clean files ---------------------------------------------------------------------------


def _clean_files() -> dict[str, bytes]:
    rgb = Image.fromarray(picture())
    depth = Image.fromarray(picture()[..., 0].astype(np.uint16) * 257)
    exif = Image.Exif()
    exif[0x010F] = "Insta360"
    return {
        "rgb": encode(rgb),
        "rgba": encode(rgb.convert("RGBA")),
        "gray": encode(rgb.convert("L")),
        "gray_alpha": encode(rgb.convert("LA")),
        "bilevel": encode(rgb.convert("1")),
        "depth_16bit": encode(depth),
        "palette_semantic": encode(rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=40)),
        "interlaced": _interlaced(rgb),
        "tiny_idat_chunks": _with_small_idats(encode(rgb)),
        "bytes_after_iend": encode(rgb) + b"trailing bytes a tool appended\0\0\0",
        "zeros_after_iend": encode(rgb) + bytes(4096),
        "jpeg": jpeg(),
        "jpeg_progressive": jpeg(progressive=True),
        "jpeg_exif_thumbnail": jpeg(exif=exif),
        "jpeg_bytes_after_eoi": jpeg() + b"\0" * 100,
        "jpeg_restart_markers": encode(rgb, "JPEG", restart_marker_blocks=4),
        "one_pixel": encode(Image.new("RGB", (1, 1), (9, 9, 9))),
    }


def _interlaced(image: Image.Image) -> bytes:
    """Adam7 by hand: Pillow reads interlaced PNGs but cannot write them."""
    w, h = image.size
    rows = np.asarray(image)
    raw = bytearray()
    for x0, y0, dx, dy in [
        (0, 0, 8, 8),
        (4, 0, 8, 8),
        (0, 4, 4, 8),
        (2, 0, 4, 4),
        (0, 2, 2, 4),
        (1, 0, 2, 2),
        (0, 1, 1, 2),
    ]:
        sub = rows[y0::dy, x0::dx]
        if sub.size:
            for line in sub:
                raw += b"\0" + line.tobytes()
    return build_png(w, h, 8, 2, zlib.compress(bytes(raw)), interlace=1)


def _with_small_idats(data: bytes) -> bytes:
    """libpng's 8 KiB IDAT chunks instead of Pillow's 64 KiB ones."""
    chunks = damage.png_chunks(data)
    stream = b"".join(data[s + 8 : e - 4] for t, s, e in chunks if t == b"IDAT")
    return build_png(256, 128, 8, 2, stream, idat_sizes=[8192] * (len(stream) // 8192))


CLEAN = _clean_files()


@pytest.mark.parametrize("name", sorted(CLEAN))
def test_clean_file_is_never_rejected(name: str) -> None:
    data = CLEAN[name]
    assert pillow_loads(data)
    fast, full = inspect_bytes(data, fast=True)[0], inspect_bytes(data, fast=False)[0]
    assert fast.ok and full.ok, (fast, full)
    assert fast == full


def test_jpeg_bytes_under_a_png_name_are_clean(tmp_path: Path) -> None:
    path = tmp_path / "rgb_rawlight.png"
    path.write_bytes(CLEAN["jpeg"])
    verdict = verify_file(str(path))
    assert verdict.ok and verdict.format == "JPEG"


def test_verdict_records_format_mode_and_size() -> None:
    verdict = verdict_of(CLEAN["depth_16bit"])
    assert (verdict.format, verdict.mode, verdict.width, verdict.height) == (
        "PNG",
        "I;16",
        256,
        128,
    )


# -- damage --------------------------------------------------------------------------------


def test_zero_filled_from_mid_file_is_what_training_crashes_on() -> None:
    data = damage.zero_fill_tail(png(), len(png()) // 2)
    verdict = verdict_of(data)
    assert verdict.error_type == "zero_filled"
    assert "broken PNG file" in verdict.error or "zero bytes from offset" in verdict.error


def test_zero_fill_inside_last_idat_is_caught_though_pillow_decodes_it() -> None:
    data = damage.zero_fill_in_last_idat(png((1024, 512)))
    assert pillow_loads(data)  # the garbage rows Pillow would train on
    assert verdict_of(data).error_type == "zero_filled"


def test_all_zero_file_is_zero_filled_not_unknown() -> None:
    assert verdict_of(bytes(65536)).error_type == "zero_filled"


def test_zero_filled_jpeg_tail() -> None:
    data = jpeg()
    assert verdict_of(damage.zero_fill_tail(data, len(data) * 2 // 3)).error_type == "zero_filled"


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.95])
def test_png_cut_inside_image_data_is_truncated(fraction: float) -> None:
    data = png()
    verdict = verdict_of(damage.truncate(data, int(len(data) * fraction)))
    assert verdict.error_type == "truncated"


def test_png_without_iend_is_truncated_though_pillow_passes_it() -> None:
    data = damage.truncate(png(), last_chunk_start(png(), b"IEND"))
    assert pillow_loads(data)
    verdict = verdict_of(data)
    assert verdict.error_type == "truncated" and "before IEND" in verdict.error


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.99])
def test_truncated_jpeg(fraction: float) -> None:
    data = jpeg()
    assert verdict_of(damage.truncate(data, int(len(data) * fraction))).error_type == "truncated"


def test_bit_flip_in_image_data_is_a_checksum_error() -> None:
    data = png()
    offset = last_chunk_start(data, b"IDAT") + 100
    verdict = verdict_of(damage.flip_bit(data, offset, 3))
    assert verdict.error_type == "checksum" and "CRC mismatch" in verdict.error


def test_bad_image_data_behind_valid_crcs_is_corrupt_data() -> None:
    data = bytearray(png())
    start = last_chunk_start(bytes(data), b"IDAT") + 8
    data[start + 10 : start + 60] = bytes(range(50))  # garbage deflate, CRC fixed below
    verdict = verdict_of(damage.fix_png_crcs(bytes(data)))
    assert verdict.error_type == "corrupt_data"


def test_empty_file() -> None:
    assert verdict_of(b"").error_type == "empty"


@pytest.mark.parametrize("content", [damage.html_page(), damage.lfs_pointer(), b"hello\n"])
def test_html_lfs_pointer_and_text_are_not_images(content: bytes) -> None:
    verdict = verdict_of(content)
    assert verdict.error_type == "not_an_image" and "no image signature" in verdict.error


def test_damaged_png_signature_is_not_mistaken_for_another_file_type() -> None:
    data = png().replace(b"\r\n", b"\n", 1)  # an ASCII-mode transfer
    assert verdict_of(data).error_type == "corrupt_data"


def test_decompression_bomb_is_too_large_without_decoding() -> None:
    verdict = verdict_of(damage.decompression_bomb_png())
    assert verdict.error_type == "too_large"


def test_over_the_limit_but_under_twice_is_too_large(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 256 * 128 - 1)  # Pillow only warns here
    verdict = verdict_of(png())
    assert verdict.error_type == "too_large" and "exceeds Pillow's limit" in verdict.error


def test_missing_file_and_dangling_symlink(tmp_path: Path) -> None:
    assert verify_file(str(tmp_path / "gone.png")).error_type == "missing"
    (tmp_path / "link.png").symlink_to(tmp_path / "nowhere.png")
    verdict = verify_file(str(tmp_path / "link.png"))
    assert verdict.error_type == "missing" and verdict.error == "dangling symlink"


def test_os_error_is_unreadable(tmp_path: Path) -> None:
    (tmp_path / "folder.png").mkdir()  # reading a folder is an OS error, even as root
    assert verify_file(str(tmp_path / "folder.png")).error_type == "unreadable"
    if os.geteuid() != 0:
        locked = tmp_path / "locked.png"
        locked.write_bytes(png())
        locked.chmod(0)
        assert verify_file(str(locked)).error_type == "unreadable"


def test_first_match_wins_zero_fill_beats_the_crc_mismatch_it_causes() -> None:
    data = damage.zero_fill_tail(png(), len(png()) - 300)
    verdict = verdict_of(data)
    assert verdict.error_type == "zero_filled" and ERROR_TYPES.index(
        "zero_filled"
    ) < ERROR_TYPES.index("checksum")


# -- training's loader ---------------------------------------------------------------------


def test_decode_file_returns_the_rgb_image_training_uses(tmp_path: Path) -> None:
    path = tmp_path / "depth.png"
    path.write_bytes(CLEAN["depth_16bit"])
    image = decode_file(str(path))
    assert image.mode == "RGB" and image.size == (256, 128)


def test_decode_file_raises_with_the_scan_verdict(tmp_path: Path) -> None:
    path = tmp_path / "bad.png"
    path.write_bytes(damage.zero_fill_in_last_idat(png((1024, 512))))
    with pytest.raises(ImageDamaged) as caught:
        decode_file(str(path))
    assert caught.value.verdict == verify_file(str(path))
    assert caught.value.verdict.error_type == "zero_filled"
