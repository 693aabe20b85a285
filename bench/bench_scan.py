"""Benchmark: `sanitize scan` at --jobs 1 and all cores against a plain serial Pillow loop.

All variants run side by side on the same tree (warm page cache), interleaved, and the
medians and ratios are printed. Run with `make bench`; the tree is built once under data/bench.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from sanitize.demo import make_demo_tree
from sanitize.walk import walk_images

ROOT = Path(__file__).resolve().parents[1]


def pillow_loop(paths: list[str]) -> int:
    """What users ran before: open, load, convert, catch everything."""
    broken = 0
    for path in paths:
        try:
            with Image.open(path) as image:
                image.load()
                image.convert("RGB")
        except Exception:
            broken += 1
    return broken


def time_scan(tree: Path, jobs: int, extra: list[str]) -> float:
    """Wall time of the real command line, start-up and manifest writing included."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "sanitize", "scan", str(tree), "--out", out, "--full"]
        cmd += ["--state", os.path.join(out, "state"), "--jobs", str(jobs), "--no-progress"]
        cmd += extra
        started = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenes", type=int, default=14, help="demo scenes (about 75 images each)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tree", type=Path, default=ROOT / "data" / "bench" / "tree")
    args = parser.parse_args()

    if not (args.tree / "demo_truth.csv").exists():
        print(f"building the benchmark tree under {args.tree} (once)...", flush=True)
        make_demo_tree(args.tree, scenes=args.scenes, seed=1)
    root = str(args.tree.resolve())
    paths = [os.path.join(root, e.relpath) for e in walk_images(root)]
    size_mb = sum(os.path.getsize(p) for p in paths if os.path.isfile(p)) / 1e6
    cores = len(os.sched_getaffinity(0))
    print(f"tree: {len(paths)} images, {size_mb:.0f} MB, {cores} cores, Pillow {Image.__version__}")
    pillow_loop(paths)  # warm the page cache for every variant alike

    variants = {
        "serial Pillow open/load/convert loop": lambda: _timed(pillow_loop, paths),
        "sanitize scan --jobs 1": lambda: time_scan(args.tree, 1, []),
        f"sanitize scan --jobs {cores}": lambda: time_scan(args.tree, cores, []),
        f"sanitize scan --jobs {cores} --no-fast-png": lambda: time_scan(
            args.tree, cores, ["--no-fast-png"]
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeat):
        for name, run in variants.items():
            times[name].append(run())

    baseline = statistics.median(times["serial Pillow open/load/convert loop"])
    print(f"\n{'variant':<44}{'median s':>10}{'images/s':>10}{'vs loop':>9}")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:<44}{median:>10.2f}{len(paths) / median:>10.1f}{baseline / median:>8.2f}x")
    print(f"({args.repeat} runs each, interleaved; strict checks included in every scan)")


def _timed(fn, *args) -> float:
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
