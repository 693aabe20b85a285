"""The runtime failures file: one whole JSON line per failure, from many processes at once."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

from sanitize.failures import FAILURES_NAME, append_failure, failures_path, read_failures

WRITERS = 4
LINES_EACH = 150


def _write_many(path: str, writer: int) -> None:
    for i in range(LINES_EACH):
        # Long errors make a torn or interleaved write likely if the writes were not atomic.
        append_failure(path, f"/data/{writer}/{i}.png", "truncated", "x" * 3000 + f" {writer}/{i}")


def test_failures_file_sits_beside_the_manifest(tmp_path: Path) -> None:
    assert failures_path(tmp_path / "m" / "clean.parquet") == tmp_path / "m" / FAILURES_NAME


def test_a_failure_is_one_json_line_with_its_origin(tmp_path: Path) -> None:
    path = tmp_path / FAILURES_NAME
    append_failure(path, "/data/a.png", "checksum", "CRC mismatch in IDAT")
    append_failure(path, "/data/b.png", "missing", "No such file")
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["url"] == "/data/a.png"
    assert first["error_type"] == "checksum"
    assert first["error"] == "CRC mismatch in IDAT"
    assert first["pid"] == os.getpid()
    assert first["host"]
    assert first["time"].endswith("+00:00")
    assert [r["url"] for r in read_failures(path)] == ["/data/a.png", "/data/b.png"]


def test_many_processes_append_without_losing_or_mixing_lines(tmp_path: Path) -> None:
    path = tmp_path / FAILURES_NAME
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_write_many, args=(str(path), w)) for w in range(WRITERS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    lines = path.read_bytes().splitlines()
    assert len(lines) == WRITERS * LINES_EACH
    records = [json.loads(line) for line in lines]  # every line whole
    assert {r["url"] for r in records} == {
        f"/data/{w}/{i}.png" for w in range(WRITERS) for i in range(LINES_EACH)
    }
    assert all(r["error"].endswith(r["url"][6:-4]) for r in records)
    assert len({r["pid"] for r in records}) == WRITERS


def test_a_torn_last_line_is_skipped_and_the_next_write_starts_fresh(tmp_path: Path) -> None:
    path = tmp_path / FAILURES_NAME
    append_failure(path, "/data/a.png", "truncated", "cut")
    with open(path, "ab") as handle:
        handle.write(b'{"url": "/data/torn.png", "error_ty')  # a writer killed mid-line
    assert [r["url"] for r in read_failures(path)] == ["/data/a.png"]
    append_failure(path, "/data/b.png", "truncated", "cut")
    assert [r["url"] for r in read_failures(path)] == ["/data/a.png", "/data/b.png"]


def test_no_failures_file_reads_as_no_failures(tmp_path: Path) -> None:
    assert read_failures(tmp_path / FAILURES_NAME) == []
