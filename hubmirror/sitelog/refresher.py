"""`serve`'s background refresh from a site's bucket: it survives any failure, backs off while the bucket fails, and
says how it is doing (`/healthz` degraded after `DEGRADED_AFTER` failed periods in a row; the age of the last good
refresh as a metric), so that a server behind a load balancer is taken out before it serves a stale catalog long."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

log = logging.getLogger("hubmirror.sitelog.refresh")

REFRESH_ENV = "HUBMIRROR_SITE_REFRESH"
DEFAULT_REFRESH_SECONDS = 3.0  # another host's pull shows within this (plus one LIST)
MAX_BACKOFF_SECONDS = 60.0
DEGRADED_AFTER = 3  # failed periods in a row before /healthz says degraded


class Refresher:
    """Refreshes a mirror's catalog from its bucket every `interval` seconds in a daemon thread, through a mirror
    of its own (`open_mirror()`); after a failure it waits twice as long each time (at most a minute), and logs the
    first failure of a run of them and the recovery, not every one."""

    def __init__(self, open_mirror: Callable, interval: float | None = None):
        self.open_mirror = open_mirror
        self.interval = float(interval or os.environ.get(REFRESH_ENV) or DEFAULT_REFRESH_SECONDS)
        self.failures = 0  # in a row
        self.last_error = ""
        self.last_success = time.time()  # the catalog was refreshed when serve opened it
        self.stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="site-refresh", daemon=True)

    def start(self) -> Refresher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        self._thread.join(timeout=10)

    def age(self) -> float:
        """Seconds since the last refresh that succeeded."""
        return time.time() - self.last_success

    def degraded(self) -> bool:
        return self.failures >= DEGRADED_AFTER

    def _loop(self) -> None:
        mirror = None
        while not self.stopped.is_set():
            try:
                if mirror is None:
                    mirror = self.open_mirror()
                mirror.writer.refresh()
            except Exception as exc:  # noqa: BLE001 - anything: the bucket away, a bad object, a broken catalog
                if mirror is not None:  # opened again next period
                    mirror.close()
                    mirror = None
                self.failures += 1
                self.last_error = str(exc) or type(exc).__name__
                if self.failures == 1 or self.failures == DEGRADED_AFTER:
                    log.warning("site refresh failed (%d in a row; serving what the catalog holds): %s",
                                self.failures, self.last_error)
                wait = min(self.interval * 2 ** self.failures, MAX_BACKOFF_SECONDS)
            else:
                if self.failures:
                    log.warning("site refresh recovered after %d failures", self.failures)
                self.failures, self.last_error, self.last_success = 0, "", time.time()
                wait = self.interval
            self.stopped.wait(wait)
        if mirror is not None:
            mirror.close()
