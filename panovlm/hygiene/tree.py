"""Sizing and removing folders without ever following a symlink.

`remove_tree` works through directory file descriptors (`O_NOFOLLOW`, `dir_fd=`), as
`shutil.rmtree` does on Linux, so a folder swapped for a symlink mid-removal fails instead of
leading out. Unlike `rmtree` it counts the bytes of the files it actually unlinked and carries
on past entries it cannot remove, returning them as messages.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)


def walk_entries(path: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Every entry below `path` (not `path` itself) with its lstat; folders are not followed
    through symlinks, and unreadable folders are passed over."""
    stack = [path]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                found = list(entries)
        except OSError:
            continue
        for entry in found:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            yield Path(entry.path), st
            if stat.S_ISDIR(st.st_mode):
                stack.append(Path(entry.path))


def tree_bytes(path: Path) -> int:
    """Bytes of the regular files at or below `path` (`st_size`), no symlink followed."""
    try:
        st = os.lstat(path)
    except OSError:
        return 0
    if stat.S_ISREG(st.st_mode):
        return st.st_size
    if not stat.S_ISDIR(st.st_mode):
        return 0
    return sum(s.st_size for _, s in walk_entries(path) if stat.S_ISREG(s.st_mode))


def newest_mtime(path: Path) -> float:
    """The latest mtime of `path` and everything below it: when a run folder last changed."""
    try:
        newest = os.lstat(path).st_mtime
    except OSError:
        return 0.0
    for _, st in walk_entries(path):
        newest = max(newest, st.st_mtime)
    return newest


def remove_tree(path: Path) -> tuple[int, list[str]]:
    """Remove the folder `path` and everything in it; (bytes of files unlinked, problems)."""
    parent_fd = os.open(path.parent, _DIR_FLAGS)
    try:
        return _remove_at(parent_fd, path.name, path)
    finally:
        os.close(parent_fd)


def _remove_at(parent_fd: int, name: str, shown: Path) -> tuple[int, list[str]]:
    freed, problems = 0, []
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        return 0, []
    except OSError as exc:
        return 0, [f"{shown}: {exc.strerror}"]
    try:
        with os.scandir(fd) as entries:
            found = list(entries)
        for entry in found:
            try:
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    more, trouble = _remove_at(fd, entry.name, shown / entry.name)
                    freed += more
                    problems += trouble
                else:
                    os.unlink(entry.name, dir_fd=fd)
                    if stat.S_ISREG(st.st_mode):
                        freed += st.st_size
            except FileNotFoundError:
                continue
            except OSError as exc:
                problems.append(f"{shown / entry.name}: {exc.strerror}")
    finally:
        os.close(fd)
    try:
        os.rmdir(name, dir_fd=parent_fd)
    except FileNotFoundError:
        pass
    except OSError as exc:
        if not problems:
            problems.append(f"{shown}: {exc.strerror}")
    return freed, problems


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (the folder's entry list is data too)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - folders cannot be opened on some platforms
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
