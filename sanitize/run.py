"""Run a scan: walk (reader) -> batches checked in worker processes -> manifest writer."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import astuple, dataclass, field
from pathlib import Path

import PIL
from PIL import Image
from tqdm import tqdm

import sanitize
from sanitize.check import Verdict, verify_file
from sanitize.manifest import (
    CLEAN_NAME,
    REPORT_NAME,
    SUMMARY_NAME,
    ManifestBuilder,
    write_csv,
    write_json,
    write_parquet,
)
from sanitize.summary import build_summary
from sanitize.walk import FileEntry, WalkStats, walk_images

# A batch is (index, relpaths); a worker answers (index, verdict tuples).
Batch = tuple[int, list[str]]
BatchResult = tuple[int, list[tuple]]
Distributor = Callable[[str, Sequence[Batch], "ScanConfig"], Iterable[BatchResult]]


@dataclass(frozen=True)
class ScanConfig:
    """Everything a scan needs, validated once by the CLI."""

    data_root: str  # absolute
    out_dir: str
    jobs: int = 1
    include: tuple[str, ...] = ()
    batch_size: int = 0  # 0: chosen from the number of files and jobs
    fast: bool = True  # plain PNGs inflate with zlib-ng instead of a Pillow decode
    progress: bool = True
    backend: str = "joblib"


@dataclass(frozen=True)
class ScanResult:
    """Where the outputs went and what the scan found."""

    summary: dict
    clean_path: Path
    report_path: Path
    summary_path: Path
    damaged: dict[str, str] = field(default_factory=dict)  # relpath -> error_type


def check_batch(data_root: str, batch: Batch, fast: bool = True) -> BatchResult:
    """Worker: the verdicts of one batch of files, as plain tuples (cheap to pickle)."""
    index, relpaths = batch
    return index, [
        astuple(verify_file(os.path.join(data_root, rel), fast=fast)) for rel in relpaths
    ]


def distribute_serial(data_root: str, batches: Sequence[Batch], config: ScanConfig):
    """In-process, for --jobs 1: no process start-up, same worker function."""
    for batch in batches:
        yield check_batch(data_root, batch, config.fast)


def distribute_joblib(data_root: str, batches: Sequence[Batch], config: ScanConfig):
    """joblib (loky) worker processes; Pillow releases the GIL but Python checks do not."""
    from joblib import Parallel, delayed

    parallel = Parallel(n_jobs=config.jobs, return_as="generator_unordered")
    yield from parallel(delayed(check_batch)(data_root, batch, config.fast) for batch in batches)


DISTRIBUTORS: dict[str, Distributor] = {"serial": distribute_serial, "joblib": distribute_joblib}


def run_scan(config: ScanConfig) -> ScanResult:
    """Walk, check every image in batches, write the manifests atomically, summarise."""
    started = time.perf_counter()
    walk_stats = WalkStats([])
    entries = list(walk_images(config.data_root, config.include, walk_stats))
    builder = ManifestBuilder(config.data_root)
    counts: Counter[str] = Counter()
    damaged: dict[str, str] = {}
    with tqdm(total=len(entries), unit="img", disable=not config.progress or None) as bar:
        for entry, verdict in _check_all(entries, config):
            builder.add(entry, verdict)
            counts[verdict.error_type or "clean"] += 1
            if not verdict.ok:
                damaged[entry.relpath] = verdict.error_type
            bar.update()
    seconds = time.perf_counter() - started

    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = _settings(config)
    summary = build_summary(
        counts, seconds, sum(e.size or 0 for e in entries), walk_stats, settings, out
    )
    result = ScanResult(summary, out / CLEAN_NAME, out / REPORT_NAME, out / SUMMARY_NAME, damaged)
    write_parquet(builder.clean_table(settings), result.clean_path)
    write_csv(builder.report_table(), result.report_path)
    write_json(summary, result.summary_path)
    return result


def _check_all(entries: list[FileEntry], config: ScanConfig) -> Iterator[tuple[FileEntry, Verdict]]:
    size = config.batch_size or _batch_size(len(entries), config.jobs)
    batches = [
        (i, [e.relpath for e in entries[start : start + size]])
        for i, start in enumerate(range(0, len(entries), size))
    ]
    distributor = DISTRIBUTORS["serial" if config.jobs == 1 else config.backend]
    for index, verdicts in distributor(config.data_root, batches, config):
        start = index * size
        for entry, fields in zip(entries[start : start + size], verdicts, strict=True):
            yield entry, Verdict(*fields)


def _batch_size(files: int, jobs: int) -> int:
    # Big enough to amortise dispatch, small enough that every worker gets many batches.
    return max(4, min(64, files // (jobs * 16) or 1))


def _settings(config: ScanConfig) -> dict:
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
        "backend": "serial" if config.jobs == 1 else config.backend,
        "fast_png_path": config.fast,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
