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
    if summary["unreadable_dirs"]:
        lines.append(f"  warning: {len(summary['unreadable_dirs'])} folders could not be listed")
    names = ", ".join((CLEAN_NAME, REPORT_NAME, SUMMARY_NAME))
    lines.append(f"Manifests in {summary['out_dir']}: {names}")
    return "\n".join(lines)
