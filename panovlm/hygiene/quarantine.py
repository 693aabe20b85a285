"""`broken`: move the images a scan found damaged into a quarantine folder, and back.

The list is `corruption_report.csv` (`relpath` relative to the data root, which the
`summary.json` beside it records as `data_root`). Each listed file inside the data root is moved
to `<quarantine>/<relpath>`, so the folder mirrors the dataset, and every move is appended to
`<quarantine>/.panovlm-quarantine.jsonl`; `.panovlm-quarantine.json`, written before the first
move, records the data root. `--restore` moves every file of the quarantine back to the same
relative path, refusing to overwrite a file that reappeared there. Nothing is deleted unless
asked (`purge`), and then only files inside the quarantine.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from panovlm.hygiene.execute import DELETED, MOVED, ItemOutcome
from panovlm.hygiene.plan import MOVE, CategoryScan, CleanupItem, Stamp
from panovlm.hygiene.roots import RootError, outside_reason, resolve_root
from panovlm.hygiene.tree import walk_entries

HEADER = ".panovlm-quarantine.json"
JOURNAL = ".panovlm-quarantine.jsonl"
METADATA = frozenset({HEADER, JOURNAL})


@dataclass(frozen=True)
class Quarantine:
    """A data root and the quarantine folder for it, both resolved and checked."""

    data_root: Path
    folder: Path
    report: Path | None = None


def open_quarantine(
    report: Path | None,
    folder: Path | None = None,
    data_root: Path | None = None,
) -> Quarantine:
    """Resolve the data root (argument, the quarantine's header, then `summary.json` beside the
    report) and the quarantine folder (default `<report folder>/quarantine`)."""
    if folder is None:
        if report is None:
            raise RootError("broken: give a corruption report or --quarantine DIR")
        folder = report.parent / "quarantine"
    folder_real = Path(os.path.realpath(folder.expanduser()))
    if data_root is None:
        data_root = _recorded_root(folder_real)
    if data_root is None and report is not None:
        data_root = _summary_root(report)
    if data_root is None:
        raise RootError(
            f"broken: no data root: neither {folder / HEADER} nor a summary.json beside "
            f"{report} records one (pass --data DIR)"
        )
    root = resolve_root(data_root, "the data root")
    if folder_real.exists():
        folder_real = resolve_root(folder_real, "the quarantine folder")
    elif not folder_real.parent.is_dir():
        raise RootError(f"the quarantine folder's parent {folder.parent} does not exist")
    if folder_real.is_relative_to(root) or root.is_relative_to(folder_real):
        raise RootError(
            f"the quarantine folder {folder} and the data root {root} must not contain each other"
        )
    recorded = _recorded_root(folder_real)
    if recorded is not None and Path(os.path.realpath(recorded)) != root:
        raise RootError(f"{folder} holds files quarantined from {recorded}, not {root}")
    return Quarantine(root, folder_real, report)


def scan_broken(q: Quarantine) -> CategoryScan:
    """Move items for every file of the report still in the data root."""
    assert q.report is not None
    try:
        with open(q.report, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise RootError(f"broken: cannot read {q.report}: {exc.strerror}") from exc
    if rows and "relpath" not in rows[0]:
        raise RootError(f"broken: {q.report} has no relpath column")
    items, warnings, seen = [], [], set()
    for row in rows:
        relpath = row.get("relpath") or ""
        if relpath in seen:
            continue
        seen.add(relpath)
        rel = _safe_relpath(relpath)
        if rel is None:
            warnings.append(f"broken: {relpath!r} is not a path inside the data root; skipped")
            continue
        source, destination = q.data_root / rel, q.folder / rel
        why = _unmovable(source, q.data_root)
        if why:
            if why == "missing" and os.path.lexists(destination):
                continue  # quarantined already
            warnings.append(f"broken: {source}: {why}; skipped")
            continue
        st = os.lstat(source)
        error = (row.get("error") or "").splitlines()[0][:100] if row.get("error") else ""
        items.append(
            CleanupItem(
                category="broken",
                path=source,
                bytes=st.st_size,
                reason=f"{row.get('error_type') or 'damaged'}: {error}".rstrip(": "),
                root=q.data_root,
                stamp=Stamp.of(st),
                action=MOVE,
                destination=destination,
                destination_root=q.folder,
            )
        )
    return CategoryScan("broken", q.data_root, tuple(items), tuple(warnings), _context(q))


def scan_restore(q: Quarantine) -> CategoryScan:
    """Move items putting every quarantined file back where it came from."""
    items, warnings = [], []
    for path, st in sorted(_quarantined(q.folder)):
        rel = path.relative_to(q.folder)
        destination = q.data_root / rel
        if os.path.lexists(destination):
            warnings.append(f"broken: {destination} exists again; {path} stays in quarantine")
            continue
        items.append(
            CleanupItem(
                category="broken",
                path=path,
                bytes=st.st_size,
                reason="restore",
                root=q.folder,
                stamp=Stamp.of(st),
                action=MOVE,
                destination=destination,
                destination_root=q.data_root,
            )
        )
    return CategoryScan("broken", q.folder, tuple(items), tuple(warnings), _context(q))


def scan_purge(q: Quarantine) -> CategoryScan:
    """Delete items for every file in the quarantine (asked for explicitly)."""
    items = [
        CleanupItem("broken", path, st.st_size, "quarantined damaged image", q.folder, Stamp.of(st))
        for path, st in sorted(_quarantined(q.folder))
    ]
    return CategoryScan("broken", q.folder, tuple(items), (), _context(q))


class Journal:
    """Records moves in and out of the quarantine as they happen, one fsynced line each.

    `start()` writes the header (the data root) before the first file lands in the folder, so
    the quarantine can always be restored, even after a crash between a move and its line.
    """

    def __init__(self, q: Quarantine) -> None:
        self.q = q

    def start(self) -> None:
        self.q.folder.mkdir(parents=True, exist_ok=True)
        header = self.q.folder / HEADER
        if header.exists():
            return
        tmp = header.with_name(f".{HEADER}.tmp-{os.getpid()}")
        data = {"data_root": str(self.q.data_root), "created": _now()}
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, header)

    def record(self, outcome: ItemOutcome) -> None:
        item = outcome.item
        from_quarantine = item.root == self.q.folder
        if outcome.status == MOVED:
            event = "restored" if from_quarantine else "quarantined"
        elif outcome.status == DELETED and from_quarantine:
            event = "purged"
        else:
            return
        inside = item.path if from_quarantine else item.destination
        assert inside is not None
        line = {
            "event": event,
            "relpath": inside.relative_to(self.q.folder).as_posix(),
            "bytes": outcome.bytes,
            "reason": item.reason,
            "at": _now(),
        }
        with open(self.q.folder / JOURNAL, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def prune_empty_folders(folder: Path) -> None:
    """Remove folders left empty below `folder` (after a restore or purge)."""
    for path, st in sorted(walk_entries(folder), key=lambda e: len(e[0].parts), reverse=True):
        if stat.S_ISDIR(st.st_mode):
            with contextlib.suppress(OSError):
                os.rmdir(path)


def _context(q: Quarantine) -> dict[str, Path]:
    return {"data_root": q.data_root, "quarantine": q.folder}


def _quarantined(folder: Path):
    if not folder.is_dir():
        return
    for path, st in walk_entries(folder):
        if stat.S_ISREG(st.st_mode) and not (path.parent == folder and path.name in METADATA):
            yield path, st


def _safe_relpath(relpath: str) -> Path | None:
    pure = PurePosixPath(relpath)
    if not relpath or pure.is_absolute() or ".." in pure.parts or pure.parts[0] in METADATA:
        return None
    return Path(*pure.parts)


def _unmovable(source: Path, root: Path) -> str | None:
    problem = outside_reason(source, root)
    if problem:
        return problem
    try:
        st = os.lstat(source)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return exc.strerror
    if stat.S_ISLNK(st.st_mode):
        return "a symlink (its target is not moved)"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    return None


def _recorded_root(folder: Path) -> Path | None:
    try:
        return Path(json.loads((folder / HEADER).read_text(encoding="utf-8"))["data_root"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _summary_root(report: Path) -> Path | None:
    try:
        return Path(
            json.loads((report.parent / "summary.json").read_text(encoding="utf-8"))["data_root"]
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def journal_for(plan) -> Journal | None:
    """The journal of the quarantine the plan's `broken` items move into or out of."""
    for scan in plan.scans:
        if scan.category == "broken" and scan.items and "quarantine" in scan.context:
            return Journal(Quarantine(scan.context["data_root"], scan.context["quarantine"]))
    return None
