"""`sanitize scan` end to end: outputs, columns, metadata, exit codes, atomic writes."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sanitize import damage
from sanitize.cli import main
from sanitize.manifest import read_metadata
from tests.test_check import jpeg, png

PANO = "Structured3D/scene_{:05d}/2D_rendering/{}/panorama/full/{}.png"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    files = {
        PANO.format(1, "100", "rgb_rawlight"): png(),
        PANO.format(1, "100", "depth"): png(),
        PANO.format(3100, "7", "rgb_warmlight"): damage.zero_fill_tail(png(), 5000),
        PANO.format(3300, "8", "semantic"): damage.truncate(png(), 4000),
        "SUN360/bedroom/pano_a.jpg": jpeg(),
        "SUN360/bedroom/pano_b.JPEG": damage.truncate(jpeg(), 3000),
        "SUN360/bedroom/notes.txt": b"not scanned",
        "lfs/pointer.png": damage.lfs_pointer(),
    }
    for relpath, data in files.items():
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / relpath).write_bytes(data)
    return root


def scan(tree: Path, out: Path, *extra: str) -> int:
    return main(["scan", str(tree), "--out", str(out), "--jobs", "2", "--no-progress", *extra])


def read_report(out: Path) -> list[dict]:
    with open(out / "corruption_report.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_scan_writes_clean_manifest_with_layout_fields(tree: Path, tmp_path: Path) -> None:
    assert scan(tree, tmp_path) == 0
    clean = pq.read_table(tmp_path / "clean.parquet").to_pylist()
    assert [r["relpath"] for r in clean] == [  # sorted by url, byte order
        "SUN360/bedroom/pano_a.jpg",
        PANO.format(1, "100", "depth"),
        PANO.format(1, "100", "rgb_rawlight"),
    ]
    rgb = clean[2]
    assert rgb["url"] == str(tree / rgb["relpath"]) and Path(rgb["url"]).is_absolute()
    assert (rgb["format"], rgb["mode"], rgb["width"], rgb["height"]) == ("PNG", "RGB", 256, 128)
    assert rgb["bytes"] == (tree / rgb["relpath"]).stat().st_size
    assert rgb["mtime_ns"] == (tree / rgb["relpath"]).stat().st_mtime_ns
    assert (rgb["scene"], rgb["room"], rgb["view"], rgb["config"], rgb["kind"], rgb["split"]) == (
        1,
        "100",
        "panorama",
        "full",
        "rgb_rawlight",
        "train",
    )
    assert clean[0]["scene"] is None and clean[0]["format"] == "JPEG"


def test_report_lists_damage_sorted_by_url_with_types(tree: Path, tmp_path: Path) -> None:
    scan(tree, tmp_path)
    report = read_report(tmp_path)
    assert [r["url"] for r in report] == sorted(r["url"] for r in report)
    by_path = {r["relpath"]: r for r in report}
    assert {p: r["error_type"] for p, r in by_path.items()} == {
        PANO.format(3100, "7", "rgb_warmlight"): "zero_filled",
        PANO.format(3300, "8", "semantic"): "truncated",
        "SUN360/bedroom/pano_b.JPEG": "truncated",
        "lfs/pointer.png": "not_an_image",
    }
    warm = by_path[PANO.format(3100, "7", "rgb_warmlight")]
    assert (warm["split"], warm["kind"], warm["scene"]) == ("val", "rgb_warmlight", "3100")
    assert warm["error"] and int(warm["bytes"]) > 0


def test_summary_json_and_parquet_metadata(tree: Path, tmp_path: Path) -> None:
    scan(tree, tmp_path, "--include", "Structured3D/*")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["scanned"], summary["clean"], summary["damaged"]) == (4, 2, 2)
    assert summary["by_error_type"] == {"zero_filled": 1, "truncated": 1}
    assert summary["images_per_second"] > 0
    meta = read_metadata(tmp_path / "clean.parquet")
    assert meta["data_root"] == str(tree)
    assert meta["include"] == ["Structured3D/*"]
    assert meta["pillow_version"] and meta["tool_version"] and meta["max_image_pixels"]


def test_serial_and_parallel_scans_write_identical_outputs(tree: Path, tmp_path: Path) -> None:
    main(["scan", str(tree), "--out", str(tmp_path / "one"), "--jobs", "1", "--no-progress"])
    scan(tree, tmp_path / "two")
    one = pq.read_table(tmp_path / "one" / "clean.parquet")
    two = pq.read_table(tmp_path / "two" / "clean.parquet")
    assert one.equals(two)
    assert read_report(tmp_path / "one") == read_report(tmp_path / "two")


def test_fail_on_damage_exits_1_and_json_prints_summary(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert scan(tree, tmp_path, "--fail-on-damage", "--json") == 1
    assert json.loads(capsys.readouterr().out)["damaged"] == 4
    assert scan(tree, tmp_path, "--fail-on-damage", "--include", "SUN360/*/pano_a.jpg") == 0


def test_human_summary_names_counts_and_outputs(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    scan(tree, tmp_path)
    out = capsys.readouterr().out
    assert "Scanned 7 images" in out and "images/s" in out
    assert "zero_filled" in out and f"{tmp_path}: clean.parquet, corruption_report.csv" in out


def test_outputs_replace_old_ones_and_leave_no_temp_files(tree: Path, tmp_path: Path) -> None:
    (tmp_path / "clean.parquet").write_bytes(b"an old manifest")
    scan(tree, tmp_path)
    assert pq.read_table(tmp_path / "clean.parquet").num_rows == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "clean.parquet",
        "corruption_report.csv",
        "summary.json",
    ]


def test_interrupted_scan_keeps_the_previous_manifests(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scan(tree, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    calls = []

    def interrupted(self, row):
        calls.append(row)
        if len(calls) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr("sanitize.manifest.ManifestWriter.add", interrupted)
    assert main(["scan", str(tree), "--out", str(tmp_path), "--full", "--no-progress"]) == 130
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sanitize", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["scan", "/no/such/folder"], "does not exist"),
        (["scan", __file__], "is not a folder"),
        (["scan", ".", "--jobs", "-3"], "--jobs must be"),
        (["scan", ".", "--jobs", "many"], "invalid int value"),
        (["scan"], "required"),
        (["bogus"], "invalid choice"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], message: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert result.stdout == ""


def test_out_that_is_a_file_is_refused(tree: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    result = run_cli("scan", str(tree), "--out", str(tmp_path / "file"))
    assert result.returncode == 2 and "is not a folder" in result.stderr


def test_scanner_never_imports_torch(tree: Path, tmp_path: Path) -> None:
    args = ["scan", str(tree), "--out", str(tmp_path), "--jobs", "1", "--no-progress"]
    code = (
        "import sys; from sanitize.cli import main; "
        f"main({args!r}); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=60)
