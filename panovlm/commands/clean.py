"""`panovlm clean [CATEGORY...]`: scan, print the plan, act only with --yes (or y at a prompt).

Categories: pycache, hf, checkpoints, wandb (the default four) and broken (only when named).
Roots come from the options, else the config's `paths`, else HF_HUB_CACHE / HF_HOME / WANDB_DIR.
Exit status: 0 when done or a dry run, 1 when some item could not be removed, 2 for a bad root
or argument.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from panovlm.hygiene.plan import CATEGORIES

DEFAULT_CONFIG = Path("configs/default.yaml")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "clean",
        help="free disk: caches, old checkpoints, wandb runs; quarantine damaged images",
        description=(
            "Scan, print a plan, and act only with --yes (or y at a terminal prompt). "
            "Categories: pycache, hf, checkpoints, wandb (the default), broken, or all."
        ),
    )
    parser.add_argument("categories", nargs="*", metavar="CATEGORY")
    parser.add_argument("--config", type=Path, help=f"YAML config (default {DEFAULT_CONFIG})")
    parser.add_argument("-y", "--yes", action="store_true", help="act without asking")
    parser.add_argument("--dry-run", action="store_true", help="print the plan; never ask or act")
    parser.add_argument("--json", action="store_true", help="print the plan and result as JSON")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every item")
    where = parser.add_argument_group("roots")
    where.add_argument("--project", type=Path, help="pycache: the project (default: cwd)")
    where.add_argument("--hf-cache", type=Path, help="hf: the hub cache (default: HF_HUB_CACHE)")
    where.add_argument("--runs-dir", type=Path, help="checkpoints (default: paths.runs_dir)")
    where.add_argument("--wandb-dir", type=Path, help="wandb (default: WANDB_DIR/wandb, ./wandb)")
    where.add_argument("--report", type=Path, help="broken: corruption_report.csv")
    where.add_argument("--quarantine", type=Path, help="broken: where to move them")
    where.add_argument("--data", type=Path, help="broken: the data root (default: summary.json)")
    policy = parser.add_argument_group("what goes")
    policy.add_argument("--days", type=float, default=30.0, help="checkpoints, wandb: age (30)")
    policy.add_argument("--keep", type=int, default=3, help="checkpoints: newest kept per run")
    policy.add_argument("--hf-unused-days", type=float, help="hf: also repos unused this long")
    policy.add_argument(
        "--stale-minutes", type=float, default=60.0, help="hf: locks, partial downloads (60)"
    )
    policy.add_argument("--restore", action="store_true", help="broken: put quarantined back")
    policy.add_argument(
        "--purge-quarantine", action="store_true", help="broken: delete the quarantined files"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from panovlm.config import ConfigError
    from panovlm.hygiene.execute import execute
    from panovlm.hygiene.quarantine import journal_for, prune_empty_folders
    from panovlm.hygiene.roots import RootError
    from panovlm.hygiene.scan import scan_all

    try:
        settings = settings_from(args)
        plan = scan_all(settings)
    except (RootError, ConfigError, ValueError) as exc:
        print(f"panovlm clean: {exc}", file=sys.stderr)
        return 2
    if not args.json:
        print(format_plan(plan, verbose=args.verbose))
    if not plan.items or not _confirmed(args, plan):
        if args.json:
            print(json.dumps(plan_json(plan, None), indent=2))
        elif plan.items:
            print("Dry run: nothing was changed. Run again with --yes to act on this plan.")
        return 0
    journal = journal_for(plan)
    if journal is not None:
        journal.start()
    result = execute(plan, on_outcome=journal.record if journal else None)
    if journal is not None and (args.restore or args.purge_quarantine):
        prune_empty_folders(journal.q.folder)
    if args.json:
        print(json.dumps(plan_json(plan, result), indent=2))
    else:
        print(format_result(plan, result))
    return 1 if result.failed else 0


def settings_from(args: argparse.Namespace):
    """Command line, then the config's `paths`, then the environment."""
    from panovlm.config import PathsConfig, load_config
    from panovlm.hygiene.checkpoints_retention import RetentionPolicy
    from panovlm.hygiene.hf_cache import HfPolicy
    from panovlm.hygiene.scan import DEFAULT_CATEGORIES, CleanSettings, Locations

    config = getattr(args, "config", None)
    if config is None and DEFAULT_CONFIG.is_file():
        config = DEFAULT_CONFIG
    paths = load_config(config).paths if config is not None else PathsConfig()
    where = Locations.defaults(
        manifest=paths.manifest,
        runs_dir=paths.runs_dir,
        hf_cache=paths.hf_cache,
        wandb_dir=paths.wandb_dir,
    )
    overrides = {
        "project": getattr(args, "project", None),
        "hf_cache": getattr(args, "hf_cache", None),
        "runs_dir": getattr(args, "runs_dir", None),
        "wandb_dir": getattr(args, "wandb_dir", None),
        "report": getattr(args, "report", None),
        "quarantine": getattr(args, "quarantine", None),
        "data_root": getattr(args, "data", None),
    }
    given = {k: v for k, v in overrides.items() if v is not None}
    where = dataclasses.replace(where, **given, given=frozenset(given))
    names = list(getattr(args, "categories", None) or [])
    if getattr(args, "restore", False) or getattr(args, "purge_quarantine", False):
        if args.restore and args.purge_quarantine:
            raise ValueError("--restore and --purge-quarantine do not go together")
        if names and names != ["broken"]:
            raise ValueError("--restore and --purge-quarantine concern the broken category only")
        names = ["broken"]
    everything = "all" in names  # every category that applies: missing roots are skipped
    if everything:
        names = list(CATEGORIES)
    unknown = [n for n in names if n not in CATEGORIES]
    if unknown:
        raise ValueError(
            f"unknown category {', '.join(unknown)}; choose from {', '.join(CATEGORIES)}, all"
        )
    return CleanSettings(
        locations=where,
        categories=tuple(names) or DEFAULT_CATEGORIES,
        explicit=bool(names) and not everything,
        retention=RetentionPolicy(
            keep_newest=getattr(args, "keep", 3), older_than_days=getattr(args, "days", 30.0)
        ),
        hf=HfPolicy(
            unused_days=getattr(args, "hf_unused_days", None),
            stale_minutes=getattr(args, "stale_minutes", 60.0),
        ),
        wandb_days=getattr(args, "days", 30.0),
        restore=getattr(args, "restore", False),
        purge_quarantine=getattr(args, "purge_quarantine", False),
    )


