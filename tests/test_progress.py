"""The scan's progress bar: a total counted in the background, shown at a terminal."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

from sanitize.progress import ScanProgress
from sanitize.walk import image_relpaths, walk_images
from tests.test_incremental import make_tree

REPO = Path(__file__).resolve().parents[1]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_total_is_counted_only_once_decoding_starts() -> None:
    calls: list[int] = []
    screen = Terminal()
    progress = ScanProgress(True, lambda stop: calls.append(1) or 42, file=screen)
    progress.update(2)
    assert progress.bar.total is None and calls == []
    progress.decoding_started()
    progress.decoding_started()
    progress._thread.join()
    assert progress.bar.total == 42 and calls == [1]
    progress.close()
    assert "2/42" in screen.getvalue()


def test_closing_stops_a_count_still_walking() -> None:
    started = threading.Event()

    def endless(stop: threading.Event) -> int | None:
        started.set()
        stop.wait()
        return None

    progress = ScanProgress(True, endless, file=Terminal())
    progress.decoding_started()
    assert started.wait(5)
    progress.close()  # returns: the count saw the stop
    assert not progress._thread.is_alive() and progress.bar.total is None


def test_no_terminal_no_bar_and_no_count() -> None:
    progress = ScanProgress(True, lambda stop: 1, file=io.StringIO())  # a pipe, a log file
    progress.decoding_started()
    assert progress._thread is None
    progress.close()


def test_the_counting_walk_lists_what_the_scan_walks(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "data")
    (tree / "notes.txt").write_text("not an image")
    (tree / "loop").symlink_to(tree)
    for include in ([], ["*/scene_00001/*"]):
        walked = [e.relpath for e in walk_images(str(tree), include)]
        assert list(image_relpaths(str(tree), include)) == walked
    assert len(walked) < 60


def test_a_scan_at_a_terminal_shows_a_bar_that_reaches_its_total(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "data")
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 160, 0, 0))  # rows, cols
    env = {**os.environ, "PYTHONPATH": str(REPO), "SLOW_CHECK_SECONDS": "0.01"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sanitize", "scan", str(tree), "--out", str(tmp_path / "out"),
         "--jobs", "2", "--checker", "tests.checkers:slow"],
        stdout=subprocess.DEVNULL, stderr=secondary, env=env,
    )  # fmt: skip
    os.close(secondary)
    shown = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the terminal closed: the scan is done
            break
        if not chunk:
            break
        shown += chunk
    os.close(primary)
    assert proc.wait(timeout=60) == 0
    final = shown.decode(errors="replace").replace("\r", "\n").strip().splitlines()
    bar = [line for line in final if "img" in line][-1]
    assert "100%" in bar and "60/60" in bar


def test_a_count_that_fails_leaves_the_bar_without_a_total() -> None:
    def vanished(stop: threading.Event) -> int:
        raise FileNotFoundError("the tree moved")

    progress = ScanProgress(True, vanished, file=Terminal())
    progress.decoding_started()
    progress._thread.join()
    assert progress.bar.total is None
    progress.close()
