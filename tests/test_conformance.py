"""Scanning the public PNG conformance suites: every broken PngSuite file and no other."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sanitize.cli import main
from tests.testdata import TESTDATA, bugfix_files, pngsuite_files

pytestmark = pytest.mark.skipif(not pngsuite_files(), reason=f"no PngSuite under {TESTDATA}")


def test_scan_reports_every_broken_pngsuite_file_and_keeps_the_rest(tmp_path: Path) -> None:
    assert (
        main(["scan", str(TESTDATA), "--out", str(tmp_path), "--jobs", "2", "--no-progress"]) == 0
    )
    with open(tmp_path / "corruption_report.csv", newline="") as f:
        damaged = {row["relpath"]: row for row in csv.DictReader(f)}
    clean = set(pq.read_table(tmp_path / "clean.parquet").column("relpath").to_pylist())

    suite = {f"pngsuite/{p.name}" for p in pngsuite_files()}
    broken = {p for p in suite if Path(p).name.startswith("x")}
    assert broken and broken <= damaged.keys()
    assert suite - broken <= clean
    # Pillow alone accepts this one; the IDAT CRC walk does not.
    assert damaged["pngsuite/xcsn0g01.png"]["error_type"] == "checksum"
    # Every file is in exactly one output.
    everything = suite | {f"image-png-bugfixes/{p.name}" for p in bugfix_files()}
    assert clean | damaged.keys() == everything and not clean & damaged.keys()


def test_bugfix_files_marked_broken_are_reported() -> None:
    from sanitize.check import verify_file

    broken = [p for p in bugfix_files() if p.name.startswith("x_")]
    assert broken
    for path in broken:
        assert not verify_file(str(path)).ok, path.name
