"""`hubmirror gc`: mark-and-sweep of blobs that no catalog row references, sparing young ones."""

from __future__ import annotations

import time
from dataclasses import dataclass

from hubmirror.catalog import Catalog
from hubmirror.crashpoints import crashpoint
from hubmirror.store import BlobStore

DEFAULT_GRACE_SECONDS = 3600


@dataclass
class GcReport:
    blobs_removed: int
    bytes_freed: int
    blobs_kept_young: int
    temporaries_removed: int
    dry_run: bool


def collect(catalog: Catalog, store: BlobStore, *, grace_seconds: float = DEFAULT_GRACE_SECONDS,
            dry_run: bool = False) -> GcReport:
    """Delete unreferenced blobs older than the grace period (a pull in flight stores blobs before it catalogues
    them, so young unreferenced blobs may be about to be referenced), and abandoned partial downloads."""
    cutoff = time.time() - grace_seconds
    marked = catalog.referenced_digests()
    removed = freed = young = 0
    for blob in list(store.iter_blobs()):
        if blob.digest in marked:
            continue
        if blob.mtime >= cutoff:
            young += 1
            continue
        if not dry_run:
            crashpoint("gc.deleting")
            store.delete(blob.digest)
            crashpoint("gc.deleted")
        removed += 1
        freed += blob.size
    temporaries = 0 if dry_run else store.sweep_temporaries(cutoff)
    return GcReport(removed, freed, young, temporaries, dry_run)
