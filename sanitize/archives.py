"""Index the original dataset archives by their central directories, once, to find good copies."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
SEVEN_ZIP_MAGIC = b"7z\xbc\xaf\x27\x1c"
# Archives hold "Structured3D/scene_00012/..." while DATA may start anywhere above or below:
# from the scene folder on, paths agree.
_SCENE_PART = re.compile(r"(?:^|/)(scene_\d{5}/.*)$")


@dataclass(frozen=True)
class ArchiveEntry:
    """One file inside an archive, as its central directory describes it."""

    archive: str
    name: str
    crc: int
    size: int


@dataclass(frozen=True)
class ArchiveIndex:
    """Entries by match key, and the archives that could not be read (with why)."""

    entries: dict[str, ArchiveEntry]
    unusable: dict[str, str]

    def find(self, relpath: str) -> ArchiveEntry | None:
        return self.entries.get(match_key(relpath))


def match_key(path: str) -> str:
    """The part of a path that a file in DATA and its archive entry share."""
    found = _SCENE_PART.search(path)
    return found.group(1) if found else path.lstrip("/")


def index_archives(folder: Path, cache: Path | None = None) -> ArchiveIndex:
    """Every archive under `folder`; each central directory is read once and cached."""
    entries: dict[str, ArchiveEntry] = {}
    unusable: dict[str, str] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and _is_archive_name(p)):
        listing = _cached(path, cache)
        if isinstance(listing, str):
            unusable[str(path)] = listing
            continue
        for name, crc, size in listing:
            entries.setdefault(match_key(name), ArchiveEntry(str(path), name, crc, size))
    return ArchiveIndex(entries, unusable)


def _is_archive_name(path: Path) -> bool:
    return path.suffix.lower() in (".zip", ".7z")


def _cached(path: Path, cache: Path | None) -> list[tuple[str, int, int]] | str:
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    file = cache / f"{hashlib.sha1(key.encode()).hexdigest()}.json" if cache else None
    if file is not None and file.exists():
        return json.loads(file.read_text())
    listing = _list(path)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps(listing))
        os.replace(tmp, file)
    return listing


def _list(path: Path) -> list[tuple[str, int, int]] | str:
    """(name, crc, size) of each file entry, or why the archive cannot be used."""
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(SEVEN_ZIP_MAGIC[:6]):
        return (
            "a 7z archive under a .zip name: extract it with `7z x` and repair from the "
            "extracted files, or convert it to zip"
        )
    if not magic.startswith(ZIP_MAGIC):
        return f"not a zip archive (starts {magic!r})"
    try:
        with zipfile.ZipFile(path) as archive:
            return [
                (info.filename, info.CRC, info.file_size)
                for info in archive.infolist()
                if not info.is_dir()
            ]
    except (zipfile.BadZipFile, OSError) as exc:
        return f"unreadable zip: {exc}"
