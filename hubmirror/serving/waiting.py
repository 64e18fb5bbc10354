"""Waiting for an upstream on a client's behalf, in a server worker thread, only while the client is there.

`serve --upstream` answers a request for a file still coming in by waiting for it (up to `--upstream-timeout`) in
the worker thread that runs the request. A client that gives up must not keep that thread: a few dozen dropped
requests would otherwise hold every worker until their timeouts, and a cached file would wait behind them. The
request being answered is kept in a context variable (`answering`), which the worker thread inherits; `wait_for`
looks every half second whether its client has gone, and gives up when it has."""

from __future__ import annotations

import contextlib
import contextvars
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

POLL_SECONDS = 0.5
_answering: contextvars.ContextVar = contextvars.ContextVar("hubmirror_answering", default=None)


class ClientGone(Exception):
    """The client of the request being answered closed its connection: nobody waits for the answer any more."""


@contextlib.contextmanager
def answering(request):
    """Within the block (and the threads that inherit its context), `request` is the one being answered."""
    token = _answering.set(request)
    try:
        yield
    finally:
        _answering.reset(token)


def client_gone() -> bool:
    """Whether the client of the request this worker thread answers has disconnected (False outside a request)."""
    request = _answering.get()
    if request is None:
        return False
    import anyio.from_thread

    try:
        return anyio.from_thread.run(request.is_disconnected)
    except RuntimeError:  # not an anyio worker thread: nobody to ask
        return False


def wait_for(future: Future, timeout: float):
    """`future.result(timeout)`, or `ClientGone` as soon as the client this thread answers has disconnected."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return future.result(timeout=max(0.0, min(POLL_SECONDS, deadline - time.monotonic())))
        except FutureTimeout:
            if time.monotonic() >= deadline:
                raise
            if client_gone():
                raise ClientGone() from None
