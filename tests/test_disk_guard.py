"""The training disk guard and atomic checkpoints: a full disk never costs the last good
checkpoint, and a run short of space stops cleanly with one line and exit status 3."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
import torch

from panovlm import checkpoints
from panovlm.checkpoints import guarded_by, save_checkpoint
from panovlm.cli import main
from panovlm.hygiene.guard import DiskGuard, OutOfDiskSpace
from panovlm.hygiene.tree import tree_bytes
from panovlm.train import train
from tests.fakedisk import fake_runs, write
from tests.test_train import tiny_config


class VirtualDisk:
    """A disk of `capacity` bytes holding only the runs folder: free space follows deletions."""

    def __init__(self, runs: Path, capacity: int) -> None:
        self.runs, self.capacity, self.calls = runs, capacity, 0

    def __call__(self, path: Path) -> int:
        self.calls += 1
        return self.capacity - tree_bytes(self.runs)


def test_the_guard_needs_twice_the_last_checkpoint_plus_the_margin(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "r"
    write(run / "old.pt", b"x" * 100, old=10)
    write(run / "new.pt", b"x" * 1000)
    guard = DiskGuard(tmp_path / "runs", margin_bytes=500, free_bytes=lambda p: 2500)
    assert guard.required(run) == 2500
    guard.check(run)
    assert guard.required(run, expected_bytes=2000) == 4500  # a bigger model than last time
    with pytest.raises(OutOfDiskSpace, match=r"2\.5 KB free, 4\.5 KB needed"):
        guard.check(run, expected_bytes=2000)
    assert (run / "old.pt").exists() and (run / "new.pt").exists()


def test_when_short_the_guard_applies_retention_first(tmp_path: Path) -> None:
    runs = fake_runs(tmp_path / "runs", tmp_path / "outside")
    doomed = sum(p.stat().st_size for p in runs.doomed)
    disk = VirtualDisk(runs.root, tree_bytes(runs.root) + 100)
    guard = DiskGuard(runs.root, margin_bytes=100 + doomed // 2, free_bytes=disk)
    guard.check(runs.root / "run-b")  # run-b's last checkpoint: 400 bytes -> 800 + margin
    assert not any(p.exists() for p in runs.doomed)
    assert all(p.exists() for p in runs.kept)

    guard = DiskGuard(runs.root, margin_bytes=10**9, free_bytes=disk)
    with pytest.raises(OutOfDiskSpace, match="checkpoint retention freed 0 B") as caught:
        guard.check(runs.root / "run-a")
    assert "\n" not in str(caught.value) and "panovlm clean" in str(caught.value)
    assert all(p.exists() for p in runs.kept)


def test_a_full_disk_during_a_save_keeps_the_previous_checkpoint_loadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "run" / "vision-step00000010.pt"
    good = {"w": torch.arange(1000, dtype=torch.float32), "step": 10}
    save_checkpoint(good, path)
    real_save = torch.save

    def full_disk(obj, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints.torch, "save", full_disk)
    newer = {"w": torch.zeros(1000), "step": 20}
    for target in (path, path.with_name("vision-step00000020.pt")):
        with pytest.raises(OSError) as caught:
            save_checkpoint(newer, target)
        assert caught.value.errno == errno.ENOSPC
    monkeypatch.setattr(checkpoints.torch, "save", real_save)
    loaded = torch.load(path, weights_only=False)
    assert loaded["step"] == 10 and torch.equal(loaded["w"], good["w"])
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp, no half file


def test_a_guarded_save_stops_before_writing_a_byte(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "r" / "a.pt"
    save_checkpoint({"w": torch.ones(256)}, path)
    before = path.read_bytes()
    guard = DiskGuard(tmp_path / "runs", margin_bytes=0, free_bytes=lambda p: 100)
    with guarded_by(guard), pytest.raises(OutOfDiskSpace):
        save_checkpoint({"w": torch.zeros(256)}, path.with_name("b.pt"))
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.pt"]
    assert path.read_bytes() == before
    save_checkpoint({"w": torch.zeros(256)}, path.with_name("b.pt"))  # unguarded outside


def test_training_records_each_checkpoints_loss_for_retention(tmp_path: Path) -> None:
    import dataclasses

    config = tiny_config(tmp_path, epochs=2)
    config = dataclasses.replace(
        config, training=dataclasses.replace(config.training, checkpoint_every_n_steps=3)
    )
    result = train(config, disk_guard=DiskGuard(tmp_path / "runs", margin_bytes=0))
    record = json.loads((result.run_dir / "checkpoints.json").read_text())
    assert record["metric"] == "loss" and record["mode"] == "min"
    assert sorted(record["checkpoints"]) == sorted(p.name for p in result.checkpoints)
    assert all(isinstance(v, float) for v in record["checkpoints"].values())


def test_training_stops_cleanly_when_the_disk_fills_up(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tiny_config(tmp_path)  # writes the manifest
    path = tmp_path / "c.yaml"
    path.write_text(
        "paths: {runs_dir: " + str(tmp_path / "runs") + "}\n"
        "data: {image_size: [8, 16]}\n"
        "model: {options: {width: 16}}\n"
        "training:\n  num_workers: 0\n  checkpoint_every_n_steps: 1\n"
        "  stage_configs: {vision: {batch_size: 4, epochs: 2, lr: 1.0e-2}}\n"
    )
    free = iter([10**12, 10**12, 10**12])  # before training, then two saves; then the disk is full
    monkeypatch.setattr("panovlm.hygiene.disk.free_bytes", lambda p: next(free, 1000))
    argv = ["train", "--config", str(path), "--manifest", str(config.paths.manifest)]
    code = main([*argv, "--run-name", "full", "--disk-margin-gb", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3
    assert err[-1].startswith("panovlm train: stopped: not enough disk space for the next ")
    run = tmp_path / "runs" / "full"
    saved = sorted(p.name for p in run.iterdir())
    assert saved == ["checkpoints.json", "vision-step00000001.pt", "vision-step00000002.pt"]
    assert torch.load(run / "vision-step00000002.pt", weights_only=False)["global_step"] == 2

    free = iter([])  # full from the start: nothing is created
    assert main([*argv, "--run-name", "never"]) == 3
    assert not (tmp_path / "runs" / "never").exists()
