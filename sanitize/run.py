"""Run a scan: walk (reader) -> batches checked in worker processes -> ordered writers.

The walk yields files in relpath order and is merged with the stored verdicts (also sorted);
files whose size and mtime are unchanged reuse their verdict, the rest go to workers in
batches. Results are written back in order, to the state run (committed in shards, so an
interrupted scan resumes) and to the manifests (streamed, renamed into place at the end).
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import astuple, dataclass, field
from functools import partial
from pathlib import Path

import PIL
import pyarrow as pa
from PIL import Image

import sanitize
from sanitize.annotations import AnnotationWriter
from sanitize.check import Verdict
from sanitize.executors import DaskPool, LocalPool, check_files, is_worker_death, isolate
from sanitize.failures import failures_path, read_failures
from sanitize.layout import Selection
from sanitize.manifest import CLEAN_NAME, SUMMARY_NAME, ManifestWriter, write_json
from sanitize.progress import Count, ScanProgress
from sanitize.state import Row, StateStore, default_state_dir
from sanitize.summary import build_summary
from sanitize.tables import read_tables, resolve
from sanitize.walk import FileEntry, WalkStats, image_relpaths, included, walk_images

log = logging.getLogger(__name__)

DEFAULT_CHECKER = "sanitize.check:verify_file"
CRASHED = astuple(Verdict("decoder_crash", "the decoder killed its worker process"))
# Rows that may wait behind an unfinished batch before that batch is sent as it is, and
# before the scan stops reading ahead to wait for the batches in flight.
_HOLD_ROWS = 4096
_MAX_READY = 65536


@dataclass(frozen=True)
class ScanConfig:
    """Everything a scan needs, validated once by the CLI."""

    data_root: str  # absolute
    out_dir: str
    jobs: int = 1
    include: tuple[str, ...] = ()
    batch_size: int = 16
    progress: bool = True
    backend: str = "joblib"  # or "dask"
    scheduler: str | None = None  # Dask scheduler address; None starts a local cluster
    state_dir: str | None = None  # None: default_state_dir(data_root)
    full: bool = False  # decode everything, reusing no stored verdict
    checker: str = DEFAULT_CHECKER  # module:function returning a Verdict for a path
    shard_rows: int = 4096  # progress is committed every shard_rows rows or shard_seconds
    shard_seconds: float = 5.0
    csv: tuple[str, ...] = ()  # annotation tables: manifests get a row per annotation row
    url_column: str = "url"
    split: str | None = None  # keep only this official Structured3D split
    exclude_errata: bool = False  # drop the scenes of the published errata


@dataclass(frozen=True)
class ScanResult:
    """Where the outputs went and what the scan found."""

    summary: dict
    clean_path: Path
    report_path: Path
    summary_path: Path


class ScanInterrupted(Exception):
    """Ctrl-C: what was checked is saved in the state; the same command resumes."""

    def __init__(self, done: int, state_dir: Path) -> None:
        super().__init__(
            f"interrupted after {done:,} files; their verdicts are saved in {state_dir}"
        )
        self.done = done
        self.state_dir = state_dir


@dataclass
class _Batch:
    seqs: list[int] = field(default_factory=list)
    entries: list[FileEntry] = field(default_factory=list)


@dataclass
class _Source:
    """What a scan reads (the walk, or the images tables name) and the writer it feeds."""

    entries: Iterator[FileEntry]
    in_scope: Callable[[str], bool]
    writer: ManifestWriter | AnnotationWriter
    walk_stats: WalkStats = field(default_factory=lambda: WalkStats([]))
    filtered: Counter[str] = field(default_factory=Counter)
    count: Count | None = None  # how many entries there are, for the progress bar's total


def run_scan(config: ScanConfig) -> ScanResult:
    """Walk (or read the tables), reuse or check every image, write state and manifests."""
    started = time.perf_counter()
    # Arrow's default pool keeps what the streaming writers free; the system's gives it back.
    pa.set_memory_pool(pa.system_memory_pool())
    # Tables are read and validated before anything else: a bad one replaces no output.
    tables = read_tables(config.csv, config.data_root, config.url_column) if config.csv else []
    state_dir = Path(config.state_dir) if config.state_dir else default_state_dir(config.data_root)
    settings = _settings(config, state_dir)
    store = StateStore(state_dir, config.data_root, _fingerprint(config))
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    failures = failures_path(out / CLEAN_NAME)
    failed = _failed_relpaths(failures, config.data_root)
    with store.locked():
        source = _source(config, tables, settings, out)
        run = store.new_run(config.shard_rows, config.shard_seconds, config.full)
        scan = _Scan(config, run, source.writer, source.count)
        try:
            rechecked = scan.check_first(failed)  # what training hit since the last scan
            scan.execute(
                _plan(source.entries, store.known(), source.in_scope, config.full, rechecked)
            )
        except BaseException:
            source.writer.abort()
            run.flush(force=True)  # keep what was checked: the next run resumes from it
            scan.close(abort=True)
            if scan.interrupted:
                raise ScanInterrupted(scan.counts.total(), state_dir) from None
            raise
        scan.close()
        clean_path, report_path = source.writer.commit()
        store.commit(run)
        if failed:  # handled: keep the record, but do not re-check it every scan
            stamp = time.strftime("%Y%m%dT%H%M%S")
            failures.rename(failures.with_name(f"{failures.stem}.{stamp}.checked.jsonl"))
    summary = _summary(scan, source, time.perf_counter() - started, settings, out, failed)
    write_json(summary, out / SUMMARY_NAME)
    return ScanResult(summary, clean_path, report_path, out / SUMMARY_NAME)


def _source(config: ScanConfig, tables: list, settings: dict, out: Path) -> _Source:
    root = config.data_root
    selection = Selection(config.split, config.exclude_errata)
    if tables:
        keep = [[_keeps_row(rel, selection) for rel in t.relpaths] for t in tables]
        named = sorted(_named(tables, keep))
        writer = AnnotationWriter(out, root, settings, tables, keep)
        return _Source(
            _stat_entries(root, named), set(named).__contains__, writer, count=lambda _: len(named)
        )
    in_scope = partial(_in_scope, include=config.include, selection=selection)
    source = _Source(iter(()), in_scope, ManifestWriter(out, root, settings))
    walked = walk_images(root, config.include, source.walk_stats)
    source.entries = _selected(walked, selection, source.filtered)
    source.count = partial(_count_walk, root, config.include, selection)
    return source


def _summary(
    scan: _Scan, source: _Source, seconds: float, settings: dict, out: Path, failed: set[str]
) -> dict:
    summary = build_summary(scan.counts, seconds, scan.bytes, source.walk_stats, settings, out)
    summary.update(checked=scan.checked, reused=scan.reused, state_dir=settings["state_dir"])
    if failed:
        summary["runtime_failures"] = {
            relpath: scan.rechecked_types.get(relpath, "not_scanned") for relpath in sorted(failed)
        }
    if isinstance(source.writer, AnnotationWriter):
        summary["annotations"] = source.writer.summary()
    else:
        summary["filtered"] = dict(source.filtered)
        summary["incomplete_panoramas"] = source.writer.panoramas.incomplete()
    return summary


def _failed_relpaths(failures: Path, root: str) -> set[str]:
    """Images training failed to load since the last scan (from runtime_failures.jsonl)."""
    relpaths = {resolve(record["url"], root) for record in read_failures(failures)}
    relpaths.discard(None)
    return relpaths


def _named(tables: list, keep: list[list[bool]]) -> set[str]:
    """The images the kept rows of the tables name (inside DATA), each once."""
    named = set()
    for table, kept in zip(tables, keep, strict=True):
        named.update(r for r, k in zip(table.relpaths, kept, strict=True) if k and r)
    return named


def _keeps_row(relpath: str | None, selection: Selection) -> bool:
    # A url outside DATA is kept so that it is reported; the selection applies to the rest.
    return relpath is None or selection.reason_to_drop(relpath) is None


def _in_scope(relpath: str, include: tuple[str, ...], selection: Selection) -> bool:
    return included(relpath, include) and selection.reason_to_drop(relpath) is None


def _selected(
    entries: Iterator[FileEntry], selection: Selection, filtered: Counter[str]
) -> Iterator[FileEntry]:
    """The walked files --split and --exclude-errata keep; the others are counted by reason."""
    for entry in entries:
        reason = selection.reason_to_drop(entry.relpath)
        if reason is None:
            yield entry
        else:
            filtered[reason] += 1


def _count_walk(
    root: str, include: Sequence[str], selection: Selection, stop: threading.Event
) -> int | None:
    """How many images the walk will yield (None if stopped first); a cheap second walk."""
    count = 0
    for relpath in image_relpaths(root, include):
        if stop.is_set():
            return None
        count += selection.reason_to_drop(relpath) is None
    return count


def _stat_entries(root: str, relpaths: list[str]) -> Iterator[FileEntry]:
    """File entries for the images tables name (sorted); a missing one is checked as such."""
    for relpath in relpaths:
        try:
            st = os.stat(os.path.join(root, relpath))
        except OSError:
            yield FileEntry(relpath, None, None)
            continue
        regular = stat.S_ISREG(st.st_mode)
        yield FileEntry(
            relpath, st.st_size if regular else None, st.st_mtime_ns if regular else None
        )


def _plan(
    entries: Iterator[FileEntry],
    known: Iterator[tuple[Row, bool]],
    in_scope: Callable[[str], bool],
    full: bool = False,
    rechecked: dict[str, tuple] | None = None,
) -> Iterator[tuple[FileEntry | None, Row | None]]:
    """Merge the walk with stored verdicts (both sorted by relpath).

    Yields (entry, row): an unchanged file (entry, stored row) reuses its verdict; a new or
    changed one (entry, None) must be checked; a stored row outside this scan's scope
    (--include, --split, the tables' images) is carried over untouched as (None, row).
    Stored rows of vanished files are dropped.
    With `full`, only verdicts decoded by an interrupted --full run are reused (a resume).
    Files in `rechecked` (training failed on them) take the verdict just decoded for them.
    """
    rechecked = rechecked or {}
    stored, fresh = next(known, (None, False))
    for entry in entries:
        while stored is not None and stored[0] < entry.relpath:
            if not in_scope(stored[0]):
                yield None, stored
            stored, fresh = next(known, (None, False))
        if entry.relpath in rechecked:
            yield entry, (entry.relpath, entry.size, entry.mtime_ns, *rechecked[entry.relpath])
        elif stored is not None and stored[0] == entry.relpath:
            same = entry.size is not None and stored[1:3] == (entry.size, entry.mtime_ns)
            yield entry, (stored if same and (fresh or not full) else None)
        else:
            yield entry, None
        if stored is not None and stored[0] == entry.relpath:
            stored, fresh = next(known, (None, False))
    while stored is not None:
        if not in_scope(stored[0]):
            yield None, stored
        stored, fresh = next(known, (None, False))


class _Scan:
    """Sends batches to a pool, keeps a bounded window in flight, writes results in order."""

    def __init__(
        self,
        config: ScanConfig,
        run,
        manifest: ManifestWriter | AnnotationWriter,
        count: Count | None = None,
    ) -> None:
        self.config = config
        self.run = run
        self.manifest = manifest
        self.counts: Counter[str] = Counter()
        self.checked = self.reused = self.bytes = 0
        self.interrupted = False
        self.rechecked_types: dict[str, str] = {}
        self._rechecked: set[str] = set()
        self._pool: LocalPool | DaskPool | None = None
        self._ready: dict[int, tuple[Row, bool]] = {}  # seq -> (row, in this scan's manifests)
        self._next = 0
        self._futures: dict[Future, _Batch] = {}
        self._progress = ScanProgress(config.progress, count)

    def execute(self, plan: Iterator[tuple[FileEntry | None, Row | None]]) -> None:
        batch = _Batch()
        window = max(2, 2 * self.config.jobs)
        try:
            for seq, (entry, row) in enumerate(plan):
                if entry is None:
                    self._ready[seq] = (row, False)
                elif row is not None:
                    self._ready[seq] = (row, True)
                    if entry.relpath in self._rechecked:
                        self.checked += 1
                    else:
                        self.reused += 1
                else:
                    batch.seqs.append(seq)
                    batch.entries.append(entry)
                if len(batch.seqs) >= self.config.batch_size or (
                    batch.seqs and len(self._ready) >= _HOLD_ROWS
                ):
                    self._submit(batch)
                    batch = _Batch()
                self._emit()
                while self._futures and (
                    len(self._futures) >= window or len(self._ready) >= _MAX_READY
                ):
                    self._collect()
            if batch.seqs:
                self._submit(batch)
            while self._futures:
                self._collect()
        except KeyboardInterrupt:
            self.interrupted = True
            raise
        finally:
            self._progress.close()

    def check_first(self, relpaths: set[str]) -> dict[str, tuple]:
        """Decode these files now, before the walk: their verdicts replace the stored ones."""
        if not relpaths:
            return {}
        ordered = sorted(relpaths)
        args = (self.config.data_root, ordered, self.config.checker)
        try:
            verdicts = self._get_pool().submit(check_files, *args).result()
        except BaseException as exc:
            if not is_worker_death(exc):
                raise
            verdicts = isolate(*args, CRASHED)
        self.rechecked_types = {r: v[0] or "clean" for r, v in zip(ordered, verdicts, strict=True)}
        self._rechecked = set(ordered)
        return dict(zip(ordered, verdicts, strict=True))

    def close(self, abort: bool = False) -> None:
        if self._pool is not None:
            self._pool.close(abort=abort)

    def _submit(self, batch: _Batch) -> None:
        relpaths = [e.relpath for e in batch.entries]
        future = self._get_pool().submit(
            check_files, self.config.data_root, relpaths, self.config.checker
        )
        self._futures[future] = batch
        self._progress.decoding_started()

    def _get_pool(self) -> LocalPool | DaskPool:
        if self._pool is None:  # started only when something must be decoded
            if self.config.backend == "dask":
                self._pool = DaskPool(
                    self.config.jobs, self.config.scheduler, self.config.data_root
                )
            else:
                self._pool = LocalPool(self.config.jobs)
        return self._pool

    def _collect(self) -> None:
        done, _ = wait(self._futures, return_when=FIRST_COMPLETED)
        for future in done:
            batch = self._futures.pop(future)
            relpaths = [e.relpath for e in batch.entries]
            try:
                verdicts = future.result()
            except BaseException as exc:
                if not is_worker_death(exc):
                    raise
                log.warning("a worker died on a batch of %d files; isolating it", len(relpaths))
                verdicts = isolate(self.config.data_root, relpaths, self.config.checker, CRASHED)
            for seq, entry, verdict in zip(batch.seqs, batch.entries, verdicts, strict=True):
                row = (entry.relpath, entry.size, entry.mtime_ns, *verdict)
                self._ready[seq] = (row, True)
            self.checked += len(relpaths)
        self._emit()

    def _emit(self) -> None:
        """Write every row whose turn has come; rows behind an unfinished batch wait."""
        while self._next in self._ready:
            row, in_scope = self._ready.pop(self._next)
            self._next += 1
            self.run.add(row)
            if in_scope:
                self.manifest.add(row)
                self.counts[row[3] or "clean"] += 1
                self.bytes += row[1] or 0
                self._progress.update()


def _fingerprint(config: ScanConfig) -> str:
    """What a stored verdict depends on: a change means checking everything again."""
    return "|".join(
        [
            f"tool={sanitize.__version__}",
            f"pillow={PIL.__version__}",
            f"max_pixels={Image.MAX_IMAGE_PIXELS}",
            f"checker={config.checker}",
        ]
    )


def _settings(config: ScanConfig, state_dir: Path) -> dict:
    from zlib_ng import __version__ as zlib_ng_version

    return {
        "data_root": config.data_root,
        "tool": "panovlm-sanitize",
        "tool_version": sanitize.__version__,
        "pillow_version": PIL.__version__,
        "zlib_ng_version": zlib_ng_version,
        "max_image_pixels": Image.MAX_IMAGE_PIXELS,
        "include": list(config.include),
        "jobs": config.jobs,
        "backend": config.backend,
        "scheduler": config.scheduler,
        "state_dir": str(state_dir),
        "full": config.full,
        "checker": config.checker,
        "csv": list(config.csv),
        "url_column": config.url_column,
        "split": config.split,
        "exclude_errata": config.exclude_errata,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
