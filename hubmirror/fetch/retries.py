"""Retries, for every request and download of every source.

An answer of 429, 500, 502, 503 or 504 and a transport failure (refused or reset connection, connect or read
timeout) are tried again after a wait: exponential backoff with full jitter (uniform(0, min(max_wait, base * 2**n))),
or the server's `Retry-After` (seconds or an HTTP date) when it sends one, up to `retry_after_max`. The budget is
`retries` failures in a row (bytes arriving reset the count) and `budget` seconds of waiting in all, per request, or
per file while `retrying` holds a file's retrier (a download's requests, its redirects and its mid-body resumes share
it); then the last error is raised, saying so. Only idempotent requests are retried (see `hubmirror.fetch.http`).
Other 4xx answers are never retried. Each retry is logged (logger `hubmirror.retry`, level INFO: one line, what, why,
attempt n/N, wait), which `hubmirror --verbose` prints on stderr.

Settings: `HUBMIRROR_RETRIES` (5), `HUBMIRROR_RETRY_BASE` (1 s), `HUBMIRROR_RETRY_MAX_WAIT` (30 s),
`HUBMIRROR_RETRY_AFTER_MAX` (300 s), `HUBMIRROR_RETRY_BUDGET` (600 s), `HUBMIRROR_TIMEOUT` (connect and read
timeout, the seconds without a byte after which a stalled connection is dropped and resumed; default: the caller's,
60 s); the CLI's global `--retries` and `--read-timeout` override them (`configure`). Importing this module imports
no HTTP library, so the CLI sets the policy at no start-up cost.
"""

from __future__ import annotations

import contextvars
import email.utils
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any

from hubmirror.errors import Cancelled, HubmirrorError, UsageError, reworded

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
log = logging.getLogger("hubmirror.retry")




@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: see the module's docstring. Every field can be set by environment or CLI."""

    retries: int = 5  # failures in a row tolerated (so up to retries + 1 attempts without progress)
    base: float = 1.0  # seconds: the cap of the first backoff, doubling with each failure in a row
    max_wait: float = 30.0  # seconds: the cap of one backoff
    retry_after_max: float = 300.0  # seconds: the longest Retry-After honoured; asked for longer, give up
    budget: float = 600.0  # seconds of waiting in all, per request or per file
    timeout: float | None = None  # connect and read timeout overriding the caller's (None: the caller's)


_ENV = {
    "retries": "HUBMIRROR_RETRIES",
    "base": "HUBMIRROR_RETRY_BASE",
    "max_wait": "HUBMIRROR_RETRY_MAX_WAIT",
    "retry_after_max": "HUBMIRROR_RETRY_AFTER_MAX",
    "budget": "HUBMIRROR_RETRY_BUDGET",
    "timeout": "HUBMIRROR_TIMEOUT",
}
_overrides: dict[str, Any] = {}


def retry_policy() -> RetryPolicy:
    """The policy in force: the defaults, then the environment, then `configure` (the CLI's options)."""
    values: dict[str, Any] = {}
    for f in fields(RetryPolicy):
        raw = os.environ.get(_ENV[f.name], "").strip()
        if raw:
            values[f.name] = _setting(_ENV[f.name], raw, int if f.name == "retries" else float)
    return replace(RetryPolicy(), **values, **_overrides)


def _setting(name: str, raw: str, kind: type) -> Any:
    try:
        value = kind(raw)
    except ValueError:
        value = -1
    positive = name == _ENV["timeout"]
    if value < 0 or (positive and value == 0):
        raise UsageError(f"{name}={raw!r}: expected a {'count' if kind is int else 'number of seconds'} "
                         f"{'> 0' if positive else '≥ 0'}")
    return value


def configure(**settings: Any) -> Callable[[], None]:
    """Override policy fields for this process (the CLI's `--retries`, `--read-timeout`); returns the undo."""
    before = dict(_overrides)
    _overrides.update({k: v for k, v in settings.items() if v is not None})

    def undo() -> None:
        _overrides.clear()
        _overrides.update(before)

    return undo


def effective_timeout(timeout: float) -> float:
    """The caller's timeout, unless the policy overrides it."""
    return retry_policy().timeout or timeout


def retry_after_seconds(value: str | None) -> float | None:
    """A `Retry-After` header's wait in seconds: delay-seconds or an HTTP date (past dates: 0); None if absent or
    unreadable."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class Retrier:
    """One operation's retry budget (a request, or one file's download with its resumes): see `RetryPolicy`.

    `retry(error, why)` waits before the next attempt, or raises `error` (saying why it gave up) once the budget is
    spent. `held` tells it how many bytes the operation holds: more than at the last failure is progress, which
    resets the count of failures in a row. With `cancel` set, a wait ends early in `Cancelled`."""

    def __init__(self, what: str, policy: RetryPolicy | None = None, cancel: threading.Event | None = None,
                 sleep: Callable[[float], None] | None = None):
        self.what = what
        self.policy = policy or retry_policy()
        self.cancel = cancel
        self.failures = 0  # in a row, since the last progress
        self.attempts = 1  # made so far, in all
        self.waited = 0.0
        self._held = 0
        self._sleep = sleep

    def retry(self, error: HubmirrorError, why: str, *, retry_after: float | None = None,
              held: int | None = None) -> None:
        policy = self.policy
        if held is not None:
            if held > self._held:
                self.failures = 0
            self._held = held
        self.failures += 1
        if self.failures > policy.retries:
            raise _annotated(error, f"gave up after {self.attempts} attempt{'s' if self.attempts > 1 else ''}")
        if retry_after is not None:
            if retry_after > policy.retry_after_max:
                raise _annotated(error, f"the server asks to retry after {retry_after:.0f} s, longer than "
                                        f"{_ENV['retry_after_max']} ({policy.retry_after_max:.0f} s)")
            wait = retry_after
        else:
            wait = random.uniform(0.0, min(policy.max_wait, policy.base * 2 ** (self.failures - 1)))
        if self.waited + wait > policy.budget:
            raise _annotated(error, f"gave up after {self.attempts} attempts: the retry budget of "
                                    f"{policy.budget:.0f} s of waiting ({_ENV['budget']}) is spent")
        log.info("retry %d/%d in %.2f s: %s: %s", self.failures + 1, policy.retries + 1, wait, self.what, why)
        self._wait(wait)
        self.waited += wait
        self.attempts += 1

    def _wait(self, seconds: float) -> None:
        if self._sleep is not None:
            self._sleep(seconds)
        elif self.cancel is not None:
            if self.cancel.wait(seconds):
                raise Cancelled("pull cancelled")
        elif seconds > 0:
            time.sleep(seconds)



def _annotated(error: HubmirrorError, note: str) -> HubmirrorError:
    """`error` (same class, same exit code) with `note` added to its one line."""
    return reworded(error, f"{error} ({note})")


_current: contextvars.ContextVar[Retrier | None] = contextvars.ContextVar("hubmirror_retrier", default=None)


@contextmanager
def retrying(what: str, *, cancel: threading.Event | None = None) -> Iterator[Retrier]:
    """A retrier for one operation (a file's download), shared by every request made under it in this thread."""
    retrier = Retrier(what, cancel=cancel)
    token = _current.set(retrier)
    try:
        yield retrier
    finally:
        _current.reset(token)


def current_retrier(what: str) -> Retrier:
    """The retry budget of the file being fetched (see `retrying`), else a new one for `what`."""
    return _current.get() or Retrier(what)

