"""The Lightning callback: a real tiny Trainer run on CPU, with gradient accumulation."""

from __future__ import annotations

import gc

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pl = pytest.importorskip("lightning.pytorch")

from panovlm.lightning import CacheCleanupCallback  # noqa: E402


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
