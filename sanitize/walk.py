"""List the image files of a tree with os.scandir: one stat per file, each directory once."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True, slots=True)
class FileEntry:
    """An image file found by the walk; size and mtime are None for a dangling symlink."""

    relpath: str  # POSIX, relative to the root
    size: int | None
    mtime_ns: int | None


@dataclass
class WalkStats:
    """What the walk skipped, so the summary can say so."""

    unreadable_dirs: list[str]
    symlink_loops: int = 0
    undecodable_names: list[str] = field(default_factory=list)  # not UTF-8: never in a manifest


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def walk_images(
    root: str, include: Sequence[str] = (), stats: WalkStats | None = None
) -> Iterator[FileEntry]:
    """Yield the images under `root` in relpath order, following symlinks but never a loop.

    `include` globs match the POSIX relative path (`*` also crosses `/`); none means all.
    """
    for relpath, entry in _image_entries(root, include, stats or WalkStats([]), warn=True):
        found = _file_entry(entry, relpath)
        if found is not None:
            yield found


def image_relpaths(root: str, include: Sequence[str] = ()) -> Iterator[str]:
    """The relpaths `walk_images` yields (give or take a FIFO), without a stat or a warning:
    a cheap second walk, for counting."""
    for relpath, _ in _image_entries(root, include, WalkStats([]), warn=False):
        yield relpath


def _image_entries(
    root: str, include: Sequence[str], stats: WalkStats, warn: bool
) -> Iterator[tuple[str, os.DirEntry]]:
    root_stat = os.stat(root)
    # Each folder to visit carries the (device, inode) of itself and its ancestors: a symlink
    # back to one of them is a loop. Only the current path is kept, so memory stays flat.
    stack: list[tuple[str, tuple[tuple[int, int], ...]]] = [
        ("", ((root_stat.st_dev, root_stat.st_ino),))
    ]
    while stack:
        reldir, ancestors = stack.pop()
        try:
            with os.scandir(os.path.join(root, reldir) if reldir else root) as it:
                listing = [(entry, _is_dir(entry)) for entry in it]
        except OSError as exc:
            if warn:
                log.warning("cannot list %s: %s", reldir or root, exc.strerror or exc)
            stats.unreadable_dirs.append(reldir)
            continue
        # A folder sorts as "name/" so that the walk yields relpaths in plain string order,
        # the order the stored verdicts are kept in.
        listing.sort(key=lambda item: item[0].name + "/" if item[1] else item[0].name)
        subdirs = []
        for entry, is_dir in listing:
            relpath = f"{reldir}/{entry.name}" if reldir else entry.name
            if is_dir:
                key = _dir_key(entry, ancestors[-1][0])
                if key is None or key in ancestors:
                    stats.symlink_loops += 1
                else:
                    subdirs.append((relpath, (*ancestors, key)))
            elif is_image_name(entry.name) and included(relpath, include):
                if not _utf8(relpath):
                    if warn:
                        log.warning("skipping %r: its name is not UTF-8", relpath)
                    stats.undecodable_names.append(repr(relpath))
                    continue
                yield relpath, entry
        stack.extend(reversed(subdirs))  # pop in sorted order


def _utf8(name: str) -> bool:
    """Names that are not valid UTF-8 reach Python as surrogates, which Parquet cannot hold."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _dir_key(entry: os.DirEntry, parent_dev: int) -> tuple[int, int] | None:
    """(device, inode) of a folder; a plain folder needs no stat (scandir gave its inode)."""
    if not entry.is_symlink():
        return parent_dev, entry.inode()
    try:
        st = entry.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _file_entry(entry: os.DirEntry, relpath: str) -> FileEntry | None:
    try:
        st = entry.stat()  # follows symlinks; cached by scandir for plain files
    except OSError:  # dangling symlink or vanished: the check reports it
        return FileEntry(relpath, None, None)
    if not stat.S_ISREG(st.st_mode):
        return None  # a FIFO or socket named like an image
    return FileEntry(relpath, st.st_size, st.st_mtime_ns)


def included(relpath: str, include: Sequence[str]) -> bool:
    """Whether --include globs select `relpath` (no globs select everything)."""
    return not include or any(fnmatchcase(relpath, pattern) for pattern in include)
