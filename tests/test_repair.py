"""`sanitize repair`: a dry-run plan first, then verified, atomic replacement from archives."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import pytest

from sanitize import damage
from sanitize.archives import index_archives, match_key
from sanitize.cli import main
from tests.test_incremental import small_png

PANO = "Structured3D/scene_{:05d}/2D_rendering/{}/panorama/full/rgb_rawlight.png"


def make_zip(path: Path, files: dict[str, bytes], rot: str | None = None) -> None:
    """A stored zip; `rot` names an entry whose bytes then rot (its CRC no longer matches)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    if rot:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(rot)
        data = bytearray(path.read_bytes())
        data[info.header_offset + 30 + len(info.filename) + info.file_size // 2] ^= 0x01
        path.write_bytes(bytes(data))


@pytest.fixture
def setup(tmp_path: Path) -> dict:
    data, archives, out = tmp_path / "data", tmp_path / "archives", tmp_path / "out"
    good = {PANO.format(i, 100 + i): small_png(i) for i in range(6)}
    for relpath, content in good.items():
        (data / relpath).parent.mkdir(parents=True, exist_ok=True)
        (data / relpath).write_bytes(content)
    names = sorted(good)
    broken = {
        names[0]: damage.zero_fill_tail(good[names[0]], 200),  # repairable
        names[1]: damage.truncate(good[names[1]], 300),  # repairable
        names[2]: damage.flip_bit(good[names[2]], 100),  # archive entry rotted too
        names[3]: b"",  # in no archive
        names[4]: damage.truncate(good[names[4]], 250),  # archive holds a bad copy
    }
    for relpath, content in broken.items():
        (data / relpath).write_bytes(content)
    archives.mkdir()
    make_zip(
        archives / "Structured3D_panorama_00.zip",
        {names[i]: good[names[i]] for i in (0, 1, 2)} | {names[4]: broken[names[4]]},
        rot=names[2],
    )
    (archives / "Structured3D_perspective_00.zip").write_bytes(b"7z\xbc\xaf\x27\x1c" + bytes(99))
    (archives / "notes.zip").write_text("not an archive")
    assert main(["scan", str(data), "--out", str(out), "--no-progress"]) == 0
    return {"data": data, "archives": archives, "out": out, "good": good, "names": names}


def repair(setup: dict, *extra: str) -> int:
    args = ["repair", "--archives", str(setup["archives"]), "--out", str(setup["out"])]
    return main([*args, "--no-progress", *extra])


def plan_rows(out: Path) -> dict[str, dict]:
    with open(out / "repair_plan.csv", newline="") as f:
        return {row["relpath"]: row for row in csv.DictReader(f)}


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_dry_run_plans_and_changes_nothing(setup: dict, capsys) -> None:
    before = tree_bytes(setup["data"])
    assert repair(setup) == 0
    assert tree_bytes(setup["data"]) == before
    output = capsys.readouterr().out
    assert "repairable" in output and "Dry run: nothing was changed" in output
    assert "a 7z archive under a .zip name" in output and "not a zip archive" in output
    names = setup["names"]
    statuses = {rel: row["status"] for rel, row in plan_rows(setup["out"]).items()}
    assert statuses == {
        names[0]: "repairable",
        names[1]: "repairable",
        names[2]: "archive_entry_damaged",
        names[3]: "not_in_archive",
        names[4]: "repairable",  # its CRC is right: only the scan's check can tell
    }
    assert "Bad CRC-32" in plan_rows(setup["out"])[names[2]]["reason"]


def test_yes_repairs_verified_copies_and_rescans_incrementally(setup: dict, capsys) -> None:
    data, names, good = setup["data"], setup["names"], setup["good"]
    before = tree_bytes(data)
    assert repair(setup, "--yes") == 0
    assert (data / names[0]).read_bytes() == good[names[0]]
    assert (data / names[1]).read_bytes() == good[names[1]]
    for untouched in (names[2], names[3], names[4], names[5]):
        assert (data / untouched).read_bytes() == before[untouched]
    assert not list(data.rglob(".*repair*"))  # no temporary file left behind

    rows = plan_rows(setup["out"])
    assert rows[names[0]]["status"] == rows[names[1]]["status"] == "repaired"
    assert rows[names[4]]["status"] == "repair_failed"
    assert "archive copy is damaged too" in rows[names[4]]["reason"]

    summary = json.loads((setup["out"] / "summary.json").read_text())
    assert (summary["checked"], summary["damaged"]) == (2, 3)
    report = (setup["out"] / "corruption_report.csv").read_text()
    assert names[0] not in report and names[2] in report
    assert "Repaired 2 files" in capsys.readouterr().out


def test_a_target_that_leaves_data_through_a_symlink_is_never_written(tmp_path: Path) -> None:
    data, outside = tmp_path / "data", tmp_path / "outside.png"
    relpath = PANO.format(1, 1)
    outside.write_bytes(damage.truncate(small_png(1), 100))
    (data / relpath).parent.mkdir(parents=True)
    (data / relpath).symlink_to(outside)
    archives = tmp_path / "archives"
    archives.mkdir()
    make_zip(archives / "a.zip", {relpath: small_png(1)})
    main(["scan", str(data), "--out", str(tmp_path / "out"), "--no-progress"])
    before = outside.read_bytes()
    args = ["repair", "--archives", str(archives), "--out", str(tmp_path / "out"), "--yes"]
    assert main(args) == 0
    assert outside.read_bytes() == before
    assert plan_rows(tmp_path / "out")[relpath]["status"] == "target_outside_root"


def test_repair_without_a_scan_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "archives").mkdir()
    args = ["repair", "--archives", str(tmp_path / "archives"), "--out", str(tmp_path / "none")]
    assert main(args) == 2
    assert "no scan in" in capsys.readouterr().err


def test_archive_index_is_cached_and_matches_from_the_scene_folder(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    make_zip(archive, {"Structured3D/scene_00007/2D_rendering/1/panorama/full/depth.png": b"x"})
    cache = tmp_path / "cache"
    index = index_archives(tmp_path, cache)
    assert index.find("scene_00007/2D_rendering/1/panorama/full/depth.png") is not None
    assert index.find("data/Structured3D/scene_00007/2D_rendering/1/panorama/full/depth.png")
    assert len(list(cache.iterdir())) == 1
    assert index_archives(tmp_path, cache).entries == index.entries
    assert match_key("SUN360/a.jpg") == "SUN360/a.jpg"


def test_demo_tree_repair_end_to_end(tmp_path: Path, capsys) -> None:
    from sanitize.demo import make_demo_tree

    tree = make_demo_tree(tmp_path / "demo", scenes=1, seed=2, progress=False).root
    out = tmp_path / "out"
    main(["scan", str(tree), "--out", str(out), "--no-progress"])
    damaged_before = json.loads((out / "summary.json").read_text())["damaged"]
    args = ["repair", "--archives", str(tree / "archives"), "--out", str(out), "--yes"]
    assert main([*args, "--no-progress"]) == 0
    statuses = [row["status"] for row in plan_rows(out).values()]
    repaired = statuses.count("repaired")
    assert repaired >= 5
    assert statuses.count("not_in_archive") >= 1 and statuses.count("archive_entry_damaged") == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["damaged"] == damaged_before - repaired
    assert "Structured3D_perspective_00.zip" in capsys.readouterr().out


def test_each_archive_is_opened_once_per_phase_not_once_per_file(
    setup: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sanitize import repair as repair_module

    opened: list[str] = []

    class CountingZipFile(zipfile.ZipFile):
        def __init__(self, file, *args, **kwargs) -> None:
            opened.append(str(file))
            super().__init__(file, *args, **kwargs)

    monkeypatch.setattr(repair_module.zipfile, "ZipFile", CountingZipFile)
    assert repair(setup, "--yes") == 0
    assert sum(row["archive"] != "" for row in plan_rows(setup["out"]).values()) == 4
    # Four entries from one archive: it is opened to index it, to check them, to extract.
    assert [name.rsplit("/", 1)[1] for name in opened] == ["Structured3D_panorama_00.zip"] * 3


def test_open_archives_keeps_only_the_most_recently_used(tmp_path: Path) -> None:
    from sanitize.repair import OpenArchives

    paths = [tmp_path / f"{i}.zip" for i in range(3)]
    for path in paths:
        make_zip(path, {"a.png": b"x"})
    with OpenArchives(limit=2) as archives:
        first = archives.get(str(paths[0]))
        assert archives.get(str(paths[0])) is first
        archives.get(str(paths[1]))
        archives.get(str(paths[0]))  # now the most recent
        archives.get(str(paths[2]))  # closes 1, keeps 0
        assert archives.get(str(paths[0])) is first and first.fp is not None
        assert archives.get(str(paths[1])) is not first
    assert first.fp is None  # closed on exit
