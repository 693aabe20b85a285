"""`checkpoints`: per run, keep the newest few and the best, delete the rest once old enough.

A run is a folder directly under `paths.runs_dir`; its checkpoints are the `.pt`, `.pth`,
`.ckpt` and `.safetensors` files anywhere inside it (symlinks not followed). A run records its
metric in `<run>/checkpoints.json`, which `panovlm train` writes beside its checkpoints:

    {"metric": "loss", "mode": "min", "checkpoints": {"vision-step00000100.pt": 0.83, ...}}

(keys are paths relative to the run folder). Kept, always: the `keep_newest` newest, the best
by that metric, the only checkpoint of a run, and any file changed within `min_age_hours` (a run
may be writing it). Of the others, those older than `older_than_days` go. Temporary files of an
interrupted save (`.NAME.tmp-PID`, see `panovlm.checkpoints`) older than `min_age_hours` go too.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from panovlm.hygiene.plan import CategoryScan, CleanupItem, Stamp
from panovlm.hygiene.tree import walk_entries

CHECKPOINT_SUFFIXES = frozenset({".pt", ".pth", ".ckpt", ".safetensors"})
METRICS_FILE = "checkpoints.json"
TEMP_NAME = re.compile(r"^\..+\.tmp-\d+$")
DAY, HOUR = 86400.0, 3600.0


@dataclass(frozen=True)
class RetentionPolicy:
    keep_newest: int = 3
    older_than_days: float = 30.0
    min_age_hours: float = 1.0

    def __post_init__(self) -> None:
        if self.keep_newest < 1:
            raise ValueError("keep_newest must be >= 1: a run always keeps a checkpoint")
        if self.older_than_days < 0 or self.min_age_hours < 0:
            raise ValueError("ages must be >= 0")


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    stamp: Stamp

    @property
    def mtime(self) -> float:
        return self.stamp.mtime_ns / 1e9


def scan_checkpoints(
    runs_dir: Path, policy: RetentionPolicy = RetentionPolicy(), now: float | None = None
) -> CategoryScan:
    """The plan for every run under the resolved `runs_dir`."""
    now = time.time() if now is None else now
    items: list[CleanupItem] = []
    warnings: list[str] = []
    try:
        with os.scandir(runs_dir) as entries:
            runs = sorted(Path(e.path) for e in entries if e.is_dir(follow_symlinks=False))
    except OSError as exc:
        return CategoryScan("checkpoints", runs_dir, (), (f"checkpoints: {exc}",))
    for run in runs:
        items += _run_items(runs_dir, run, policy, now, warnings)
    return CategoryScan("checkpoints", runs_dir, tuple(items), tuple(warnings))


def _run_items(
    runs_dir: Path, run: Path, policy: RetentionPolicy, now: float, warnings: list[str]
) -> list[CleanupItem]:
    checkpoints, temps = [], []
    for path, st in walk_entries(run):
        if not stat.S_ISREG(st.st_mode):
            continue
        if TEMP_NAME.match(path.name):
            temps.append(Checkpoint(path, Stamp.of(st)))
        elif path.suffix in CHECKPOINT_SUFFIXES:
            checkpoints.append(Checkpoint(path, Stamp.of(st)))
    items = [
        _item(runs_dir, c, "temporary file of an interrupted checkpoint save")
        for c in sorted(temps, key=lambda c: c.path)
        if now - c.mtime > policy.min_age_hours * HOUR
    ]
    if len(checkpoints) <= 1:
        return items
    newest_first = sorted(checkpoints, key=lambda c: (c.mtime, c.path.name), reverse=True)
    keep = {c.path for c in newest_first[: policy.keep_newest]}
    best = best_checkpoint(run, checkpoints, warnings)
    if best is not None:
        keep.add(best[0])
    for checkpoint in sorted(newest_first[policy.keep_newest :], key=lambda c: c.path):
        age = now - checkpoint.mtime
        if checkpoint.path in keep or age < policy.min_age_hours * HOUR:
            continue
        if age <= policy.older_than_days * DAY:
            continue
        why = f"{age / DAY:.0f} days old; not among the {policy.keep_newest} newest of {run.name}"
        if best is not None:
            why += f" nor the best ({best[1]})"
        items.append(_item(runs_dir, checkpoint, why))
    return items


def best_checkpoint(
    run: Path, checkpoints: list[Checkpoint], warnings: list[str]
) -> tuple[Path, str] | None:
    """(path, "loss 0.83") of the best checkpoint `run/checkpoints.json` records, or None."""
    record = run / METRICS_FILE
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
        metric, mode, values = data["metric"], data.get("mode", "min"), data["checkpoints"]
        if mode not in ("min", "max") or not isinstance(values, dict):
            raise ValueError(f"mode must be min or max, got {mode!r}")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        warnings.append(f"checkpoints: {record} is unreadable ({exc}); no best kept for its run")
        return None
    present = {c.path.relative_to(run).as_posix(): c.path for c in checkpoints}
    scored = [
        (float(value), present[name])
        for name, value in values.items()
        if name in present and isinstance(value, int | float) and math.isfinite(value)
    ]
    if not scored:
        return None
    value, path = (min if mode == "min" else max)(scored)
    return path, f"{metric} {value:.4g} at {path.name}"


def _item(runs_dir: Path, checkpoint: Checkpoint, reason: str) -> CleanupItem:
    return CleanupItem(
        category="checkpoints",
        path=checkpoint.path,
        bytes=checkpoint.stamp.size,
        reason=reason,
        root=runs_dir,
        stamp=checkpoint.stamp,
    )


def record_metric(
    run: Path, checkpoint: Path, value: float, metric: str = "loss", mode: str = "min"
) -> None:
    """Add `checkpoint`'s metric to `run/checkpoints.json` (written atomically), so retention
    keeps the best checkpoint. A NaN value is not recorded."""
    record = run / METRICS_FILE
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
        values = data.get("checkpoints", {}) if data.get("metric") == metric else {}
    except (OSError, ValueError, AttributeError):
        values = {}
    if math.isfinite(value):
        values[checkpoint.relative_to(run).as_posix()] = value
    tmp = record.with_name(f".{METRICS_FILE}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump({"metric": metric, "mode": mode, "checkpoints": values}, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, record)
