"""Re-scans cost what changed, interrupted scans resume, crashing decoders are isolated."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from sanitize import damage
from sanitize.cli import main
from sanitize.state import StateStore, default_state_dir
from tests.checkers import CRASH_MARK

REPO = Path(__file__).resolve().parents[1]


def small_png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (24, 48, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def make_tree(root: Path, count: int = 60) -> Path:
    """`count` images over a few scenes; every tenth is damaged."""
    for i in range(count):
        rel = f"Structured3D/scene_{i % 7:05d}/2D_rendering/{i}/panorama/full/rgb_rawlight.png"
        data = small_png(i)
        if i % 10 == 3:
            data = damage.truncate(data, len(data) // 2)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "data")


def scan(tree: Path, out: Path, *extra: str) -> dict:
    args = ["scan", str(tree), "--out", str(out), "--jobs", "2", "--no-progress", *extra]
    assert main(args) == 0
    return json.loads((out / "summary.json").read_text())


def outputs(out: Path) -> tuple:
    """The manifests' rows (not their metadata, which records the time)."""
    clean = pq.read_table(out / "clean.parquet").replace_schema_metadata(None)
    return clean.to_pylist(), (out / "corruption_report.csv").read_text()


def replace_file(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # coarse clocks


def test_rescan_with_nothing_changed_decodes_nothing(tree: Path, tmp_path: Path) -> None:
    first = scan(tree, tmp_path / "a")
    second = scan(tree, tmp_path / "b")
    assert (first["checked"], first["reused"]) == (60, 0)
    assert (second["checked"], second["reused"]) == (0, 60)
    assert outputs(tmp_path / "a") == outputs(tmp_path / "b")


def test_rescan_decodes_only_new_and_changed_files_and_drops_removed(
    tree: Path, tmp_path: Path
) -> None:
    scan(tree, tmp_path / "a")
    files = sorted(tree.rglob("*.png"))
    replace_file(files[0], b"")  # clean -> empty
    replace_file(files[3], small_png(1000))  # repaired
    files[5].unlink()
    added = tree / "Structured3D/scene_00001/2D_rendering/999/panorama/full/rgb_coldlight.png"
    added.parent.mkdir(parents=True)
    added.write_bytes(small_png(999))

    summary = scan(tree, tmp_path / "b")
    assert (summary["checked"], summary["reused"]) == (3, 57)  # 2 changed + 1 new; 1 gone
    fresh = scan(tree, tmp_path / "c", "--full", "--state", str(tmp_path / "other-state"))
    assert fresh["checked"] == 60
    assert outputs(tmp_path / "b") == outputs(tmp_path / "c")
    report = (tmp_path / "b" / "corruption_report.csv").read_text()
    assert files[0].name in report and str(files[5]) not in report
    clean = pq.read_table(tmp_path / "b" / "clean.parquet").column("url").to_pylist()
    assert str(added) in clean and str(files[5]) not in clean


def test_full_decodes_everything_again_and_keeps_other_verdicts(tree: Path, tmp_path: Path) -> None:
    scan(tree, tmp_path / "a")
    assert scan(tree, tmp_path / "a", "--full")["checked"] == 60
    assert scan(tree, tmp_path / "b", "--full", "--include", "*/scene_00002/*")["checked"] < 60
    assert scan(tree, tmp_path / "a")["checked"] == 0


def test_verdicts_are_shared_across_out_folders_and_include_scopes(
    tree: Path, tmp_path: Path
) -> None:
    scan(tree, tmp_path / "all")
    val = scan(tree, tmp_path / "scene1", "--include", "*/scene_00001/*")
    assert (val["checked"], val["scanned"]) == (0, val["reused"])
    # A scoped scan keeps the other files' verdicts for the next full scan.
    assert scan(tree, tmp_path / "all")["checked"] == 0


def test_state_is_kept_outside_data(tree: Path, tmp_path: Path) -> None:
    before = sorted(p.relative_to(tree) for p in tree.rglob("*"))
    summary = scan(tree, tmp_path / "out")
    assert sorted(p.relative_to(tree) for p in tree.rglob("*")) == before
    state = Path(summary["state_dir"])
    assert state == default_state_dir(str(tree)) and (state / "verdicts.parquet").exists()
    assert not (state / "runs").exists()  # the finished run was compacted


def test_a_second_scan_of_the_same_state_is_refused(tree: Path, tmp_path: Path, capsys) -> None:
    store = StateStore(default_state_dir(str(tree)), str(tree), "x")
    with store.locked():
        code = main(["scan", str(tree), "--out", str(tmp_path), "--no-progress"])
    assert code == 2 and "another scan is using the state folder" in capsys.readouterr().err


def test_other_pillow_or_tool_settings_check_everything_again(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scan(tree, tmp_path / "a")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000_000)
    assert scan(tree, tmp_path / "b")["checked"] == 60


# -- processes: crashes, kill -9, Ctrl-C -------------------------------------------------------


def cli(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "sanitize", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_a_decoder_crash_is_isolated_to_its_file(tree: Path, tmp_path: Path) -> None:
    victims = sorted(tree.rglob("*.png"))[10:12]
    for victim in victims:
        victim.write_bytes(victim.read_bytes() + CRASH_MARK)  # after IEND: otherwise clean
    proc = cli(
        "scan", str(tree), "--out", str(tmp_path), "--jobs", "2", "--json",
        "--checker", "tests.checkers:crashing",
    )  # fmt: skip
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert json.loads(out)["by_error_type"]["decoder_crash"] == 2
    with open(tmp_path / "corruption_report.csv", newline="") as f:
        crashed = {r["url"] for r in csv.DictReader(f) if r["error_type"] == "decoder_crash"}
    assert crashed == {str(v) for v in victims}
    clean = pq.read_table(tmp_path / "clean.parquet").num_rows
    assert clean == 60 - 6 - 2  # every other file still checked


DRIVER = """
import json, sys
from sanitize.run import ScanConfig, run_scan
result = run_scan(ScanConfig(data_root=sys.argv[1], out_dir=sys.argv[2], jobs=2, batch_size=4,
                             progress=False, checker="tests.checkers:slow", shard_rows=8))
print(json.dumps(result.summary))
"""


def wait_for_shards(state: Path, count: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while len(list(state.glob("runs/*/*.json"))) < count:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no shard committed"
        time.sleep(0.05)


def test_kill_9_then_resume_gives_the_uninterrupted_outputs(tree: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "SLOW_CHECK_SECONDS": "0.05"}
    command = [sys.executable, "-c", DRIVER, str(tree), str(tmp_path / "out")]
    proc = subprocess.Popen(command, env=env, start_new_session=True)
    state = default_state_dir(str(tree))
    wait_for_shards(state, 2, proc)
    os.killpg(proc.pid, signal.SIGKILL)  # the scan and its workers, mid-run
    proc.wait(timeout=30)
    assert not (tmp_path / "out" / "clean.parquet").exists()

    resumed = json.loads(subprocess.run(command, env=env, capture_output=True, check=True).stdout)
    assert resumed["reused"] >= 16 and resumed["checked"] + resumed["reused"] == 60

    env["SANITIZE_STATE_HOME"] = str(tmp_path / "fresh-state")
    command[-1] = str(tmp_path / "fresh")
    fresh = json.loads(subprocess.run(command, env=env, capture_output=True, check=True).stdout)
    assert fresh["checked"] == 60
    assert outputs(tmp_path / "out") == outputs(tmp_path / "fresh")


@pytest.mark.parametrize("whole_group", [False, True], ids=["parent", "terminal"])
def test_ctrl_c_stops_cleanly_and_says_how_to_resume(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, whole_group: bool
) -> None:
    out = tmp_path / "out"
    scan(tree, out)  # earlier manifests, which must survive
    before = outputs(out)
    replace_file(next(tree.rglob("*.png")), small_png(5000))
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("SLOW_CHECK_SECONDS", "0.1")
    monkeypatch.setenv("SLOW_CHECK_LOG", str(marks))
    proc = cli(
        "scan", str(tree), "--out", str(out), "--full", "--jobs", "2",
        "--checker", "tests.checkers:slow", "--no-progress",
        start_new_session=whole_group,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while len(list(marks.iterdir())) < 40:  # two or more batches of 16 done
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.3)
    if whole_group:  # a terminal's Ctrl-C reaches the workers too
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "run the same command to resume" in lines[0]  # no leak warnings
    assert outputs(out) == before

    monkeypatch.setenv("SLOW_CHECK_SECONDS", "0")
    resumed = scan(tree, out, "--full", "--checker", "tests.checkers:slow")
    assert resumed["reused"] >= 32 and resumed["checked"] + resumed["reused"] == 60
    assert scan(tree, out, "--full", "--checker", "tests.checkers:slow")["checked"] == 60


# -- Dask ------------------------------------------------------------------------------------


def test_dask_local_cluster_writes_what_the_local_backend_writes(
    tree: Path, tmp_path: Path
) -> None:
    pytest.importorskip("dask.distributed")
    local = scan(tree, tmp_path / "local", "--state", str(tmp_path / "s1"))
    dask = scan(tree, tmp_path / "dask", "--state", str(tmp_path / "s2"), "--backend", "dask")
    assert local["checked"] == dask["checked"] == 60
    assert outputs(tmp_path / "local") == outputs(tmp_path / "dask")


def test_dask_workers_that_cannot_see_data_are_a_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("dask.distributed")
    from sanitize.executors import BackendError, DaskPool

    with pytest.raises(BackendError, match=r"cannot see DATA .* same path"):
        DaskPool(1, None, str(tmp_path / "only-on-the-client"))


def test_files_training_failed_on_are_rechecked_first_and_reported(
    tree: Path, tmp_path: Path, capsys
) -> None:
    from sanitize.failures import append_failure, failures_path

    out = tmp_path / "out"
    scan(tree, out)
    # Bit rot after the scan: same size, same mtime, so only training notices.
    victim = sorted(tree.rglob("*.png"))[0]
    stat = victim.stat()
    victim.write_bytes(damage.flip_bit(victim.read_bytes(), 60, 2))
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    failures = failures_path(out / "clean.parquet")
    append_failure(failures, str(victim), "checksum", "CRC mismatch")
    assert scan(tree, tmp_path / "unaware")["damaged"] == 6  # size and mtime say unchanged

    summary = scan(tree, out)
    relpath = str(victim.relative_to(tree))
    assert summary["runtime_failures"] == {relpath: "checksum"}
    assert (summary["checked"], summary["reused"]) == (1, 59)
    assert relpath in (out / "corruption_report.csv").read_text()
    assert "training failed on 1 files since the last scan" in capsys.readouterr().out
    assert not failures.exists() and list(out.glob("runtime_failures.*.checked.jsonl"))
    assert "runtime_failures" not in scan(tree, out)


def test_joblib_parallel_still_works_after_a_scan_in_the_same_process(
    tree: Path, tmp_path: Path
) -> None:
    from joblib import Parallel, delayed

    scan(tree, tmp_path)
    assert Parallel(n_jobs=2)(delayed(abs)(-i) for i in range(4)) == [0, 1, 2, 3]
