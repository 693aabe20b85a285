"""`panovlm disk`: the filesystems under data, runs and caches, the big folders, what could go.

One look instead of `watch df -h` plus `du`: each filesystem once (however many of the folders
it holds), with `df`'s use percentage (used / (used + available to users)), a warning at
`WARN_PERCENT` and over, the sizes of the Hugging Face cache, runs and wandb folders, and what
`panovlm clean`'s default categories would free.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from panovlm.hygiene.plan import format_bytes
from panovlm.hygiene.tree import tree_bytes

WARN_PERCENT = 90.0


@dataclass(frozen=True)
class FilesystemUsage:
    mount: Path
    total: int
    used: int
    free: int  # available to unprivileged users, as df's "Avail"
    holds: tuple[str, ...]  # the labels of the folders on it

    @property
    def percent(self) -> float:
        """df's Use%: used / (used + available), rounded up."""
        denominator = self.used + self.free
        return math.ceil(100 * self.used / denominator) if denominator else 0.0

    @property
    def warn(self) -> bool:
        return self.percent >= WARN_PERCENT


@dataclass(frozen=True)
class FolderSize:
    label: str
    path: Path
    bytes: int | None  # None: the folder does not exist

    @property
    def bytes_str(self) -> str:
        return "-" if self.bytes is None else format_bytes(self.bytes)


@dataclass(frozen=True)
class DiskStatus:
    filesystems: tuple[FilesystemUsage, ...]
    folders: tuple[FolderSize, ...]
    reclaimable: Mapping[str, int]  # category -> bytes `panovlm clean` would free

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(
            f"{fs.mount} is {fs.percent:.0f}% full ({format_bytes(fs.free)} free), "
            f"holding {', '.join(fs.holds)}"
            for fs in self.filesystems
            if fs.warn
        )


def filesystem_usage(locations: Mapping[str, Path]) -> tuple[FilesystemUsage, ...]:
    """Each filesystem holding one of `locations` (label -> path; the nearest existing folder
    counts for a path not created yet), once."""
    found: dict[int, tuple[Path, os.statvfs_result, list[str]]] = {}
    for label, path in locations.items():
        existing = _existing(Path(path).expanduser().absolute())
        device = os.stat(existing).st_dev
        if device not in found:
            found[device] = (mount_point(existing), os.statvfs(existing), [])
        found[device][2].append(label)
    usages = []
    for mount, vfs, labels in found.values():
        total = vfs.f_blocks * vfs.f_frsize
        used = (vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize
        free = vfs.f_bavail * vfs.f_frsize
        usages.append(FilesystemUsage(mount, total, used, free, tuple(labels)))
    return tuple(usages)


def folder_sizes(folders: Mapping[str, Path]) -> tuple[FolderSize, ...]:
    return tuple(
        FolderSize(label, Path(path), tree_bytes(Path(path)) if os.path.isdir(path) else None)
        for label, path in folders.items()
    )


def free_bytes(path: Path) -> int:
    """Bytes available to this user on the filesystem holding `path` (or its nearest parent)."""
    vfs = os.statvfs(_existing(Path(path).absolute()))
    return vfs.f_bavail * vfs.f_frsize


def mount_point(path: Path) -> Path:
    path = Path(os.path.realpath(path))
    device = os.stat(path).st_dev
    while path.parent != path and os.stat(path.parent).st_dev == device:
        path = path.parent
    return path


def _existing(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path
