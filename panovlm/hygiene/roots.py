"""Roots: the folders a cleanup may touch, resolved once, and the test that keeps it inside them.

Every item of a plan belongs to a root. A root is resolved to its real path once, so a root that
is itself a symlink (`~/.cache/huggingface` -> `/data/hf`) is fine; below it no symlink is ever
followed. `/`, the home folder and its ancestors are refused: no cleanup is meant to start there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


class RootError(ValueError):
    """A root that cannot be cleaned: missing, not a folder, or too broad to be safe."""


def resolve_root(path: str | os.PathLike[str], what: str, *, must_exist: bool = True) -> Path:
    """`path` as a real, absolute folder; `RootError` naming `what` when it is not a safe root."""
    given = Path(path).expanduser()
    real = Path(os.path.realpath(given))
    if must_exist and not real.exists():
        raise RootError(f"{what} {given} does not exist")
    if real.exists() and not real.is_dir():
        raise RootError(f"{what} {given} is not a folder")
    refused = _refused(real)
    if refused:
        raise RootError(f"{what} {given} is {refused}; refusing to clean there")
    return real


def _refused(real: Path) -> str | None:
    if real == Path(real.anchor):
        return "the filesystem root"
    home = Path(os.path.realpath(Path.home()))
    if real == home:
        return "the home folder itself"
    if home.is_relative_to(real):
        return f"a folder that holds the home folder ({home})"
    return None


def outside_reason(path: Path, root: Path) -> str | None:
    """Why removing or replacing `path` itself could touch something outside `root`, or None.

    `path` is judged without following it (a symlink named `path` is only ever unlinked), but
    every folder above it is resolved, so a symlinked folder leading out of `root` is caught.
    """
    if not path.is_absolute():
        return f"{path} is not an absolute path"
    if path.name in ("", ".", ".."):
        return f"{path} does not name an entry"
    folder = Path(os.path.realpath(path.parent))
    if not folder.is_relative_to(root):
        return f"{path} is outside {root} (its folder resolves to {folder})"
    if folder / path.name == root:
        return f"{path} is the root {root} itself"
    return None


def default_hf_cache(environ: Mapping[str, str] | None = None) -> Path:
    """The hub cache the libraries use: `HF_HUB_CACHE`, `HF_HOME/hub`, or the default."""
    environ = os.environ if environ is None else environ
    if environ.get("HF_HUB_CACHE"):
        return Path(environ["HF_HUB_CACHE"]).expanduser()
    if environ.get("HF_HOME"):
        return Path(environ["HF_HOME"]).expanduser() / "hub"
    xdg = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def default_wandb_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where wandb writes run folders: `$WANDB_DIR/wandb`, else `./wandb`."""
    environ = os.environ if environ is None else environ
    base = Path(environ["WANDB_DIR"]).expanduser() if environ.get("WANDB_DIR") else Path.cwd()
    return base / "wandb"
