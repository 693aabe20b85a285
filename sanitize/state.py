"""Verdicts kept between scans: sorted Parquet runs in a cache folder keyed by the DATA root.

Layout of a state folder:
  verdicts.parquet         every file of the last completed scan, sorted by relpath
  runs/<run>/NNNNNN.parquet  a scan in progress: shards, each a sorted contiguous range
  runs/<run>/NNNNNN.json     the shard's stats, written last: a shard without them is not done
  lock                     held (flock) by the scan using the folder

A scan merges all of these as one sorted stream (newer wins), writes its own run as it goes,
and on completion compacts its run into verdicts.parquet and deletes what it superseded.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import heapq
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from sanitize.manifest import write_json, write_parquet

log = logging.getLogger(__name__)

STATE_SCHEMA = pa.schema(
    [
        pa.field("relpath", pa.string()),
        pa.field("size", pa.int64()),
        pa.field("mtime_ns", pa.int64()),
        pa.field("error_type", pa.string()),
        pa.field("error", pa.string()),
        pa.field("format", pa.string()),
        pa.field("mode", pa.string()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
    ]
)
# A state row: (relpath, size, mtime_ns, error_type, error, format, mode, width, height).
Row = tuple
VERDICTS_NAME = "verdicts.parquet"
_FINGERPRINT_KEY = b"fingerprint"
_READ_BATCH = 16384


class StateBusy(Exception):
    """Another scan holds the state folder."""


def default_state_dir(data_root: str) -> Path:
    """$SANITIZE_STATE_HOME or ~/.cache/panovlm-sanitize, one folder per DATA root."""
    home = os.environ.get("SANITIZE_STATE_HOME")
    if not home:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        home = os.path.join(cache, "panovlm-sanitize")
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", os.path.basename(data_root.rstrip("/")) or "root")
    digest = hashlib.sha1(data_root.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return Path(home) / f"{slug[:40]}-{digest}"


class StateStore:
    """One DATA root's verdicts; `fingerprint` names what verdicts depend on (versions, limits)."""

    def __init__(self, path: Path, data_root: str, fingerprint: str) -> None:
        self.path = path
        self.data_root = data_root
        self.fingerprint = fingerprint

    @contextlib.contextmanager
    def locked(self) -> Iterator[StateStore]:
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "root.txt").write_text(self.data_root + "\n")
        with open(self.path / "lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StateBusy(f"another scan is using the state folder {self.path}") from None
            yield self

    def known(self) -> Iterator[tuple[Row, bool]]:
        """Every stored verdict as (row, decoded by a --full run), sorted by relpath.

        Where several sources hold a file, the newest wins.
        """
        sources = self._usable_sources()
        streams = [_tagged(_read_rows(p), -i, full) for i, (p, full) in enumerate(sources)]
        return _newest_first(heapq.merge(*streams))

    def new_run(self, rows: int = 4096, seconds: float = 5.0, full: bool = False) -> RunWriter:
        run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        return RunWriter(self.path / "runs" / run_id, self.fingerprint, rows, seconds, full)

    def commit(self, run: RunWriter) -> None:
        """Compact the finished run into verdicts.parquet; drop every source it superseded."""
        run.flush(force=True)
        tmp = self.path / f".{VERDICTS_NAME}.tmp-{os.getpid()}"
        schema = STATE_SCHEMA.with_metadata({_FINGERPRINT_KEY: self.fingerprint.encode()})
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            for shard, _full in run.shards():
                writer.write_table(pq.read_table(shard).cast(schema))
        os.replace(tmp, self.path / VERDICTS_NAME)
        # Under the lock every run folder is this scan's or an interrupted one it merged.
        shutil.rmtree(self.path / "runs", ignore_errors=True)

    def _usable_sources(self) -> list[tuple[Path, bool]]:
        """verdicts.parquet, then each unfinished run's done shards, oldest first."""
        sources = []
        base = self.path / VERDICTS_NAME
        if base.exists() and _fingerprint_of(base) == self.fingerprint:
            sources.append((base, False))
        elif base.exists():
            log.info("stored verdicts come from other settings or versions: checking again")
        runs = sorted((self.path / "runs").glob("*"), key=lambda p: p.stat().st_mtime_ns)
        for run in runs:
            sources += _done_shards(run, self.fingerprint)
        return sources


class RunWriter:
    """Writes a scan's rows as shards; a shard is done once its stats file exists."""

    def __init__(
        self,
        path: Path,
        fingerprint: str,
        rows: int = 4096,
        seconds: float = 5.0,
        full: bool = False,
    ) -> None:
        self.path = path
        self.fingerprint = fingerprint
        self.full = full
        self._limit_rows = rows
        self._limit_seconds = seconds
        self._rows: list[Row] = []
        self._count = 0
        self._last = time.monotonic()
        path.mkdir(parents=True, exist_ok=True)

    def add(self, row: Row) -> None:
        self._rows.append(row)
        self.flush()

    def flush(self, force: bool = False) -> None:
        due = len(self._rows) >= self._limit_rows
        due = due or (time.monotonic() - self._last >= self._limit_seconds)
        if self._rows and (due or force):
            name = f"{self._count:06d}"
            write_parquet(rows_to_table(self._rows), self.path / f"{name}.parquet")
            last = self._rows[-1][0]
            stats = {
                "rows": len(self._rows),
                "last": last,
                "fingerprint": self.fingerprint,
                "full": self.full,
            }
            write_json(stats, self.path / f"{name}.json")
            self._count += 1
            self._rows = []
        if due or force:
            self._last = time.monotonic()

    def shards(self) -> list[tuple[Path, bool]]:
        return _done_shards(self.path, self.fingerprint)


def rows_to_table(rows: Iterable[Row]) -> pa.Table:
    columns = list(zip(*rows, strict=True)) or [[] for _ in STATE_SCHEMA]
    return pa.table(dict(zip(STATE_SCHEMA.names, columns, strict=True)), schema=STATE_SCHEMA)


def _done_shards(run: Path, fingerprint: str) -> list[tuple[Path, bool]]:
    """(shard, written by a --full run) for each shard whose stats file exists and matches."""
    shards = []
    for stats_path in sorted(run.glob("*.json")):
        try:
            stats = json.loads(stats_path.read_text())
        except (OSError, ValueError):
            continue
        shard = stats_path.with_suffix(".parquet")
        if stats.get("fingerprint") == fingerprint and shard.exists():
            shards.append((shard, bool(stats.get("full"))))
    return shards


def _fingerprint_of(path: Path) -> str | None:
    try:
        metadata = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return None
    return metadata.get(_FINGERPRINT_KEY, b"").decode() or None


def _read_rows(path: Path) -> Iterator[Row]:
    for batch in pq.ParquetFile(path).iter_batches(_READ_BATCH, columns=STATE_SCHEMA.names):
        yield from zip(*(column.to_pylist() for column in batch.columns), strict=True)


def _tagged(rows: Iterator[Row], tag: int, full: bool) -> Iterator[tuple[str, int, Row, bool]]:
    for row in rows:
        yield row[0], tag, row, full


def _newest_first(merged: Iterator[tuple[str, int, Row, bool]]) -> Iterator[tuple[Row, bool]]:
    last = None
    for relpath, _tag, row, full in merged:
        if relpath != last:
            last = relpath
            yield row, full
