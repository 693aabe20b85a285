"""Manifest schemas and atomic writers: clean.parquet, corruption_report.csv, summary.json."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sanitize.check import Verdict
from sanitize.layout import parse_layout
from sanitize.walk import FileEntry

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


class ManifestBuilder:
    """Collects verdicts as columns (not row objects) and turns them into the two tables."""

    def __init__(self, data_root: str) -> None:
        self.data_root = data_root
        self._clean: dict[str, list] = {name: [] for name in CLEAN_SCHEMA.names}
        self._report: dict[str, list] = {name: [] for name in REPORT_SCHEMA.names}

    def add(self, entry: FileEntry, verdict: Verdict) -> None:
        row = {
            "url": os.path.join(self.data_root, entry.relpath),
            "relpath": entry.relpath,
            "bytes": entry.size,
            "mtime_ns": entry.mtime_ns,
            **parse_layout(entry.relpath),
        }
        if verdict.ok:
            row.update(
                format=verdict.format, mode=verdict.mode, width=verdict.width, height=verdict.height
            )
            columns = self._clean
        else:
            row.update(error_type=verdict.error_type, error=verdict.error)
            columns = self._report
        for name, values in columns.items():
            values.append(row[name])

    def clean_table(self, metadata: dict) -> pa.Table:
        table = pa.table(self._clean, schema=CLEAN_SCHEMA).sort_by("url")
        return table.replace_schema_metadata({METADATA_KEY: json.dumps(metadata).encode()})

    def report_table(self) -> pa.Table:
        return pa.table(self._report, schema=REPORT_SCHEMA).sort_by("url")


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


def _write_atomic(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write to a temporary file beside `path`, fsync, then rename over it."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
