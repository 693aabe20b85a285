"""PanoDataset: clean-manifest rows as training samples, with the old loader's safety net.

Columns live in numpy buffers, never as per-row Python objects. A DataLoader worker forked
from the training process shares the parent's pages until it writes to them, and reading a
Python object writes its reference count: a pandas frame of 200k string rows is copied into
every worker page by page, and worker memory grows all epoch long (pytorch/pytorch#13246).
Here each string column is one uint8 buffer plus an int64 offsets array (as detectron2's
`_TorchSerializedList`), so a worker reads bytes without touching anything shared.

Images are decoded by `sanitize.check.decode_file`, the function the scan used, so a file
the scan passed loads the same way here. A file that rotted after the scan is logged
(`Failed to load image ...`), appended to the runtime failures file beside its manifest, and
the next row is tried, image and text together; after `max_retries` tries the sample is a
zero placeholder with `is_placeholder=True`, which the training step masks out of the loss.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from PIL import Image
from torch.utils.data import Dataset

from sanitize.check import ImageDamaged, decode_file
from sanitize.failures import append_failure, failures_path
from sanitize.manifest import read_metadata

logger = logging.getLogger(__name__)

# String columns that describe the image rather than the sample's text.
IMAGE_COLUMNS = frozenset(
    {
        "url",
        "relpath",
        "format",
        "mode",
        "split",
        "room",
        "view",
        "config",
        "position",
        "kind",
        "source",
        "error",
        "error_type",
    }
)
# Keys every sample has; a text column may not shadow them.
SAMPLE_KEYS = frozenset({"image", "url", "index", "is_placeholder"})


class ManifestError(ValueError):
    """A manifest the dataset cannot train from (missing, unreadable, no `url`, no rows)."""


class StringColumn:
    """One string column as a uint8 buffer plus offsets: no Python object per row."""

    __slots__ = ("data", "offsets", "valid")

    def __init__(self, values: pa.ChunkedArray | pa.Array) -> None:
        array = pc.cast(values, pa.large_string())
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        _validity, offsets, data = array.buffers()
        offsets = np.frombuffer(offsets, dtype=np.int64)[
            array.offset : array.offset + len(array) + 1
        ]
        start, end = int(offsets[0]), int(offsets[-1])
        payload = np.frombuffer(data, dtype=np.uint8) if data is not None else np.empty(0, np.uint8)
        self.data = payload[start:end].copy()
        self.offsets = offsets - start
        self.valid = array.is_valid().to_numpy(zero_copy_only=False) if array.null_count else None

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> str | None:
        if self.valid is not None and not self.valid[index]:
            return None
        return self.data[self.offsets[index] : self.offsets[index + 1]].tobytes().decode("utf-8")

    @property
    def nbytes(self) -> int:
        return (
            self.data.nbytes
            + self.offsets.nbytes
            + (0 if self.valid is None else self.valid.nbytes)
        )


class PanoDataset(Dataset):
    """Rows of one or several clean manifests (Parquet) as samples.

    A sample is a dict: `image` (float32 tensor 3 x H x W, values in [0, 1]), `url` and
    `index` (the image and row actually used), `is_placeholder`, and one string per text
    column (`query`, `annotation`, ...; a null is ""). Text columns are the string columns
    that do not describe the image (`IMAGE_COLUMNS`), unless `text_columns` names them.
    When every try fails, `url` and `index` are the requested row's and the image is zeros.
    """

    def __init__(
        self,
        manifest: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        image_size: tuple[int, int] = (256, 512),
        *,
        max_retries: int = 10,
        text_columns: Sequence[str] | None = None,
        record_failures: bool = True,
    ) -> None:
        paths = (
            [Path(manifest)]
            if isinstance(manifest, str | os.PathLike)
            else list(map(Path, manifest))
        )
        if not paths:
            raise ManifestError("no manifest given")
        height, width = _image_size(image_size)
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 1:
            raise ValueError(f"max_retries must be an integer >= 1, got {max_retries!r}")
        schemas = [_read_schema(path) for path in paths]
        if text_columns is None:
            text_columns = _text_columns(schemas)
        else:
            text_columns = list(text_columns)
            shadowed = sorted(set(text_columns) & (SAMPLE_KEYS | {"url"}))
            if shadowed:
                raise ValueError(f"text_columns may not include {', '.join(shadowed)}")
        tables = [
            pq.read_table(path, columns=[c for c in ["url", *text_columns] if c in schema.names])
            for path, schema in zip(paths, schemas, strict=True)
        ]
        for column in text_columns:
            if not any(column in table.column_names for table in tables):
                raise ManifestError(f"no manifest has the text column {column!r}")

        self.manifests = tuple(paths)
        self.image_size = (height, width)
        self.max_retries = max_retries
        self.text_columns = tuple(text_columns)
        self.failure_files = (
            tuple(str(failures_path(path)) for path in paths) if record_failures else ()
        )
        tables = [_absolute_urls(t, path) for t, path in zip(tables, paths, strict=True)]
        self._urls = StringColumn(_concat(tables, "url"))
        self._texts = tuple(StringColumn(_concat(tables, column)) for column in text_columns)
        sizes = [table.num_rows for table in tables]
        # Which manifest each row came from, so a failure lands beside the right one.
        self._source = (
            np.repeat(np.arange(len(paths), dtype=np.uint16), sizes) if len(paths) > 1 else None
        )
        missing = (
            len(self._urls) - int(self._urls.valid.sum()) if self._urls.valid is not None else 0
        )
        if missing:
            raise ManifestError(f"{missing} manifest rows have no url ({_names(paths)})")
        if len(self._urls) == 0:
            raise ManifestError(f"no rows in {_names(paths)}")

    def __len__(self) -> int:
        return len(self._urls)

    def __getitem__(self, index: int) -> dict:
        rows = len(self)
        if not -rows <= index < rows:
            raise IndexError(f"index {index} out of range for {rows} rows")
        index %= rows
        tries = min(self.max_retries, rows)
        for attempt in range(tries):
            row = (index + attempt) % rows
            url = self._urls[row]
            try:
                image = decode_file(url)
            except ImageDamaged as exc:
                logger.warning(
                    "Failed to load image %s: %s (retry %d/%d)", url, exc, attempt + 1, tries
                )
                self._record(row, url, exc)
                continue
            return self._sample(row, url, self.to_tensor(image), placeholder=False)
        url = self._urls[index]
        logger.error(
            "All %d tries from row %d (%s) failed; returning a %dx%d placeholder image",
            tries,
            index,
            url,
            *self.image_size,
        )
        placeholder = torch.zeros((3, *self.image_size), dtype=torch.float32)
        return self._sample(index, url, placeholder, placeholder=True)

    def to_tensor(self, image: Image.Image) -> torch.Tensor:
        """An RGB image resized to `image_size`, as a float32 tensor 3 x H x W in [0, 1]."""
        height, width = self.image_size
        if image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=2.0)
        pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy())
        return pixels.permute(2, 0, 1).float().div_(255.0)

    def texts(self, column: str) -> Iterator[str]:
        """Every row's value of a text column, in order (for a vocabulary; main process)."""
        strings = self._texts[self.text_columns.index(column)]
        for row in range(len(strings)):
            yield strings[row] or ""

    def url(self, index: int) -> str:
        return self._urls[index]

    @property
    def nbytes(self) -> int:
        """Bytes held by the column buffers (what every worker shares)."""
        return self._urls.nbytes + sum(column.nbytes for column in self._texts)

    def _sample(self, row: int, url: str, image: torch.Tensor, *, placeholder: bool) -> dict:
        sample = {"image": image, "url": url, "index": row, "is_placeholder": placeholder}
        for name, column in zip(self.text_columns, self._texts, strict=True):
            sample[name] = column[row] or ""
        return sample

    def _record(self, row: int, url: str, exc: ImageDamaged) -> None:
        if not self.failure_files:
            return
        source = 0 if self._source is None else int(self._source[row])
        path = self.failure_files[source]
        try:
            append_failure(path, url, exc.verdict.error_type or "unknown", str(exc.verdict.error))
        except OSError as error:  # a read-only manifest folder must not stop training
            logger.warning("Could not record the failure of %s in %s: %s", url, path, error)


