"""Stand-in per-file checks for scan tests: one that crashes its process, one that is slow."""

from __future__ import annotations

import os
import signal
import time

from sanitize.check import Verdict, verify_file

CRASH_MARK = b"CRASH-THE-DECODER"


def crashing(path: str) -> Verdict:
    """A decoder with a fatal bug: it segfaults on files carrying CRASH_MARK."""
    try:
        with open(path, "rb") as f:
            marked = CRASH_MARK in f.read()
    except OSError:
        marked = False
    if marked:
        os.kill(os.getpid(), signal.SIGSEGV)
    return verify_file(path)


def slow(path: str) -> Verdict:
    """The real check, slowed down so a test can interrupt a scan half-way.

    With SLOW_CHECK_LOG set, each checked file leaves a mark there, to watch progress by.
    """
    time.sleep(float(os.environ.get("SLOW_CHECK_SECONDS", "0.02")))
    log = os.environ.get("SLOW_CHECK_LOG")
    if log:
        with open(os.path.join(log, f"{os.getpid()}-{time.monotonic_ns()}"), "w"):
            pass
    return verify_file(path)
