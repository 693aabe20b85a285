"""Execute a plan: re-check each item right before acting, and report what actually happened.

For every item, in plan order: it must still be inside its root (folders above it resolved, the
entry itself never followed), still exist, still be what the scan saw (same kind, inode, size
and mtime: a checkpoint a run is rewriting, a snapshot a download is filling, is left alone),
and its lock, if it has one, must be free; we then hold that lock while acting. A file that
vanished, changed or cannot be removed becomes a skipped or failed outcome, never an exception.
Bytes freed are counted from the files actually unlinked, not taken from the plan.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from panovlm.hygiene import locks
from panovlm.hygiene.plan import DELETE, MOVE, CleanupItem, CleanupPlan, Stamp, format_bytes
from panovlm.hygiene.roots import outside_reason
from panovlm.hygiene.tree import fsync_dir, remove_tree

logger = logging.getLogger(__name__)

DELETED, MOVED, PARTIAL, SKIPPED, FAILED = "deleted", "moved", "partial", "skipped", "failed"


@dataclass(frozen=True)
class ItemOutcome:
    """What happened to one item: `bytes` freed (deleted) or moved, and why when not done."""

    item: CleanupItem
    status: str
    bytes: int = 0
    message: str = ""


@dataclass(frozen=True)
class CleanupResult:
    outcomes: tuple[ItemOutcome, ...]

    @property
    def freed_bytes(self) -> int:
        return sum(o.bytes for o in self.outcomes if o.item.action == DELETE)

    @property
    def moved_bytes(self) -> int:
        return sum(o.bytes for o in self.outcomes if o.status == MOVED)

    @property
    def done(self) -> tuple[ItemOutcome, ...]:
        return tuple(o for o in self.outcomes if o.status in (DELETED, MOVED))

    @property
    def skipped(self) -> tuple[ItemOutcome, ...]:
        return tuple(o for o in self.outcomes if o.status == SKIPPED)

    @property
    def failed(self) -> tuple[ItemOutcome, ...]:
        return tuple(o for o in self.outcomes if o.status in (FAILED, PARTIAL))

    @property
    def freed_str(self) -> str:
        return format_bytes(self.freed_bytes)


def execute(
    plan: CleanupPlan | Iterable[CleanupItem],
    on_outcome: Callable[[ItemOutcome], None] | None = None,
) -> CleanupResult:
    """Act on every item of `plan` in order; `on_outcome` sees each outcome as it happens."""
    items = plan.items if isinstance(plan, CleanupPlan) else tuple(plan)
    outcomes = []
    for item in items:
        outcome = execute_item(item)
        if outcome.status != DELETED and outcome.status != MOVED:
            logger.info("%s %s: %s", outcome.status, item.path, outcome.message)
        if on_outcome is not None:
            on_outcome(outcome)
        outcomes.append(outcome)
    return CleanupResult(tuple(outcomes))


def execute_item(item: CleanupItem) -> ItemOutcome:
    problem = recheck(item)
    if problem:
        return ItemOutcome(item, SKIPPED, 0, problem)
    with locks.holding(item.lock) if item.lock else contextlib.nullcontext(True) as free:
        if not free:
            return ItemOutcome(item, SKIPPED, 0, f"in use: {item.lock} is locked")
        try:
            if item.action == MOVE:
                return _move(item)
            return _delete(item)
        except FileNotFoundError:
            return ItemOutcome(item, SKIPPED, 0, "vanished while being removed")
        except OSError as exc:
            return ItemOutcome(item, FAILED, 0, f"{exc.strerror or exc}")


def recheck(item: CleanupItem) -> str | None:
    """Why `item` must not be acted on now, or None."""
    outside = outside_reason(item.path, item.root)
    if outside:
        return outside
    try:
        st = os.lstat(item.path)
    except FileNotFoundError:
        return "vanished since the plan"
    except OSError as exc:
        return f"cannot be checked: {exc.strerror}"
    now = Stamp.of(st)
    if now.kind != item.stamp.kind:
        return f"is now a {now.kind}, was a {item.stamp.kind}"
    if now != item.stamp:
        return "changed since the plan"
    if item.action == MOVE:
        if item.destination is None or item.destination_root is None:
            return "a move without a destination"
        return _destination_problem(item.destination, item.destination_root)
    return None


def _delete(item: CleanupItem) -> ItemOutcome:
    if item.stamp.kind == "dir":
        freed, problems = remove_tree(item.path)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            return ItemOutcome(item, PARTIAL, freed, problems[0] + more)
        return ItemOutcome(item, DELETED, freed)
    os.unlink(item.path)
    return ItemOutcome(item, DELETED, item.stamp.size)


def _destination_problem(destination: Path, root: Path) -> str | None:
    if not destination.is_relative_to(root):
        return f"destination {destination} is outside {root}"
    existing = destination.parent
    while not existing.exists() and existing != root and existing.parent != existing:
        existing = existing.parent
    real = Path(os.path.realpath(existing))
    if not real.is_relative_to(root):
        return f"destination {destination} leads outside {root} (through {existing})"
    if os.path.lexists(destination):
        return f"{destination} already exists; not overwritten"
    return None


def _move(item: CleanupItem) -> ItemOutcome:
    """Move without ever overwriting: a hard link then unlink on one filesystem, a verified,
    fsynced copy then unlink across filesystems."""
    destination, root = item.destination, item.destination_root
    assert destination is not None and root is not None
    destination.parent.mkdir(parents=True, exist_ok=True)
    problem = outside_reason(destination, root)
    if problem:
        return ItemOutcome(item, SKIPPED, 0, problem)
    try:
        try:
            os.link(item.path, destination, follow_symlinks=False)
        except FileExistsError:
            raise
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK):
                raise
            _copy_then_link(item.path, destination, item.stamp.size)
    except FileExistsError:
        return ItemOutcome(item, SKIPPED, 0, f"{destination} already exists; not overwritten")
    try:
        os.unlink(item.path)
    except OSError:
        destination.unlink(missing_ok=True)
        raise
    fsync_dir(destination.parent)
    fsync_dir(item.path.parent)
    return ItemOutcome(item, MOVED, item.stamp.size)


def _copy_then_link(source: Path, destination: Path, size: int) -> None:
    tmp = destination.with_name(f".{destination.name}.tmp-{os.getpid()}")
    try:
        with open(source, "rb") as src, open(tmp, "xb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
            if os.fstat(dst.fileno()).st_size != size:
                raise OSError(errno.EIO, f"copy of {source} is not {size} bytes")
        shutil.copystat(source, tmp)
        try:
            os.link(tmp, destination)  # fails rather than overwrite
        except FileExistsError:
            raise
        except OSError:  # a filesystem without hard links
            if os.path.lexists(destination):
                raise FileExistsError(errno.EEXIST, "exists", str(destination)) from None
            os.rename(tmp, destination)
    finally:
        tmp.unlink(missing_ok=True)