def _image_size(image_size: Sequence[int]) -> tuple[int, int]:
    size = tuple(image_size)
    if len(size) != 2 or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size
    ):
        raise ValueError(f"image_size must be two positive integers (H, W), got {image_size!r}")
    return size


def _read_schema(path: Path) -> pa.Schema:
    if not path.is_file():
        raise ManifestError(
            f"manifest not found: {path} (run `sanitize scan DATA --out {path.parent}`)"
        )
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc}") from exc
    if "url" not in schema.names:
        raise ManifestError(
            f"manifest {path} has no 'url' column (columns: {', '.join(schema.names)})"
        )
    return schema


def _text_columns(schemas: list[pa.Schema]) -> list[str]:
    names: list[str] = []
    for schema in schemas:
        for field in schema:
            if (
                field.name not in IMAGE_COLUMNS
                and field.name not in SAMPLE_KEYS
                and field.name not in names
                and (pa.types.is_string(field.type) or pa.types.is_large_string(field.type))
            ):
                names.append(field.name)
    return names


def _absolute_urls(table: pa.Table, manifest: Path) -> pa.Table:
    """Annotation tables may name images relative to DATA: resolve them against the root the
    scan recorded in the manifest, not against wherever training happens to run."""
    urls = pc.cast(table.column("url"), pa.large_string())
    relative = pc.invert(pc.fill_null(pc.starts_with(urls, "/"), True))
    if not pc.any(relative).as_py():
        return table
    root = read_metadata(manifest).get("data_root")
    if not root:
        raise ManifestError(f"{manifest} has relative urls but records no data_root")
    prefix = pa.scalar(root.rstrip("/"), pa.large_string())
    joined = pc.binary_join_element_wise(prefix, urls, pa.scalar("/", pa.large_string()))
    column = pc.if_else(relative, joined, urls)
    return table.set_column(table.schema.get_field_index("url"), "url", column)


def _concat(tables: list[pa.Table], column: str) -> pa.ChunkedArray:
    chunks: list[pa.Array] = []
    for table in tables:
        if column in table.column_names:
            chunks.extend(pc.cast(table.column(column), pa.large_string()).chunks)
        else:
            chunks.append(pa.nulls(table.num_rows, pa.large_string()))
    return pa.chunked_array(chunks, type=pa.large_string())


def _names(paths: list[Path]) -> str:
    return ", ".join(map(str, paths))
