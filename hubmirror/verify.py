"""`hubmirror verify`: re-hash stored bytes offline and report every blob whose bytes no longer match its name."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from hubmirror.store import BlobStore

_BUFFER = 8 * 1024 * 1024


@dataclass
class BlobProblem:
    digest: str
    problem: str  # "missing", "size", "digest"
    detail: str
    files: list[dict] = field(default_factory=list)  # catalog rows that reference the blob


@dataclass
class VerifyReport:
    blobs_checked: int
    bytes_checked: int
    problems: list[BlobProblem]

    @property
    def ok(self) -> bool:
        return not self.problems


def hash_blob(store: BlobStore, digest: str) -> tuple[str, int]:
    """sha256 and size of a stored blob, read once in large blocks (hashlib releases the GIL on them)."""
    h = hashlib.sha256()
    size = 0
    buf = bytearray(_BUFFER)
    view = memoryview(buf)
    with store.open(digest) as f:  # a local file, or a backend's streaming reader (ranged GETs on a bucket)
        readinto = getattr(f, "readinto", None)
        if readinto is None:  # a reader with only `read`
            while chunk := f.read(_BUFFER):
                h.update(chunk)
                size += len(chunk)
        else:
            while n := readinto(buf):
                h.update(view[:n])
                size += n
    return h.hexdigest(), size


def verify(store: BlobStore, file_rows: list[dict], *, workers: int | None = None) -> VerifyReport:
    """Check every blob the given catalog file rows reference: present, right size, right sha256.

    Blobs are hashed in parallel (one thread per core by default), each blob once however many files share it.
    """
    by_digest: dict[str, list[dict]] = {}
    for row in file_rows:
        by_digest.setdefault(row["sha256"], []).append(row)

    def check(digest: str) -> tuple[int, BlobProblem | None]:
        rows = by_digest[digest]
        expected_size = rows[0]["size"]
        try:
            if store.stat(digest) is None:  # the contract's answer, whichever backend (open may fail lazily)
                raise FileNotFoundError(digest)
            actual, size = hash_blob(store, digest)
        except FileNotFoundError:
            return 0, BlobProblem(digest, "missing", "blob is missing from the store", rows)
        if size != expected_size:
            return size, BlobProblem(digest, "size", f"{size} bytes, catalog says {expected_size}", rows)
        if actual != digest:
            return size, BlobProblem(digest, "digest", f"bytes hash to {actual}", rows)
        return size, None

    workers = workers or os.cpu_count() or 1
    # Largest first, so that one big blob does not start last and run alone.
    order = sorted(by_digest, key=lambda d: -(by_digest[d][0]["size"] or 0))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verify") as pool:
        results = list(pool.map(check, order))
    problems = [p for _, p in results if p is not None]
    return VerifyReport(len(order), sum(n for n, _ in results), problems)
