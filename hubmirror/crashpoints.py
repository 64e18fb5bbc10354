"""Crash injection, for the crash-consistency harness: with `HUBMIRROR_CRASH_AT=<point>:<n>` in the environment, the
process kills itself (SIGKILL, no cleanup) the n-th time it reaches that point. Without the variable a point costs
one comparison."""

from __future__ import annotations

import os
import signal
import threading

_TARGET, _, _COUNT = (os.environ.get("HUBMIRROR_CRASH_AT") or "").partition(":")
_hits = 0
_lock = threading.Lock()

# Every point the harness may name, in the order a write goes through them (a local store passes the `store.*`
# points, an S3 store the `s3.*` ones).
POINTS = (
    "transfer.chunk",        # after a chunk is appended to a partial download
    "store.written",         # all bytes written, before fsync
    "store.fsynced",         # fsynced, before the rename into blobs/
    "store.renamed",         # renamed, before the directory fsync
    "s3.part_uploaded",      # S3 store: a part object of an upload is stored (more may be in flight)
    "s3.written",            # S3 store: commit checked the bytes held, before anything is written under blobs/
    "s3.parts_copied",       # S3 store: every part copied into the final key's multipart upload, before completing it
    "s3.stored",             # S3 store: the final key exists (or already did), before the temporaries go
    "s3.cleaned",            # S3 store: temporaries and lease deleted, before the caller catalogues
    "catalog.before_commit",  # rows written inside the transaction, before COMMIT
    "catalog.after_commit",
    "gc.deleting",           # before a blob is deleted
    "gc.deleted",
)


def crashpoint(name: str) -> None:
    """Die here if the harness asked for it."""
    global _hits
    if name != _TARGET:
        return
    with _lock:
        _hits += 1
        if _hits == int(_COUNT or 1):
            os.kill(os.getpid(), signal.SIGKILL)
