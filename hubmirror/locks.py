"""Inter-process locks on files, all flock(2), which die with their process, so a killed pull or gc never leaves a
stale lock behind: the mirror-wide reader/writer lock (pulls share it, gc takes it alone, so gc never sweeps a blob a
pull is about to catalogue), and `FileLock`, one writer at a time for a partial blob.

`FileLock` is what the `filelock` library's Unix lock does (flock on a lock file), written out because importing
that library and its probes cost the first blob of every pull 15-20 ms on its critical path (measured: the first
`LocalBlobStore.writer` of a pull took 20 ms, the others waiting on the import lock behind it)."""

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


class FileLock:
    """An exclusive flock on `path` (made if missing): `acquire` waits for it, `acquire(blocking=False)` says
    whether it got it at once; `release` lets it go (so does the process's death)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def is_locked(self) -> bool:
        return self._fd is not None

    def acquire(self, *, blocking: bool = True) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o664)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
