"""Interval cache cleanup and the disk guard for users who train with Lightning.

    trainer = Trainer(callbacks=[
        CacheCleanupCallback(config.training.cache_cleanup_interval),
        DiskGuardCallback(config.paths.runs_dir),
    ])

`CacheCleanupCallback`'s hook is `on_train_batch_end`, which Lightning calls once per
micro-batch; the cleanup is gated on `trainer.global_step` (optimizer steps), so under gradient
accumulation it fires once at each multiple of the interval, never at step 0. As in
`panovlm train`, the objects alive when training starts are frozen out of the collector
(`frozen_heap`) until it ends, so each cleanup is cheap.

`DiskGuardCallback` runs `panovlm train`'s `DiskGuard` before training and in
`on_save_checkpoint`, which Lightning calls after building a checkpoint and before writing it:
when the disk is short even after checkpoint retention, `OutOfDiskSpace` ends `fit` before a
byte of the new checkpoint is written. Only this module imports Lightning.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

from panovlm.cache_cleanup import CacheCleanup, frozen_heap
from panovlm.checkpoints import expected_bytes
from panovlm.hygiene.guard import DEFAULT_MARGIN_BYTES, DiskGuard

try:
    from lightning.pytorch import Callback
except ImportError:  # the standalone `pytorch_lightning` package has the same Callback
    try:
        from pytorch_lightning import Callback
    except ImportError as exc:
        raise ImportError(
            "panovlm.lightning needs Lightning: pip install lightning (or pytorch-lightning)"
        ) from exc


class CacheCleanupCallback(Callback):
    """`CacheCleanup(interval)` on Lightning's optimizer steps, on the module's device."""

    def __init__(self, interval: int) -> None:
        super().__init__()
        self.cleanup = CacheCleanup(interval, device="cpu")
        self._frozen = ExitStack()

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if self.cleanup.enabled:
            self._frozen.enter_context(frozen_heap())

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._frozen.close()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._frozen.close()

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.cleanup.step(trainer.global_step, device=pl_module.device)


class DiskGuardCallback(Callback):
    """`DiskGuard(runs_dir)` before training and before each checkpoint Lightning writes.

    Checked for each `ModelCheckpoint`'s folder (or the trainer's `default_root_dir`), against
    the last checkpoint there or the one being saved, whichever is larger. Free space is
    measured on `runs_dir`, and retention applies to the runs under it.
    """

    def __init__(
        self, runs_dir: str | Path, margin_bytes: int = DEFAULT_MARGIN_BYTES, **guard: Any
    ) -> None:
        super().__init__()
        self.guard = DiskGuard(Path(runs_dir), margin_bytes=margin_bytes, **guard)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        # Weights plus two optimizer moments: the optimizer holds no state before a step.
        expected = 3 * expected_bytes(pl_module.state_dict())
        for folder in _checkpoint_folders(trainer):
            self.guard.check(folder, expected)

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict) -> None:
        expected = expected_bytes(checkpoint)
        for folder in _checkpoint_folders(trainer):
            self.guard.check(folder, expected)


def _checkpoint_folders(trainer: Any) -> list[Path]:
    folders = {Path(cb.dirpath) for cb in trainer.checkpoint_callbacks if cb.dirpath}
    return sorted(folders) or [Path(trainer.default_root_dir)]
