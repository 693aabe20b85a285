"""CacheCleanup: fires on optimizer steps that are multiples of the interval, never at 0."""

from __future__ import annotations

import gc
import logging

import pytest
import torch

from panovlm import cache_cleanup
from panovlm.cache_cleanup import CacheCleanup, frozen_heap


@pytest.fixture
def collections(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts gc.collect calls made by the cleanup."""
    calls: list[int] = []
    monkeypatch.setattr(cache_cleanup.gc, "collect", lambda: calls.append(1) or 0)
    return calls


def _run(cleanup: CacheCleanup, micro_batches: int, accumulate: int) -> list[int]:
    """A loop that calls step() after every micro-batch, as a per-batch hook does."""
    global_step = 0
    for index in range(1, micro_batches + 1):
        if index % accumulate == 0:
            global_step += 1
        cleanup.step(global_step)
    return cleanup.fired_steps


def test_fires_at_multiples_of_the_interval_in_optimizer_steps(collections: list[int]) -> None:
    # 30 micro-batches, 3 per optimizer step: steps 1..10; the old `batch_idx % 4` fired at
    # micro-batches 0, 4, 8, ... (step 0 and mid-accumulation) instead.
    assert _run(CacheCleanup(4, device="cpu"), micro_batches=30, accumulate=3) == [4, 8]
    assert len(collections) == 2


def test_without_accumulation_every_interval_steps(collections: list[int]) -> None:
    assert _run(CacheCleanup(1, device="cpu"), micro_batches=5, accumulate=1) == [1, 2, 3, 4, 5]


def test_never_at_step_zero(collections: list[int]) -> None:
    cleanup = CacheCleanup(1, device="cpu")
    assert cleanup.step(0) is None
    assert collections == []


def test_interval_zero_disables(collections: list[int]) -> None:
    cleanup = CacheCleanup(0, device="cpu")
    assert not cleanup.enabled
    assert _run(cleanup, micro_batches=5000, accumulate=1) == []
    assert collections == []


@pytest.mark.parametrize("interval", [1000.0, "1000", True, None])
def test_a_non_integer_interval_is_a_clear_error(interval: object) -> None:
    with pytest.raises(TypeError, match="must be an integer"):
        CacheCleanup(interval, device="cpu")


def test_a_negative_interval_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        CacheCleanup(-1, device="cpu")


def test_on_cpu_only_gc_runs_and_the_log_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_cuda() -> None:
        raise AssertionError("empty_cache on a CPU run")

    monkeypatch.setattr(torch.cuda, "empty_cache", no_cuda)
    with caplog.at_level(logging.INFO, logger="panovlm.cache_cleanup"):
        report = CacheCleanup(2, device="cpu").step(2)
    assert report is not None and report.step == 2 and report.allocated_before is None
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith("cache cleanup at step 2: gc.collect (cpu: rss ")


def test_on_cuda_it_empties_the_cache_and_logs_memory_before_and_after(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    reserved = [512 * 2**20]
    emptied: list[int] = []

    def empty_cache() -> None:
        emptied.append(1)
        reserved[0] = 256 * 2**20

    monkeypatch.setattr(torch.cuda, "empty_cache", empty_cache)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 100 * 2**20)
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: reserved[0])
    cleanup = CacheCleanup(1000, device="cuda")
    with caplog.at_level(logging.INFO, logger="panovlm.cache_cleanup"):
        assert cleanup.step(999) is None
        report = cleanup.step(1000)
    assert emptied == [1]
    assert (report.reserved_before, report.reserved_after) == (512 * 2**20, 256 * 2**20)
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith("cache cleanup at step 1000: empty_cache + gc.collect (cuda: ")
    assert "allocated 100.0 MB -> 100.0 MB, reserved 512.0 MB -> 256.0 MB, rss " in message


def test_frozen_heap_hides_startup_objects_from_the_collector_until_the_end() -> None:
    assert gc.get_freeze_count() == 0
    with frozen_heap() as frozen:
        assert frozen > 1000  # torch alone brings many more
        young = [[] for _ in range(100)]
        assert gc.get_freeze_count() <= frozen  # objects made later stay collectable
        del young
    assert gc.get_freeze_count() == 0


def test_the_training_loop_cleans_at_multiples_under_accumulation(tmp_path, monkeypatch) -> None:
    """The real loop calls step() after optimizer steps, not micro-batches."""
    from panovlm.train import train
    from tests.test_train import tiny_config

    config = tiny_config(tmp_path, accumulate=2, epochs=2, interval=3)
    result = train(config)
    # 12 rows, batches of 2: 6 micro-batches = 3 optimizer steps per epoch, 6 in all.
    assert result.global_step == 6
    assert result.cleanups == [3, 6]
    assert gc.get_freeze_count() == 0  # the loop unfreezes what it froze
