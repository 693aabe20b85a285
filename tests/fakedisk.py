"""Fake disks for the hygiene tests: a Hugging Face hub cache with the real layout, run folders
with checkpoints of many ages, wandb folders, and symlinks pointing outside every root."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

DAY, HOUR = 86400.0, 3600.0

REV_MAIN = "a" * 40
REV_OLD = "b" * 40
REV_ORPHAN = "c" * 40
REV_EVIL_MAIN = "d" * 40
REV_EVIL_DETACHED = "e" * 40
REV_DATA = "f" * 40


def age(path: Path, seconds: float, now: float | None = None) -> None:
    """Set `path`'s atime and mtime `seconds` in the past (not following a symlink)."""
    when = (time.time() if now is None else now) - seconds
    os.utime(path, (when, when), follow_symlinks=False)


def write(path: Path, data: bytes | str, *, old: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    if old is not None:
        age(path, old)
    return path


def blob(repo: Path, data: bytes, *, old: float = 2 * DAY) -> str:
    digest = hashlib.sha256(data).hexdigest()
    write(repo / "blobs" / digest, data, old=old)
    return digest


def snapshot_file(repo: Path, revision: str, name: str, digest: str) -> Path:
    link = repo / "snapshots" / revision / name
    link.parent.mkdir(parents=True, exist_ok=True)
    depth = len(Path(name).parts)
    link.symlink_to(Path(*([".."] * (depth + 1))) / "blobs" / digest)
    return link


def ref(repo: Path, name: str, revision: str) -> None:
    write(repo / "refs" / name, revision)


@dataclass
class FakeCache:
    root: Path
    outside: Path  # a file a snapshot of the cache links to
    kept: set[Path] = field(default_factory=set)  # must survive any cleanup
    detached_snapshot: Path | None = None
    detached_blob: Path | None = None
    orphan_repo: Path | None = None
    old_incomplete: Path | None = None
    fresh_incomplete: Path | None = None
    stale_lock: Path | None = None
    held_lock: Path | None = None
    fresh_lock: Path | None = None


def fake_hf_cache(root: Path, outside_dir: Path) -> FakeCache:
    """models--org--kept (main + a detached revision sharing a blob), models--org--orphan (only
    detached revisions), models--org--evil (a detached revision whose snapshot links OUTSIDE
    the cache), datasets--org--data (main only), incomplete downloads and lock files."""
    outside = write(outside_dir / "secret-weights.bin", b"outside the cache" * 64)
    cache = FakeCache(root, outside)

    kept = root / "models--org--kept"
    shared = blob(kept, b'{"shared": "config"}')
    main_weights = blob(kept, b"main weights" * 100)
    old_weights = blob(kept, b"old weights" * 200)
    for rev, weights in ((REV_MAIN, main_weights), (REV_OLD, old_weights)):
        snapshot_file(kept, rev, "config.json", shared)
        snapshot_file(kept, rev, "sub/model.bin", weights)
    ref(kept, "main", REV_MAIN)
    cache.kept |= {kept / "blobs" / shared, kept / "blobs" / main_weights, kept / "refs" / "main"}
    cache.kept |= {kept / "snapshots" / REV_MAIN / "config.json"}
    cache.detached_snapshot = kept / "snapshots" / REV_OLD
    cache.detached_blob = kept / "blobs" / old_weights

    orphan = root / "models--org--orphan"
    snapshot_file(orphan, REV_ORPHAN, "model.bin", blob(orphan, b"orphan" * 300))
    cache.orphan_repo = orphan

    evil = root / "models--org--evil"
    snapshot_file(evil, REV_EVIL_MAIN, "config.json", blob(evil, b"evil config"))
    ref(evil, "main", REV_EVIL_MAIN)
    link = evil / "snapshots" / REV_EVIL_DETACHED / "weights.bin"
    link.parent.mkdir(parents=True)
    link.symlink_to(cache.outside)

    data = root / "datasets--org--data"
    digest = blob(data, b"rows" * 50)
    snapshot_file(data, REV_DATA, "train.csv", digest)
    ref(data, "main", REV_DATA)
    cache.kept |= {data / "blobs" / digest}

    cache.old_incomplete = write(kept / "blobs" / ("1" * 64 + ".incomplete"), b"part", old=3 * HOUR)
    cache.fresh_incomplete = write(kept / "blobs" / ("2" * 64 + ".incomplete"), b"partial")
    locks = root / ".locks" / "models--org--kept"
    cache.stale_lock = write(locks / (shared + ".lock"), b"", old=3 * HOUR)
    cache.held_lock = write(locks / (main_weights + ".lock"), b"", old=3 * HOUR)
    cache.fresh_lock = write(locks / ("2" * 64 + ".lock"), b"")
    cache.kept |= {cache.fresh_incomplete, cache.held_lock, cache.fresh_lock}
    return cache


@dataclass
class FakeRuns:
    root: Path
    doomed: set[Path] = field(default_factory=set)  # what retention (keep 3, 30 days) deletes
    kept: set[Path] = field(default_factory=set)


def fake_runs(root: Path, outside_dir: Path) -> FakeRuns:
    """run-a: 7 checkpoints of many ages, the best an old one (checkpoints.json); run-b: its only
    checkpoint, 100 days old; run-c: 5 old checkpoints in a subfolder; a leftover temporary
    file; symlinks to outside the runs folder."""
    runs = FakeRuns(root)
    run = root / "run-a"
    ages = {"s1": 90, "s2": 80, "s3": 60, "s4": 45, "s5": 20, "s6": 2, "s7": 0.01}
    for name, days in ages.items():
        write(run / f"vision-{name}.pt", f"checkpoint {name}" * 100, old=days * DAY + 60)
    write(
        run / "checkpoints.json",
        json.dumps(
            {
                "metric": "loss",
                "mode": "min",
                "checkpoints": {"vision-s2.pt": 0.1, "vision-s5.pt": 0.5},
            }
        ),
    )
    runs.doomed |= {run / "vision-s1.pt", run / "vision-s3.pt", run / "vision-s4.pt"}
    runs.kept |= {run / f"vision-{n}.pt" for n in ("s2", "s5", "s6", "s7")}
    only = write(root / "run-b" / "final.ckpt", "only" * 100, old=100 * DAY)
    runs.kept.add(only)
    run_c = root / "run-c" / "checkpoints"  # nested, as Lightning writes them; no metric
    for i in range(5):
        path = write(run_c / f"epoch{i}.safetensors", f"c{i}" * 50, old=(200 - i) * DAY)
        (runs.doomed if i < 2 else runs.kept).add(path)
    temp = write(run / ".vision-s8.pt.tmp-4242", "half", old=2 * HOUR)
    runs.doomed.add(temp)
    outside_ckpt = write(outside_dir / "foreign.pt", "not ours" * 10, old=400 * DAY)
    (run / "linked.pt").symlink_to(outside_ckpt)
    (root / "linked-run").symlink_to(outside_dir, target_is_directory=True)
    write(root / "notes.txt", "kept")
    return runs


@dataclass
class FakeWandb:
    root: Path
    doomed: set[Path] = field(default_factory=set)
    kept: set[Path] = field(default_factory=set)


def fake_wandb(root: Path, outside_dir: Path) -> FakeWandb:
    wb = FakeWandb(root)
    folder = root / "wandb"

    def run(name: str, days: float, *, synced: bool = False) -> Path:
        path = folder / name
        write(path / "files" / "output.log", "log " * 100, old=days * DAY)
        write(path / f"run-{name.rsplit('-', 1)[1]}.wandb", b"\0" * 300, old=days * DAY)
        if synced:
            write(path / f"run-{name.rsplit('-', 1)[1]}.wandb.synced", "", old=days * DAY)
        age(path / "files", days * DAY)
        age(path, days * DAY)
        return path

    wb.doomed.add(run("run-20240101_000000-old1", 60))
    wb.kept.add(run("run-20250101_000000-new1", 3))
    wb.doomed.add(run("offline-run-20240102_000000-syn1", 50, synced=True))
    wb.kept.add(run("offline-run-20240103_000000-uns1", 50))
    linked = run("run-20240104_000000-lnk1", 70)
    (linked / "files" / "media").symlink_to(outside_dir, target_is_directory=True)
    for path in (linked / "files" / "media", linked / "files"):
        age(path, 70 * DAY)
    wb.doomed.add(linked)
    (folder / "latest-run").symlink_to(outside_dir, target_is_directory=True)
    wb.kept.add(write(folder / "debug.log", "debug", old=90 * DAY))
    return wb


def listing(*roots: Path) -> dict[str, tuple]:
    """Every entry under `roots` (symlinks not followed): kind, size, mtime, content or target."""
    found = {}
    for root in roots:
        for folder, dirs, files in os.walk(root):
            for name in dirs + files:
                path = Path(folder) / name
                st = path.lstat()
                if path.is_symlink():
                    found[str(path)] = ("link", os.readlink(path))
                elif path.is_dir():
                    found[str(path)] = ("dir",)
                else:
                    digest = hashlib.sha256(path.read_bytes()).hexdigest()
                    found[str(path)] = ("file", st.st_size, st.st_mtime_ns, digest)
    return found
