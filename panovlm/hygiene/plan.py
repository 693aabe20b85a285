"""The plan: frozen items with the bytes each is expected to free, computed without acting.

A scanner looks at the disk once and returns a `CategoryScan`; `build_plan` gathers scans into a
`CleanupPlan`. Nothing here deletes or moves: `execute.execute` does, after re-checking each item
against what the scan saw (`Stamp`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

CATEGORIES = ("pycache", "hf", "checkpoints", "wandb", "broken")

DELETE = "delete"
MOVE = "move"


@dataclass(frozen=True)
class Stamp:
    """What the scan saw of an entry; a different stamp at execution time means "changed"."""

    kind: str  # "file", "dir" or "link"
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> Stamp:
        if stat.S_ISLNK(st.st_mode):
            kind = "link"
        elif stat.S_ISDIR(st.st_mode):
            kind = "dir"
        elif stat.S_ISREG(st.st_mode):
            kind = "file"
        else:
            kind = "other"
        size = st.st_size if kind == "file" else 0
        return cls(kind, st.st_ino, size, st.st_mtime_ns)


@dataclass(frozen=True)
class CleanupItem:
    """One entry to delete (a file, a link or a whole folder) or to move (quarantine, restore).

    `root` is the folder the entry must still be inside when it is acted on; a move also names
    its `destination` and the root that must hold it. `lock`, when set, is a lock file that must
    not be held by anyone: it is taken (non-blocking) for the duration of the removal.
    """

    category: str
    path: Path
    bytes: int
    reason: str
    root: Path
    stamp: Stamp
    action: str = DELETE
    destination: Path | None = None
    destination_root: Path | None = None
    lock: Path | None = None


@dataclass(frozen=True)
class CategoryScan:
    """What one scanner found: items in the order they must be acted on, and notes."""

    category: str
    root: Path | None
    items: tuple[CleanupItem, ...] = ()
    warnings: tuple[str, ...] = ()
    context: Mapping[str, Path] = field(default_factory=dict)  # other folders it involves


@dataclass(frozen=True)
class CategoryTotal:
    category: str
    action: str
    items: int
    bytes: int

    @property
    def bytes_str(self) -> str:
        return format_bytes(self.bytes)


@dataclass(frozen=True)
class CleanupPlan:
    """Every item of every selected category, in execution order, and what it should free."""

    items: tuple[CleanupItem, ...]
    scans: tuple[CategoryScan, ...] = ()
    skipped_categories: dict[str, str] = field(default_factory=dict)

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(w for scan in self.scans for w in scan.warnings)

    @property
    def by_category(self) -> tuple[CategoryTotal, ...]:
        totals = []
        for scan in self.scans:
            actions = sorted({item.action for item in scan.items}) or [DELETE]
            for action in actions:
                chosen = [item for item in scan.items if item.action == action]
                totals.append(
                    CategoryTotal(scan.category, action, len(chosen), sum(i.bytes for i in chosen))
                )
        return tuple(totals)

    @property
    def expected_freed_bytes(self) -> int:
        return sum(item.bytes for item in self.items if item.action == DELETE)

    @property
    def expected_moved_bytes(self) -> int:
        return sum(item.bytes for item in self.items if item.action == MOVE)

    @property
    def expected_freed_str(self) -> str:
        return format_bytes(self.expected_freed_bytes)


def build_plan(
    scans: Iterable[CategoryScan], skipped_categories: dict[str, str] | None = None
) -> CleanupPlan:
    scans = tuple(scans)
    return CleanupPlan(
        items=tuple(item for scan in scans for item in scan.items),
        scans=scans,
        skipped_categories=dict(skipped_categories or {}),
    )


def format_bytes(n: float) -> str:
    """Decimal units, as `df -H` and huggingface_hub print them: 1.5 GB is 1.5e9 bytes."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")
