"""Where batches run: joblib's loky process pool or a Dask cluster, behind one futures API.

Both are used through `concurrent.futures` (loky's executor, Dask's `Client.get_executor`)
rather than `joblib.Parallel`, because Parallel aborts the whole call when one worker dies;
with per-batch futures a crashed batch is retried alone (see `isolate`) and the scan goes on.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import astuple

log = logging.getLogger(__name__)

# How long an aborted scan lets running batches finish before it kills their workers.
_ABORT_GRACE_SECONDS = 10.0

CheckFn = Callable[..., object]
_checkers: dict[str, CheckFn] = {}


class BackendError(Exception):
    """A backend that cannot run this scan (no Dask, workers that cannot see DATA...)."""


def check_files(data_root: str, relpaths: list[str], checker: str) -> list[tuple]:
    """Worker task: the verdicts of some files, as plain tuples (cheap to pickle)."""
    check = _checkers.get(checker) or _load_checker(checker)
    return [astuple(check(os.path.join(data_root, rel))) for rel in relpaths]


def _load_checker(spec: str) -> CheckFn:
    module, _, name = spec.partition(":")
    _checkers[spec] = getattr(importlib.import_module(module), name)
    return _checkers[spec]


def is_worker_death(exc: BaseException) -> bool:
    """A worker process died under the task (segfault, OOM kill), as each backend says it."""
    return isinstance(exc, BrokenProcessPool) or type(exc).__name__ in {
        "KilledWorker",
        "TerminatedWorkerError",
    }


class LocalPool:
    """joblib's process pool, reused across scans and restarted after a worker dies.

    It is the executor `joblib.Parallel` itself reuses, so Parallel still works after a scan
    in the same process. It is fetched once per scan: each fetch registers a temp-folder
    context, which would grow the parent batch by batch.
    """

    name = "joblib"

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs
        self._executor = None
        self._pending: set[Future] = set()

    def submit(self, fn: CheckFn, *args: object) -> Future:
        if self._executor is None:
            self._executor = self._new_executor()
        try:
            future = self._executor.submit(fn, *args)
        except (BrokenProcessPool, RuntimeError):  # a worker died: the pool is spent
            self._executor = self._new_executor()
            future = self._executor.submit(fn, *args)
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        return future

    def close(self, abort: bool = False) -> None:
        """After a scan the pool stays up for the next; on abort (Ctrl-C, an error) it stops.

        An abort drops queued batches and lets running ones end before the workers go:
        killing a loky worker mid-task leaves its semaphore counts off, and loky's resource
        tracker then prints leak warnings after the scan's one-line message. Only a batch
        still running after the grace period gets its worker killed.
        """
        if not abort or self._executor is None:
            return
        for future in list(self._pending):
            future.cancel()
        _, stuck = wait(list(self._pending), timeout=_ABORT_GRACE_SECONDS)
        self._executor.shutdown(wait=True, kill_workers=bool(stuck))
        self._executor = None
        self._pending.clear()

    def _new_executor(self):
        from joblib.executor import get_memmapping_executor

        return get_memmapping_executor(self.jobs, timeout=60)


class DaskPool:
    """A Dask cluster: the one at `scheduler`, or a local one with `jobs` worker processes."""

    name = "dask"

    def __init__(self, jobs: int, scheduler: str | None, data_root: str) -> None:
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise BackendError(
                "--backend dask needs dask[distributed]: pip install 'panovlm-sanitize[dask]'"
            ) from None
        self._cluster = None
        # Dask logs every scheduler and worker event at INFO; the scan reports what matters.
        logging.getLogger("distributed").setLevel(logging.WARNING)
        if scheduler:
            try:
                self._client = Client(scheduler, timeout="30s")
            except OSError as exc:
                raise BackendError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None
        else:
            self._cluster = LocalCluster(
                n_workers=jobs,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # any free port: never clash with a running dashboard
                silence_logs=logging.ERROR,
            )
            self._client = Client(self._cluster)
        self._check_workers_see(data_root)
        self._executor = self._client.get_executor()

    def _check_workers_see(self, data_root: str) -> None:
        seen = self._client.run(os.path.isdir, data_root)
        if not seen:
            raise BackendError("the Dask cluster has no workers")
        blind = sorted(worker for worker, ok in seen.items() if not ok)
        if blind:
            self.close()
            raise BackendError(
                f"Dask workers {', '.join(blind)} cannot see DATA {data_root}: "
                "the workers must see the dataset at the same path (a shared mount)"
            )

    def submit(self, fn: CheckFn, *args: object) -> Future:
        return self._executor.submit(fn, *args)

    def close(self, abort: bool = False) -> None:
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def isolate(data_root: str, relpaths: list[str], checker: str, crashed: tuple) -> list[tuple]:
    """Re-run a batch whose worker died, halving it until the file that kills it is alone.

    Each attempt runs in a one-worker pool, so a crash there can only be that batch's doing;
    a file that kills its worker on its own gets the `crashed` verdict.
    """
    verdicts: dict[str, tuple] = {}
    todo = [relpaths]
    pool = _one_worker_pool()
    try:
        while todo:
            part = todo.pop()
            try:
                found = pool.submit(check_files, data_root, part, checker).result()
                verdicts.update(zip(part, found, strict=True))
            except BrokenProcessPool:
                pool.shutdown(wait=False)
                pool = _one_worker_pool()
                if len(part) == 1:
                    log.warning("decoder crashed its worker on %s", part[0])
                    verdicts[part[0]] = crashed
                else:
                    todo += [part[len(part) // 2 :], part[: len(part) // 2]]
    finally:
        pool.shutdown(wait=False)
    return [verdicts[rel] for rel in relpaths]


def _one_worker_pool() -> ProcessPoolExecutor:
    # forkserver: new workers start fast and never inherit the parent's threads.
    return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("forkserver"))
