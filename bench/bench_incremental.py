"""Benchmark the scan at scale: re-scan cost, peak memory from 10k to 100k files, walk speed.

Side by side in one run (medians of interleaved repeats):
  1. full scan vs re-scan with nothing changed vs re-scan with 1% changed, 10k real-size images;
  2. peak RSS of the parent and of the workers at 10k and 100k files;
  3. listing a tree of a million entries.
Trees are hardlinks to a few real images (cheap to build, built once under data/bench/).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from sanitize import damage
from sanitize.walk import walk_images

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "data" / "bench"


def link_tree(dest: Path, sources: list[Path], count: int) -> Path:
    """`count` Structured3D-shaped paths, each a hardlink to one of `sources`."""
    marker = dest / ".complete"
    if marker.exists() and marker.read_text() == str(count):
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    kinds = ["rgb_rawlight", "rgb_coldlight", "rgb_warmlight", "albedo", "depth", "normal"]
    for i in range(count):
        folder = dest / f"Structured3D/scene_{i // 600:05d}/2D_rendering/{i // 6}/panorama/full"
        folder.mkdir(parents=True, exist_ok=True)
        os.link(sources[i % len(sources)], folder / f"{kinds[i % 6]}.png")
    marker.write_text(str(count))
    return dest


def small_sources(folder: Path, count: int = 97) -> list[Path]:
    """Small real PNGs (one in ten damaged), for trees whose point is the file count."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{i}.png"
        if not path.exists():
            rng = np.random.default_rng(i)
            img = Image.fromarray(rng.integers(0, 255, (32, 64, 3), dtype=np.uint8))
            img.save(path)
            if i % 10 == 0:
                path.write_bytes(damage.truncate(path.read_bytes(), 300))
        paths.append(path)
    return paths


def scan(tree: Path, state: Path, *extra: str) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "sanitize", "scan", str(tree), "--out", out, "--json"]
        cmd += ["--state", str(state), "--no-progress", *extra]
        started = time.perf_counter()
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        return time.perf_counter() - started, json.loads(done.stdout)


def change_files(tree: Path, share: float, round_: int) -> int:
    """Rewrite `share` of the files (new inode, new mtime), as a repair or re-download would."""
    files = sorted(tree.rglob("*.png"))
    step = int(1 / share)
    for path in files[round_ % step :: step]:
        data = path.read_bytes()
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return len(files[round_ % step :: step])


def rescan_costs(tree: Path, repeat: int) -> None:
    print(f"\n1. Re-scans, {sum(1 for _ in walk_images(str(tree))):,} real-size images")
    times: dict[str, list[float]] = {"full scan": [], "no change": [], "1% changed": []}
    decoded: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(repeat):
            state = Path(tmp) / f"state{round_}"
            for name, extra in [("full scan", ()), ("no change", ()), ("1% changed", ())]:
                if name == "1% changed":
                    change_files(tree, 0.01, round_)
                seconds, summary = scan(tree, state, *extra)
                times[name].append(seconds)
                decoded[name] = summary["checked"]
    full = statistics.median(times["full scan"])
    for name, samples in times.items():
        median = statistics.median(samples)
        print(
            f"  {name:<12}{median:>8.2f} s  decoded {decoded[name]:>6,}"
            f"  {full / median:>7.1f}x faster than a full scan"
        )


PEAK = """
import json, resource, sys
from joblib.externals.loky import get_reusable_executor
from sanitize.cli import main
main(sys.argv[1:])
get_reusable_executor().shutdown(wait=True)
print(json.dumps({
    "parent": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "workers": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
}))
"""


def peak_rss(tree: Path) -> dict:
    with tempfile.TemporaryDirectory() as out:
        args = ["scan", str(tree), "--out", out, "--state", f"{out}/state", "--no-progress"]
        done = subprocess.run(
            [sys.executable, "-c", PEAK, *args, "--json"],
            check=True,
            capture_output=True,
            text=True,
        )
        return json.loads(done.stdout.strip().splitlines()[-1])


def memory(small: list[Path]) -> None:
    print("\n2. Peak RSS (MiB), kernel maxima, small images")
    rows = {}
    for count in (10_000, 100_000):
        tree = link_tree(BENCH / f"small{count // 1000}k", small, count)
        rows[count] = peak_rss(tree)
        print(f"  {count:>7,} files: parent {rows[count]['parent']:6.1f}  "
              f"worker {rows[count]['workers']:6.1f}")  # fmt: skip
    for who in ("parent", "workers"):
        growth = rows[100_000][who] / rows[10_000][who] - 1
        print(f"  {who:<8} growth 10k -> 100k: {growth:+.1%}")


def walk_speed(entries: int, repeat: int) -> None:
    tree = BENCH / f"walk{entries // 1000}k"
    if not (tree / ".complete").exists():
        shutil.rmtree(tree, ignore_errors=True)
        print(f"  building {entries:,} entries under {tree} (once)...", flush=True)
        for d in range(entries // 100):
            folder = tree / f"scene_{d // 100:05d}" / f"room_{d}"
            folder.mkdir(parents=True)
            for f in range(100):
                (folder / f"{f}.png").touch()
        (tree / ".complete").touch()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        count = sum(1 for _ in walk_images(str(tree)))
        times.append(time.perf_counter() - started)
    print(f"\n3. Walk: {count:,} files in {statistics.median(times):.2f} s (median of {repeat})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--walk-entries", type=int, default=1_000_000)
    args = parser.parse_args()
    real = [
        p for p in sorted((BENCH / "tree").rglob("*.png")) if p.is_file() and not p.is_symlink()
    ]
    if not real:
        sys.exit("run bench/bench_scan.py first: it builds data/bench/tree")
    rescan_costs(link_tree(BENCH / f"real{args.images // 1000}k", real, args.images), args.repeat)
    memory(small_sources(BENCH / "small-sources"))
    walk_speed(args.walk_entries, args.repeat)


if __name__ == "__main__":
    main()
