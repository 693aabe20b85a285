"""Which roots, which categories: settings in, one `CleanupPlan` out; shared by `panovlm clean`
and `panovlm disk` (what could be freed).

A category the user named, or a root given on the command line, that is missing or refused
(`/`, the home folder) is an error. A default category whose default root is missing or refused
is skipped with a note: no wandb folder is normal, and `panovlm clean` run from the home folder
must not walk all of it for `__pycache__`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from panovlm.hygiene.checkpoints_retention import RetentionPolicy, scan_checkpoints
from panovlm.hygiene.hf_cache import HfPolicy, scan_hf_cache
from panovlm.hygiene.plan import CATEGORIES, CategoryScan, CleanupPlan, build_plan
from panovlm.hygiene.pycache import scan_pycache
from panovlm.hygiene.quarantine import open_quarantine, scan_broken, scan_purge, scan_restore
from panovlm.hygiene.roots import RootError, default_hf_cache, default_wandb_dir, resolve_root
from panovlm.hygiene.wandb_runs import scan_wandb

DEFAULT_CATEGORIES = ("pycache", "hf", "checkpoints", "wandb")


@dataclass(frozen=True)
class Locations:
    """The roots of each category, before resolution (relative paths are from the cwd)."""

    project: Path
    hf_cache: Path
    runs_dir: Path
    wandb_dir: Path
    report: Path
    quarantine: Path | None = None
    data_root: Path | None = None
    given: frozenset[str] = frozenset()  # fields set on the command line: these must exist

    @classmethod
    def defaults(
        cls,
        *,
        manifest: Path = Path("manifests/clean.parquet"),
        runs_dir: Path = Path("runs"),
        hf_cache: Path | None = None,
        wandb_dir: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Locations:
        """From the config's `paths` and the usual environment variables."""
        return cls(
            project=Path.cwd(),
            hf_cache=hf_cache or default_hf_cache(environ),
            runs_dir=runs_dir,
            wandb_dir=wandb_dir or default_wandb_dir(environ),
            report=manifest.parent / "corruption_report.csv",
        )


@dataclass(frozen=True)
class CleanSettings:
    locations: Locations
    categories: tuple[str, ...] = DEFAULT_CATEGORIES
    explicit: bool = False  # the user named the categories
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    hf: HfPolicy = field(default_factory=HfPolicy)
    wandb_days: float = 30.0
    restore: bool = False
    purge_quarantine: bool = False

    def __post_init__(self) -> None:
        unknown = [c for c in self.categories if c not in CATEGORIES]
        if unknown:
            raise ValueError(f"unknown categories {unknown}; choose from {', '.join(CATEGORIES)}")


def scan_all(settings: CleanSettings, now: float | None = None) -> CleanupPlan:
    """Scan every selected category; raises `RootError` for set-up problems only."""
    scans: list[CategoryScan] = []
    skipped: dict[str, str] = {}
    where = settings.locations
    for category in CATEGORIES:
        if category not in settings.categories:
            continue
        if category == "broken":
            scan = _scan_broken(settings)
            if scan is None:
                skipped[category] = f"no corruption report at {where.report}"
            else:
                scans.append(scan)
            continue
        field_name, what = {
            "pycache": ("project", "the project folder"),
            "hf": ("hf_cache", "the Hugging Face cache"),
            "checkpoints": ("runs_dir", "the runs folder"),
            "wandb": ("wandb_dir", "the wandb folder"),
        }[category]
        path = getattr(where, field_name)
        explicit = settings.explicit or field_name in where.given
        if not explicit and not os.path.isdir(path):
            skipped[category] = f"{what} {path} does not exist"
            continue
        try:
            root = resolve_root(path, what)
            if category == "pycache":
                scans.append(scan_pycache(root))
            elif category == "hf":
                scans.append(scan_hf_cache(root, settings.hf, now))
            elif category == "checkpoints":
                scans.append(scan_checkpoints(root, settings.retention, now))
            else:
                scans.append(scan_wandb(root, settings.wandb_days, now))
        except RootError as exc:
            if explicit:
                raise
            skipped[category] = str(exc)  # a default root refused (run from ~, HF_HOME=/)
    return build_plan(scans, skipped)


def _scan_broken(settings: CleanSettings) -> CategoryScan | None:
    where = settings.locations
    if settings.restore or settings.purge_quarantine:
        report = where.report if where.report.is_file() else None
        q = open_quarantine(report, where.quarantine, where.data_root)
        return scan_restore(q) if settings.restore else scan_purge(q)
    if not where.report.is_file():
        if settings.explicit or "report" in where.given:
            raise RootError(f"broken: no corruption report at {where.report} (pass --report)")
        return None
    return scan_broken(open_quarantine(where.report, where.quarantine, where.data_root))
