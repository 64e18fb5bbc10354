"""`hubmirror gc`: mark-and-sweep of blobs that no catalog row references, sparing young ones."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from hubmirror.catalog import Catalog
from hubmirror.crashpoints import crashpoint
from hubmirror.store import BlobStore

DEFAULT_GRACE_SECONDS = 3600


GC_BATCH = 100  # blobs deleted between two looks at what a shared store's other hosts protect


@dataclass
class GcReport:
    blobs_removed: int
    bytes_freed: int
    blobs_kept_young: int
    temporaries_removed: int
    dry_run: bool
    blobs_kept_leased: int = 0


def collect(catalog: Catalog, store: BlobStore, *, grace_seconds: float = DEFAULT_GRACE_SECONDS,
            dry_run: bool = False, guard: Callable[[], set[str]] | None = None) -> GcReport:
    """Delete unreferenced blobs older than the grace period (a pull in flight stores blobs before it catalogues
    them, so young unreferenced blobs may be about to be referenced), and abandoned partial downloads.

    On a store many hosts share, `guard` brings the catalog up to date and returns the digests other hosts' pulls
    in flight protect (their leases); it is asked first and before each batch of deletions, and each blob's age is
    read again just before it is deleted.
    """
    cutoff = time.time() - grace_seconds
    spared = guard() if guard else set()
    marked = catalog.referenced_digests()
    report = GcReport(0, 0, 0, 0, dry_run)
    candidates = []
    for blob in list(store.iter_blobs()):
        if blob.digest in marked:
            continue
        if blob.mtime >= cutoff:
            report.blobs_kept_young += 1
        else:
            candidates.append(blob)
    for start in range(0, len(candidates), GC_BATCH):
        if guard is not None:
            spared |= guard()
            marked = catalog.referenced_digests()
        for blob in candidates[start:start + GC_BATCH]:
            if blob.digest in marked:
                continue
            if blob.digest in spared:
                report.blobs_kept_leased += 1
                continue
            info = store.stat(blob.digest) if guard is not None else blob
            if info is None:
                continue
            if info.mtime >= cutoff:
                report.blobs_kept_young += 1
                continue
            if not dry_run:
                crashpoint("gc.deleting")
                store.delete(blob.digest)
                crashpoint("gc.deleted")
            report.blobs_removed += 1
            report.bytes_freed += info.size
    report.temporaries_removed = 0 if dry_run else store.sweep_temporaries(cutoff)
    return report
