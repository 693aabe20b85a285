"""Training manifests from annotation tables: a row per annotation row whose image is clean."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa

from sanitize.layout import parse_layout
from sanitize.manifest import (
    CLEAN_NAME,
    METADATA_KEY,
    REPORT_NAME,
    image_fields,
    write_csv,
    write_parquet,
)
from sanitize.tables import OUTSIDE_ROOT, AnnotationTable

# Image columns added beside the table's own; one the table already has gets an "image_" prefix.
IMAGE_COLUMNS = [
    ("relpath", pa.string()),
    ("format", pa.string()),
    ("mode", pa.string()),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("bytes", pa.int64()),
    ("mtime_ns", pa.int64()),
    ("scene", pa.int32()),
    ("room", pa.string()),
    ("view", pa.string()),
    ("config", pa.string()),
    ("position", pa.string()),
    ("kind", pa.string()),
    ("split", pa.string()),
    ("errata", pa.bool_()),
]
REPORT_COLUMNS = [
    ("url", pa.string()),
    ("relpath", pa.string()),
    ("error_type", pa.string()),
    ("error", pa.string()),
    ("source", pa.string()),
    ("source_row", pa.int64()),
    ("bytes", pa.int64()),
    ("mtime_ns", pa.int64()),
    *[c for c in IMAGE_COLUMNS if c[0] in ("scene", "room", "view", "config", "kind", "split")],
]


class AnnotationWriter:
    """Collects the verdicts of the images the tables name, then writes row-level manifests."""

    def __init__(
        self,
        out_dir: Path,
        data_root: str,
        metadata: dict,
        tables: list[AnnotationTable],
        keep: list[list[bool]],
    ) -> None:
        self.out_dir = out_dir
        self.data_root = data_root
        self.metadata = metadata
        self.tables = tables
        self.keep = keep  # per table, per row: selected by --split / --exclude-errata
        self._verdicts: dict[str, tuple] = {}
        self.kept: Counter[str] = Counter()  # per source
        self.dropped: dict[str, Counter[str]] = {t.source: Counter() for t in tables}

    def add(self, row: tuple) -> None:
        self._verdicts[row[0]] = row

    def abort(self) -> None:
        """Nothing is written before `commit`."""

    def commit(self) -> tuple[Path, Path]:
        clean_parts, report = [], {name: [] for name, _ in REPORT_COLUMNS}
        for table, keep in zip(self.tables, self.keep, strict=True):
            clean_rows = []
            for i, (url, relpath) in enumerate(zip(table.urls, table.relpaths, strict=True)):
                if not keep[i]:
                    continue
                fields = self._fields(url, relpath)
                if fields["error_type"] is None:
                    clean_rows.append((i, fields))
                    self.kept[table.source] += 1
                else:
                    self.dropped[table.source][fields["error_type"]] += 1
                    for name, _ in REPORT_COLUMNS:
                        value = {"url": url, "source": table.source, "source_row": i}.get(name)
                        report[name].append(value if value is not None else fields.get(name))
            clean_parts.append(self._clean_part(table, clean_rows))
        clean = pa.concat_tables(clean_parts, promote_options="permissive")
        metadata = {**self.metadata, "sources": [t.source for t in self.tables]}
        clean = clean.replace_schema_metadata({METADATA_KEY: json.dumps(metadata).encode()})
        write_parquet(clean, self.out_dir / CLEAN_NAME)
        write_csv(pa.table(report, schema=pa.schema(REPORT_COLUMNS)), self.out_dir / REPORT_NAME)
        return self.out_dir / CLEAN_NAME, self.out_dir / REPORT_NAME

    def _fields(self, url: str | None, relpath: str | None) -> dict:
        if relpath is None:
            reason = "empty url" if not url else f"{url} is outside DATA {self.data_root}"
            return {"error_type": OUTSIDE_ROOT, "error": reason, **parse_layout("")}
        return image_fields(self.data_root, self._verdicts[relpath])

    def _clean_part(self, table: AnnotationTable, rows: list[tuple[int, dict]]) -> pa.Table:
        """The table's kept rows, unchanged, plus source, source_row and image columns."""
        indices = [i for i, _ in rows]
        part = table.table.take(pa.array(indices, pa.int64()))
        taken = set(part.column_names)
        part = part.append_column("source", pa.array([table.source] * len(rows), pa.string()))
        part = part.append_column("source_row", pa.array(indices, pa.int64()))
        for name, kind in IMAGE_COLUMNS:
            column = f"image_{name}" if name in taken else name
            part = part.append_column(column, pa.array([f[name] for _, f in rows], kind))
        return part

    def summary(self) -> dict:
        """Rows kept and dropped, per reason and per source table."""
        dropped = Counter()
        for counts in self.dropped.values():
            dropped.update(counts)
        filtered = sum(keep.count(False) for keep in self.keep)
        return {
            "rows": sum(len(t.urls) for t in self.tables),
            "rows_kept": sum(self.kept.values()),
            "rows_dropped": dict(dropped),
            "rows_filtered": filtered,
            "sources": {
                t.source: {
                    "rows": len(t.urls),
                    "kept": self.kept[t.source],
                    "dropped": dict(self.dropped[t.source]),
                    "filtered": keep.count(False),
                }
                for t, keep in zip(self.tables, self.keep, strict=True)
            },
        }
