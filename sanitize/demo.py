"""`sanitize demo`: a small Structured3D-shaped tree of rendered images with known damage."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import shutil
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from sanitize import damage

PANO_SIZE = (1024, 512)
PERSP_SIZE = (1280, 720)
PANO_CONFIGS = ("full", "simple", "empty")
PERSP_CONFIGS = ("full", "empty")
LIGHTS = ("rawlight", "coldlight", "warmlight")
PANO_MAPS = (*(f"rgb_{light}" for light in LIGHTS), "semantic", "instance", "albedo")
PANO_MAPS += ("depth", "normal")
PERSP_MAPS = ("rgb_rawlight", "semantic", "instance", "albedo", "depth", "normal")
ROOMS_PER_SCENE = 2
# Official Structured3D split: scene ids [start, stop) per split.
SPLITS = {"train": (0, 3000), "val": (3000, 3250), "test": (3250, 3500)}
QUERY = "Describe the lighting and layout of this panorama."
TRUTH_NAME = "demo_truth.csv"
ARCHIVES = "archives"  # the "original downloads": good copies to repair from
ANNOTATIONS = "annotations/demo.csv"
# Share of the images that get damaged beyond the one-of-each minimum.
DAMAGED_SHARE = 0.10
# PNG zlib level: 1 keeps the default tree fast to write and its files near real sizes.
PNG_LEVEL = 1
JPEG_QUALITY = 95
# Perspective cameras of Structured3D: 80 degree horizontal field of view (half angles saved).
PERSP_XFOV = math.radians(40)

# NYU-40 colour palette used by Structured3D's semantic maps (index 0 = unlabelled).
NYU40_PALETTE = (
    (0, 0, 0), (174, 199, 232), (152, 223, 138), (31, 119, 180), (255, 187, 120),
    (188, 189, 34), (140, 86, 75), (255, 152, 150), (214, 39, 40), (197, 176, 213),
    (148, 103, 189), (196, 156, 148), (23, 190, 207), (178, 76, 76), (247, 182, 210),
    (66, 188, 102), (219, 219, 141), (140, 57, 197), (202, 185, 52), (51, 176, 203),
    (200, 54, 131), (92, 193, 61), (78, 71, 183), (172, 114, 82), (255, 127, 14),
    (91, 163, 138), (153, 98, 156), (140, 153, 101), (158, 218, 229), (100, 125, 154),
    (178, 127, 135), (120, 185, 128), (146, 111, 194), (44, 160, 44), (112, 128, 144),
    (96, 207, 209), (227, 119, 194), (213, 92, 176), (94, 106, 211), (82, 84, 163),
    (100, 85, 144),
)  # fmt: skip
WALL, FLOOR, DOOR, WINDOW, CEILING, PICTURE = 1, 2, 8, 9, 22, 11

# Furniture per room type: (NYU-40 class, width, depth, (bottom, top) in mm, colour 0-1).
# Widths and depths are ranges; every piece stands against a wall.
_Piece = tuple[int, tuple[int, int], tuple[int, int], tuple[int, int], tuple[float, float, float]]
FURNITURE: dict[str, tuple[_Piece, ...]] = {
    "bedroom": (
        (4, (1500, 1900), (1900, 2100), (0, 550), (0.86, 0.84, 0.80)),
        (32, (400, 500), (400, 450), (0, 550), (0.55, 0.38, 0.24)),
        (17, (900, 1400), (450, 550), (0, 900), (0.62, 0.45, 0.30)),
        (3, (1000, 1800), (550, 600), (0, 2200), (0.80, 0.78, 0.74)),
        (PICTURE, (600, 900), (30, 40), (1300, 1800), (0.35, 0.45, 0.60)),
    ),
    "living room": (
        (6, (1800, 2400), (850, 950), (0, 800), (0.42, 0.44, 0.48)),
        (7, (900, 1200), (500, 600), (0, 450), (0.50, 0.34, 0.22)),
        (5, (600, 750), (600, 750), (0, 850), (0.70, 0.55, 0.40)),
        (10, (800, 1200), (300, 400), (0, 1900), (0.58, 0.42, 0.28)),
        (25, (1000, 1400), (60, 80), (900, 1600), (0.08, 0.08, 0.09)),
        (PICTURE, (800, 1200), (30, 40), (1400, 1900), (0.70, 0.30, 0.25)),
    ),
    "kitchen": (
        (12, (2000, 3000), (600, 650), (0, 900), (0.92, 0.92, 0.90)),
        (3, (1500, 2500), (350, 400), (1400, 2100), (0.90, 0.90, 0.88)),
        (24, (700, 900), (650, 700), (0, 1850), (0.78, 0.80, 0.82)),
        (7, (1000, 1400), (750, 900), (0, 750), (0.60, 0.44, 0.30)),
        (5, (450, 500), (450, 500), (0, 900), (0.30, 0.30, 0.32)),
    ),
    "bathroom": (
        (36, (1500, 1700), (700, 800), (0, 550), (0.95, 0.95, 0.96)),
        (34, (600, 900), (450, 550), (0, 850), (0.94, 0.94, 0.95)),
        (33, (380, 420), (650, 700), (0, 420), (0.97, 0.97, 0.98)),
        (19, (600, 900), (20, 30), (1100, 1800), (0.75, 0.82, 0.86)),
        (27, (400, 600), (60, 80), (900, 1400), (0.30, 0.55, 0.70)),
    ),
    "study": (
        (14, (1200, 1600), (600, 700), (0, 750), (0.55, 0.40, 0.27)),
        (5, (500, 600), (500, 600), (0, 1000), (0.20, 0.20, 0.22)),
        (10, (900, 1400), (300, 350), (0, 2000), (0.50, 0.36, 0.24)),
        (15, (800, 1000), (250, 300), (1200, 1500), (0.85, 0.82, 0.76)),
        (35, (300, 400), (300, 400), (0, 1600), (0.92, 0.88, 0.70)),
    ),
    "dining room": (
        (7, (1400, 1800), (800, 900), (0, 750), (0.48, 0.32, 0.20)),
        (5, (450, 500), (450, 500), (0, 950), (0.52, 0.36, 0.24)),
        (5, (450, 500), (450, 500), (0, 950), (0.52, 0.36, 0.24)),
        (3, (1200, 1800), (450, 500), (0, 1000), (0.70, 0.66, 0.60)),
        (PICTURE, (700, 1000), (30, 40), (1300, 1800), (0.45, 0.55, 0.35)),
    ),
}
# Wall colours per room type (several to choose from) and the floor each has.
WALL_COLOURS = {
    "bedroom": ((0.86, 0.80, 0.74), (0.78, 0.76, 0.84), (0.90, 0.87, 0.80)),
    "living room": ((0.90, 0.89, 0.86), (0.80, 0.80, 0.78), (0.88, 0.84, 0.76)),
    "kitchen": ((0.93, 0.93, 0.91), (0.82, 0.88, 0.80), (0.94, 0.90, 0.82)),
    "bathroom": ((0.80, 0.87, 0.92), (0.92, 0.93, 0.93), (0.84, 0.90, 0.88)),
    "study": ((0.90, 0.88, 0.74), (0.78, 0.82, 0.76), (0.84, 0.84, 0.84)),
    "dining room": ((0.92, 0.86, 0.76), (0.86, 0.78, 0.72), (0.90, 0.90, 0.86)),
}
TILED_FLOORS = frozenset({"kitchen", "bathroom"})
# Light colour per rendering: warm is orange, cold is blue, raw is neutral.
TINTS = {
    "rawlight": (1.0, 1.0, 1.0),
    "coldlight": (0.80, 0.92, 1.12),
    "warmlight": (1.12, 0.90, 0.66),
}
LIGHT_WORDS = {"rawlight": "neutral", "coldlight": "cold", "warmlight": "warm"}
FURNISHED_WORDS = {"full": "furnished", "simple": "sparsely furnished", "empty": "empty"}
SUN360_IMAGES = 6
SUN360_CATEGORIES = ("bedroom", "living_room", "kitchen", "bathroom", "dining_room")

# The damage the demo applies, and the error_type (sanitize.check.ERROR_TYPES) each must get.
DAMAGE_TYPES = {
    "zero_mid": "zero_filled",  # interrupted write: zeros from inside an early IDAT
    "zero_last_idat": "zero_filled",  # zeros from late in the last IDAT: Pillow decodes it
    "zero_jpeg": "zero_filled",
    "truncate_idat": "truncated",
    "cut_iend": "truncated",  # only IEND missing: Pillow decodes it
    "truncate_jpeg": "truncated",
    "bit_flip": "checksum",
    "garbage_idat": "corrupt_data",  # valid CRCs around a garbage zlib stream
    "empty": "empty",
    "html": "not_an_image",
    "lfs": "not_an_image",
    "bomb": "too_large",
    "dangling": "missing",
}
# How many of each the tree always has; extra damage (up to DAMAGED_SHARE) repeats these.
_REQUIRED = {"zero_last_idat": 2} | {kind: 1 for kind in DAMAGE_TYPES if kind != "zero_last_idat"}
_EXTRA_KINDS = ("zero_mid", "zero_last_idat", "truncate_idat", "cut_iend", "bit_flip")
_REPLACING_KINDS = ("empty", "html", "lfs", "bomb", "dangling")
_JPEG_KINDS = ("zero_jpeg", "truncate_jpeg")
# Damage that needs several IDAT chunks hits only the maps that compress poorly.
_BYTE_DAMAGE_MAPS = frozenset({"rgb_rawlight", "rgb_coldlight", "rgb_warmlight", "albedo"})


class DemoError(ValueError):
    """The demo tree cannot be written where asked; the message is one line."""


@dataclass(frozen=True)
class DemoTree:
    """What `make_demo_tree` wrote."""

    root: Path
    images: int
    damaged: int
    seconds: float


def make_demo_tree(dest: Path, scenes: int = 3, seed: int = 0, progress: bool = True) -> DemoTree:
    """Write the demo tree to `dest` (built beside it, renamed into place at the very end)."""
    started = time.perf_counter()
    dest = Path(dest)
    most = sum(stop - start for start, stop in SPLITS.values())
    if not 1 <= scenes <= most:
        raise DemoError(f"scenes must be between 1 and {most} (Structured3D's ids), not {scenes}")
    if seed < 0:
        raise DemoError(f"seed must be 0 or more, not {seed}")
    if dest.is_symlink():
        raise DemoError(f"{dest} is a symlink; give the folder itself")
    if dest.exists() and not dest.is_dir():
        raise DemoError(f"{dest} exists and is not a directory")
    if dest.is_dir() and any(dest.iterdir()):
        raise DemoError(f"{dest} exists and is not empty")
    final = dest.resolve()
    plan = _plan(scenes, seed)
    tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)  # a leftover of an earlier run with this pid
        tmp.mkdir()
        with tqdm(
            total=plan.files, unit="file", desc="demo", disable=None if progress else True
        ) as bar:
            writer = _Writer(tmp, final, plan, bar)
            _write_all(writer, plan)
            truth = writer.finish()
        tmp.rename(dest)  # atomic: dest is either absent, empty, or the whole tree
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DemoError(f"cannot write the demo tree to {dest}: {exc.strerror or exc}") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return DemoTree(final, plan.images, len(truth), time.perf_counter() - started)


# ----------------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class _Box:
    cls: int
    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    colour: tuple[float, float, float]


@dataclass(frozen=True)
class _Opening:
    cls: int  # DOOR or WINDOW
    wall: int
    s: tuple[float, float]  # along the wall, mm
    z: tuple[float, float]


@dataclass(frozen=True)
class _Room:
    room_id: str
    kind: str
    size: tuple[float, float, float]  # x, y extent and ceiling height, mm
    origin: tuple[float, float]  # where the room lies in the scene
    camera: tuple[float, float, float]  # panorama camera, room coordinates
    persp_camera: tuple[float, float, float]
    yaw: float
    pitch: float
    wall_colours: tuple[tuple[float, float, float], ...]
    boxes: tuple[_Box, ...]
    simple: tuple[int, ...]  # indices of the boxes the "simple" configuration keeps
    openings: tuple[_Opening, ...]
    lamps: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class _Scene:
    scene_id: str
    rooms: tuple[_Room, ...]


@dataclass(frozen=True)
class _Plan:
    seed: int
    scenes: tuple[_Scene, ...]
    sun360: tuple[tuple[str, _Room, str], ...]  # (relpath, room, light)
    damage: dict[str, str]  # relpath -> damage kind
    images: int
    files: int


def _plan(scenes: int, seed: int) -> _Plan:
    """Every path and every random choice, before any pixel is rendered."""
    rng = np.random.default_rng([seed, 0x5D3])
    scene_list = tuple(
        _Scene(f"scene_{number:05d}", _rooms(rng)) for number in _scene_numbers(scenes, rng)
    )
    sun360 = _sun360(rng)
    pngs = [path for scene in scene_list for path in _scene_images(scene)]
    jpegs = [path for path, _room, _light in sun360]
    images = len(pngs) + len(jpegs)
    files = images + sum(1 + len(scene.rooms) * 6 for scene in scene_list) + 2
    damage_plan = _choose_damage(pngs, jpegs, images, rng)
    return _Plan(seed, scene_list, sun360, damage_plan, images, files)


def _scene_numbers(count: int, rng: np.random.Generator) -> list[int]:
    """Scene numbers spread over the official splits: at least one val and one test from 3."""
    held_out = 0 if count < 3 else max(1, round(count * 250 / 3500))
    counts = {"train": count - 2 * held_out, "val": held_out, "test": held_out}
    if count == 2:
        counts = {"train": 1, "val": 1, "test": 0}
    numbers = []
    for split, (start, stop) in SPLITS.items():
        numbers += rng.choice(np.arange(start, stop), counts[split], replace=False).tolist()
    return sorted(numbers)


def _rooms(rng: np.random.Generator) -> tuple[_Room, ...]:
    ids = rng.choice(np.arange(1_000, 1_000_000), ROOMS_PER_SCENE, replace=False)
    kinds = rng.choice(list(FURNITURE), ROOMS_PER_SCENE, replace=False)
    rooms = []
    x0 = 0.0
    for room_id, kind in zip(ids, kinds, strict=True):
        rooms.append(_room(str(room_id), str(kind), (x0, 0.0), rng))
        x0 += rooms[-1].size[0] + 120.0  # the next room, behind a 12 cm wall
    return tuple(rooms)


def _room(room_id: str, kind: str, origin: tuple[float, float], rng: np.random.Generator) -> _Room:
    width, depth = (float(v) for v in rng.uniform((3600, 3200), (6400, 5600)))
    height = float(rng.uniform(2600, 3000))
    cams = [
        (
            float(rng.uniform(0.4, 0.6) * width),
            float(rng.uniform(0.4, 0.6) * depth),
            float(rng.uniform(1350, 1650)),
        )
        for _ in range(2)
    ]
    colours = WALL_COLOURS[kind]
    base = np.array(colours[rng.integers(len(colours))])
    # Walls differ a little, as paint under different light does.
    wall_colours = tuple(tuple(np.clip(base * rng.uniform(0.94, 1.04), 0, 1)) for _ in range(4))
    boxes = tuple(_furniture(kind, (width, depth, height), cams, rng))
    order = rng.permutation(len(boxes))
    simple = tuple(sorted(int(i) for i in order[: (len(boxes) + 1) // 2]))
    openings = _openings((width, depth), rng)
    lamps = tuple(
        (float(rng.uniform(0.3, 0.7) * width), float(rng.uniform(0.3, 0.7) * depth))
        for _ in range(int(rng.integers(1, 3)))
    )
    return _Room(
        room_id=room_id,
        kind=kind,
        size=(width, depth, height),
        origin=origin,
        camera=cams[0],
        persp_camera=cams[1],
        yaw=float(rng.uniform(-math.pi, math.pi)),
        pitch=float(rng.uniform(-0.15, 0.1)),
        wall_colours=wall_colours,
        boxes=boxes,
        simple=simple,
        openings=openings,
        lamps=lamps,
    )


def _furniture(
    kind: str,
    size: tuple[float, float, float],
    cams: list[tuple[float, float, float]],
    rng: np.random.Generator,
) -> Iterator[_Box]:
    width, depth, height = size
    for cls, w_range, d_range, (bottom, top), colour in FURNITURE[kind]:
        wall = int(rng.integers(4))
        length = width if wall in (0, 2) else depth
        w = min(float(rng.uniform(*w_range)), length - 400)
        d = float(rng.uniform(*d_range))
        s0 = float(rng.uniform(150, length - w - 150))
        # Keep every camera out of the box (a camera inside sees only the box).
        along_y = wall in (0, 2)
        room_span = depth if along_y else width
        for cam in cams:
            if bottom < cam[2] < min(top, height):
                gap = cam[1] if along_y else cam[0]
                gap = gap if wall in (0, 3) else room_span - gap
                d = min(d, gap - 400)
        lo_s, hi_s = s0, s0 + w
        lo_n, hi_n = (0.0, d) if wall in (0, 3) else (room_span - d, room_span)
        if wall == 2:  # wall 2 runs from x = width back to 0
            lo_s, hi_s = width - hi_s, width - lo_s
        if wall == 3:
            lo_s, hi_s = depth - hi_s, depth - lo_s
        if along_y:
            lo, hi = (lo_s, lo_n, bottom), (hi_s, hi_n, min(top, height - 10))
        else:
            lo, hi = (lo_n, lo_s, bottom), (hi_n, hi_s, min(top, height - 10))
        tint = np.clip(np.array(colour) * rng.uniform(0.9, 1.1, 3), 0, 1)
        yield _Box(cls, lo, hi, tuple(float(v) for v in tint))


def _openings(size: tuple[float, float], rng: np.random.Generator) -> tuple[_Opening, ...]:
    walls = rng.permutation(4)
    openings = [_Opening(DOOR, int(walls[0]), *_span(size, int(walls[0]), 900, rng), (0, 2100))]
    for wall in walls[1 : 1 + int(rng.integers(1, 3))]:
        s = _span(size, int(wall), float(rng.uniform(1000, 1800)), rng)
        openings.append(_Opening(WINDOW, int(wall), *s, (900, 2200)))
    return tuple(openings)


def _span(
    size: tuple[float, float], wall: int, width: float, rng: np.random.Generator
) -> tuple[tuple[float, float]]:
    length = size[0] if wall in (0, 2) else size[1]
    width = min(width, length - 600)
    s0 = float(rng.uniform(300, length - width - 300))
    return ((s0, s0 + width),)


def _sun360(rng: np.random.Generator) -> tuple[tuple[str, _Room, str], ...]:
    """SUN360-style JPEG panoramas: mixed extension case, and one JPEG named `.png`."""
    extensions = [".jpg"] * (SUN360_IMAGES - 2) + [".JPG", ".jpeg"]
    extensions = [extensions[i] for i in rng.permutation(len(extensions))] + [".png"]
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    out = []
    for ext in extensions:
        category = str(rng.choice(SUN360_CATEGORIES))
        room = _room("0", category.replace("_", " "), (0.0, 0.0), rng)
        name = "pano_" + "".join(rng.choice(letters, 14))
        out.append((f"SUN360/{category}/{name}{ext}", room, str(rng.choice(LIGHTS))))
    return tuple(out)


def _scene_images(scene: _Scene) -> Iterator[str]:
    for room in scene.rooms:
        base = f"Structured3D/{scene.scene_id}/2D_rendering/{room.room_id}"
        for config in PANO_CONFIGS:
            for name in PANO_MAPS:
                yield f"{base}/panorama/{config}/{name}.png"
        for config in PERSP_CONFIGS:
            for name in PERSP_MAPS:
                yield f"{base}/perspective/{config}/0/{name}.png"


def _choose_damage(
    pngs: list[str], jpegs: list[str], images: int, rng: np.random.Generator
) -> dict[str, str]:
    """relpath -> damage kind: one of each kind (two late zero fills), then ~10% in all."""
    kinds = [kind for kind, count in _REQUIRED.items() for _ in range(count)]
    extra = max(0, round(images * DAMAGED_SHARE) - len(kinds))
    kinds += [str(k) for k in rng.choice(_EXTRA_KINDS, extra)]
    # Late zero fills hit panorama RGB (the CSV's images: training decodes them to garbage);
    # other byte damage hits any large RGB map; replacements hit any PNG.
    pano_rgb = [p for p in pngs if "/panorama/" in p and Path(p).stem.startswith("rgb_")]
    rgb = [p for p in pngs if Path(p).stem in _BYTE_DAMAGE_MAPS]
    pools = {"zero_last_idat": pano_rgb, **dict.fromkeys(_JPEG_KINDS, jpegs[:-1])}
    pools |= dict.fromkeys(_REPLACING_KINDS, pngs)
    chosen: dict[str, str] = {}
    for kind in kinds:
        pool = [p for p in pools.get(kind, rgb) if p not in chosen]
        chosen[pool[int(rng.integers(len(pool)))]] = kind
    return chosen


# ------------------------------------------------------------------------------------ writing


class _Writer:
    """Writes files into the temporary tree, applying the planned damage to images."""

    def __init__(self, tmp: Path, final: Path, plan: _Plan, bar: tqdm) -> None:
        self.tmp = tmp
        self.final = final
        self.plan = plan
        self.bar = bar
        self.rows: list[tuple[str, str, str]] = []
        self.originals: dict[str, bytes] = {}  # damaged Structured3D images, before the damage
        self._lock = threading.Lock()

    def text(self, relpath: str, text: str) -> None:
        self._put(relpath, text.encode())

    def image(self, relpath: str, data: bytes) -> None:
        kind = self.plan.damage.get(relpath)
        if kind is not None and relpath.startswith("Structured3D/"):
            with self._lock:
                self.originals[relpath] = data
        if kind == "dangling":  # a tree assembled with links into a store that is gone
            path = self.tmp / relpath
            path.parent.mkdir(parents=True, exist_ok=True)
            depth = relpath.count("/")
            digest = zlib.crc32(data) & 0xFFFFFFFF
            os.symlink("../" * depth + f".image-store/{digest:08x}{Path(relpath).suffix}", path)
            self._advance()
            return
        if kind is not None:
            rng = np.random.default_rng([self.plan.seed, _key(relpath), 1])  # not the render's
            data = _damaged(data, kind, rng)
        self._put(relpath, data)

    def annotate(self, relpath: str, annotation: str) -> None:
        with self._lock:
            self.rows.append(((self.final / relpath).as_posix(), QUERY, annotation))

    def finish(self) -> list[tuple[str, str]]:
        """Write the annotations, then the truth (last: it marks the tree as built)."""
        _write_csv(self.tmp / ANNOTATIONS, ("url", "query", "annotation"), sorted(self.rows))
        _write_archives(self.tmp / ARCHIVES, self.originals)
        self._advance()
        truth = sorted((path, DAMAGE_TYPES[kind]) for path, kind in self.plan.damage.items())
        _write_csv(self.tmp / TRUTH_NAME, ("relpath", "error_type"), truth)
        self._advance()
        return truth

    def _put(self, relpath: str, data: bytes) -> None:
        path = self.tmp / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self._advance()

    def _advance(self) -> None:
        with self._lock:
            self.bar.update()


def _write_archives(folder: Path, originals: dict[str, bytes]) -> None:
    """Archives as downloaded: good copies of most damaged images, with the usual surprises.

    The first damaged image is in no archive, the second's entry is itself damaged (a bad
    CRC), and the perspective archive is a 7z under a .zip name, as some real ones are.
    """
    folder.mkdir(parents=True, exist_ok=True)
    names = sorted(originals)
    panorama = folder / "Structured3D_panorama_00.zip"
    with zipfile.ZipFile(panorama, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in names[1:]:  # a fixed date: the same seed gives the same bytes
            archive.writestr(
                zipfile.ZipInfo(name, date_time=(2019, 8, 1, 0, 0, 0)), originals[name]
            )
    if len(names) > 2:
        with zipfile.ZipFile(panorama) as archive:
            info = archive.getinfo(names[1])
        data = bytearray(panorama.read_bytes())
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        data[start + info.file_size // 2] ^= 0x40  # bit rot inside the stored entry
        panorama.write_bytes(bytes(data))
    seven_zip = b"7z\xbc\xaf\x27\x1c\x00\x04" + bytes(range(256)) * 8
    (folder / "Structured3D_perspective_00.zip").write_bytes(seven_zip)


def _key(relpath: str) -> int:
    return zlib.crc32(relpath.encode())


def _write_csv(path: Path, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(header)
        out.writerows(rows)


def _write_all(writer: _Writer, plan: _Plan) -> None:
    """Render rooms on a few threads (numpy and zlib release the GIL); bytes depend on the
    seed and path only, so the thread schedule never changes the tree."""
    tasks: list[Callable[[], None]] = []
    for scene in plan.scenes:
        writer.text(f"Structured3D/{scene.scene_id}/annotation_3d.json", _annotation_3d(scene))
        for room in scene.rooms:
            tasks.append(lambda s=scene, r=room: _write_room(writer, s, r))
    tasks += [lambda item=item: _write_sun360(writer, *item) for item in plan.sun360]
    pool = ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1)))
    try:
        for future in [pool.submit(task) for task in tasks]:
            future.result()
    finally:  # on failure, wait only for the rooms being written before the tree is removed
        pool.shutdown(cancel_futures=True)


def _write_room(writer: _Writer, scene: _Scene, room: _Room) -> None:
    base = f"Structured3D/{scene.scene_id}/2D_rendering/{room.room_id}"
    rng = np.random.default_rng([writer.plan.seed, _key(base)])
    width, height = PANO_SIZE
    dirs = _pano_dirs(width, height)
    scene_cam = (room.camera[0] + room.origin[0], room.camera[1] + room.origin[1], room.camera[2])
    writer.text(f"{base}/panorama/camera_xyz.txt", " ".join(f"{v:.1f}" for v in scene_cam) + "\n")
    writer.text(f"{base}/panorama/layout.txt", _pano_layout(room, width, height))
    trace = _Tracer(room, room.camera, dirs)
    for config in PANO_CONFIGS:
        maps = _render(trace, room, config, (height, width), rng, PANO_MAPS)
        for name, data in maps.items():
            relpath = f"{base}/panorama/{config}/{name}.png"
            writer.image(relpath, data)
            if name.startswith("rgb_"):
                writer.annotate(relpath, _annotation(room, config, name[4:]))
    width, height = PERSP_SIZE
    dirs, forward, up, yfov = _persp_dirs(room.yaw, room.pitch, width, height)
    trace = _Tracer(room, room.persp_camera, dirs)
    for config in PERSP_CONFIGS:
        folder = f"{base}/perspective/{config}/0"
        for name, data in _render(trace, room, config, (height, width), rng, PERSP_MAPS).items():
            writer.image(f"{folder}/{name}.png", data)
        cam = [room.persp_camera[0] + room.origin[0], room.persp_camera[1] + room.origin[1]]
        pose = [*cam, room.persp_camera[2], *forward, *up, PERSP_XFOV, yfov, 1]
        writer.text(f"{folder}/camera_pose.txt", " ".join(f"{v:.6g}" for v in pose) + "\n")
        writer.text(f"{folder}/layout.json", _persp_layout(room, forward, up, yfov, config))


def _write_sun360(writer: _Writer, relpath: str, room: _Room, light: str) -> None:
    rng = np.random.default_rng([writer.plan.seed, _key(relpath)])
    width, height = PANO_SIZE
    trace = _Tracer(room, room.camera, _pano_dirs(width, height))
    maps = _render(trace, room, "full", (height, width), rng, (f"rgb_{light}",), jpeg=True)
    writer.image(relpath, maps[f"rgb_{light}"])
    writer.annotate(relpath, _annotation(room, "full", light))


def _annotation(room: _Room, config: str, light: str) -> str:
    windows = sum(o.cls == WINDOW for o in room.openings)
    furnished = FURNISHED_WORDS[config]
    article = "An" if furnished[0] in "aeiou" else "A"
    plural = "s" if windows > 1 else ""
    return (
        f"{article} {furnished} {room.kind} under {LIGHT_WORDS[light]} light, "
        f"with a door and {windows} window{plural}."
    )


# ----------------------------------------------------------------------------------- damaging


def _damaged(data: bytes, kind: str, rng: np.random.Generator) -> bytes:
    """Apply one damage kind; offsets are drawn so that the kind is unambiguous."""
    if kind == "empty":
        return b""
    if kind == "html":
        return damage.html_page()
    if kind == "lfs":
        return damage.lfs_pointer(size=len(data))
    if kind == "bomb":
        return _bomb()
    if kind == "zero_jpeg":
        return damage.zero_fill_tail(data, int(len(data) * rng.uniform(0.4, 0.8)))
    if kind == "truncate_jpeg":
        return damage.truncate(data, _nonzero_end(data, int(len(data) * 0.6)))
    if kind == "cut_iend":
        return damage.truncate(data, len(data) - 12)
    if kind == "zero_last_idat":
        return _late_zero_fill(data)
    if kind == "garbage_idat":
        return _garbage_idat(data, rng)
    # The rest hit a random point inside an IDAT body other than the last (never the
    # zlib header or the rows Pillow could still finish without).
    bodies = _idat_bodies(data)
    bodies = bodies[:-1] or bodies
    start, end = bodies[int(rng.integers(len(bodies)))]
    offset = int(rng.integers(start + 2, end))
    if kind == "zero_mid":
        return damage.zero_fill_tail(data, offset)
    if kind == "truncate_idat":
        return damage.truncate(data, _nonzero_end(data, offset))
    if kind == "bit_flip":
        return damage.flip_bit(data, offset, int(rng.integers(8)))
    raise ValueError(f"unknown damage kind {kind!r}")


def _late_zero_fill(data: bytes) -> bytes:
    """A zero fill late in the last IDAT that Pillow decodes without error (the dangerous
    case): the default offset nearly always is, else a nearby one is."""
    default = damage.zero_fill_in_last_idat(data)
    adler = _idat_bodies(data)[-1][1] - 4
    nearby = (damage.zero_fill_tail(data, adler - tail) for tail in (12, 24, 8, 32))
    # Any of them is zero_filled for the scanner; only Pillow's view could differ.
    candidates = itertools.chain([default], nearby)
    return next((filled for filled in candidates if _pillow_loads(filled)), default)


def _pillow_loads(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except Exception:
        return False
    return True


def _idat_bodies(data: bytes) -> list[tuple[int, int]]:
    chunks = damage.png_chunks(data)
    return [(start + 8, end - 4) for ctype, start, end in chunks if ctype == b"IDAT"]


def _nonzero_end(data: bytes, length: int) -> int:
    """A cut no earlier than `length` that does not end in zeros (those read as zero fill)."""
    while length < len(data) and data[length - 1] == 0:
        length += 1
    return length


def _garbage_idat(data: bytes, rng: np.random.Generator) -> bytes:
    """Overwrite every IDAT body with random bytes (as if another file's blocks landed there)
    and recompute the CRCs: only decoding finds it."""
    out = bytearray(data)
    for start, end in _idat_bodies(data):
        out[start:end] = rng.bytes(end - start)
    first = _idat_bodies(data)[0][0]
    out[first] = 0x07  # compression method 7 is invalid: no zlib ever accepts this stream
    return damage.fix_png_crcs(bytes(out))


@cache
def _bomb() -> bytes:
    return damage.decompression_bomb_png()


# ---------------------------------------------------------------------------------- rendering


@cache
def _pano_dirs(width: int, height: int) -> np.ndarray:
    """Unit ray per pixel of an equirectangular panorama, shape (3, height * width)."""
    theta = (np.arange(width, dtype=np.float32) + 0.5) / width * 2 * np.pi - np.pi
    phi = np.pi / 2 - (np.arange(height, dtype=np.float32) + 0.5) / height * np.pi
    cos_phi = np.cos(phi)[:, None]
    dirs = np.stack(
        [
            cos_phi * np.cos(theta)[None, :],
            cos_phi * np.sin(theta)[None, :],
            np.broadcast_to(np.sin(phi)[:, None], (height, width)),
        ]
    ).reshape(3, -1)
    dirs.flags.writeable = False
    return dirs


def _persp_dirs(
    yaw: float, pitch: float, width: int, height: int
) -> tuple[np.ndarray, tuple[float, ...], tuple[float, ...], float]:
    forward = np.array(
        [math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), math.sin(pitch)]
    )
    right = np.array([math.sin(yaw), -math.cos(yaw), 0.0])
    up = np.cross(right, forward)
    tan_x = math.tan(PERSP_XFOV)
    tan_y = tan_x * height / width
    xs = ((np.arange(width) + 0.5) / width * 2 - 1) * tan_x
    ys = (1 - (np.arange(height) + 0.5) / height * 2) * tan_y
    dirs = (
        forward[:, None, None]
        + right[:, None, None] * xs[None, None, :]
        + up[:, None, None] * ys[None, :, None]
    ).reshape(3, -1)
    dirs = (dirs / np.linalg.norm(dirs, axis=0)).astype(np.float32)
    return dirs, tuple(forward.round(6)), tuple(up.round(6)), math.atan(tan_y)


class _Tracer:
    """Ray-casts one camera's pixels against the room shell, then against each box once;
    configurations then only pick which boxes count."""

    def __init__(self, room: _Room, camera: tuple[float, float, float], dirs: np.ndarray) -> None:
        self.origin = np.array(camera, dtype=np.float32)[:, None]
        self.dirs = dirs
        d = np.where(np.abs(dirs) < 1e-7, np.float32(1e-7), dirs)
        inv = 1 / d
        far = np.array(room.size, dtype=np.float32)[:, None]
        # The room is a box around the camera: each ray leaves through the far side per axis.
        t_axis = np.where(d > 0, (far - self.origin) * inv, -self.origin * inv)
        axis = t_axis.argmin(axis=0)
        self.t = np.take_along_axis(t_axis, axis[None], 0)[0]
        positive = np.take_along_axis(d, axis[None], 0)[0] > 0
        # Regions: wall 0 (y = 0), 1 (x = max), 2 (y = max), 3 (x = 0), 4 floor, 5 ceiling.
        self.region = np.choose(
            axis, [np.where(positive, 1, 3), np.where(positive, 2, 0), np.where(positive, 5, 4)]
        ).astype(np.int16)
        self.box_t = np.full((len(room.boxes), dirs.shape[1]), np.inf, dtype=np.float32)
        self.box_axis = np.zeros((len(room.boxes), dirs.shape[1]), dtype=np.int8)
        for i, box in enumerate(room.boxes):
            lo = (np.array(box.lo, dtype=np.float32)[:, None] - self.origin) * inv
            hi = (np.array(box.hi, dtype=np.float32)[:, None] - self.origin) * inv
            near = np.minimum(lo, hi)
            t_near = near.max(axis=0)
            t_far = np.maximum(lo, hi).min(axis=0)
            hit = (t_far >= t_near) & (t_near > 0)
            self.box_t[i] = np.where(hit, t_near, np.inf)
            self.box_axis[i] = near.argmax(axis=0)


_WALL_NORMALS = np.array(
    [[0, 1, 0], [-1, 0, 0], [0, -1, 0], [1, 0, 0], [0, 0, 1], [0, 0, -1]], dtype=np.float32
)
_SHELL_CLASSES = np.array([WALL, WALL, WALL, WALL, FLOOR, CEILING], dtype=np.uint8)
_PALETTE = bytes(v for colour in NYU40_PALETTE for v in colour)


def _render(
    trace: _Tracer,
    room: _Room,
    config: str,
    shape: tuple[int, int],
    rng: np.random.Generator,
    names: tuple[str, ...],
    jpeg: bool = False,
) -> dict[str, bytes]:
    """Encode the maps `names` of one configuration of one view."""
    keep = {"full": range(len(room.boxes)), "simple": room.simple, "empty": ()}[config]
    n = trace.t.shape[0]
    t, region = trace.t, trace.region.astype(np.int16)
    normal = _WALL_NORMALS[region].T
    if keep:
        idx = np.array(list(keep))
        box_t = trace.box_t[idx]
        nearest = box_t.argmin(axis=0)
        t_box = np.take_along_axis(box_t, nearest[None], 0)[0]
        use = t_box < t
        t = np.where(use, t_box, t)
        region = np.where(use, (6 + idx[nearest]).astype(np.int16), region)
        axis = np.take_along_axis(trace.box_axis[idx], nearest[None], 0)[0].astype(np.intp)
        sign = -np.sign(trace.dirs[axis, np.arange(n)])
        box_normal = np.zeros_like(normal)
        box_normal[axis, np.arange(n)] = sign
        normal = np.where(use[None], box_normal, normal)
    point = trace.origin + trace.dirs * t
    opening = _opening_index(room, region, point)
    albedo, emission = _albedo(room, region, point, opening)
    shade = (
        _shading(room, point, normal, region) if any(n.startswith("rgb_") for n in names) else None
    )
    out: dict[str, bytes] = {}
    height, width = shape
    for name in names:
        if name.startswith("rgb_"):
            rgb = _rgb(albedo, shade, emission, TINTS[name[4:]], rng)
            out[name] = _encode(rgb.T.reshape(height, width, 3), jpeg)
        elif name == "albedo":
            out[name] = _encode(_to_u8(albedo, rng, 1.0).T.reshape(height, width, 3))
        elif name == "normal":
            wobble = 0.03 * np.sin(point[:2].sum(axis=0) / 900)
            colour = (normal + wobble) * 0.5 + 0.5
            out[name] = _encode(_to_u8(colour, rng, 0.7).T.reshape(height, width, 3))
        elif name == "depth":
            depth = t + rng.normal(0, 1.5, n).astype(np.float32)
            out[name] = _encode(np.clip(depth, 0, 65535).astype(np.uint16).reshape(shape))
        elif name == "semantic":
            cls = _classes(room, region, opening)
            out[name] = _encode_palette(cls.reshape(shape))
        elif name == "instance":
            inst = np.where(opening >= 0, 100 + opening, region + 1).astype(np.uint16)
            out[name] = _encode(inst.reshape(shape))
    return out


def _opening_index(room: _Room, region: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Index of the door or window each wall pixel shows, -1 elsewhere."""
    width, depth, _ = room.size
    x, y, z = point
    along = [x, y, width - x, depth - y]  # distance along each wall, walking around the room
    index = np.full(region.shape, -1, dtype=np.int16)
    for i, o in enumerate(room.openings):
        s = along[o.wall]
        inside = (region == o.wall) & (s > o.s[0]) & (s < o.s[1]) & (z > o.z[0]) & (z < o.z[1])
        index[inside] = i
    return index


def _classes(room: _Room, region: np.ndarray, opening: np.ndarray) -> np.ndarray:
    box_classes = np.array([b.cls for b in room.boxes], dtype=np.uint8)
    lookup = np.concatenate([_SHELL_CLASSES, box_classes])
    cls = lookup[region]
    opening_classes = np.array([o.cls for o in room.openings], dtype=np.uint8)
    return np.where(opening >= 0, opening_classes[opening], cls)


def _albedo(
    room: _Room, region: np.ndarray, point: np.ndarray, opening: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Surface colour (3, n) with textures, and which pixels emit light (windows, lamps)."""
    x, y, z = point
    ceiling = np.full(3, 0.93)
    floor = np.array([0.93, 0.92, 0.90] if room.kind in TILED_FLOORS else [0.62, 0.45, 0.30])
    colours = [*room.wall_colours, floor, ceiling, *(b.colour for b in room.boxes)]
    albedo = np.ascontiguousarray(np.asarray(colours, dtype=np.float32)[region].T)
    walls = region < 4
    # Paint is never perfectly even; planks and tiles pattern the floor.
    along = np.where((region == 0) | (region == 2), x, y)
    albedo[:, walls] *= 1 + 0.035 * np.sin(along[walls] / 700) * np.sin(z[walls] / 450)
    on_floor = region == 4
    fx, fy = x[on_floor], y[on_floor]
    if room.kind in TILED_FLOORS:
        grout = (np.mod(fx, 400) < 8) | (np.mod(fy, 400) < 8)
        pattern = np.where(grout, 0.6, 1.0 + 0.03 * np.sin(fx / 97) * np.cos(fy / 83))
    else:
        plank = np.floor(fx / 180)
        pattern = 0.85 + 0.15 * np.mod(np.sin(plank * 12.9898) * 43758.5453, 1.0)
        pattern = pattern * (1 + 0.05 * np.sin(fy / 37 + plank * 1.7))
        pattern = np.where(np.mod(fx, 180) < 4, 0.7, pattern)
    albedo[:, on_floor] *= pattern.astype(np.float32)
    emission = np.zeros(region.shape, dtype=np.float32)
    for i, o in enumerate(room.openings):
        here = opening == i
        if o.cls == WINDOW:  # daylight through the glass, brighter towards the sky
            sky = np.clip(0.75 + (z[here] - o.z[0]) / (o.z[1] - o.z[0]) * 0.2, 0, 1)
            albedo[:, here] = np.array([[0.80], [0.88], [1.0]], dtype=np.float32) * sky
            emission[here] = 1.0
        else:
            albedo[:, here] = np.array([[0.55], [0.40], [0.27]], dtype=np.float32)
    on_ceiling = region == 5
    for lx, ly in room.lamps:
        lamp = on_ceiling & ((x - lx) ** 2 + (y - ly) ** 2 < 160.0**2)
        albedo[:, lamp] = 1.0
        emission[lamp] = 1.0
    return albedo, emission


def _shading(room: _Room, point: np.ndarray, normal: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Ambient plus ceiling lamps (cosine, inverse square), darkened into corners."""
    width, depth, height = room.size
    shade = np.full(region.shape, 0.42, dtype=np.float32)
    for lx, ly in room.lamps:
        to_lamp = np.array([[lx], [ly], [height - 60]], dtype=np.float32) - point
        dist2 = (to_lamp**2).sum(axis=0)
        cos = np.maximum((normal * to_lamp).sum(axis=0), 0) / np.sqrt(dist2 + 1)
        shade += 0.9 * cos / (1 + dist2 / 4.0e6)
    x, y, z = point
    edge = np.minimum(np.minimum(x, width - x), np.minimum(y, depth - y))
    edge = np.where(region < 4, np.minimum(np.minimum(z, height - z), edge), edge)
    shade *= 1 - 0.25 * np.exp(-np.maximum(edge, 0) / 250)
    return shade


def _rgb(
    albedo: np.ndarray,
    shade: np.ndarray,
    emission: np.ndarray,
    tint: tuple[float, float, float],
    rng: np.random.Generator,
) -> np.ndarray:
    light = np.array(tint, dtype=np.float32)[:, None]
    lit = albedo * np.maximum(shade, emission * 1.15) * np.where(emission > 0, 1.0, light)
    return _to_u8(lit, rng, 2.2)


def _to_u8(values: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    """0-1 floats to bytes, with renderer noise (a path tracer's; it sets the file size)."""
    noisy = values * 255 + rng.standard_normal(values.shape, dtype=np.float32) * noise
    return np.clip(noisy + 0.5, 0, 255).astype(np.uint8)


def _encode(array: np.ndarray, jpeg: bool = False) -> bytes:
    image = Image.fromarray(np.ascontiguousarray(array))
    out = io.BytesIO()
    if jpeg:
        image.save(out, "JPEG", quality=JPEG_QUALITY)
    else:
        image.save(out, "PNG", compress_level=PNG_LEVEL)
    return out.getvalue()


def _encode_palette(indices: np.ndarray) -> bytes:
    height, width = indices.shape
    image = Image.frombytes("P", (width, height), np.ascontiguousarray(indices).tobytes())
    image.putpalette(_PALETTE)
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=6)
    return out.getvalue()


# ------------------------------------------------------------------------------ text and json


def _equirect(
    room: _Room, point: tuple[float, float, float], width: int, height: int
) -> tuple[float, float]:
    dx, dy, dz = (p - c for p, c in zip(point, room.camera, strict=True))
    theta = math.atan2(dy, dx)
    phi = math.atan2(dz, math.hypot(dx, dy))
    return (theta + math.pi) / (2 * math.pi) * width - 0.5, (0.5 - phi / math.pi) * height - 0.5


def _corners(room: _Room) -> list[tuple[float, float]]:
    width, depth, _ = room.size
    return [(0.0, 0.0), (width, 0.0), (width, depth), (0.0, depth)]


def _pano_layout(room: _Room, width: int, height: int) -> str:
    """Structured3D's panorama layout.txt: ceiling and floor corner pixels, left to right."""
    pairs = []
    for cx, cy in _corners(room):
        top = _equirect(room, (cx, cy, room.size[2]), width, height)
        bottom = _equirect(room, (cx, cy, 0.0), width, height)
        pairs.append((top, bottom))
    lines = []
    for top, bottom in sorted(pairs):
        lines += [f"{round(top[0])} {round(top[1])}", f"{round(bottom[0])} {round(bottom[1])}"]
    return "\n".join(lines) + "\n"


def _persp_layout(
    room: _Room, forward: tuple[float, ...], up: tuple[float, ...], yfov: float, config: str
) -> str:
    """A small layout.json: corner junctions projected into the image, and the planes."""
    f, u = np.array(forward), np.array(up)
    r = np.cross(f, u)
    cam = np.array(room.persp_camera)
    width, height = PERSP_SIZE
    focal = width / 2 / math.tan(PERSP_XFOV)
    junctions = []
    for cx, cy in _corners(room):
        for cz in (room.size[2], 0.0):
            v = np.array([cx, cy, cz]) - cam
            ahead = float(v @ f)
            col = width / 2 + focal * float(v @ r) / ahead if ahead > 1 else -1.0
            row = height / 2 - focal * float(v @ u) / ahead if ahead > 1 else -1.0
            visible = ahead > 1 and 0 <= col < width and 0 <= row < height
            junctions.append(
                {"ID": len(junctions), "coordinate": [round(col, 2), round(row, 2)],
                 "isvisible": visible}
            )  # fmt: skip
    planes = [
        {"ID": i, "type": "wall" if i < 4 else ("floor" if i == 4 else "ceiling"),
         "normal": [float(v) for v in _WALL_NORMALS[i]]}
        for i in range(6)
    ]  # fmt: skip
    layout = {"junctions": junctions, "planes": planes, "configuration": config}
    return json.dumps(layout, indent=1) + "\n"


def _annotation_3d(scene: _Scene) -> str:
    """A small annotation_3d.json: room corners, planes and room semantics, in mm."""
    junctions, planes, semantics = [], [], []
    for room in scene.rooms:
        ox, oy = room.origin
        for cx, cy in _corners(room):
            for cz in (0.0, room.size[2]):
                coordinate = [round(ox + cx, 1), round(oy + cy, 1), round(cz, 1)]
                junctions.append({"ID": len(junctions), "coordinate": coordinate})
        first = len(planes)
        for i, normal in enumerate(_WALL_NORMALS):
            kind = "wall" if i < 4 else ("floor" if i == 4 else "ceiling")
            planes.append({"ID": len(planes), "type": kind, "normal": normal.tolist()})
        semantics.append(
            {"ID": int(room.room_id), "type": room.kind, "planeID": list(range(first, len(planes)))}
        )
    document = {
        "junctions": junctions,
        "lines": [],
        "planes": planes,
        "semantics": semantics,
        "cuboids": [],
        "manhattan": [],
    }
    return json.dumps(document) + "\n"
