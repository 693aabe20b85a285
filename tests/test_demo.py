"""The demo tree (layout, content, truth the scanner agrees with) and the damage primitives."""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
import re
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sanitize import damage, demo
from sanitize.check import ERROR_TYPES, inspect_bytes, verify_file
from sanitize.demo import DemoError, DemoTree, make_demo_tree
from sanitize.structure import PngLayout, Problem, walk_png

SEED = 11
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
PANO_MAPS = ("rgb_rawlight", "rgb_coldlight", "rgb_warmlight", "semantic", "instance")
PANO_MAPS += ("albedo", "depth", "normal")
PERSP_MAPS = ("rgb_rawlight", "semantic", "instance", "albedo", "depth", "normal")
MODES = {"semantic": "P", "instance": "I;16", "depth": "I;16"}  # the rest are RGB


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> DemoTree:
    return make_demo_tree(tmp_path_factory.mktemp("demo") / "demo", scenes=1, seed=SEED)


@pytest.fixture(scope="module")
def truth(tree: DemoTree) -> dict[str, str]:
    with open(tree.root / "demo_truth.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["relpath"] for row in rows] == sorted(row["relpath"] for row in rows)
    return {row["relpath"]: row["error_type"] for row in rows}


def _images(root: Path) -> list[str]:
    out = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                out.append((Path(dirpath) / name).relative_to(root).as_posix())
    return sorted(out)


def _rooms(root: Path) -> list[Path]:
    return sorted((root / "Structured3D").glob("scene_*/2D_rendering/*"))


def _clean_pano(tree: DemoTree, truth: dict[str, str], name: str = "rgb_rawlight") -> Path:
    for room in _rooms(tree.root):
        for config in ("full", "simple", "empty"):
            path = room / "panorama" / config / f"{name}.png"
            if path.relative_to(tree.root).as_posix() not in truth:
                return path
    raise AssertionError(f"no clean {name}")


# ------------------------------------------------------------------------------------- layout


def test_tree_summary(tree: DemoTree, truth: dict[str, str]) -> None:
    images = _images(tree.root)
    assert tree.images == len(images) == 2 * (3 * 8 + 2 * 6) + 7
    assert tree.damaged == len(truth)
    assert tree.root.is_absolute() and tree.seconds > 0
    # No temporary folder is left beside the tree.
    assert [p.name for p in tree.root.parent.iterdir()] == ["demo"]


def test_structured3d_layout(tree: DemoTree) -> None:
    scenes = sorted((tree.root / "Structured3D").iterdir())
    assert len(scenes) == 1 and re.fullmatch(r"scene_\d{5}", scenes[0].name)
    annotation = json.loads((scenes[0] / "annotation_3d.json").read_text())
    assert annotation["junctions"] and annotation["planes"]
    rooms = _rooms(tree.root)
    assert len(rooms) == 2 and all(room.name.isdigit() for room in rooms)
    for room in rooms:
        pano = room / "panorama"
        xyz = (pano / "camera_xyz.txt").read_text().split()
        assert len(xyz) == 3 and all(float(v) == float(v) for v in xyz)
        corners = (pano / "layout.txt").read_text().splitlines()
        assert len(corners) == 8 and all(len(line.split()) == 2 for line in corners)
        assert sorted(p.name for p in pano.iterdir()) == sorted(
            ["camera_xyz.txt", "layout.txt", "full", "simple", "empty"]
        )
        for config in ("full", "simple", "empty"):
            names = sorted(p.name for p in (pano / config).iterdir())
            assert names == sorted(f"{m}.png" for m in PANO_MAPS)
        assert sorted(p.name for p in (room / "perspective").iterdir()) == ["empty", "full"]
        for config in ("full", "empty"):
            pos = room / "perspective" / config / "0"
            names = sorted(p.name for p in pos.iterdir())
            assert names == sorted(
                [f"{m}.png" for m in PERSP_MAPS] + ["camera_pose.txt", "layout.json"]
            )
            assert len((pos / "camera_pose.txt").read_text().split()) == 12
            assert json.loads((pos / "layout.json").read_text())["junctions"]


def test_images_sizes_and_modes(tree: DemoTree, truth: dict[str, str]) -> None:
    checked = 0
    for room in _rooms(tree.root):
        for config in ("full", "simple", "empty"):
            for name in PANO_MAPS:
                checked += _check_image(tree, truth, room / "panorama" / config, name, (1024, 512))
        for config in ("full", "empty"):
            pos = room / "perspective" / config / "0"
            for name in PERSP_MAPS:
                checked += _check_image(tree, truth, pos, name, (1280, 720))
    assert checked >= 2 * 36 - len(truth)


def _check_image(
    tree: DemoTree, truth: dict[str, str], folder: Path, name: str, size: tuple[int, int]
) -> int:
    path = folder / f"{name}.png"
    if path.relative_to(tree.root).as_posix() in truth:
        return 0
    with Image.open(path) as image:
        assert (image.format, image.size, image.mode) == ("PNG", size, MODES.get(name, "RGB"))
        if name == "semantic":
            assert len(image.getpalette()) >= 41 * 3
    return 1


def test_rgb_content_is_realistic(tree: DemoTree, truth: dict[str, str]) -> None:
    means = {}
    for light in ("rawlight", "coldlight", "warmlight"):
        path = _clean_pano(tree, truth, f"rgb_{light}")
        assert 300_000 < path.stat().st_size < 2_000_000  # real ones: about 0.5-1.5 MB
        pixels = np.asarray(Image.open(path), dtype=np.float32)
        assert pixels.std() > 10  # gradients and texture, not a flat colour
        means[light] = pixels.reshape(-1, 3).mean(axis=0)
    assert means["warmlight"][0] > means["warmlight"][2] + 20  # orange
    assert means["coldlight"][2] > means["coldlight"][0] + 10  # blue
    depth = np.asarray(Image.open(_clean_pano(tree, truth, "depth")), dtype=np.float32)
    assert depth.min() > 300 and depth.max() < 20_000 and depth.std() > 100  # millimetres
    semantic = np.asarray(Image.open(_clean_pano(tree, truth, "semantic")))
    assert {1, 2, 22} <= set(np.unique(semantic).tolist())  # wall, floor, ceiling


def test_sun360_panoramas(tree: DemoTree, truth: dict[str, str]) -> None:
    files = sorted((tree.root / "SUN360").glob("*/*"))
    assert len(files) == 7
    assert all(re.fullmatch(r"pano_[a-z]{14}", f.stem) for f in files)
    suffixes = [f.suffix for f in files]
    assert ".JPG" in suffixes and ".jpeg" in suffixes and suffixes.count(".png") == 1
    disguised = next(f for f in files if f.suffix == ".png")
    assert disguised.read_bytes().startswith(b"\xff\xd8\xff")
    verdict = verify_file(str(disguised))
    assert (
        verdict.ok and verdict.format == "JPEG" and (verdict.width, verdict.height) == (1024, 512)
    )


def test_annotations_csv(tree: DemoTree) -> None:
    with open(tree.root / "annotations" / "demo.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and list(rows[0]) == ["url", "query", "annotation"]
    assert len(rows) == 2 * 3 * 3 + 7  # panorama rgb_* of both rooms, and SUN360
    for row in rows:
        url = Path(row["url"])
        assert url.is_absolute() and url.is_relative_to(tree.root)
        assert os.path.lexists(url)
        assert row["query"] == demo.QUERY
        light = re.search(r"under (neutral|cold|warm) light", row["annotation"])
        assert light, row["annotation"]
        if url.stem.startswith("rgb_"):
            word = {"rawlight": "neutral", "coldlight": "cold", "warmlight": "warm"}
            assert light.group(1) == word[url.stem[4:]]
            config = url.parent.name
            assert row["annotation"].startswith(
                {"full": "A furnished", "simple": "A sparsely furnished", "empty": "An empty"}[
                    config
                ]
            )


# -------------------------------------------------------------------------------------- truth


def test_truth_covers_every_damage(tree: DemoTree, truth: dict[str, str]) -> None:
    assert set(truth.values()) == set(ERROR_TYPES) - {"unreadable", "decoder_crash"}
    kinds = list(truth.values())
    assert kinds.count("zero_filled") >= 4  # mid-file, two late in the last IDAT, one JPEG
    assert kinds.count("truncated") >= 3  # mid-IDAT, IEND cut off, JPEG
    assert kinds.count("not_an_image") >= 2  # HTML page and LFS pointer
    assert 0.08 <= len(truth) / tree.images <= 0.2
    jpegs = {rel: kind for rel, kind in truth.items() if rel.startswith("SUN360/")}
    assert sorted(jpegs.values()) == ["truncated", "zero_filled"]
    contents = {rel: _read_or_none(tree.root / rel) for rel in truth}
    assert b"<!DOCTYPE html>" in [c[:15] for c in contents.values() if c]
    assert any(c and c.startswith(b"version https://git-lfs") for c in contents.values())
    assert any(c == b"" for c in contents.values())
    dangling = [rel for rel, c in contents.items() if c is None]
    assert len(dangling) == 1 and (tree.root / dangling[0]).is_symlink()
    assert not os.path.isabs(os.readlink(tree.root / dangling[0]))


def _read_or_none(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


def test_pillow_misses_some_damage(tree: DemoTree, truth: dict[str, str]) -> None:
    """The dangerous cases: Pillow loads them without error, the scanner does not."""
    passing = {}
    for rel, kind in truth.items():
        path = tree.root / rel
        if path.suffix == ".png" and kind in ("zero_filled", "truncated"):
            try:
                with Image.open(path) as image:
                    image.load()
            except Exception:
                continue
            passing[rel] = kind
    assert list(passing.values()).count("zero_filled") >= 2
    assert "truncated" in passing.values()  # the PNG missing only its IEND


def test_every_verdict_matches_truth(tree: DemoTree, truth: dict[str, str]) -> None:
    images = _images(tree.root)
    assert set(truth) <= set(images)
    wrong = {}
    for rel in images:
        for fast in (True, False):
            verdict = verify_file(str(tree.root / rel), fast=fast)
            if verdict.error_type != truth.get(rel):
                wrong[rel, fast] = (truth.get(rel), verdict.error_type, verdict.error)
    assert not wrong


def test_same_seed_same_tree(tree: DemoTree, tmp_path: Path) -> None:
    (tmp_path / "again").mkdir()  # an existing empty folder is fine
    again = make_demo_tree(tmp_path / "again", scenes=1, seed=SEED, progress=False)
    assert _digests(again.root) == _digests(tree.root)
    csv_text = (again.root / "annotations" / "demo.csv").read_text()
    first = (tree.root / "annotations" / "demo.csv").read_text()
    assert csv_text.replace(str(again.root), "ROOT") == first.replace(str(tree.root), "ROOT")
    assert os.listdir(tmp_path) == ["again"]


def _digests(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file() and rel != "annotations/demo.csv":
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def test_other_seed_other_damage() -> None:
    assert demo._plan(1, 0).damage != demo._plan(1, 1).damage


def test_scene_ids_span_the_splits() -> None:
    for scenes in (3, 20):
        numbers = [int(s.scene_id[6:]) for s in demo._plan(scenes, 5).scenes]
        assert len(set(numbers)) == scenes
        assert any(n < 3000 for n in numbers)
        assert any(3000 <= n < 3250 for n in numbers)
        assert any(3250 <= n < 3500 for n in numbers)


def test_refuses_non_empty_or_non_directory_dest(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(DemoError, match="not empty"):
        make_demo_tree(tmp_path / "full", scenes=1, progress=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DemoError, match="not a directory"):
        make_demo_tree(tmp_path / "file", scenes=1, progress=False)
    assert sorted(os.listdir(tmp_path)) == ["file", "full"]
    assert os.listdir(tmp_path / "full") == ["keep.txt"]


def test_failure_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def half_written(writer: demo._Writer, plan: object) -> None:
        writer.text("Structured3D/partial.txt", "half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(demo, "_write_all", half_written)
    with pytest.raises(RuntimeError, match="disk full"):
        make_demo_tree(tmp_path / "demo", scenes=1, progress=False)
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------------- damage


@pytest.fixture(scope="module")
def clean_png(tree: DemoTree, truth: dict[str, str]) -> bytes:
    """A demo panorama: several IDAT chunks, as Pillow writes them."""
    return _clean_pano(tree, truth).read_bytes()


def _verdict(data: bytes) -> str | None:
    return inspect_bytes(data)[0].error_type


def _pillow_error(data: bytes) -> Exception | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                image.load()
    except Exception as exc:
        return exc
    return None


def test_png_chunks(clean_png: bytes) -> None:
    chunks = damage.png_chunks(clean_png)
    types = [ctype for ctype, _, _ in chunks]
    assert types[0] == b"IHDR" and types[-1] == b"IEND" and types.count(b"IDAT") > 1
    assert chunks[0][1] == 8 and chunks[-1][2] == len(clean_png)
    assert all(a[2] == b[1] for a, b in itertools.pairwise(chunks))
    with pytest.raises(ValueError):
        damage.png_chunks(b"GIF89a")


def test_zero_fill_tail(clean_png: bytes) -> None:
    out = damage.zero_fill_tail(clean_png, 1000)
    assert len(out) == len(clean_png) and out[:1000] == clean_png[:1000]
    assert out[1000:] == bytes(len(clean_png) - 1000)
    assert _verdict(out) == "zero_filled"
    with pytest.raises(ValueError):
        damage.zero_fill_tail(clean_png, len(clean_png) + 1)


def test_zero_fill_in_last_idat_fools_pillow(clean_png: bytes) -> None:
    out = damage.zero_fill_in_last_idat(clean_png)
    assert len(out) == len(clean_png)
    last_idat = [c for c in damage.png_chunks(clean_png) if c[0] == b"IDAT"][-1]
    assert last_idat[1] + 8 < len(out.rstrip(b"\0")) < last_idat[2]
    assert _pillow_error(out) is None  # decodes, with garbage in its last pixels
    garbage = np.asarray(Image.open(io.BytesIO(out))) != np.asarray(
        Image.open(io.BytesIO(clean_png))
    )
    assert garbage.any() and not garbage[:-8].any()
    assert _verdict(out) == "zero_filled"
    assert inspect_bytes(out, fast=False)[0].error_type == "zero_filled"
    early = damage.zero_fill_in_last_idat(clean_png, 0.5)
    assert _verdict(early) == "zero_filled"
    with pytest.raises(ValueError):
        damage.zero_fill_in_last_idat(clean_png, 1.0)


def test_truncate(clean_png: bytes) -> None:
    assert damage.truncate(clean_png, 10) == clean_png[:10]
    mid_idat = damage.truncate(clean_png, len(clean_png) // 2)
    assert isinstance(_pillow_error(mid_idat), OSError)
    assert _verdict(mid_idat) == "truncated"
    no_iend = damage.truncate(clean_png, len(clean_png) - 12)
    assert _pillow_error(no_iend) is None and _verdict(no_iend) == "truncated"


def test_flip_bit(clean_png: bytes) -> None:
    offset = len(clean_png) // 2
    out = damage.flip_bit(clean_png, offset, 3)
    assert len(out) == len(clean_png)
    diff = [i for i, (a, b) in enumerate(zip(out, clean_png, strict=True)) if a != b]
    assert diff == [offset] and out[offset] ^ clean_png[offset] == 8
    problem = walk_png(out)
    assert isinstance(problem, Problem) and problem.kind == "checksum"
    assert _verdict(out) == "checksum"
    with pytest.raises(ValueError):
        damage.flip_bit(clean_png, 0, 8)


def test_fix_png_crcs(clean_png: bytes) -> None:
    mutated = damage.flip_bit(clean_png, len(clean_png) // 2)
    assert isinstance(walk_png(mutated), Problem)
    fixed = damage.fix_png_crcs(mutated)
    assert isinstance(walk_png(fixed), PngLayout)
    assert damage.fix_png_crcs(clean_png) == clean_png
    # A garbage zlib stream with valid CRCs: only decoding finds it.
    garbage = bytearray(clean_png)
    pattern = bytes(range(256)) * (len(clean_png) // 256)
    for ctype, start, end in damage.png_chunks(clean_png):
        if ctype == b"IDAT":
            garbage[start + 8 : end - 4] = pattern[: end - start - 12]
    fixed = damage.fix_png_crcs(bytes(garbage))
    assert isinstance(walk_png(fixed), PngLayout)
    assert _pillow_error(fixed) is not None
    assert _verdict(fixed) == "corrupt_data"


def test_html_page() -> None:
    page = damage.html_page("Access denied")
    assert page.startswith(b"<!DOCTYPE html>") and b"<title>Access denied</title>" in page
    assert _verdict(page) == "not_an_image"


def test_lfs_pointer() -> None:
    pointer = damage.lfs_pointer(size=1234)
    assert re.fullmatch(
        rb"version https://git-lfs.github.com/spec/v1\noid sha256:[0-9a-f]{64}\nsize 1234\n",
        pointer,
    )
    oid = hashlib.sha256(b"x").hexdigest()
    assert damage.lfs_pointer(oid, 7).split(b"\n")[1] == b"oid sha256:" + oid.encode()
    with pytest.raises(ValueError):
        damage.lfs_pointer("abc")
    assert _verdict(pointer) == "not_an_image"


def test_decompression_bomb_png(monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = damage.decompression_bomb_png()
    assert len(bomb) < 100_000
    width, height, depth, colour = struct.unpack(">IIBB", bomb[16:26])
    assert (width, height, depth, colour) == (20000, 10000, 1, 0)
    assert width * height > Image.MAX_IMAGE_PIXELS
    assert _verdict(bomb) == "too_large"
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(bomb))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with Image.open(io.BytesIO(bomb)) as image:  # the header only: no 200 MB load
        assert (image.mode, image.size) == ("1", (20000, 10000))
    with Image.open(io.BytesIO(damage.decompression_bomb_png(64, 8))) as small:
        small.load()
        assert (small.mode, small.size, small.getextrema()) == ("1", (64, 8), (0, 0))
    assert zlib.crc32(bomb) == zlib.crc32(damage.decompression_bomb_png())  # deterministic
