"""Values derived from the whole catalog, recomputed only when the catalog changes.

The view rebuilds its repo map exactly when another connection has committed (`PRAGMA data_version` on its own
connection), so a new map object is the signal: a value is kept with the map it was computed from (and any other
inputs, such as the mirror's admission policy) and reused while they are the same objects and values.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from hubmirror.serving.view import MirrorView

T = TypeVar("T")


class PerCatalogVersion(Generic[T]):
    """`compute(repos)` once per catalog change (and per value of `extra`). With `background`, a stale value is
    still answered while one thread computes the new one (only the first value is waited for): for values that
    take a pass over a million rows."""

    def __init__(self, view, compute: Callable[[dict], T], *, background: bool = False):
        self._view, self._compute, self._background = view, compute, background
        self._lock = threading.Lock()
        self._seen: tuple | None = None
        self._value: T | None = None
        self._refreshing = False

    def get(self, *extra) -> T:
        """The value for the catalog as it is now (with `background`, possibly as it was a moment ago)."""
        wanted = (MirrorView.repos(self._view), *extra)  # the catalogued map (a proxy adds what it is fetching)
        with self._lock:
            if self._seen is not None and self._seen[0] is wanted[0] and self._seen[1:] == extra:
                return self._value
            if self._seen is not None and self._background:
                if not self._refreshing:
                    self._refreshing = True
                    threading.Thread(target=self._refresh, args=(wanted,), name="web-summary", daemon=True).start()
                return self._value
            self._value, self._seen = self._compute(wanted[0]), wanted
            return self._value

    def _refresh(self, wanted: tuple) -> None:
        try:
            value = self._compute(wanted[0])
            with self._lock:
                self._value, self._seen = value, wanted
        finally:
            with self._lock:
                self._refreshing = False
