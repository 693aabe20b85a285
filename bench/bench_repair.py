"""Benchmark `sanitize repair` on a large archive: 400 damaged files, one zip of 40,000 entries.

Side by side in one run (medians of repeats, per file): reading entries the naive way (open the
zip for each file, which re-reads its central directory; timed on 40 files, it is slow) vs
`sanitize.repair`'s plan (CRC check of each entry) and execute (extract, verify, rename), which
keep the archive open.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from sanitize import damage
from sanitize.archives import index_archives
from sanitize.repair import execute_repair, plan_repair

NAIVE = 40  # files read the naive way
PANO = "Structured3D/scene_{:05d}/2D_rendering/{}/panorama/full/rgb_rawlight.png"


def build(root: Path, entries: int, every: int) -> list[dict]:
    """A stored zip of `entries` small PNGs; every `every`-th one damaged under `root/data`."""
    pixels = np.random.default_rng(0).integers(0, 255, (64, 128, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    png = buffer.getvalue()
    (root / "archives").mkdir(parents=True)
    rows = []
    archive = root / "archives" / "Structured3D_panorama_00.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for i in range(entries):
            relpath = PANO.format(i // 100, i)
            zf.writestr(relpath, png)
            if i % every == 0:
                path = root / "data" / relpath
                path.parent.mkdir(parents=True, exist_ok=True)
                rows.append({"relpath": relpath, "error_type": "truncated"})
    return rows


def damage_all(root: Path, rows: list[dict]) -> None:
    with zipfile.ZipFile(root / "archives" / "Structured3D_panorama_00.zip") as zf:
        for row in rows:
            good = zf.read(row["relpath"])
            (root / "data" / row["relpath"]).write_bytes(damage.truncate(good, len(good) // 2))


def naive_reads(archive: Path, names: list[str]) -> None:
    for name in names:
        with zipfile.ZipFile(archive) as zf, zf.open(name) as f:
            while f.read(1 << 20):
                pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--entries", type=int, default=40_000)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"naive: open per file": [], "plan": [], "execute": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows = build(root, args.entries, 100)
        index = index_archives(root / "archives")
        names = [row["relpath"] for row in rows]
        for _ in range(args.repeat):
            damage_all(root, rows)
            started = time.perf_counter()
            naive_reads(root / "archives" / "Structured3D_panorama_00.zip", names[:NAIVE])
            times["naive: open per file"].append((time.perf_counter() - started) / NAIVE)
            started = time.perf_counter()
            plan = plan_repair(str(root / "data"), rows, index)
            times["plan"].append((time.perf_counter() - started) / len(rows))
            started = time.perf_counter()
            result = execute_repair(plan)
            times["execute"].append((time.perf_counter() - started) / len(rows))
            assert len(result.repaired) == len(rows), result.failed
        shutil.rmtree(root / "data")
    naive = statistics.median(times["naive: open per file"])
    print(f"Repair of {len(rows):,} files from one zip of {args.entries:,} entries")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"  {name:<22}{median * 1e3:>8.2f} ms/file  {naive / median:>7.1f}x")


if __name__ == "__main__":
    main()
