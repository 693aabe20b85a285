"""The scan summary: counts by error type and throughput, as JSON and as a few human lines."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sanitize.check import ERROR_TYPES
from sanitize.manifest import CLEAN_NAME, REPORT_NAME, SUMMARY_NAME
from sanitize.walk import WalkStats


def build_summary(
    counts: Counter[str],
    seconds: float,
    bytes_scanned: int,
    walk: WalkStats,
    settings: dict,
    out_dir: Path,
) -> dict:
    """The machine-readable summary written as summary.json."""
    scanned = sum(counts.values())
    return {
        "data_root": settings["data_root"],
        "out_dir": str(out_dir.resolve()),
        "scanned": scanned,
        "clean": counts["clean"],
        "damaged": scanned - counts["clean"],
        "by_error_type": {t: counts[t] for t in ERROR_TYPES if counts[t]},
        "seconds": round(seconds, 3),
        "images_per_second": round(scanned / seconds, 1) if seconds > 0 else None,
        "bytes_scanned": bytes_scanned,
        "unreadable_dirs": walk.unreadable_dirs,
        "symlink_loops_skipped": walk.symlink_loops,
        "undecodable_names_skipped": walk.undecodable_names,
        "settings": settings,
    }


def format_summary(summary: dict) -> str:
    """A short human summary for the end of a scan."""
    lines = [
        f"Scanned {summary['scanned']:,} images under {summary['data_root']} "
        f"in {summary['seconds']:.1f} s ({summary['images_per_second'] or 0:,.1f} images/s, "
        f"{summary['bytes_scanned'] / 1e6:,.1f} MB)",
        f"  clean    {summary['clean']:>9,}",
        f"  damaged  {summary['damaged']:>9,}",
    ]
    lines += [f"    {name:<13}{n:>8,}" for name, n in summary["by_error_type"].items()]
    if "reused" in summary:
        lines.append(
            f"  decoded {summary['checked']:,}, reused {summary['reused']:,} stored verdicts "
            f"({summary['state_dir']})"
        )
    failures = summary.get("runtime_failures")
    if failures:
        bad = sum(1 for t in failures.values() if t not in ("clean", "not_scanned"))
        lines.append(
            f"  training failed on {len(failures):,} files since the last scan: re-checked "
            f"first, {bad:,} damaged now (listed in summary.json)"
        )
    lines += _annotation_lines(summary.get("annotations"))
    lines += _selection_lines(summary)
    if summary.get("undecodable_names_skipped"):
        skipped = len(summary["undecodable_names_skipped"])
        lines.append(f"  warning: {skipped} files skipped: their names are not UTF-8")
    if summary["unreadable_dirs"]:
        lines.append(f"  warning: {len(summary['unreadable_dirs'])} folders could not be listed")
    names = ", ".join((CLEAN_NAME, REPORT_NAME, SUMMARY_NAME))
    lines.append(f"Manifests in {summary['out_dir']}: {names}")
    if summary["damaged"] or (summary.get("annotations") or {}).get("rows_dropped"):
        lines.append(f"Review the damage: sanitize report --out {summary['out_dir']}")
    return "\n".join(lines)


def _annotation_lines(annotations: dict | None) -> list[str]:
    if not annotations:
        return []
    dropped = sum(annotations["rows_dropped"].values())
    lines = [
        f"Annotation rows: {annotations['rows']:,}, kept {annotations['rows_kept']:,}, "
        f"dropped {dropped:,}, left out by --split/--exclude-errata "
        f"{annotations['rows_filtered']:,}"
    ]
    lines += [f"    {reason:<13}{n:>8,}" for reason, n in annotations["rows_dropped"].items()]
    for source, counts in annotations["sources"].items():
        lost = ", ".join(f"{n} {reason}" for reason, n in counts["dropped"].items()) or "none"
        lines.append(f"  {source}: kept {counts['kept']:,} of {counts['rows']:,} (dropped: {lost})")
    return lines


def _selection_lines(summary: dict, most: int = 10) -> list[str]:
    lines = []
    filtered = summary.get("filtered") or {}
    if filtered:
        lines.append("  left out: " + ", ".join(f"{n:,} {why}" for why, n in filtered.items()))
    gaps = summary.get("incomplete_panoramas") or []
    if gaps:
        lines.append(f"Incomplete panorama sets (a lighting absent or damaged): {len(gaps):,}")
        for gap in gaps[:most]:
            parts = [f"absent {', '.join(gap['absent'])}"] if gap["absent"] else []
            parts += [f"damaged {', '.join(gap['damaged'])}"] if gap["damaged"] else []
            lines.append(f"  {gap['folder']}: {'; '.join(parts)}")
        if len(gaps) > most:
            lines.append(f"  ... and {len(gaps) - most:,} more in summary.json")
    return lines


def format_plan(plan, archives: Path) -> str:
    """The repair plan: repairable files and bytes, the rest by reason, unusable archives."""
    counts = Counter(item.status for item in plan.items)
    lines = [f"Repair plan for {len(plan.items):,} damaged images under {plan.data_root}"]
    lines.append(
        f"  {'repairable':<24}{counts.pop('repairable', 0):>7,}  "
        f"{plan.bytes_to_write / 1e6:,.1f} MB from {archives}"
    )
    lines += [f"  {status:<24}{n:>7,}" for status, n in sorted(counts.items())]
    for item in plan.items:
        if item.status not in ("repairable", "not_in_archive"):
            lines.append(f"    {item.relpath}: {item.reason}")
    for archive, why in plan.unusable_archives.items():
        lines.append(f"  cannot use {archive}: {why}")
    return "\n".join(lines)
