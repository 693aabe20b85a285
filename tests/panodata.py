"""Small manifests and images for the training-side tests, made on the spot."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def make_image(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (32, 16)) -> str:
    """A solid-colour PNG (width, height); its absolute path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return str(path.resolve())


def write_manifest(path: Path, columns: dict[str, list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


def colour_manifest(folder: Path, names: list[str], *, extra: dict | None = None) -> Path:
    """One row per colour name: url, query, annotation "A <name> room.", and image columns."""
    urls = [
        make_image(folder / "img" / f"{i:03d}_{n}.png", COLOURS[n]) for i, n in enumerate(names)
    ]
    columns = {
        "url": urls,
        "query": [f"Describe picture {i}." for i in range(len(names))],
        "annotation": [f"A {name} room." for name in names],
        "relpath": [Path(u).name for u in urls],
        "format": ["PNG"] * len(names),
        "width": pa.array([32] * len(names), pa.int32()),
        "split": [None] * len(names),
        **(extra or {}),
    }
    return write_manifest(folder / "clean.parquet", columns)


def damage(path: str) -> None:
    """Rot a file after the scan: cut it in half."""
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2])
