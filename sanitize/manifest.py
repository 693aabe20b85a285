"""Manifest schemas and atomic writers: clean.parquet, corruption_report.csv, summary.json."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sanitize.layout import PanoramaSets, parse_layout

CLEAN_NAME = "clean.parquet"
REPORT_NAME = "corruption_report.csv"
SUMMARY_NAME = "summary.json"
METADATA_KEY = b"panovlm_sanitize"

_LAYOUT_SCHEMA = [
    pa.field("scene", pa.int32()),
    pa.field("room", pa.string()),
    pa.field("view", pa.string()),
    pa.field("config", pa.string()),
    pa.field("position", pa.string()),
    pa.field("kind", pa.string()),
    pa.field("split", pa.string()),
    pa.field("errata", pa.bool_()),
]
CLEAN_SCHEMA = pa.schema(
    [
        pa.field("url", pa.string()),
        pa.field("relpath", pa.string()),
        pa.field("format", pa.string()),
        pa.field("mode", pa.string()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("bytes", pa.int64()),
        pa.field("mtime_ns", pa.int64()),
        *_LAYOUT_SCHEMA,
    ]
)
REPORT_SCHEMA = pa.schema(
    [
        pa.field("url", pa.string()),
        pa.field("relpath", pa.string()),
        pa.field("error_type", pa.string()),
        pa.field("error", pa.string()),
        pa.field("bytes", pa.int64()),
        pa.field("mtime_ns", pa.int64()),
        *_LAYOUT_SCHEMA,
    ]
)


class ManifestWriter:
    """Streams state rows, in relpath (= url) order, into temporary manifests; `commit` renames.

    Only a row group is ever held in memory, so a scan of millions of files stays flat.
    """

    def __init__(self, out_dir: Path, data_root: str, metadata: dict, group_rows: int = 4096):
        self.out_dir = out_dir
        self.data_root = data_root
        self._group_rows = group_rows
        self._tmp = {name: _tmp_path(out_dir / name) for name in (CLEAN_NAME, REPORT_NAME)}
        schema = CLEAN_SCHEMA.with_metadata({METADATA_KEY: json.dumps(metadata).encode()})
        self._clean_writer = pq.ParquetWriter(self._tmp[CLEAN_NAME], schema, compression="zstd")
        self._report_writer = pacsv.CSVWriter(self._tmp[REPORT_NAME], REPORT_SCHEMA)
        self._clean = _columns(CLEAN_SCHEMA)
        self._report = _columns(REPORT_SCHEMA)
        self.clean_rows = 0
        self.report_rows = 0
        self.panoramas = PanoramaSets()

    def add(self, row: tuple) -> None:
        """Add one state row: (relpath, size, mtime_ns, error_type, error, format, mode, w, h)."""
        values = image_fields(self.data_root, row)
        self.panoramas.add(values, row[3] is None)
        if row[3] is None:
            _append(self._clean, values)
            self.clean_rows += 1
        else:
            _append(self._report, values)
            self.report_rows += 1
        if len(self._clean["url"]) >= self._group_rows:
            self._flush_clean()
        if len(self._report["url"]) >= self._group_rows:
            self._flush_report()

    def commit(self) -> tuple[Path, Path]:
        """Finish both files, fsync them and rename them over the old manifests."""
        self._flush_clean(final=True)
        self._flush_report()
        self._clean_writer.close()
        self._report_writer.close()
        paths = []
        for name, tmp in self._tmp.items():
            _fsync(tmp)
            os.replace(tmp, self.out_dir / name)
            paths.append(self.out_dir / name)
        return paths[0], paths[1]

    def abort(self) -> None:
        """Drop the temporary files; the old manifests stay as they were."""
        for writer in (self._clean_writer, self._report_writer):
            with contextlib.suppress(Exception):  # the half-written file is deleted below
                writer.close()
        for tmp in self._tmp.values():
            tmp.unlink(missing_ok=True)

    def _flush_clean(self, final: bool = False) -> None:
        if self._clean["url"] or (final and not self.clean_rows):
            self._clean_writer.write_table(pa.table(self._clean, schema=CLEAN_SCHEMA))
            self._clean = _columns(CLEAN_SCHEMA)

    def _flush_report(self) -> None:
        if self._report["url"]:
            self._report_writer.write_table(pa.table(self._report, schema=REPORT_SCHEMA))
            self._report = _columns(REPORT_SCHEMA)


def image_fields(data_root: str, row: tuple) -> dict:
    """The manifest columns of one state row (relpath, size, mtime_ns, verdict...)."""
    relpath, size, mtime_ns, error_type, error, fmt, mode, width, height = row
    return {
        "url": os.path.join(data_root, relpath),
        "relpath": relpath,
        "bytes": size,
        "mtime_ns": mtime_ns,
        "error_type": error_type,
        "error": error,
        "format": fmt,
        "mode": mode,
        "width": width,
        "height": height,
        **parse_layout(relpath),
    }


def _columns(schema: pa.Schema) -> dict[str, list]:
    return {name: [] for name in schema.names}


def _append(columns: dict[str, list], values: dict) -> None:
    for name, column in columns.items():
        column.append(values[name])


def read_metadata(path: str | Path) -> dict:
    """The scan settings recorded in a clean.parquet's schema metadata."""
    raw = pq.read_schema(path).metadata or {}
    return json.loads(raw.get(METADATA_KEY, b"{}"))


def write_parquet(table: pa.Table, path: Path) -> None:
    _write_atomic(path, lambda f: pq.write_table(table, f, compression="zstd"))


def write_csv(table: pa.Table, path: Path) -> None:
    _write_atomic(path, lambda f: pacsv.write_csv(table, f))


def write_json(obj: dict, path: Path) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
    _write_atomic(path, lambda f: f.write(text.encode()))


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _fsync(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _write_atomic(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write to a temporary file beside `path`, fsync, then rename over it."""
    tmp = _tmp_path(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
