"""Transfer progress on stderr (tqdm), silent when stderr is not a terminal or with --quiet."""

from __future__ import annotations

import threading

from hubmirror.output import progress_enabled


class TransferProgress:
    """One byte-counting bar per pull; `advance` is safe to call from download threads."""

    def __init__(self, label: str, quiet: bool):
        self.label = label
        self.enabled = progress_enabled(quiet)
        self._bar = None
        self._lock = threading.Lock()

    def start(self, total: int) -> None:
        if self.enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=self.label, leave=False)

    def advance(self, n: int) -> None:
        if self._bar is not None:
            with self._lock:
                self._bar.update(n)

    def __enter__(self) -> "TransferProgress":
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.close()
