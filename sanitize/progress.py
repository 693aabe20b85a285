"""The scan's progress bar, whose total a background count of the tree fills in."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm

log = logging.getLogger(__name__)

# A count of the images to scan; it returns None when told to stop before it is done.
Count = Callable[[threading.Event], "int | None"]


class ScanProgress:
    """A tqdm bar of images written, given a total (and so a percentage and an ETA) once known.

    The scan streams its walk, so the total is not known when the bar starts. A second walk
    that only lists names (about 1 s per million files, no stat) runs in a thread once there
    is decoding to do: a re-scan with nothing to decode never pays for it.
    """

    def __init__(
        self, enabled: bool, count: Count | None = None, file: TextIO | None = None
    ) -> None:
        # disable=None: shown only at a terminal, so logs and pipes get the summary alone.
        self.bar = tqdm(unit="img", disable=not enabled or None, smoothing=0.1, file=file)
        self._count = count if not self.bar.disable else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def set_total(self, total: int) -> None:
        self.bar.total = total
        self.bar.refresh()

    def decoding_started(self) -> None:
        """Start counting the tree, once, in a daemon thread."""
        if self._count is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run_count, name="scan-count", daemon=True)
        self._thread.start()

    def update(self, n: int = 1) -> None:
        self.bar.update(n)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.bar.close()

    def _run_count(self) -> None:
        try:
            total = self._count(self._stop)
        except Exception as exc:  # best effort: the scan reports what matters, not the count
            log.debug("no total for the progress bar: %r", exc)
            return
        if total is not None and not self._stop.is_set():
            self.set_total(total)
