"""The demo tree through the command line, and the README's two commands from a clean clone."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[1]


def sanitize(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sanitize", *args], capture_output=True, text=True, timeout=300
    )


def truth(tree: Path) -> dict[str, str]:
    with open(tree / "demo_truth.csv", newline="") as f:
        return {row["relpath"]: row["error_type"] for row in csv.DictReader(f)}


def report(out: Path) -> dict[str, str]:
    with open(out / "corruption_report.csv", newline="") as f:
        return {row["relpath"]: row["error_type"] for row in csv.DictReader(f)}


def test_demo_tree_end_to_end_through_the_cli(tmp_path: Path) -> None:
    tree, out = tmp_path / "demo", tmp_path / "manifests"
    made = sanitize("demo", str(tree), "--scenes", "1", "--seed", "5")
    assert made.returncode == 0, made.stderr
    assert "damaged on purpose" in made.stdout

    scanned = sanitize("scan", str(tree), "--out", str(out), "--jobs", "2", "--json")
    assert scanned.returncode == 0, scanned.stderr
    summary = json.loads(scanned.stdout)
    expected = truth(tree)
    assert report(out) == expected
    assert summary["damaged"] == len(expected)
    clean = pq.read_table(out / "clean.parquet")
    assert clean.num_rows == summary["scanned"] - len(expected) > 50
    assert set(clean.column("view").to_pylist()) >= {"panorama", "perspective", None}
    assert sanitize("scan", str(tree), "--out", str(out), "--fail-on-damage").returncode == 1


def test_demo_refuses_a_folder_with_files(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("user data")
    result = sanitize("demo", str(tmp_path))
    assert result.returncode == 2 and "not empty" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("make") is None or not (REPO / ".git").exists(), reason="no git/make"
)
def test_readme_two_commands_from_a_clean_clone(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PANOVLM_SLOW_TESTS")}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if ".venv" not in p)

    made = subprocess.run(["make", "sanitize"], cwd=clone, env=env, capture_output=True, text=True)
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
    assert (clone / ".venv" / "bin" / "sanitize").exists()
    assert report(clone / "manifests") == truth(clone / "data" / "demo")
    assert "Manifests in" in made.stdout

    tested = subprocess.run(["make", "test"], cwd=clone, env=env, capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout[-3000:]
    assert " passed" in tested.stdout