def _confirmed(args: argparse.Namespace, plan) -> bool:
    if args.dry_run:
        return False
    if args.yes:
        return True
    if args.json or not sys.stdin.isatty():
        return False  # never prompt without a terminal: a dry run
    question = f"Act on {len(plan.items)} items, freeing {plan.expected_freed_str}? [y/N] "
    try:
        return input(question).strip().lower() in ("y", "yes")
    except EOFError:
        return False


def format_plan(plan, *, verbose: bool = False) -> str:
    from panovlm.hygiene.plan import format_bytes

    lines = ["Cleanup plan", f"  {'category':<12} {'action':<8} {'items':>7} {'bytes':>11}"]
    for total in plan.by_category:
        lines.append(
            f"  {total.category:<12} {total.action:<8} {total.items:>7} {total.bytes_str:>11}"
        )
    moved = plan.expected_moved_bytes
    lines.append(
        f"  {'total':<21} {len(plan.items):>7} {plan.expected_freed_str:>11} to free"
        + (f", {format_bytes(moved)} to move" if moved else "")
    )
    for scan in plan.scans:
        lines.append(f"  {scan.category} root: {scan.root}")
    for category, why in plan.skipped_categories.items():
        lines.append(f"  {category}: not scanned: {why}")
    if verbose:
        for item in plan.items:
            target = f" -> {item.destination}" if item.destination else ""
            lines.append(
                f"    {item.category:<11} {format_bytes(item.bytes):>10}  {item.path}{target}"
                f"  ({item.reason})"
            )
    for warning in plan.warnings:
        lines.append(f"  warning: {warning}")
    return "\n".join(lines)


def format_result(plan, result) -> str:
    from panovlm.hygiene.plan import format_bytes

    done = {status: 0 for status in ("deleted", "moved", "partial", "skipped", "failed")}
    for outcome in result.outcomes:
        done[outcome.status] += 1
    parts = [f"{n} {status}" for status, n in done.items() if n]
    lines = [f"Freed {result.freed_str} (planned {plan.expected_freed_str}): " + ", ".join(parts)]
    if result.moved_bytes:
        lines[0] += f"; moved {format_bytes(result.moved_bytes)}"
    for outcome in result.outcomes:
        if outcome.status not in ("deleted", "moved"):
            lines.append(f"  {outcome.status}: {outcome.item.path}: {outcome.message}")
    return "\n".join(lines)


def plan_json(plan, result) -> dict:
    data = {
        "dry_run": result is None,
        "roots": {scan.category: str(scan.root) for scan in plan.scans},
        "not_scanned": dict(plan.skipped_categories),
        "categories": [
            {"category": t.category, "action": t.action, "items": t.items, "bytes": t.bytes}
            for t in plan.by_category
        ],
        "expected_freed_bytes": plan.expected_freed_bytes,
        "expected_moved_bytes": plan.expected_moved_bytes,
        "items": [
            {
                "category": item.category,
                "action": item.action,
                "path": str(item.path),
                "destination": str(item.destination) if item.destination else None,
                "bytes": item.bytes,
                "reason": item.reason,
            }
            for item in plan.items
        ],
        "warnings": list(plan.warnings),
        "result": None,
    }
    if result is not None:
        data["result"] = {
            "freed_bytes": result.freed_bytes,
            "moved_bytes": result.moved_bytes,
            "outcomes": [
                {
                    "path": str(o.item.path),
                    "status": o.status,
                    "bytes": o.bytes,
                    "message": o.message,
                }
                for o in result.outcomes
            ],
        }
    return data
