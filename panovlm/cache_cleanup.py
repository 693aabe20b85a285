"""Interval cache cleanup: every N optimizer steps, `gc.collect()` and empty the device cache.

Long runs grow memory: Python garbage in reference cycles, and the caching allocator of the
accelerator holding freed blocks (fragmentation makes later large allocations fail). The old
training step cleaned up on `batch_idx % interval == 0`: micro-batches rather than optimizer
steps, so under gradient accumulation it fired at the wrong steps, fired at step 0, and only
ever on CUDA. `CacheCleanup.step(global_step)` fires on optimizer steps that are positive
multiples of the interval, once per step however often it is called for that step, on the
device in use (CUDA, MPS or XPU; on CPU there is no device cache and only `gc.collect()` runs).

A full `gc.collect()` walks every tracked object: about 0.1 s for the ~300k that torch and a
model bring, which is 1% of the step time of a small model at interval 1000. `frozen_heap()`
moves the objects that live for the whole run (modules, the model, the dataset) out of the
collector's sight with `gc.freeze()` when training starts, so each cleanup only walks what
training created since. It also keeps DataLoader workers, forked after it, from writing the
collector's bookkeeping into the parent's pages (the recipe of the `gc.freeze` docs).
"""

from __future__ import annotations

import gc
import logging
import numbers
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

logger = logging.getLogger(__name__)

_MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class CleanupReport:
    """What one cleanup did; memory in bytes (None where the device reports none)."""

    step: int
    device: str
    seconds: float
    allocated_before: int | None
    allocated_after: int | None
    reserved_before: int | None
    reserved_after: int | None
    rss_before: int | None
    rss_after: int | None

    def describe(self) -> str:
        parts = []
        if self.allocated_before is not None:
            parts.append(f"allocated {_mb(self.allocated_before)} -> {_mb(self.allocated_after)}")
        if self.reserved_before is not None:
            parts.append(f"reserved {_mb(self.reserved_before)} -> {_mb(self.reserved_after)}")
        if self.rss_before is not None:
            parts.append(f"rss {_mb(self.rss_before)} -> {_mb(self.rss_after)}")
        return f"{self.device}: {', '.join(parts)}; {self.seconds * 1000:.1f} ms"


class CacheCleanup:
    """Run `gc.collect()` and empty the device cache every `interval` optimizer steps (0: never).

    Call `step(global_step)` after each optimizer step (a repeated call for the same step is
    a no-op, so it can also sit on a per-micro-batch hook). `device` is the device in use;
    None picks the first available accelerator (CUDA, MPS, XPU), else CPU.
    """

    def __init__(self, interval: int, device: torch.device | str | None = None) -> None:
        if isinstance(interval, bool) or not isinstance(interval, numbers.Integral):
            raise TypeError(
                f"cache cleanup interval must be an integer (0 disables), got {interval!r}"
            )
        if interval < 0:
            raise ValueError(f"cache cleanup interval must be >= 0 (0 disables), got {interval}")
        self.interval = int(interval)
        self.device = torch.device(device) if device is not None else default_device()
        self.fired_steps: list[int] = []
        self.seconds = 0.0
        self._last_step: int | None = None

    @property
    def enabled(self) -> bool:
        return self.interval > 0

    def due(self, global_step: int) -> bool:
        """True when `global_step` is a positive multiple of the interval not yet cleaned."""
        return (
            self.interval > 0
            and global_step > 0
            and global_step % self.interval == 0
            and global_step != self._last_step
        )

    def step(
        self, global_step: int, device: torch.device | str | None = None
    ) -> CleanupReport | None:
        """Clean up if `global_step` is due; the report of what ran, or None."""
        if not self.due(global_step):
            return None
        self._last_step = global_step
        report = cleanup(global_step, torch.device(device) if device is not None else self.device)
        self.fired_steps.append(global_step)
        self.seconds += report.seconds
        if report.allocated_before is None:
            logger.info("cache cleanup at step %d: gc.collect (%s)", global_step, report.describe())
        else:
            logger.info(
                "cache cleanup at step %d: empty_cache + gc.collect (%s)",
                global_step,
                report.describe(),
            )
        return report


@contextmanager
def frozen_heap() -> Iterator[int]:
    """Collect, then `gc.freeze()` every object alive now for the block; yields how many."""
    gc.collect()
    gc.freeze()
    try:
        yield gc.get_freeze_count()
    finally:
        gc.unfreeze()


def cleanup(global_step: int, device: torch.device) -> CleanupReport:
    """`gc.collect()`, then empty `device`'s cache; memory before and after."""
    backend = _backend(device)
    allocated_before, reserved_before = _device_memory(backend, device)
    rss_before = process_rss()
    start = time.perf_counter()
    gc.collect()
    if backend is not None:
        backend.empty_cache()
    seconds = time.perf_counter() - start
    allocated_after, reserved_after = _device_memory(backend, device)
    return CleanupReport(
        step=global_step,
        device=str(device),
        seconds=seconds,
        allocated_before=allocated_before,
        allocated_after=allocated_after,
        reserved_before=reserved_before,
        reserved_after=reserved_after,
        rss_before=rss_before,
        rss_after=process_rss(),
    )


def default_device() -> torch.device:
    """The first available accelerator (CUDA, MPS, XPU), else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        return torch.device("xpu", xpu.current_device())
    return torch.device("cpu")


def process_rss() -> int | None:
    """Resident set size of this process in bytes (None where it cannot be read)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil
    except ImportError:
        return None
    return psutil.Process().memory_info().rss


def _backend(device: torch.device):
    """The torch module whose `empty_cache` serves `device`, or None (CPU and others)."""
    if device.type == "cuda":
        return torch.cuda
    if device.type == "mps":
        return torch.mps
    if device.type == "xpu":
        return torch.xpu
    return None


def _device_memory(backend, device: torch.device) -> tuple[int | None, int | None]:
    if backend is None:
        return None, None
    if device.type == "mps":
        return torch.mps.current_allocated_memory(), torch.mps.driver_allocated_memory()
    return backend.memory_allocated(device), backend.memory_reserved(device)


def _mb(value: int | None) -> str:
    return "?" if value is None else f"{value / _MB:.1f} MB"
