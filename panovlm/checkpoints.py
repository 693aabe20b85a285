"""Checkpoint writes: one function, atomic, so a crash or a full disk never leaves half a file.

`save_checkpoint` writes a temporary file in the destination folder, fsyncs it, renames it
over the destination and fsyncs the folder. Every save of the training loop goes through it,
and `_before_save` is where checks that must run before a write hook in: inside
`guarded_by(DiskGuard(...))` it checks free space (applying checkpoint retention when short)
and raises `OutOfDiskSpace` before a byte is written.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import torch

from panovlm.hygiene.guard import DiskGuard
from panovlm.hygiene.tree import fsync_dir

_GUARD: ContextVar[DiskGuard | None] = ContextVar("panovlm_disk_guard", default=None)


def save_checkpoint(obj: Any, path: str | os.PathLike[str]) -> int:
    """Write `obj` with `torch.save` to `path` atomically; the bytes written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _before_save(path, expected_bytes(obj))
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
            written = os.fstat(handle.fileno()).st_size
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return written


def expected_bytes(obj: Any) -> int:
    """Tensor bytes in `obj` (nested dicts, lists, tuples): about a checkpoint's size."""
    if isinstance(obj, torch.Tensor):
        return obj.nelement() * obj.element_size()
    if isinstance(obj, dict):
        return sum(expected_bytes(value) for value in obj.values())
    if isinstance(obj, list | tuple):
        return sum(expected_bytes(value) for value in obj)
    return 0


@contextlib.contextmanager
def guarded_by(guard: DiskGuard | None) -> Iterator[None]:
    """Every `save_checkpoint` inside checks free space with `guard` first."""
    token = _GUARD.set(guard)
    try:
        yield
    finally:
        _GUARD.reset(token)


def _before_save(path: Path, expected: int) -> None:
    """Runs before every checkpoint write, with its destination and expected size."""
    guard = _GUARD.get()
    if guard is not None:
        guard.check(path.parent, expected)
