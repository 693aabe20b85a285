"""`sanitize report`: one self-contained HTML page to review the damage the last scan found."""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from sanitize.cli import UsageError
from sanitize.manifest import REPORT_NAME, REPORT_SCHEMA, SUMMARY_NAME
from sanitize.report_page import Review, human_bytes, render_page
from sanitize.thumbnails import DECODABLE, Thumbnail, make_thumbnails

PAGE_NAME = "report.html"
REPAIR_PLAN_NAME = "repair_plan.csv"
PLAN_COLUMNS = ("relpath", "archive", "entry", "status")
PLAN_EXTRAS = ("reason",)  # shown where the plan has them
# Thumbnails of at most this many decodable rows (about 2 KB each in the page); the rest of a
# huge report shows a "thumbnail limit" glyph, so 10,000 rows stay a few MB.
DEFAULT_THUMBNAILS = 1000
_REQUIRED = ("url", "relpath", "error_type", "error")


@dataclass(frozen=True, slots=True)
class ReportResult:
    """What `build_report` wrote."""

    path: Path
    damaged: int
    types: int
    thumbnails: int
    bytes: int


def register(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser(
        "report", help="write OUT/report.html: the damage of the last scan, to review in a browser"
    )
    report.add_argument(
        "--out", default="manifests", help="the scan's output folder (default: manifests)"
    )
    report.add_argument("--jobs", type=int, default=0, help="worker processes (default 0: all)")
    report.add_argument(
        "--thumbnails",
        type=int,
        default=DEFAULT_THUMBNAILS,
        metavar="N",
        help="thumbnail at most N images, spread over the error types "
        f"(default {DEFAULT_THUMBNAILS})",
    )
    report.add_argument("--no-progress", action="store_true", help="no progress bar")
    report.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    if args.jobs < 0:
        raise UsageError(f"--jobs must be 0 (all cores) or more, not {args.jobs}")
    if args.thumbnails < 0:
        raise UsageError(f"--thumbnails must be 0 or more, not {args.thumbnails}")
    jobs = args.jobs or len(os.sched_getaffinity(0))
    result = build_report(Path(args.out), jobs, args.thumbnails, progress=not args.no_progress)
    print(
        f"Wrote {result.path}: {result.damaged:,} damaged images, {result.types} types "
        f"({human_bytes(result.bytes)}, {result.thumbnails:,} thumbnails)"
    )
    return 0


def build_report(out_dir: Path, jobs: int, max_thumbnails: int, progress: bool) -> ReportResult:
    """Read the scan's outputs in `out_dir`, make thumbnails, write `out_dir/report.html`."""
    rows = read_report(out_dir)
    summary = read_summary(out_dir)
    plan = read_plan(out_dir)
    if plan is not None:
        for row in rows:
            row.update(plan.get(row["relpath"], dict.fromkeys(PLAN_COLUMNS[1:] + PLAN_EXTRAS)))
    thumbnails = _thumbnails(rows, jobs, max_thumbnails, progress)
    review = Review(rows, thumbnails, summary, has_plan=plan is not None, source=str(out_dir))
    page = render_page(review).encode()
    path = out_dir / PAGE_NAME
    _write_atomic(path, page)
    return ReportResult(
        path=path,
        damaged=len(rows),
        types=len({row["error_type"] for row in rows}),
        thumbnails=sum(t.image is not None for t in thumbnails),
        bytes=len(page),
    )


def read_report(out_dir: Path) -> list[dict]:
    """The rows of `out_dir/corruption_report.csv`; a missing or malformed one is a usage error."""
    if not out_dir.is_dir():
        raise UsageError(
            f"--out {out_dir} is not a folder; run `sanitize scan DATA --out {out_dir}`"
        )
    path = out_dir / REPORT_NAME
    if not path.is_file():
        raise UsageError(f"no {REPORT_NAME} in {out_dir}; run `sanitize scan DATA --out {out_dir}`")
    types = {field.name: field.type for field in REPORT_SCHEMA}
    try:
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types))
    except (OSError, pa.ArrowInvalid) as exc:
        raise UsageError(f"{path} cannot be read: {str(exc).splitlines()[0]}") from None
    missing = [name for name in _REQUIRED if name not in table.column_names]
    if missing:
        raise UsageError(f"{path} lacks the column(s) {', '.join(missing)}")
    return table.to_pylist()


def read_summary(out_dir: Path) -> dict | None:
    """summary.json, or None where the scan wrote none."""
    path = out_dir / SUMMARY_NAME
    if not path.exists():
        return None
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} cannot be read: {exc}") from None
    if not isinstance(summary, dict):
        raise UsageError(f"{path} is not a JSON object")
    return summary


def read_plan(out_dir: Path) -> dict[str, dict] | None:
    """repair_plan.csv by relpath ({archive, entry, status}), or None before any repair plan."""
    path = out_dir / REPAIR_PLAN_NAME
    if not path.exists():
        return None
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in PLAN_COLUMNS if c not in (reader.fieldnames or ())]
            if missing:
                raise UsageError(f"{path} lacks the column(s) {', '.join(missing)}")
            fields = PLAN_COLUMNS[1:] + PLAN_EXTRAS
            return {row["relpath"]: {c: row.get(c) or None for c in fields} for row in reader}
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"{path} cannot be read: {exc}") from None


def pick_thumbnails(error_types: Sequence[str], limit: int) -> set[int]:
    """Indices of up to `limit` decodable rows, taken in turn from each type (in row order).

    Taking turns means every type keeps examples when one type has thousands of rows.
    """
    by_type: dict[str, list[int]] = {}
    for i, error_type in enumerate(error_types):
        if error_type in DECODABLE:
            by_type.setdefault(error_type, []).append(i)
    turns = itertools.chain.from_iterable(itertools.zip_longest(*by_type.values()))
    return set(itertools.islice((i for i in turns if i is not None), limit))


def _thumbnails(rows: list[dict], jobs: int, limit: int, progress: bool) -> list[Thumbnail]:
    picked = pick_thumbnails([row["error_type"] for row in rows], limit)
    over_limit = Thumbnail(glyph="thumbnail limit")
    wanted = [i for i, row in enumerate(rows) if row["error_type"] not in DECODABLE or i in picked]
    tasks = [(rows[i]["url"], rows[i]["error_type"], rows[i].get("mtime_ns")) for i in wanted]
    made = dict(zip(wanted, make_thumbnails(tasks, jobs, progress), strict=True))
    return [made.get(i, over_limit) for i in range(len(rows))]


def _write_atomic(path: Path, data: bytes) -> None:
    """Write beside `path`, then rename over it: a reader never sees half a page."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        raise UsageError(f"{path} cannot be written: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
