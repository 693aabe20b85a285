"""Runtime load failures: what training hit after the scan, kept beside the manifest.

A file can rot between the scan and step 40,000. Training's loader appends one JSON line per
failure to `runtime_failures.jsonl` beside the manifest it reads, and the next `sanitize scan`
re-checks those files first. Many DataLoader workers (and several training processes) append
at once, so each line goes out in one `os.write` on an `O_APPEND` descriptor under an exclusive
`flock`: lines never interleave. A writer killed mid-line leaves a torn line; the next writer
starts on a fresh line and the reader skips what does not parse. Torch-free, like all of
`sanitize/`.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from datetime import datetime, timezone
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: O_APPEND alone keeps small lines whole
    fcntl = None

FAILURES_NAME = "runtime_failures.jsonl"

logger = logging.getLogger(__name__)


def failures_path(manifest_path: str | os.PathLike[str]) -> Path:
    """The runtime failures file that belongs to `manifest_path` (same folder)."""
    return Path(manifest_path).parent / FAILURES_NAME


def append_failure(path: str | os.PathLike[str], url: str, error_type: str, error: str) -> None:
    """Append one failure as a JSON line: url, error_type, error, time (ISO, UTC), pid, host."""
    record = {
        "url": url,
        "error_type": error_type,
        "error": error,
        "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "pid": os.getpid(),
        "host": socket.gethostname(),
    }
    line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        if _ends_torn(fd):
            line = b"\n" + line
        written = os.write(fd, line)
        while written < len(line):  # only on a full disk or a signal; still under the lock
            written += os.write(fd, line[written:])
    finally:
        os.close(fd)  # closing releases the lock


def read_failures(path: str | os.PathLike[str]) -> list[dict]:
    """Every whole failure record in `path`, oldest first; [] when the file does not exist."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    records = []
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            logger.debug("%s: skipping torn line %d", path, number)
            continue
        if isinstance(record, dict) and isinstance(record.get("url"), str):
            records.append(record)
    return records


def _ends_torn(fd: int) -> bool:
    """True when the file's last byte is not a newline (a writer died mid-line)."""
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"
