"""The training loop: stages, gradient accumulation, masked placeholders, cleanup, checkpoints.

Plain PyTorch. Stages run in the config's order, each with its own batch size, epochs,
learning rate and gradient accumulation; `global_step` counts optimizer steps across all
stages, and `CacheCleanup.step(global_step)` runs after each one. Placeholder samples (every
try to load failed) are masked out of the loss. Checkpoints are written atomically under
`paths.runs_dir/<run-name>/`, by `panovlm.checkpoints.save_checkpoint` only, each with its
training loss recorded in `checkpoints.json` beside it (what `panovlm clean` keeps as the best).
A `DiskGuard` checks free space before training and before every save, and raises
`OutOfDiskSpace` (after trying checkpoint retention) rather than start a write it cannot finish.

A model is `module:Class`: built with `Class.from_dataset(dataset, **model.options)` when the
class has it, else `Class(**model.options)`; its `forward(batch)` returns per-sample losses.
Its optional `set_stage(name)` is called as each stage starts (to freeze parts of it).
"""

from __future__ import annotations

import importlib
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from panovlm.cache_cleanup import CacheCleanup, default_device, frozen_heap
from panovlm.checkpoints import expected_bytes, guarded_by, save_checkpoint
from panovlm.config import Config, ConfigError, StageConfig
from panovlm.dataset import PanoDataset
from panovlm.hygiene.checkpoints_retention import record_metric
from panovlm.hygiene.guard import DiskGuard

logger = logging.getLogger(__name__)

METRIC_STEPS = 50  # a checkpoint's recorded loss: the mean of the last this many steps


@dataclass
class TrainResult:
    """What a run did: the loss of every optimizer step, checkpoints, placeholders masked."""

    run_dir: Path
    global_step: int = 0
    losses: list[float] = field(default_factory=list)
    checkpoints: list[Path] = field(default_factory=list)
    samples: int = 0
    placeholders: int = 0
    cleanups: list[int] = field(default_factory=list)
    seconds: float = 0.0
    stopped_early: bool = False


def masked_loss(losses: torch.Tensor, is_placeholder: torch.Tensor) -> torch.Tensor:
    """Mean of the per-sample losses of real samples; 0 (with a graph) when there are none."""
    if losses.dim() != 1 or losses.shape[0] != is_placeholder.shape[0]:
        raise ValueError(
            f"the model must return one loss per sample, shape ({is_placeholder.shape[0]},), "
            f"so placeholders can be masked out; got shape {tuple(losses.shape)}"
        )
    keep = (~is_placeholder.to(losses.device, torch.bool)).to(losses.dtype)
    return (losses * keep).sum() / keep.sum().clamp(min=1.0)


def load_model_class(spec: str) -> type:
    """The class named by `module:Class`."""
    module_name, _, class_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import the model module {module_name!r}: {exc}") from exc
    try:
        return getattr(module, class_name)
    except AttributeError:
        raise ConfigError(f"module {module_name!r} has no {class_name!r}") from None


def build_model(spec: str, dataset: PanoDataset, options: dict[str, Any]) -> torch.nn.Module:
    cls = load_model_class(spec)
    if hasattr(cls, "from_dataset"):
        return cls.from_dataset(dataset, **options)
    return cls(**options)


def resolve_device(name: str) -> torch.device:
    return default_device() if name == "auto" else torch.device(name)


def train(
    config: Config, *, max_steps: int | None = None, disk_guard: DiskGuard | None = None
) -> TrainResult:
    """Train `config.model` on `config.paths.manifest`; stop after `max_steps` optimizer steps.

    `disk_guard` defaults to `DiskGuard(config.paths.runs_dir)`; `OutOfDiskSpace` propagates.
    """
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    training = config.training
    _seed(training.seed)
    dataset = PanoDataset(
        config.paths.manifest, config.data.image_size, max_retries=config.data.max_retries
    )
    device = resolve_device(training.device)
    model = build_model(config.model.name, dataset, dict(config.model.options)).to(device)
    run_name = training.run_name or datetime.now().strftime("%Y%m%d-%H%M%S")
    result = TrainResult(run_dir=config.paths.runs_dir / run_name)
    guard = disk_guard or DiskGuard(config.paths.runs_dir)
    # A checkpoint holds the weights and AdamW's two moments: about 3x the model.
    guard.check(result.run_dir, 3 * expected_bytes(model.state_dict()))
    result.run_dir.mkdir(parents=True, exist_ok=True)
    cleanup = CacheCleanup(training.cache_cleanup_interval, device)
    logger.info(
        "training %s on %d rows of %s (%s); runs in %s; cache cleanup every %s",
        config.model.name,
        len(dataset),
        ", ".join(map(str, dataset.manifests)),
        device,
        result.run_dir,
        f"{cleanup.interval} steps" if cleanup.enabled else "- (disabled)",
    )
    start = time.perf_counter()
    with frozen_heap(), guarded_by(guard):  # cheap cleanups; workers keep sharing these pages
        for stage in training.stages:
            if not _train_stage(config, stage, dataset, model, device, cleanup, result, max_steps):
                break
    result.seconds = time.perf_counter() - start
    result.cleanups = list(cleanup.fired_steps)
    logger.info(
        "done: %d optimizer steps in %.1f s; %d samples, %d placeholders masked out",
        result.global_step,
        result.seconds,
        result.samples,
        result.placeholders,
    )
    if result.placeholders:
        logger.warning(
            "images that failed to load are listed in %s", ", ".join(dataset.failure_files)
        )
    return result


