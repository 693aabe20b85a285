"""Locate the public PNG conformance files in ../shared/testdata (never copied into the repo)."""

from __future__ import annotations

import os
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
TESTDATA = Path(os.environ.get("PANOVLM_TESTDATA", _ROOT.parent / "shared" / "testdata"))


def pngsuite_files() -> list[Path]:
    return sorted((TESTDATA / "pngsuite").glob("*.png"))


def bugfix_files() -> list[Path]:
    return sorted((TESTDATA / "image-png-bugfixes").glob("*.png"))
