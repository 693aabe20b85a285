"""The `sanitize` command: thin argument handling over run, demo and summary."""

from __future__ import annotations

import argparse
import importlib
import importlib.abc
import json
import logging
import os
import sys
from pathlib import Path

from sanitize import __version__

# More subcommands, each a module with `register(commands)` that sets `run=` on its parser.
COMMAND_MODULES: tuple[str, ...] = ("sanitize.report",)


class UsageError(Exception):
    """Bad input the user can fix: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not the whole usage
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def entry() -> int:
    """The `sanitize` console command: `main` in a process of its own."""
    if "dask" not in sys.argv:  # Dask's client may want pandas; the local scan never does
        sys.meta_path.insert(0, _NoPandas())
    return main()


class _NoPandas(importlib.abc.MetaPathFinder):
    """pyarrow imports pandas (0.2-0.4 s, half a no-change re-scan of 10k files) the first time
    it converts a Python list, only to ask whether the list is a pandas object. The command
    never uses pandas, so in its own process the answer is no without the import."""

    def find_spec(self, name: str, path: object, target: object = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"{name} is not used by the sanitize command", name=name)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args)
    except UsageError as exc:
        print(f"sanitize: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sanitize: interrupted; no manifest was replaced", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sanitize",
        description="Find every damaged image of a dataset before training does.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_scan(commands)
    _add_demo(commands)
    _add_repair(commands)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands)
    return parser


def _add_scan(commands: argparse._SubParsersAction) -> None:
    """`sanitize scan DATA ...`: the options of a scan."""
    scan = commands.add_parser(
        "scan", help="decode every image under DATA; write clean.parquet and corruption_report.csv"
    )
    scan.add_argument("data", metavar="DATA", help="dataset root folder")
    scan.add_argument("--out", default="manifests", help="output folder (default: manifests)")
    scan.add_argument("--jobs", type=int, default=0, help="worker processes (default 0: all cores)")
    scan.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="GLOB",
        help="only relative paths matching GLOB (repeatable; * also crosses /)",
    )
    scan.add_argument(
        "--csv",
        action="append",
        default=[],
        metavar="TABLE",
        help="annotation table (CSV, Parquet or JSONL; repeatable): the manifests then hold a "
        "row per annotation row, and only the images the tables name are checked",
    )
    scan.add_argument(
        "--url-column", default="url", metavar="NAME", help="the tables' image column (url)"
    )
    scan.add_argument(
        "--split",
        choices=["train", "val", "test"],
        help="keep only this official Structured3D split (scenes 0-2999, 3000-3249, 3250-3499)",
    )
    scan.add_argument(
        "--exclude-errata",
        action="store_true",
        help="drop the scenes of the Structured3D errata (always flagged in the manifests)",
    )
    scan.add_argument(
        "--fail-on-damage", action="store_true", help="exit 1 when any image is damaged"
    )
    scan.add_argument("--json", action="store_true", help="print the summary as JSON")
    scan.add_argument("--no-progress", action="store_true", help="no progress bar")
    scan.add_argument(
        "--no-fast-png",
        action="store_true",
        help="decode every PNG through Pillow instead of the exact zlib-ng fast path",
    )
    scan.add_argument(
        "--full", action="store_true", help="decode every file, reusing no stored verdict"
    )
    scan.add_argument(
        "--state",
        metavar="DIR",
        help="where verdicts are kept between scans "
        "(default: ~/.cache/panovlm-sanitize/<DATA name>-<hash>, or $SANITIZE_STATE_HOME)",
    )
    scan.add_argument(
        "--backend",
        choices=["joblib", "dask"],
        default="joblib",
        help="local worker processes (joblib's loky) or a Dask cluster",
    )
    scan.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="Dask scheduler address (with --backend dask; default: start a local cluster)",
    )
    scan.add_argument(
        "--checker",
        metavar="MODULE:FUNCTION",
        default=None,
        help="replace the per-file check (a function of a path returning a Verdict)",
    )
    scan.set_defaults(run=_scan)


def _add_demo(commands: argparse._SubParsersAction) -> None:
    """`sanitize demo DIR`: a Structured3D-shaped tree with known damage."""
    demo = commands.add_parser("demo", help="write a small Structured3D-shaped tree with damage")
    demo.add_argument("dir", metavar="DIR", help="folder to create (must not exist or be empty)")
    demo.add_argument("--scenes", type=int, default=3, help="number of scenes (default 3)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.set_defaults(run=_demo)


def _add_repair(commands: argparse._SubParsersAction) -> None:
    """`sanitize repair --archives DIR`: good copies from the original archives."""
    repair = commands.add_parser(
        "repair", help="replace damaged images of the last scan with good copies from archives"
    )
    repair.add_argument(
        "--archives", required=True, metavar="DIR", help="folder of the original archives"
    )
    repair.add_argument("--out", default="manifests", help="the scan's output folder")
    repair.add_argument("--yes", action="store_true", help="repair without asking")
    repair.add_argument("--jobs", type=int, default=0, help="for the re-scan (default: all cores)")
    repair.add_argument("--no-progress", action="store_true", help="no progress bar")
    repair.set_defaults(run=_repair)


def _scan(args: argparse.Namespace) -> int:
    from sanitize.executors import BackendError
    from sanitize.run import DEFAULT_CHECKER, ScanConfig, ScanInterrupted, run_scan
    from sanitize.state import StateBusy
    from sanitize.summary import format_summary
    from sanitize.tables import TableError

    if args.scheduler and args.backend != "dask":
        raise UsageError("--scheduler goes with --backend dask")
    if args.checker and args.no_fast_png:
        raise UsageError("--checker and --no-fast-png exclude each other")
    pillow_only = "sanitize.check:verify_file_pillow"
    config = ScanConfig(
        data_root=_data_root(args.data),
        out_dir=args.out,
        jobs=_jobs(args.jobs),
        include=tuple(args.include),
        progress=not args.no_progress,
        backend=args.backend,
        scheduler=args.scheduler,
        state_dir=args.state,
        full=args.full,
        checker=args.checker or (pillow_only if args.no_fast_png else DEFAULT_CHECKER),
        csv=tuple(args.csv),
        url_column=args.url_column,
        split=args.split,
        exclude_errata=args.exclude_errata,
    )
    _check_out_dir(Path(args.out))
    try:
        result = run_scan(config)
    except (StateBusy, BackendError, TableError) as exc:
        raise UsageError(str(exc)) from None
    except ScanInterrupted as exc:
        print(f"sanitize: {exc}; run the same command to resume", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(result.summary, indent=2))
    else:
        print(format_summary(result.summary))
    dropped = result.summary.get("annotations", {}).get("rows_dropped")
    return 1 if args.fail_on_damage and (result.summary["damaged"] or dropped) else 0


def _demo(args: argparse.Namespace) -> int:
    from sanitize.demo import DemoError, make_demo_tree

    if args.scenes < 1:
        raise UsageError(f"--scenes must be at least 1, not {args.scenes}")
    try:
        tree = make_demo_tree(Path(args.dir), scenes=args.scenes, seed=args.seed)
    except DemoError as exc:
        raise UsageError(str(exc)) from None
    print(
        f"Wrote {tree.images} images ({tree.damaged} damaged on purpose) under {tree.root} "
        f"in {tree.seconds:.1f} s; the damage is listed in {tree.root / 'demo_truth.csv'}"
    )
    return 0


def _repair(args: argparse.Namespace) -> int:
    from sanitize.archives import index_archives
    from sanitize.repair import (
        PLAN_NAME,
        RepairError,
        execute_repair,
        last_scan,
        plan_repair,
        write_plan,
    )
    from sanitize.run import ScanConfig, run_scan
    from sanitize.summary import format_plan, format_summary

    out = Path(args.out)
    try:
        summary, rows = last_scan(out)
    except RepairError as exc:
        raise UsageError(str(exc)) from None
    archives = Path(args.archives)
    if not archives.is_dir():
        raise UsageError(f"--archives {archives} is not a folder")
    settings = summary["settings"]
    index = index_archives(archives, cache=Path(settings["state_dir"]) / "archives")
    plan = plan_repair(summary["data_root"], rows, index, progress=not args.no_progress)
    write_plan(plan, None, out / PLAN_NAME)
    print(format_plan(plan, archives))
    if not plan.repairable:
        return 0
    question = f"Repair {len(plan.repairable)} files ({plan.bytes_to_write / 1e6:.1f} MB)? [y/N] "
    if not (args.yes or (sys.stdin.isatty() and input(question).strip().lower() in ("y", "yes"))):
        print("Dry run: nothing was changed. Run again with --yes to repair.")
        return 0
    result = execute_repair(plan, progress=not args.no_progress)
    write_plan(plan, result, out / PLAN_NAME)
    print(f"Repaired {len(result.repaired)} files ({result.bytes_written / 1e6:.1f} MB written)")
    for relpath, why in result.failed.items():
        print(f"  not repaired: {relpath}: {why}")
    config = ScanConfig(
        data_root=summary["data_root"],
        out_dir=str(out),
        jobs=_jobs(args.jobs),
        include=tuple(settings.get("include", ())),
        progress=not args.no_progress,
        state_dir=settings.get("state_dir"),
        checker=settings.get("checker") or ScanConfig.checker,
        csv=tuple(settings.get("csv", ())),
        url_column=settings.get("url_column", "url"),
        split=settings.get("split"),
        exclude_errata=settings.get("exclude_errata", False),
    )
    print(format_summary(run_scan(config).summary))
    return 0


def _data_root(data: str) -> str:
    root = os.path.abspath(data)
    if not os.path.exists(root):
        raise UsageError(f"DATA {data} does not exist")
    if not os.path.isdir(root):
        raise UsageError(f"DATA {data} is not a folder")
    try:
        with os.scandir(root):
            pass
    except OSError as exc:
        raise UsageError(f"DATA {data} cannot be read: {exc.strerror or exc}") from None
    return root


def _jobs(jobs: int) -> int:
    if jobs < 0:
        raise UsageError(f"--jobs must be 0 (all cores) or more, not {jobs}")
    return jobs or len(os.sched_getaffinity(0))


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {out} cannot be created: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK):
        raise UsageError(f"--out {out} is not writable")


if __name__ == "__main__":
    sys.exit(entry())