def _train_stage(
    config: Config,
    stage: StageConfig,
    dataset: PanoDataset,
    model: torch.nn.Module,
    device: torch.device,
    cleanup: CacheCleanup,
    result: TrainResult,
    max_steps: int | None,
) -> bool:
    """One stage; False when `max_steps` stopped the run."""
    if hasattr(model, "set_stage"):
        model.set_stage(stage.name)
    model.train()
    parameters = [p for p in model.parameters() if p.requires_grad]
    run = _StageRun(
        config=config,
        stage=stage,
        model=model,
        optimizer=torch.optim.AdamW(parameters, lr=stage.lr),
        loader=_stage_loader(config, stage, dataset, device, result.global_step),
        device=device,
        cleanup=cleanup,
        result=result,
        max_steps=max_steps,
    )
    logger.info(
        "stage %s: %d epochs, batch %d x %d accumulated, lr %g, %d workers",
        stage.name,
        stage.epochs,
        stage.batch_size,
        stage.accumulate_grad_batches,
        stage.lr,
        config.training.num_workers,
    )
    for epoch in range(1, stage.epochs + 1):
        if not run.epoch(epoch):
            return False
    run.checkpoint(stage.epochs)
    return True


def _stage_loader(
    config: Config, stage: StageConfig, dataset: PanoDataset, device: torch.device, step: int
) -> DataLoader:
    workers = config.training.num_workers
    return DataLoader(
        dataset,
        batch_size=stage.batch_size,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(config.training.seed + step),
    )


@dataclass
class _StageRun:
    """One stage's model, optimizer and loader, and the losses of the step being accumulated."""

    config: Config
    stage: StageConfig
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    loader: DataLoader
    device: torch.device
    cleanup: CacheCleanup
    result: TrainResult
    max_steps: int | None
    step_losses: list[float] = field(default_factory=list)

    def epoch(self, epoch: int) -> bool:
        """One pass over the loader; False when `max_steps` stopped the run."""
        accumulate = self.stage.accumulate_grad_batches
        pending, epoch_losses = 0, []
        tick = time.perf_counter()
        for index, batch in enumerate(self.loader, start=1):
            self._backward(batch, accumulate)
            pending += 1
            if pending < accumulate and index < len(self.loader):
                continue
            # An epoch's last micro-batches step too, as Lightning does.
            epoch_losses += self.step_losses
            pending = 0
            if not self._optimizer_step(epoch):
                return False
        logger.info(
            "stage %s epoch %d/%d: mean loss %.4f (%.1f s)",
            self.stage.name,
            epoch,
            self.stage.epochs,
            float(np.mean(epoch_losses)) if epoch_losses else float("nan"),
            time.perf_counter() - tick,
        )
        return True

    def checkpoint(self, epoch: int) -> None:
        _checkpoint(self.config, self.model, self.optimizer, self.stage, epoch, self.result)

    def _backward(self, batch: dict, accumulate: int) -> None:
        is_placeholder = batch["is_placeholder"]
        real = int((~is_placeholder).sum())
        self.result.samples += real
        self.result.placeholders += len(is_placeholder) - real
        loss = masked_loss(self.model(_to_device(batch, self.device)), is_placeholder)
        (loss / accumulate).backward()
        if real:
            self.step_losses.append(loss.item())

    def _optimizer_step(self, epoch: int) -> bool:
        """Step, log, clean up, checkpoint; False when `max_steps` is reached."""
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        result, training = self.result, self.config.training
        result.global_step += 1
        step_loss = float(np.mean(self.step_losses)) if self.step_losses else float("nan")
        result.losses.append(step_loss)
        self.step_losses = []
        self.cleanup.step(result.global_step)
        if result.global_step % training.log_every_n_steps == 0:
            logger.info(
                "stage %s epoch %d/%d step %d: loss %.4f",
                self.stage.name,
                epoch,
                self.stage.epochs,
                result.global_step,
                step_loss,
            )
        every = training.checkpoint_every_n_steps
        if every and result.global_step % every == 0:
            self.checkpoint(epoch)
        if self.max_steps is not None and result.global_step >= self.max_steps:
            logger.info("stopping at --max-steps %d", self.max_steps)
            result.stopped_early = True
            self.checkpoint(epoch)
            return False
        return True


def _checkpoint(
    config: Config,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    stage: StageConfig,
    epoch: int,
    result: TrainResult,
) -> None:
    path = result.run_dir / f"{stage.name}-step{result.global_step:08d}.pt"
    if result.checkpoints and result.checkpoints[-1] == path:
        return
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "model_name": config.model.name,
        "model_kwargs": getattr(model, "init_kwargs", None),
        "stage": stage.name,
        "epoch": epoch,
        "global_step": result.global_step,
        "image_size": config.data.image_size,
    }
    written = save_checkpoint(state, path)
    result.checkpoints.append(path)
    recent = [loss for loss in result.losses[-METRIC_STEPS:] if loss == loss]
    if recent:
        record_metric(result.run_dir, path, float(np.mean(recent)))
    logger.info("checkpoint %s (%.1f MB)", path, written / 1e6)


def _to_device(batch: dict, device: torch.device) -> dict:
    return {
        key: value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value
        for key, value in batch.items()
    }


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
