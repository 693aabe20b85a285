"""The Lightning callbacks: real tiny Trainer runs on CPU."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pl = pytest.importorskip("lightning.pytorch")

from panovlm.hygiene.guard import OutOfDiskSpace  # noqa: E402
from panovlm.hygiene.tree import tree_bytes  # noqa: E402
from panovlm.lightning import CacheCleanupCallback, DiskGuardCallback  # noqa: E402
from tests.fakedisk import fake_runs  # noqa: E402


class Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore:.*is deprecated")
def test_callback_fires_on_optimizer_steps_not_micro_batches(tmp_path) -> None:
    data = TensorDataset(torch.randn(48, 4), torch.randn(48, 1))
    callback = CacheCleanupCallback(2)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=1,
        accumulate_grad_batches=3,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(Tiny(), DataLoader(data, batch_size=2))  # 24 micro-batches, 8 optimizer steps
    assert trainer.global_step == 8
    assert callback.cleanup.fired_steps == [2, 4, 6, 8]
    assert gc.get_freeze_count() == 0  # unfrozen when training ended


def test_callback_with_interval_zero_never_fires() -> None:
    assert not CacheCleanupCallback(0).cleanup.enabled
    with pytest.raises(ValueError):
        CacheCleanupCallback(-1)


def quiet_trainer(root: Path, callbacks: list, **options) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
        **options,
    )


def loader() -> DataLoader:
    return DataLoader(TensorDataset(torch.randn(40, 4), torch.randn(40, 1)), batch_size=2)


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore:.*is deprecated")
def test_disk_guard_stops_fit_before_a_checkpoint_the_disk_cannot_hold(tmp_path: Path) -> None:
    folder = tmp_path / "runs" / "lit" / "checkpoints"
    free = iter([10**12] * 3)  # training start and two saves; then the disk is full
    guard = DiskGuardCallback(tmp_path / "runs", margin_bytes=0, free_bytes=lambda p: next(free, 0))
    saver = pl.callbacks.ModelCheckpoint(dirpath=folder, every_n_train_steps=2, save_top_k=-1)
    trainer = quiet_trainer(tmp_path, [saver, guard], max_steps=20)
    with pytest.raises(OutOfDiskSpace, match="not enough disk space for the next checkpoint"):
        trainer.fit(Tiny(), loader())
    assert trainer.global_step == 6  # the third save was refused
    saved = sorted(p.name for p in folder.iterdir())
    assert saved == ["epoch=0-step=2.ckpt", "epoch=0-step=4.ckpt"]  # no half-written third
    assert torch.load(folder / saved[-1], weights_only=False)["global_step"] == 4


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore:.*is deprecated")
def test_disk_guard_applies_retention_before_training_when_short(tmp_path: Path) -> None:
    runs = fake_runs(tmp_path / "runs", tmp_path / "outside")
    doomed = sum(p.stat().st_size for p in runs.doomed)
    capacity = tree_bytes(runs.root) + 100  # 100 bytes free: short until retention runs

    def free_bytes(path: Path) -> int:
        return capacity - tree_bytes(runs.root)

    guard = DiskGuardCallback(runs.root, margin_bytes=doomed // 2, free_bytes=free_bytes)
    trainer = quiet_trainer(runs.root / "lit", [guard], max_steps=3, enable_checkpointing=False)
    trainer.fit(Tiny(), loader())
    assert trainer.global_step == 3
    assert not any(p.exists() for p in runs.doomed)
    assert all(p.exists() for p in runs.kept)

    short = DiskGuardCallback(runs.root, margin_bytes=10**12, free_bytes=free_bytes)
    trainer = quiet_trainer(runs.root / "lit", [short], max_steps=3, enable_checkpointing=False)
    with pytest.raises(OutOfDiskSpace):
        trainer.fit(Tiny(), loader())
    assert trainer.global_step == 0
    assert all(p.exists() for p in runs.kept)
