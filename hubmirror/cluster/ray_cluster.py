"""The driver's side of Ray: joining the cluster, and collecting task results as they finish."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, redirect_stdout
from typing import Any

from hubmirror.errors import HubmirrorError

RAY_EXTRA = "pip install 'hubmirror[ray]'"
TASK_RETRIES = 3  # times Ray runs a task again after its worker or node was lost (never after a model's own failure)


@contextmanager
def session(address: str | None) -> Iterator[None]:
    """Joined to the Ray cluster at `address` (None: an instance started on this machine) for the block, then
    disconnected. Whatever Ray prints meanwhile (a lost node's notice) goes to stderr: stdout is the command's."""
    try:
        import ray
    except ImportError:
        raise HubmirrorError(f"--executor ray needs ray, which is not installed here: {RAY_EXTRA}") from None
    import logging

    with redirect_stdout(sys.stderr):
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False, include_dashboard=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise HubmirrorError(f"cannot join the Ray cluster at {address or 'a new local instance'}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        try:
            yield
        finally:
            ray.shutdown()


def gather(items: Iterable[Any], submit: Callable[[Any], Any], on_result: Callable[[Any, Any], None],
           on_error: Callable[[Any, BaseException], None]) -> None:
    """Run `submit(item)` (a Ray task's object ref) for every item, keeping twice the cluster's slots (and a few more)
    in flight so that no node waits and the driver's waiting list stays small at any number of items; call
    `on_result(item, value)` or `on_error(item, exception)` as each finishes, in the order they finish."""
    import ray

    resources = ray.cluster_resources()
    in_flight = 2 * int(resources.get("CPU", 0) + resources.get("GPU", 0)) + 8
    waiting = iter(items)
    pending: dict = {}
    while True:
        while len(pending) < in_flight and (item := next(waiting, _END)) is not _END:
            pending[submit(item)] = item
        if not pending:
            return
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            item = pending.pop(ref)
            try:
                value = ray.get(ref)
            except ray.exceptions.RayError as exc:
                on_error(item, exc)
            else:
                on_result(item, value)


_END = object()


def node_name() -> str:
    """Where a task runs: the host's name and the node's address in the cluster."""
    import socket

    import ray

    return f"{socket.gethostname()}/{ray.util.get_node_ip_address()}"


def short_error(exc: BaseException) -> str:
    """One line of a task's failure (a RayTaskError carries the remote traceback: its last line says what)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException) and str(cause):
        return str(cause).strip().splitlines()[-1]
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
