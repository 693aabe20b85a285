"""`pycache`: the `__pycache__` folders of a project, rebuilt by Python on the next import.

Virtual environments (a folder with `pyvenv.cfg`), hidden folders (`.git`, `.venv`, `.tox`) and
`node_modules` are not entered: their bytecode belongs to installed packages, not the project.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from panovlm.hygiene.plan import CategoryScan, CleanupItem, Stamp
from panovlm.hygiene.tree import tree_bytes

SKIPPED_FOLDERS = frozenset({"node_modules", "site-packages"})


def scan_pycache(root: Path) -> CategoryScan:
    """Every `__pycache__` folder under the resolved `root`, symlinks not followed."""
    items = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                found = sorted(entries, key=lambda e: e.name)
        except OSError:
            continue
        if folder != root and any(e.name == "pyvenv.cfg" for e in found):
            continue
        for entry in found:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if not stat.S_ISDIR(st.st_mode):
                continue
            path = Path(entry.path)
            if entry.name == "__pycache__":
                items.append(
                    CleanupItem(
                        category="pycache",
                        path=path,
                        bytes=tree_bytes(path),
                        reason="Python bytecode cache; rebuilt on import",
                        root=root,
                        stamp=Stamp.of(st),
                    )
                )
            elif not entry.name.startswith(".") and entry.name not in SKIPPED_FOLDERS:
                stack.append(path)
    items.sort(key=lambda item: item.path)
    return CategoryScan("pycache", root, tuple(items))
