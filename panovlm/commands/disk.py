"""`panovlm disk`: filesystem usage under data, runs and caches, folder sizes, what could go."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "disk", help="disk usage of data, runs and caches, and what `panovlm clean` could free"
    )
    parser.add_argument("--config", type=Path, help="YAML config (default configs/default.yaml)")
    parser.add_argument("--hf-cache", type=Path, help="the hub cache (default: HF_HUB_CACHE)")
    parser.add_argument("--runs-dir", type=Path, help="default: paths.runs_dir")
    parser.add_argument("--wandb-dir", type=Path, help="default: WANDB_DIR/wandb, ./wandb")
    parser.add_argument("--data", type=Path, help="the data root (default: the last scan's)")
    parser.add_argument("--json", action="store_true", help="print the status as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from panovlm.commands.clean import settings_from
    from panovlm.config import ConfigError
    from panovlm.hygiene.disk import DiskStatus, filesystem_usage, folder_sizes
    from panovlm.hygiene.quarantine import _summary_root
    from panovlm.hygiene.roots import RootError
    from panovlm.hygiene.scan import scan_all

    try:
        settings = settings_from(args)
    except (ConfigError, ValueError) as exc:
        print(f"panovlm disk: {exc}", file=sys.stderr)
        return 2
    where = settings.locations
    data = args.data or _summary_root(where.report) or where.report.parent
    locations = {
        "data": data,
        "manifests": where.report.parent,
        "runs": where.runs_dir,
        "hf cache": where.hf_cache,
        "wandb": where.wandb_dir,
    }
    notes = []
    try:
        plan = scan_all(settings)
        reclaimable = {t.category: t.bytes for t in plan.by_category}
        notes += [f"{c}: not scanned: {why}" for c, why in plan.skipped_categories.items()]
    except RootError as exc:
        reclaimable = {}
        notes.append(f"what could be freed is unknown: {exc}")
    status = DiskStatus(
        filesystems=filesystem_usage(locations),
        folders=folder_sizes(
            {"hf cache": where.hf_cache, "runs": where.runs_dir, "wandb": where.wandb_dir}
        ),
        reclaimable=reclaimable,
    )
    if args.json:
        print(json.dumps(status_json(status, locations, notes), indent=2))
    else:
        print(format_status(status, notes))
    return 0


def format_status(status, notes: list[str]) -> str:
    from panovlm.hygiene.plan import format_bytes

    lines = [
        "Filesystems",
        f"  {'mount':<24} {'size':>10} {'used':>10} {'avail':>10} {'use%':>5}  holds",
    ]
    for fs in status.filesystems:
        lines.append(
            f"  {fs.mount!s:<24} {format_bytes(fs.total):>10} {format_bytes(fs.used):>10} "
            f"{format_bytes(fs.free):>10} {fs.percent:>4.0f}%  {', '.join(fs.holds)}"
            + ("  <- WARNING" if fs.warn else "")
        )
    lines += [f"  warning: {w}" for w in status.warnings]
    lines.append("Folders")
    for folder in status.folders:
        lines.append(f"  {folder.label:<10} {folder.bytes_str:>10}  {folder.path}")
    total = sum(status.reclaimable.values())
    parts = ", ".join(f"{c} {format_bytes(b)}" for c, b in status.reclaimable.items())
    could = f"`panovlm clean` could free {format_bytes(total)}"
    lines.append(f"{could}: {parts}" if parts else could)
    lines += [f"  {note}" for note in notes]
    return "\n".join(lines)


def status_json(status, locations: dict, notes: list[str]) -> dict:
    return {
        "filesystems": [
            {
                "mount": str(fs.mount),
                "total_bytes": fs.total,
                "used_bytes": fs.used,
                "free_bytes": fs.free,
                "percent": fs.percent,
                "warn": fs.warn,
                "holds": list(fs.holds),
            }
            for fs in status.filesystems
        ],
        "locations": {label: str(path) for label, path in locations.items()},
        "folders": [
            {"label": f.label, "path": str(f.path), "bytes": f.bytes} for f in status.folders
        ],
        "reclaimable_bytes": dict(status.reclaimable),
        "warnings": list(status.warnings),
        "notes": notes,
    }
