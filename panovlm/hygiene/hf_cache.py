"""`hf`: the Hugging Face hub cache, scanned by huggingface_hub, deleted by us.

What goes:

- revisions no ref points to (`hf cache prune` calls them detached), and with `unused_days`
  whole repos nobody used for that long. huggingface_hub's `scan_cache_dir()` and
  `delete_revisions()` decide which repos, snapshots, refs and blobs that means, so the cache is
  never left with a ref to a missing snapshot or a link to a missing blob;
- incomplete downloads (`<repo>/blobs/*.incomplete`) and stale lock files (`.locks/**.lock`)
  untouched for `stale_minutes` whose lock no process holds (a non-blocking `flock`, the lock
  huggingface_hub's downloads take through `filelock`).

Why not `DeleteCacheStrategy.execute()`: its `blobs` are the targets of snapshot links, taken
one hop and never checked against the cache folder, so a snapshot link pointing outside the
cache makes `execute()` delete that outside file. We take its plan, keep only paths whose
folders resolve inside the cache, and delete them with `execute.execute`, which re-checks each
path first and never follows a symlink.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from panovlm.hygiene import locks
from panovlm.hygiene.plan import CategoryScan, CleanupItem, Stamp
from panovlm.hygiene.roots import RootError, outside_reason
from panovlm.hygiene.tree import tree_bytes, walk_entries

DAY = 86400.0


@dataclass(frozen=True)
class HfPolicy:
    detached_revisions: bool = True
    unused_days: float | None = None  # None: keep every repo that has a ref
    stale_minutes: float = 60.0  # locks and partial downloads untouched for this long


def scan_hf_cache(
    root: Path, policy: HfPolicy = HfPolicy(), now: float | None = None
) -> CategoryScan:
    """The plan for the resolved cache folder `root`."""
    try:
        from huggingface_hub import scan_cache_dir
    except ImportError:
        raise RootError(
            "the hf category needs huggingface_hub: pip install huggingface_hub"
        ) from None
    now = time.time() if now is None else now
    info = scan_cache_dir(root)
    warnings = [f"hf: a repo was not scanned: {w}" for w in info.warnings]
    items: list[CleanupItem] = []
    items += _revision_items(info, root, policy, now, warnings)
    items += _incomplete_items(root, policy, now, warnings)
    items += _lock_items(root, policy, now, warnings)
    return CategoryScan("hf", root, tuple(items), tuple(warnings))


def _revision_items(info, root: Path, policy: HfPolicy, now: float, warnings: list[str]):
    chosen: dict[str, str] = {}  # commit hash -> why
    repo_reasons: dict[Path, str] = {}
    owner: dict[Path, str] = {}  # snapshot or repo path -> "model/org/name"
    for repo in info.repos:
        name = f"{repo.repo_type}/{repo.repo_id}"
        owner[repo.repo_path] = name
        last_used = max(repo.last_accessed, repo.last_modified)
        unused = policy.unused_days is not None and now - last_used > policy.unused_days * DAY
        if unused:
            repo_reasons[repo.repo_path] = (
                f"{name}: not used for {(now - last_used) / DAY:.0f} days"
            )
        elif policy.detached_revisions and all(not r.refs for r in repo.revisions):
            repo_reasons[repo.repo_path] = f"{name}: no ref points to any of its revisions"
        for revision in repo.revisions:
            owner[revision.snapshot_path] = name
            if unused:
                chosen[revision.commit_hash] = repo_reasons[repo.repo_path]
            elif policy.detached_revisions and not revision.refs:
                chosen[revision.commit_hash] = (
                    f"{name}: no ref points to revision {revision.commit_hash[:12]}"
                )
    if not chosen:
        return []
    strategy = info.delete_revisions(*sorted(chosen))
    by_snapshot = {
        rev.snapshot_path: chosen.get(rev.commit_hash, "")
        for repo in info.repos
        for rev in repo.revisions
    }
    planned = []
    for path in sorted(strategy.repos):
        planned.append((path, repo_reasons.get(path, f"{owner.get(path, path.name)}: unused")))
    for path in sorted(strategy.snapshots):
        planned.append((path, by_snapshot.get(path) or f"{owner.get(path)}: unreferenced"))
    for path in sorted(strategy.refs):
        planned.append((path, f"{_repo_name(path, root, owner)}: ref of a deleted revision"))
    for path in sorted(strategy.blobs):
        why = f"{_repo_name(path, root, owner)}: blob used only by deleted revisions"
        planned.append((path, why))
    items = []
    for path, reason in planned:
        problem = outside_reason(path, root)
        if problem:
            warnings.append(f"hf: left alone, it leads outside the cache: {problem}")
            continue
        item = _item(path, root, reason, warnings)
        if item is not None:
            items.append(item)
    return items


def _incomplete_items(root: Path, policy: HfPolicy, now: float, warnings: list[str]):
    items = []
    # Globbed here rather than read from `info.incomplete_files`, which older releases lack.
    for path in sorted(root.glob("*/blobs/*.incomplete")):
        if outside_reason(path, root):
            warnings.append(f"hf: {path} is outside the cache; left alone")
            continue
        blob_name = path.name[: -len(".incomplete")]
        lock = root / ".locks" / path.parent.parent.name / f"{blob_name}.lock"
        item = _item(path, root, "incomplete download", warnings, lock=lock)
        if item is None:
            continue
        if now - item.stamp.mtime_ns / 1e9 < policy.stale_minutes * 60:
            continue  # may still be downloading
        if locks.is_held(lock):
            warnings.append(f"hf: {path} is being downloaded (its lock is held); left alone")
            continue
        items.append(item)
    return items


def _lock_items(root: Path, policy: HfPolicy, now: float, warnings: list[str]):
    folder = root / ".locks"
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            return []
    except OSError:
        return []
    items = []
    for path, st in sorted(walk_entries(folder)):
        if not stat.S_ISREG(st.st_mode) or path.suffix != ".lock":
            continue
        if now - st.st_mtime < policy.stale_minutes * 60 or locks.is_held(path):
            continue
        item = _item(path, root, "stale lock: no process holds it", warnings, lock=path)
        if item is not None:
            items.append(item)
    return items


def _item(path: Path, root: Path, reason: str, warnings: list[str], lock: Path | None = None):
    try:
        st = os.lstat(path)
    except OSError as exc:
        warnings.append(f"hf: {path}: {exc.strerror}")
        return None
    stamp = Stamp.of(st)
    size = tree_bytes(path) if stamp.kind == "dir" else stamp.size
    return CleanupItem("hf", path, size, reason, root, stamp, lock=lock)


def _repo_name(path: Path, root: Path, owner: dict[Path, str]) -> str:
    try:
        folder = root / path.relative_to(root).parts[0]
    except (ValueError, IndexError):
        return str(path.parent)
    return owner.get(folder, folder.name)
