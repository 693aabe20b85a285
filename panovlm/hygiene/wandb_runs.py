"""`wandb`: run folders whose data is on the wandb server, once old enough.

wandb writes `wandb/run-YYYYMMDD_HHMMSS-<id>/` for online runs, streamed to the server as they
go, and `wandb/offline-run-.../` for offline ones, which `wandb sync` uploads and then marks
with a `run-<id>.wandb.synced` file. Online runs and synced offline runs whose newest file is
older than `older_than_days` go, as `wandb sync --clean` would remove them; an unsynced offline
run is never touched (it is the only copy), nor `latest-run` (a symlink) or the debug logs.
"""

from __future__ import annotations

import os
import re
import stat
import time
from pathlib import Path

from panovlm.hygiene.plan import CategoryScan, CleanupItem, Stamp
from panovlm.hygiene.tree import newest_mtime, tree_bytes

RUN_FOLDER = re.compile(r"^(offline-)?run-\d{8}_\d{6}-[A-Za-z0-9]+$")
DAY = 86400.0


def runs_folder(root: Path) -> Path:
    """`root/wandb` when `root` is the folder wandb was pointed at (`WANDB_DIR`), else `root`."""
    nested = root / "wandb"
    try:
        if stat.S_ISDIR(os.lstat(nested).st_mode):
            return nested
    except OSError:
        pass
    return root


def scan_wandb(root: Path, older_than_days: float = 30.0, now: float | None = None) -> CategoryScan:
    """The plan for the resolved wandb folder `root`."""
    now = time.time() if now is None else now
    folder = runs_folder(root)
    items, warnings = [], []
    try:
        with os.scandir(folder) as entries:
            found = sorted((e.name, e.stat(follow_symlinks=False)) for e in entries)
    except OSError as exc:
        return CategoryScan("wandb", root, (), (f"wandb: {exc}",))
    for name, st in found:
        if not stat.S_ISDIR(st.st_mode) or not RUN_FOLDER.match(name):
            continue
        path = folder / name
        offline = name.startswith("offline-")
        if offline and not _synced(path):
            continue
        age = now - newest_mtime(path)
        if age <= older_than_days * DAY:
            continue
        kind = "synced offline run" if offline else "online run"
        items.append(
            CleanupItem(
                category="wandb",
                path=path,
                bytes=tree_bytes(path),
                reason=f"{kind}, last written {age / DAY:.0f} days ago",
                root=root,
                stamp=Stamp.of(st),
            )
        )
    return CategoryScan("wandb", root, tuple(items), tuple(warnings))


def _synced(run: Path) -> bool:
    try:
        with os.scandir(run) as entries:
            return any(e.name.endswith(".wandb.synced") for e in entries)
    except OSError:
        return False
