"""Interval cache cleanup for users who train with Lightning (`pip install lightning`).

    trainer = Trainer(callbacks=[CacheCleanupCallback(config.training.cache_cleanup_interval)])

The hook is `on_train_batch_end`, which Lightning calls once per micro-batch; the cleanup is
gated on `trainer.global_step` (optimizer steps), so under gradient accumulation it fires once
at each multiple of the interval, never at step 0. As in `panovlm train`, the objects alive
when training starts are frozen out of the collector (`frozen_heap`) until it ends, so each
cleanup is cheap. Only this module imports Lightning.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from panovlm.cache_cleanup import CacheCleanup, frozen_heap

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
