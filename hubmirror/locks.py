"""Mirror-wide reader/writer lock: pulls share it, gc takes it alone, so gc never sweeps a blob a pull is about to
catalogue. flock(2) locks die with their process, so a killed pull or gc never leaves a stale lock behind."""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from hubmirror.errors import HubmirrorError

LOCK_NAME = "mirror.lock"


@contextmanager
def mirror_lock(root: Path, *, exclusive: bool, timeout: float, what: str) -> Iterator[None]:
    """Hold the mirror lock of `root`, shared or exclusive, waiting up to `timeout` seconds for it."""
    path = Path(root) / "tmp" / "locks" / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o664)
    mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, mode)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise HubmirrorError(f"{what}: the mirror is busy (another hubmirror process holds its lock)") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock
