"""The walk lists every image once, in order, follows symlinks but never loops."""

from __future__ import annotations

import os
from pathlib import Path

from sanitize.walk import FileEntry, WalkStats, walk_images


def touch(path: Path, data: bytes = b"x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def relpaths(root: Path, **kwargs) -> list[str]:
    return [e.relpath for e in walk_images(str(root), **kwargs)]


def test_images_by_suffix_in_any_case_sorted_and_others_ignored(tmp_path: Path) -> None:
    for name in ["b/2.PNG", "b/1.jpeg", "a.JPG", "c/d/e.png", "notes.txt", "x.png.bak", "y.webp"]:
        touch(tmp_path / name)
    assert relpaths(tmp_path) == ["a.JPG", "b/1.jpeg", "b/2.PNG", "c/d/e.png"]


def test_entry_carries_size_and_mtime(tmp_path: Path) -> None:
    touch(tmp_path / "a.png", b"12345")
    os.utime(tmp_path / "a.png", ns=(1_000_000_000, 2_000_000_123))
    assert list(walk_images(str(tmp_path))) == [FileEntry("a.png", 5, 2_000_000_123)]


def test_symlink_loop_is_not_followed(tmp_path: Path) -> None:
    touch(tmp_path / "scene/a.png")
    (tmp_path / "scene/loop").symlink_to(tmp_path)
    (tmp_path / "scene/self").symlink_to(".")
    stats = WalkStats([])
    assert relpaths(tmp_path, stats=stats) == ["scene/a.png"]
    assert stats.symlink_loops == 2


def test_symlinked_folder_and_file_are_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    touch(outside / "b.png", b"abc")
    root = tmp_path / "root"
    root.mkdir()
    (root / "linked").symlink_to(outside)
    (root / "c.png").symlink_to(outside / "b.png")
    entries = list(walk_images(str(root)))
    assert [(e.relpath, e.size) for e in entries] == [("c.png", 3), ("linked/b.png", 3)]


def test_dangling_symlink_is_listed_without_stat(tmp_path: Path) -> None:
    (tmp_path / "gone.png").symlink_to(tmp_path / "nowhere.png")
    assert list(walk_images(str(tmp_path))) == [FileEntry("gone.png", None, None)]


def test_fifo_named_like_an_image_is_skipped(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.png")
    touch(tmp_path / "real.png")
    assert relpaths(tmp_path) == ["real.png"]


def test_include_globs_match_relative_paths(tmp_path: Path) -> None:
    for name in ["s/panorama/full/rgb_rawlight.png", "s/panorama/full/depth.png", "t/x.jpg"]:
        touch(tmp_path / name)
    assert relpaths(tmp_path, include=["*rgb_*.png", "t/*"]) == [
        "s/panorama/full/rgb_rawlight.png",
        "t/x.jpg",
    ]


def test_a_name_that_is_not_utf8_is_skipped_and_counted(tmp_path: Path) -> None:
    os.mkdir(os.path.join(os.fsencode(tmp_path), b"scene"))
    with open(os.path.join(os.fsencode(tmp_path), b"scene", b"caf\xe9.png"), "wb") as f:
        f.write(b"x")
    touch(tmp_path / "scene" / "ok.png")
    stats = WalkStats([])
    assert relpaths(tmp_path, stats=stats) == ["scene/ok.png"]
    assert len(stats.undecodable_names) == 1
