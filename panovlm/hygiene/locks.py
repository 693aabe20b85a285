"""Lock files: is anyone holding one, and hold it ourselves while removing what it guards.

huggingface_hub takes `<cache>/.locks/<repo>/<blob>.lock` with the `filelock` package, which on
Unix is `fcntl.flock(LOCK_EX | LOCK_NB)`; a non-blocking `flock` of our own therefore tells
whether a download is under way. Locks are per open file, so this works within one process too.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: treat every lock as held
    fcntl = None  # type: ignore[assignment]


@contextlib.contextmanager
def holding(path: Path) -> Iterator[bool]:
    """Take the lock at `path` without waiting; yields True when we hold it (or there is no lock
    file), False when someone else does or it cannot be checked. Released on exit."""
    if fcntl is None:
        yield False
        return
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        yield True
        return
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def is_held(path: Path) -> bool:
    """True when another open file holds the lock at `path` (or it cannot be checked)."""
    with holding(path) as ours:
        return not ours
