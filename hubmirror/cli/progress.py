"""Transfer progress on stderr (tqdm), silent when stderr is not a terminal or with --quiet; and `--verbose`'s lines
(retries, files given up on), printed above a running bar."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable

import click

from hubmirror.cli.output import progress_enabled

_bars = 0  # progress bars on the screen now: a line goes above them, through tqdm
_bars_lock = threading.Lock()


class _StderrLines(logging.Handler):
    """Each record as one line on stderr (the stderr of the moment, as click's test runner swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            if _bars:
                from tqdm import tqdm

                tqdm.write(line, file=sys.stderr)
            else:
                click.echo(line, err=True)
        except Exception:  # noqa: BLE001 - logging must never break a pull
            self.handleError(record)


def report_lines(level: int = logging.INFO) -> Callable[[], None]:
    """Print hubmirror's log records at `level` and above on stderr, one line each (`--verbose`); returns the undo."""
    logger = logging.getLogger("hubmirror")
    handler = _StderrLines(level)
    handler.setFormatter(logging.Formatter("%(message)s"))
    before = logger.level
    logger.addHandler(handler)
    logger.setLevel(min(level, before) if before else level)

    def undo() -> None:
        logger.removeHandler(handler)
        logger.setLevel(before)

    return undo


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
            global _bars
            with _bars_lock:
                _bars += 1

    def advance(self, n: int) -> None:
        if self._bar is not None:
            with self._lock:
                self._bar.update(n)

    def __enter__(self) -> TransferProgress:
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            global _bars
            with _bars_lock:
                _bars -= 1
            self._bar.close()
            self._bar = None
