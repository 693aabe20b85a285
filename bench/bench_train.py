"""Benchmark: DataLoader worker memory of PanoDataset vs a pandas-frame dataset; cleanup's cost.

1. Worker memory. A 200k-row manifest (rows point at a few hundred small PNGs: the rows, not
   the pixels, are the point) is read by 4 persistent DataLoader workers for 3 epochs, and
   each worker's USS and PSS are read (psutil `memory_full_info`) once the workers are up and
   after every epoch. PanoDataset keeps columns in numpy buffers; the old loader kept a pandas
   frame and read `df.iloc[idx].url`, which writes the reference count of every row's string
   objects and so copies the parent's pages into every worker (pytorch/pytorch#13246). The old
   loader ran on pandas 2, whose string columns are Python objects ("pandas, object
   strings"); pandas 3 stores them in Arrow ("pandas, Arrow strings", with --with-arrow).
   All variants decode with the same function and return the same sample; only the row
   storage differs. Each runs in its own process.
2. Cleanup cost. The built-in captioner trains on a fixed CPU batch with CacheCleanup at
   interval 1000 and at 0 (disabled), interleaved, with the startup heap frozen as
   `panovlm train` does (`frozen_heap`), and once more at 1000 without it; the cost is the
   time spent in cleanups over the time spent in training steps. A small CPU model's steps
   are short, so this is an upper bound for real training steps.

Run with `make bench` (or `python bench/bench_train.py`); inputs are built once under
data/bench/train.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from sanitize.check import decode_file

ROOT = Path(__file__).resolve().parents[1]

MEMORY_VARIANTS = {
    "panodataset": "PanoDataset (numpy buffers)",
    "pandas-object": "pandas, object strings (old loader)",
    "pandas-arrow": "pandas, Arrow strings (pandas 3 default)",
}
ROOMS = ("bedroom", "kitchen", "living room", "bathroom", "study", "dining room")
LIGHTS = ("warm", "cold", "neutral")
FURNISHED = ("A furnished", "A sparsely furnished", "An empty")
MB = 1024 * 1024


def build_inputs(folder: Path, rows: int, images: int) -> Path:
    """Small PNGs and a manifest of `rows` rows pointing at them (built once)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    manifest = folder / f"manifest-{rows}.parquet"
    if manifest.exists():
        return manifest
    rng = np.random.default_rng(0)
    image_dir = folder / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(images):
        path = image_dir / f"pano_{i:04d}.png"
        if not path.exists():
            Image.fromarray(rng.integers(0, 256, (16, 32, 3), dtype=np.uint8)).save(path)
        paths.append(str(path.resolve()))
    pick = rng.integers(0, images, rows)
    urls = [paths[i] for i in pick]
    room, light, furnished = (rng.integers(0, len(v), rows) for v in (ROOMS, LIGHTS, FURNISHED))
    table = pa.table(
        {
            "url": urls,
            "query": [f"Describe the lighting and layout of panorama {i}." for i in range(rows)],
            "annotation": [
                f"{FURNISHED[f]} {ROOMS[r]} under {LIGHTS[li]} light, with a door (row {i})."
                for i, (f, r, li) in enumerate(zip(furnished, room, light, strict=True))
            ],
            "source": ["annotations.csv"] * rows,
            "source_row": pa.array(np.arange(rows), pa.int64()),
            "relpath": [u[len(str(folder)) + 1 :] for u in urls],
            "format": ["PNG"] * rows,
            "mode": ["RGB"] * rows,
            "width": pa.array(np.full(rows, 32), pa.int32()),
            "height": pa.array(np.full(rows, 16), pa.int32()),
            "bytes": pa.array(pick.astype(np.int64) + 1500, pa.int64()),
            "split": ["train"] * rows,
        }
    )
    tmp = manifest.with_suffix(".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, manifest)
    return manifest


class PandasDataset:
    """The old loader's storage: a pandas frame, a row read with `df.iloc[idx]`."""

    def __init__(self, manifest: Path, object_strings: bool) -> None:
        import pandas as pd

        from panovlm.dataset import PanoDataset

        frame = pd.read_parquet(manifest)
        if object_strings:  # pandas 2 (the old loader's): every string a Python object
            text = [c for c in frame.columns if frame[c].dtype.kind not in "iufb"]
            frame = frame.astype(dict.fromkeys(text, object))
        self.df = frame
        self.image_size = (16, 32)
        self._to_tensor = PanoDataset.to_tensor  # the same conversion as PanoDataset

    def __len__(self) -> int:
        return len(self.df)

    def __getitem__(self, idx: int) -> dict:
        row = self.df.iloc[idx]
        image = self._to_tensor(self, decode_file(row.url))
        return {
            "image": image,
            "url": row.url,
            "index": idx,
            "is_placeholder": False,
            "query": row.query,
            "annotation": row.annotation,
        }


def child_memory(variant: str, manifest: Path, workers: int, epochs: int, batch: int) -> dict:
    """Worker USS/PSS (summed over workers) once they are up and after every epoch."""
    import psutil
    import torch
    from torch.utils.data import DataLoader

    from panovlm.dataset import PanoDataset

    if variant == "panodataset":
        dataset = PanoDataset(manifest, image_size=(16, 32), record_failures=False)
    else:
        dataset = PandasDataset(manifest, object_strings=variant == "pandas-object")
    loader = DataLoader(
        dataset,
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        persistent_workers=True,
        generator=torch.Generator().manual_seed(0),
    )
    me = psutil.Process()
    samples = []
    started = time.perf_counter()
    for epoch in range(epochs):
        batches = iter(loader)
        next(batches)
        if epoch == 0:
            children = me.children()
            samples.append(_memory(children))
        for _ in batches:
            pass
        samples.append(_memory(children))
    return {
        "variant": variant,
        "workers": len(children),
        "rows": len(dataset),
        "uss": [s[0] for s in samples],
        "pss": [s[1] for s in samples],
        "parent_rss": me.memory_info().rss,
        "seconds": time.perf_counter() - started,
    }


def _memory(processes: list) -> tuple[int, int]:
    infos = [p.memory_full_info() for p in processes]
    return sum(i.uss for i in infos), sum(i.pss for i in infos)


def child_steps(interval: int, freeze: bool, steps: int) -> dict:
    """Train the built-in captioner on a fixed batch; time steps and cleanups apart."""
    import gc
    from contextlib import nullcontext

    import torch

    from panovlm.cache_cleanup import CacheCleanup, frozen_heap
    from panovlm.model import PanoCaptioner, tokenize

    torch.manual_seed(0)
    torch.set_num_threads(1)
    texts = [
        f"{FURNISHED[i % 3]} {ROOMS[i % 6]} under {LIGHTS[i % 3]} light, with a door."
        for i in range(8)
    ]
    vocab = sorted({w for t in texts for w in tokenize(t)})
    model = PanoCaptioner(vocab, width=64)
    batch = {"image": torch.rand(8, 3, 32, 64), "annotation": texts}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    cleanup = CacheCleanup(interval, device="cpu")

    def train_step() -> None:
        model(batch).mean().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(20):  # warm-up
        train_step()
    step_seconds, cleanup_seconds = [], []
    with frozen_heap() if freeze else nullcontext():
        for step in range(1, steps + 1):
            t0 = time.perf_counter()
            train_step()
            t1 = time.perf_counter()
            cleanup.step(step)
            step_seconds.append(t1 - t0)
            cleanup_seconds.append(time.perf_counter() - t1)
        tracked = len(gc.get_objects())  # what a cleanup walks (frozen objects are not)
    return {
        "interval": interval,
        "freeze": freeze,
        "steps": steps,
        "fired": cleanup.fired_steps,
        "step_seconds": sum(step_seconds),
        "median_step": statistics.median(step_seconds),
        "cleanup_seconds": sum(cleanup_seconds),
        "tracked_objects": tracked,
    }


def _child(args: list[str]) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, *args], check=True, stdout=subprocess.PIPE, text=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=1000, help="training steps per cleanup run")
    parser.add_argument("--interval", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved cleanup runs each")
    parser.add_argument("--with-arrow", action="store_true", help="also pandas Arrow strings")
    parser.add_argument("--folder", type=Path, default=ROOT / "data" / "bench" / "train")
    parser.add_argument("--only", choices=("memory", "cleanup"))
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        warnings.filterwarnings("ignore", "This DataLoader will create", UserWarning)
        kind, *rest = args.child
        if kind == "memory":
            out = child_memory(rest[0], Path(rest[1]), args.workers, args.epochs, args.batch_size)
        else:
            out = child_steps(int(rest[0]), rest[1] == "frozen", args.steps)
        print(json.dumps(out))
        return

    import pandas as pd
    import torch

    started = time.perf_counter()
    print(f"{os.cpu_count()} cores; torch {torch.__version__}, pandas {pd.__version__}", flush=True)
    if args.only != "cleanup":
        bench_memory(args)
    if args.only != "memory":
        bench_cleanup(args)
    print(f"\n(bench took {time.perf_counter() - started:.0f} s)")


def bench_memory(args: argparse.Namespace) -> None:
    manifest = build_inputs(args.folder, args.rows, args.images)
    common = ["--workers", str(args.workers), "--epochs", str(args.epochs)]
    common += ["--batch-size", str(args.batch_size)]
    variants = [v for v in MEMORY_VARIANTS if args.with_arrow or v != "pandas-arrow"]
    runs = [_child([*common, "--child", "memory", v, str(manifest)]) for v in variants]
    print(
        f"\nWorker memory: {args.rows:,} rows, {args.workers} persistent workers, "
        f"{args.epochs} epochs, batch {args.batch_size} (MB, summed over the workers)"
    )
    print(
        f"{'dataset':<42}{'USS start':>10}{'USS end':>9}{'growth':>8}{'PSS growth':>11}"
        f"{'vs old':>8}{'time s':>8}"
    )
    base = next(r for r in runs if r["variant"] == "pandas-object")
    base_growth = base["uss"][-1] - base["uss"][0]
    for run in runs:
        uss, pss = run["uss"], run["pss"]
        growth = uss[-1] - uss[0]
        print(
            f"{MEMORY_VARIANTS[run['variant']]:<42}{uss[0] / MB:>10.0f}{uss[-1] / MB:>9.0f}"
            f"{growth / MB:>8.1f}{(pss[-1] - pss[0]) / MB:>11.1f}"
            f"{100 * growth / base_growth:>7.1f}%{run['seconds']:>8.1f}"
        )
    for run in runs:
        per_epoch = ", ".join(f"{u / MB:.0f}" for u in run["uss"])
        print(f"  {run['variant']}: USS at start, then after each epoch: {per_epoch}")
    mine = next(r for r in runs if r["variant"] == "panodataset")
    ratio = (mine["uss"][-1] - mine["uss"][0]) / base_growth
    verdict = "met" if ratio <= 0.10 else "NOT met"
    print(f"  goal, growth at most 10% of the old loader's: {verdict} ({100 * ratio:.1f}%)")


def bench_cleanup(args: argparse.Namespace) -> None:
    configs = [(0, "frozen"), (args.interval, "frozen"), (args.interval, "plain")]
    runs = [
        _child(["--steps", str(args.steps), "--child", "steps", str(interval), heap])
        for _ in range(args.rounds)
        for interval, heap in configs
    ]
    print(
        f"\nCleanup cost: built-in captioner, batch 8 at 32x64, 1 CPU thread, "
        f"{args.steps} steps a run, {args.rounds} interleaved runs each"
    )
    print(
        f"{'interval':<36}{'median step ms':>15}{'train s':>9}{'cleanups':>9}"
        f"{'ms each':>9}{'cost':>9}"
    )
    labels = {
        "frozen": "startup heap frozen (the loop)",
        "plain": "nothing frozen",
    }
    for interval, heap in configs:
        mine = [r for r in runs if r["interval"] == interval and r["freeze"] == (heap == "frozen")]
        train_s = sum(r["step_seconds"] for r in mine)
        cleanup_s = sum(r["cleanup_seconds"] for r in mine)
        fired = sum(len(r["fired"]) for r in mine)
        median_ms = 1000 * statistics.median(r["median_step"] for r in mine)
        each = f"{1000 * cleanup_s / fired:.1f}" if fired else "-"
        name = f"{interval}, {labels[heap]}" if interval else "0 (disabled)"
        print(
            f"{name:<36}{median_ms:>15.2f}{train_s:>9.1f}{fired:>9}{each:>9}"
            f"{100 * cleanup_s / train_s:>8.3f}%"
        )
    frozen = next(r for r in runs if r["freeze"] and r["interval"])
    plain = next(r for r in runs if not r["freeze"])
    print(
        f"  objects a cleanup's gc.collect walks at the end of a run: {plain['tracked_objects']:,} "
        f"with nothing frozen, {frozen['tracked_objects']:,} with the startup heap frozen"
    )
    cost = sum(r["cleanup_seconds"] for r in runs if r["freeze"] and r["interval"]) / sum(
        r["step_seconds"] for r in runs if r["freeze"] and r["interval"]
    )
    verdict = "met" if cost < 0.01 else "NOT met"
    print(f"  goal, cleanup under 1% of step time at interval {args.interval}: {verdict}")


if __name__ == "__main__":
    main()
