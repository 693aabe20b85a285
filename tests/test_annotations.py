"""Manifests rebuilt from annotation tables; Structured3D splits, errata and incomplete sets."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sanitize import damage
from sanitize.cli import main
from sanitize.layout import PanoramaSets, Selection, parse_layout
from sanitize.tables import resolve
from tests.test_incremental import small_png

PANO = "Structured3D/scene_{:05d}/2D_rendering/{}/panorama/{}/{}.png"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    files = {
        PANO.format(1, 10, "full", "rgb_rawlight"): small_png(1),
        PANO.format(1, 10, "full", "rgb_coldlight"): small_png(2),
        PANO.format(1, 10, "full", "rgb_warmlight"): damage.truncate(small_png(3), 100),
        PANO.format(3100, 20, "full", "rgb_rawlight"): small_png(4),
        PANO.format(3300, 30, "simple", "rgb_rawlight"): small_png(5),
        PANO.format(1155, 40, "empty", "rgb_rawlight"): small_png(6),  # an errata scene
    }
    for relpath, content in files.items():
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / relpath).write_bytes(content)
    (tmp_path / "elsewhere.png").write_bytes(small_png(7))
    return root


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def scan(data: Path, out: Path, *extra: str) -> dict:
    code = main(["scan", str(data), "--out", str(out), "--jobs", "2", "--no-progress", *extra])
    assert code == 0
    return json.loads((out / "summary.json").read_text())


def report(out: Path) -> list[dict]:
    with open(out / "corruption_report.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_clean_rows_keep_their_columns_in_input_order_and_others_are_reported(
    data: Path, tmp_path: Path
) -> None:
    good = str(data / PANO.format(1, 10, "full", "rgb_rawlight"))
    table_a = write_csv(
        tmp_path / "a.csv",
        ["url", "query", "annotation", "extra"],
        [
            [good, "q0", "a furnished room", "x"],
            [PANO.format(1, 10, "full", "rgb_coldlight"), "q1", "relative url", "y"],
            [str(data / PANO.format(1, 10, "full", "rgb_warmlight")), "q2", "damaged", "z"],
            [str(data / "Structured3D/missing.png"), "q3", "missing", ""],
            ["../elsewhere.png", "q4", "climbs out", ""],
            [str(tmp_path / "elsewhere.png"), "q5", "absolute elsewhere", ""],
            [good, "q0", "a furnished room", "x"],  # a duplicate row stays a row
        ],
    )
    table_b = tmp_path / "b.jsonl"
    table_b.write_text(json.dumps({"url": good, "instruction": "i", "response": "r"}) + "\n")

    summary = scan(data, tmp_path / "out", "--csv", str(table_a), "--csv", str(table_b))
    clean = pq.read_table(tmp_path / "out" / "clean.parquet")
    rows = clean.to_pylist()
    assert [(r["source"], r["source_row"]) for r in rows] == [
        (str(table_a), 0),
        (str(table_a), 1),
        (str(table_a), 6),
        (str(table_b), 0),
    ]
    assert rows[1]["url"] == PANO.format(1, 10, "full", "rgb_coldlight")  # unchanged
    assert (rows[0]["query"], rows[0]["annotation"], rows[0]["extra"]) == (
        "q0",
        "a furnished room",
        "x",
    )
    assert (rows[0]["width"], rows[0]["split"], rows[0]["kind"]) == (48, "train", "rgb_rawlight")
    assert rows[3]["instruction"] == "i" and rows[3]["query"] is None  # columns unified

    dropped = {(r["source_row"], r["error_type"]) for r in report(tmp_path / "out")}
    assert dropped == {
        ("2", "truncated"),
        ("3", "missing"),
        ("4", "outside_root"),
        ("5", "outside_root"),
    }
    assert summary["annotations"]["rows_kept"] == 4
    assert summary["annotations"]["rows_dropped"] == {
        "truncated": 1,
        "missing": 1,
        "outside_root": 2,
    }
    assert summary["annotations"]["sources"][str(table_a)]["kept"] == 3
    assert summary["checked"] == 4  # each named image once: the duplicate is not decoded twice


def test_urls_outside_data_are_never_opened() -> None:
    assert resolve("../x.png", "/data/s3d") is None
    assert resolve("/etc/passwd", "/data/s3d") is None
    assert resolve("/data/s3d-other/x.png", "/data/s3d") is None
    assert resolve("a/../../x.png", "/data/s3d") is None
    assert resolve("a/./b.png", "/data/s3d") == "a/b.png"
    assert resolve("/data/s3d/a/b.png", "/data/s3d") == "a/b.png"


def test_url_column_name_is_overridable(data: Path, tmp_path: Path) -> None:
    table = write_csv(
        tmp_path / "t.csv",
        ["image", "caption"],
        [[PANO.format(1, 10, "full", "rgb_rawlight"), "c"]],
    )
    summary = scan(data, tmp_path / "out", "--csv", str(table), "--url-column", "image")
    assert summary["annotations"]["rows_kept"] == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("path,caption\na.png,x\n", "has no 'url' column"),
        (b"url,caption\n\xff\xfe.png,x\n", "cannot be parsed"),
        (None, "does not exist"),
    ],
)
def test_malformed_tables_stop_before_any_output_is_replaced(
    data: Path, tmp_path: Path, capsys, content, message: str
) -> None:
    out = tmp_path / "out"
    scan(data, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    table = tmp_path / "bad.csv"
    if isinstance(content, str):
        table.write_text(content)
    elif content is not None:
        table.write_bytes(content)
    code = main(["scan", str(data), "--out", str(out), "--csv", str(table), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_split_keeps_only_official_scene_ranges(data: Path, tmp_path: Path) -> None:
    summary = scan(data, tmp_path / "val", "--split", "val")
    scenes = set(pq.read_table(tmp_path / "val" / "clean.parquet").column("scene").to_pylist())
    assert scenes == {3100}
    assert summary["filtered"] == {"other_split": 5}
    assert scan(data, tmp_path / "test", "--split", "test")["scanned"] == 1


def test_errata_are_flagged_and_can_be_excluded(data: Path, tmp_path: Path) -> None:
    scan(data, tmp_path / "all")
    clean = pq.read_table(tmp_path / "all" / "clean.parquet").to_pylist()
    assert {r["scene"] for r in clean if r["errata"]} == {1155}
    summary = scan(data, tmp_path / "no-errata", "--exclude-errata")
    scenes = pq.read_table(tmp_path / "no-errata" / "clean.parquet").column("scene").to_pylist()
    assert 1155 not in scenes and summary["filtered"] == {"errata": 1}


def test_split_filters_annotation_rows_too(data: Path, tmp_path: Path) -> None:
    table = write_csv(
        tmp_path / "t.csv",
        ["url"],
        [
            [PANO.format(1, 10, "full", "rgb_rawlight")],
            [PANO.format(3100, 20, "full", "rgb_rawlight")],
        ],
    )
    summary = scan(data, tmp_path / "out", "--csv", str(table), "--split", "val")
    assert summary["annotations"]["rows_kept"] == 1 and summary["annotations"]["rows_filtered"] == 1


def test_incomplete_panorama_sets_are_listed(data: Path, tmp_path: Path, capsys) -> None:
    summary = scan(data, tmp_path / "out")
    gaps = {g["folder"]: g for g in summary["incomplete_panoramas"]}
    full = gaps["scene_00001/2D_rendering/10/panorama/full"]
    assert full == {"folder": full["folder"], "absent": [], "damaged": ["rgb_warmlight"]}
    assert gaps["scene_03300/2D_rendering/30/panorama/simple"]["absent"] == [
        "rgb_coldlight",
        "rgb_warmlight",
    ]
    assert "Incomplete panorama sets" in capsys.readouterr().out


def test_panorama_sets_complete_when_all_lightings_clean() -> None:
    sets = PanoramaSets()
    for kind in ("rgb_rawlight", "rgb_coldlight", "rgb_warmlight", "depth"):
        sets.add(parse_layout(PANO.format(7, 1, "full", kind)), ok=True)
    assert sets.incomplete() == []


def test_selection_reasons() -> None:
    assert Selection("train").reason_to_drop("SUN360/a.jpg") == "other_split"
    assert Selection(None, True).reason_to_drop(PANO.format(3398, 1, "full", "depth")) == "errata"
    assert Selection("test", True).reason_to_drop(PANO.format(3300, 1, "full", "depth")) is None


def test_parquet_table_input(data: Path, tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"url": [PANO.format(1, 10, "full", "rgb_rawlight")], "n": [3]}), path)
    summary = scan(data, tmp_path / "out", "--csv", str(path))
    assert summary["annotations"]["rows_kept"] == 1
    assert pq.read_table(tmp_path / "out" / "clean.parquet").column("n").to_pylist() == [3]
