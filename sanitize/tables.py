"""Annotation tables (CSV, Parquet, JSONL) whose url column names images under DATA."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

OUTSIDE_ROOT = "outside_root"


class TableError(Exception):
    """A table that cannot be used: one line, raised before any output is replaced."""


@dataclass(frozen=True)
class AnnotationTable:
    """One input table, its url column as given, and where each url points under DATA."""

    source: str  # the path as the user gave it
    table: pa.Table
    urls: list[str | None]
    relpaths: list[str | None]  # None: the url leaves DATA (never opened) or is empty


def read_tables(
    paths: Sequence[str], data_root: str, url_column: str = "url"
) -> list[AnnotationTable]:
    """Read and validate every table first, so a bad one stops the scan before it starts."""
    return [_read_one(path, data_root, url_column) for path in paths]


def _read_one(path: str, data_root: str, url_column: str) -> AnnotationTable:
    table = _read(path)
    if url_column not in table.column_names:
        found = ", ".join(table.column_names[:8]) or "none"
        raise TableError(f"{path} has no {url_column!r} column (has {found}); see --url-column")
    column = table.column(url_column)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        raise TableError(f"{path}: column {url_column!r} holds {column.type}, not paths")
    urls = column.to_pylist()
    return AnnotationTable(path, table, urls, [resolve(url, data_root) for url in urls])


def _read(path: str) -> pa.Table:
    suffix = Path(path).suffix.lower()
    try:
        if suffix == ".parquet":
            return pq.read_table(path)
        if suffix in (".jsonl", ".json", ".ndjson"):
            return pajson.read_json(path)
        # Every CSV column as text: ids like "00012" and captions stay exactly as written.
        with pacsv.open_csv(path) as reader:
            names = reader.schema.names
        types = dict.fromkeys(names, pa.string())
        return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types))
    except FileNotFoundError:
        raise TableError(f"table {path} does not exist") from None
    except IsADirectoryError:
        raise TableError(f"table {path} is a folder, not a file") from None
    except PermissionError:
        raise TableError(f"table {path} cannot be read: permission denied") from None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TableError(f"table {path} cannot be parsed: {first}") from None


def resolve(url: str | None, data_root: str) -> str | None:
    """The POSIX path of `url` relative to DATA, or None when it leaves DATA.

    Relative urls are relative to DATA. The check is on the path as written: `..` that climbs
    out of DATA, or an absolute path elsewhere, is refused without touching the disk.
    """
    if not url:
        return None
    path = os.path.normpath(os.path.join(data_root, url))
    root = os.path.normpath(data_root)
    if path == root or not path.startswith(root.rstrip("/") + "/"):
        return None
    return os.path.relpath(path, root).replace(os.sep, "/")
