"""The training disk guard: never start a checkpoint the disk cannot hold.

Before training and before each checkpoint save, free space on the runs folder must cover twice
the last checkpoint (the new file is written beside the old one before replacing it, and the
next one will be no smaller) plus a margin. When it does not, checkpoint retention
(`checkpoints_retention`) runs on the runs folder first; if space is still short, the guard
raises `OutOfDiskSpace` with a one-line message, so a run stops cleanly between steps instead
of dying in the middle of a write.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from panovlm.hygiene import disk
from panovlm.hygiene.checkpoints_retention import (
    CHECKPOINT_SUFFIXES,
    RetentionPolicy,
    scan_checkpoints,
)
from panovlm.hygiene.execute import execute
from panovlm.hygiene.plan import format_bytes
from panovlm.hygiene.roots import resolve_root

logger = logging.getLogger(__name__)

DEFAULT_MARGIN_BYTES = 1_000_000_000


class OutOfDiskSpace(RuntimeError):
    """Not enough free space for the next checkpoint, even after checkpoint retention."""


@dataclass
class DiskGuard:
    runs_dir: Path
    margin_bytes: int = DEFAULT_MARGIN_BYTES
    policy: RetentionPolicy = field(default_factory=RetentionPolicy)
    free_bytes: Callable[[Path], int] | None = field(default=None, repr=False)  # disk.free_bytes

    def required(self, folder: Path, expected_bytes: int = 0) -> int:
        """2 x (the last checkpoint in `folder`, or `expected_bytes` if larger) + the margin."""
        return 2 * max(last_checkpoint_bytes(folder), expected_bytes) + self.margin_bytes

    def check(self, folder: Path | None = None, expected_bytes: int = 0) -> None:
        """Raise `OutOfDiskSpace` unless the next checkpoint in `folder` (default: the runs
        folder) fits, after applying checkpoint retention if needed."""
        folder = self.runs_dir if folder is None else Path(folder)
        need = self.required(folder, expected_bytes)
        free_bytes = self.free_bytes or disk.free_bytes
        free = free_bytes(self.runs_dir)
        if free >= need:
            return
        freed = self._apply_retention()
        free = free_bytes(self.runs_dir)
        if free >= need:
            logger.info("disk guard: checkpoint retention freed %s", format_bytes(freed))
            return
        raise OutOfDiskSpace(
            f"not enough disk space for the next checkpoint in {folder}: "
            f"{format_bytes(free)} free, {format_bytes(need)} needed (2 x "
            f"{format_bytes((need - self.margin_bytes) // 2)} + a {format_bytes(self.margin_bytes)}"
            f" margin); checkpoint retention freed {format_bytes(freed)}. Free space "
            f"(`panovlm clean`) and resume from the last checkpoint"
        )

    def _apply_retention(self) -> int:
        if not os.path.isdir(self.runs_dir):
            return 0
        root = resolve_root(self.runs_dir, "the runs folder")
        plan = scan_checkpoints(root, self.policy)
        if not plan.items:
            return 0
        result = execute(plan.items)
        for outcome in result.skipped + result.failed:
            logger.warning("disk guard: %s: %s", outcome.item.path, outcome.message)
        return result.freed_bytes


def last_checkpoint_bytes(folder: Path) -> int:
    """Size of the newest checkpoint file directly in `folder`; 0 when there is none."""
    newest: tuple[int, int] = (-1, 0)
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if Path(entry.name).suffix not in CHECKPOINT_SUFFIXES:
                    continue
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISREG(st.st_mode):
                    newest = max(newest, (st.st_mtime_ns, st.st_size))
    except OSError:
        return 0
    return newest[1]
