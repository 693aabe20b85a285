"""The local pool's abort: queued batches dropped, running ones finished, stuck ones killed."""

from __future__ import annotations

import os
import threading
import time

import pytest

from sanitize import executors
from sanitize.executors import LocalPool


def sleep_then_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_abort_lets_running_batches_finish_and_drops_queued_ones() -> None:
    pool = LocalPool(2)
    pool.submit(sleep_then_pid, 0.0).result()  # the workers are up
    running = [pool.submit(sleep_then_pid, 0.5) for _ in range(2)]
    queued = [pool.submit(sleep_then_pid, 0.5) for _ in range(8)]
    time.sleep(0.2)  # the first two are running
    pool.close(abort=True)
    assert all(f.done() and not f.cancelled() for f in running)
    # loky hands a few batches to its call queue ahead of time; those run, the rest are dropped
    assert all(f.done() for f in queued) and any(f.cancelled() for f in queued)
    assert all(not alive(f.result()) for f in running)  # the workers are gone


def test_abort_kills_a_batch_still_running_after_the_grace_period(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(executors, "_ABORT_GRACE_SECONDS", 0.5)
    pool = LocalPool(1)
    worker = pool.submit(sleep_then_pid, 0.0).result()
    stuck = pool.submit(sleep_then_pid, 600)
    time.sleep(0.2)
    closing = threading.Thread(target=pool.close, kwargs={"abort": True})
    closing.start()
    closing.join(timeout=30)
    assert not closing.is_alive()  # it did not wait the 600 s the batch wanted
    assert not stuck.done() or stuck.exception() is not None
    deadline = time.monotonic() + 10
    while alive(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(worker)
