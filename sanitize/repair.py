"""Repair damaged images from the original archives: plan (a dry run), then execute.

The plan reads the last scan's report, finds each damaged image in the archive index and reads
that entry once to check its stored CRC. Executing extracts each good entry to a temporary file
beside its target, verifies it with the scan's own check, and only then renames it over the
damaged file: a failed repair leaves the damaged file as it was.
"""

from __future__ import annotations

import csv
import json
import os
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from tqdm import tqdm

from sanitize.archives import ArchiveEntry, ArchiveIndex
from sanitize.check import verify_file
from sanitize.manifest import REPORT_NAME, SUMMARY_NAME, write_csv

PLAN_NAME = "repair_plan.csv"
REPAIRABLE = "repairable"


class RepairError(Exception):
    """No usable scan to repair from (one line)."""


@dataclass(frozen=True)
class RepairItem:
    """One damaged image and what the archives can do for it."""

    relpath: str
    error_type: str
    status: str  # repairable, not_in_archive, archive_entry_damaged, target_outside_root...
    reason: str = ""
    archive: str = ""
    entry: str = ""
    bytes: int = 0


@dataclass(frozen=True)
class RepairPlan:
    """What `execute_repair` would do; computed without changing anything."""

    data_root: str
    items: tuple[RepairItem, ...]
    unusable_archives: dict[str, str]

    @property
    def repairable(self) -> list[RepairItem]:
        return [item for item in self.items if item.status == REPAIRABLE]

    @property
    def bytes_to_write(self) -> int:
        return sum(item.bytes for item in self.repairable)


@dataclass(frozen=True)
class RepairResult:
    """What actually happened: files replaced, and the ones that failed with why."""

    repaired: tuple[str, ...]
    failed: dict[str, str]
    bytes_written: int


def last_scan(out_dir: Path) -> tuple[dict, list[dict]]:
    """The summary and the report rows of the scan written to `out_dir`."""
    try:
        summary = json.loads((out_dir / SUMMARY_NAME).read_text())
        with open(out_dir / REPORT_NAME, newline="") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError as exc:
        raise RepairError(f"no scan in {out_dir} ({Path(exc.filename).name} is missing)") from None
    except (OSError, ValueError) as exc:
        raise RepairError(f"the scan in {out_dir} cannot be read: {exc}") from None
    return summary, rows


class OpenArchives:
    """Zip files kept open across entries, the most recently used few.

    Opening a zip reads its whole central directory: for an archive of 40,000 entries that
    is about 0.17 s, far more than reading one image out of it.
    """

    def __init__(self, limit: int = 8) -> None:
        self.limit = limit
        self._open: OrderedDict[str, zipfile.ZipFile] = OrderedDict()

    def get(self, path: str) -> zipfile.ZipFile:
        archive = self._open.pop(path, None) or zipfile.ZipFile(path)
        self._open[path] = archive
        if len(self._open) > self.limit:
            self._open.popitem(last=False)[1].close()
        return archive

    def __enter__(self) -> OpenArchives:
        return self

    def __exit__(self, *exc: object) -> None:
        for archive in self._open.values():
            archive.close()
        self._open.clear()


def plan_repair(
    data_root: str, report_rows: list[dict], index: ArchiveIndex, progress: bool = False
) -> RepairPlan:
    """Match each damaged image of the report to an archive entry and check that entry."""
    damaged = {}
    for row in report_rows:
        if row.get("relpath"):  # rows outside DATA have none: nothing to repair there
            damaged.setdefault(row["relpath"], row["error_type"])
    bar = tqdm(sorted(damaged.items()), desc="checking archive entries", unit="file",
               disable=not progress or None)  # fmt: skip
    with OpenArchives() as archives:
        items = tuple(_plan_one(data_root, rel, kind, index, archives) for rel, kind in bar)
    return RepairPlan(data_root, items, dict(index.unusable))


def _plan_one(
    root: str, relpath: str, error_type: str, index: ArchiveIndex, archives: OpenArchives
) -> RepairItem:
    if _outside(root, relpath):
        why = "the file resolves outside DATA (a symlink): never written"
        return RepairItem(relpath, error_type, "target_outside_root", why)
    entry = index.find(relpath)
    if entry is None:
        return RepairItem(relpath, error_type, "not_in_archive", "in no archive given")
    problem = _entry_problem(entry, archives)
    status = "archive_entry_damaged" if problem else REPAIRABLE
    return RepairItem(relpath, error_type, status, problem, entry.archive, entry.name, entry.size)


def _outside(root: str, relpath: str) -> bool:
    real_root = os.path.realpath(root)
    target = os.path.realpath(os.path.join(root, relpath))
    return not target.startswith(real_root.rstrip("/") + "/")


def _entry_problem(entry: ArchiveEntry, archives: OpenArchives) -> str:
    """Read the entry once: zipfile checks its CRC against the central directory."""
    try:
        with archives.get(entry.archive).open(entry.name) as f:
            while f.read(1 << 20):
                pass
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return ""


def execute_repair(plan: RepairPlan, progress: bool = False) -> RepairResult:
    """Extract, verify, then rename over the damaged file; never touch anything else."""
    repaired, failed, written = [], {}, 0
    bar = tqdm(total=plan.bytes_to_write, desc="repairing", unit="B", unit_scale=True,
               disable=not progress or None)  # fmt: skip
    with OpenArchives() as archives, bar:
        for item in plan.repairable:
            problem = _repair_one(plan.data_root, item, archives)
            if problem:
                failed[item.relpath] = problem
            else:
                repaired.append(item.relpath)
                written += item.bytes
            bar.update(item.bytes)
    return RepairResult(tuple(repaired), failed, written)


def _repair_one(data_root: str, item: RepairItem, archives: OpenArchives) -> str:
    """Why `item` was not repaired, or "" once the good copy is in place."""
    target = Path(data_root) / item.relpath
    tmp = target.with_name(f".{target.name}.repair-{os.getpid()}")
    try:
        _extract(archives.get(item.archive), item.entry, tmp)
        verdict = verify_file(str(tmp))
        if not verdict.ok:
            return f"the archive copy is damaged too: {verdict.error_type}"
        os.replace(tmp, target)
        return ""
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        tmp.unlink(missing_ok=True)


def _extract(archive: zipfile.ZipFile, entry: str, tmp: Path) -> None:
    with archive.open(entry) as src, open(tmp, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())


def write_plan(plan: RepairPlan, result: RepairResult | None, path: Path) -> None:
    """The plan (and outcome) as CSV, for people and for the review page."""
    columns = {
        name: []
        for name in ("relpath", "error_type", "status", "reason", "archive", "entry", "bytes")
    }
    for item in plan.items:
        status, reason = item.status, item.reason
        if result is not None and item.relpath in result.repaired:
            status = "repaired"
        elif result is not None and item.relpath in result.failed:
            status, reason = "repair_failed", result.failed[item.relpath]
        values = {**item.__dict__, "status": status, "reason": reason}
        for name, column in columns.items():
            column.append(values[name])
    write_csv(pa.table(columns), path)
