"""`panovlm disk`: each filesystem once with df's numbers, folder sizes, what could be freed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from panovlm.cli import main
from panovlm.hygiene.disk import FilesystemUsage, filesystem_usage, folder_sizes, free_bytes
from panovlm.hygiene.tree import tree_bytes
from tests.fakedisk import fake_hf_cache, fake_runs, fake_wandb, write


def test_usage_percent_is_dfs_and_warns_at_ninety() -> None:
    # df: Use% = used / (used + available), rounded up; root's reserve is not "available"
    fs = FilesystemUsage(Path("/data"), total=1000, used=860, free=90, holds=("runs",))
    assert fs.percent == 91 and fs.warn
    assert not FilesystemUsage(Path("/"), 1000, 500, 500, ()).warn
    assert FilesystemUsage(Path("/"), 1000, 900, 100, ()).warn  # exactly 90%


def test_each_filesystem_is_listed_once_with_all_it_holds(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    usage = filesystem_usage({"runs": tmp_path / "a", "hf cache": tmp_path / "not-yet" / "hub"})
    assert len(usage) == 1 and usage[0].holds == ("runs", "hf cache")
    vfs = os.statvfs(tmp_path)
    assert usage[0].total == vfs.f_blocks * vfs.f_frsize
    assert usage[0].free == vfs.f_bavail * vfs.f_frsize == free_bytes(tmp_path / "a" / "x")
    assert usage[0].mount.is_dir() and tmp_path.resolve().is_relative_to(usage[0].mount)


def test_folder_sizes_count_files_not_symlink_targets(tmp_path: Path) -> None:
    write(tmp_path / "big" / "f.bin", b"x" * 5000)
    write(tmp_path / "runs" / "a.pt", b"y" * 100)
    (tmp_path / "runs" / "link").symlink_to(tmp_path / "big", target_is_directory=True)
    sizes = {f.label: f.bytes for f in folder_sizes(
        {"runs": tmp_path / "runs", "wandb": tmp_path / "none"}
    )}  # fmt: skip
    assert sizes == {"runs": 100, "wandb": None}


def test_the_disk_command_reports_sizes_and_what_clean_could_free(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp = tmp_path.resolve()
    monkeypatch.chdir(tmp)
    cache = fake_hf_cache(tmp / "hub", tmp / "outside")
    runs = fake_runs(tmp / "runs", tmp / "outside")
    wb = fake_wandb(tmp / "wb", tmp / "outside")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache.root))
    monkeypatch.setenv("WANDB_DIR", str(wb.root))
    argv = ["disk", "--runs-dir", str(runs.root)]
    assert main([*argv, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    sizes = {f["label"]: f["bytes"] for f in status["folders"]}
    assert sizes == {
        "hf cache": tree_bytes(cache.root),
        "runs": tree_bytes(runs.root),
        "wandb": tree_bytes(wb.root / "wandb"),
    }
    doomed = sum(p.stat().st_size for p in runs.doomed)
    assert status["reclaimable_bytes"]["checkpoints"] == doomed
    assert status["reclaimable_bytes"]["wandb"] == sum(tree_bytes(p) for p in wb.doomed)
    assert status["reclaimable_bytes"]["hf"] > 0
    assert len(status["filesystems"]) == 1
    assert set(status["filesystems"][0]["holds"]) == {
        "data",
        "manifests",
        "runs",
        "hf cache",
        "wandb",
    }

    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Filesystems" in out and "`panovlm clean` could free" in out and "hf cache" in out


def test_the_disk_command_warns_at_ninety_percent(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    full = FilesystemUsage(tmp_path, total=100 * 10**9, used=95 * 10**9, free=5 * 10**9,
                           holds=("runs", "hf cache"))  # fmt: skip
    monkeypatch.setattr("panovlm.hygiene.disk.filesystem_usage", lambda locations: (full,))
    assert main(["disk"]) == 0
    out = capsys.readouterr().out
    assert "95%" in out and "WARNING" in out and "holding runs, hf cache" in out
