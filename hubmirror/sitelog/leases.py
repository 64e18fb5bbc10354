"""Bucket-side gc safety: leases that pulls in flight hold, and a gc that respects them and every record.

A host-local flock protects nothing when many hosts share one bucket, so:

- A pull (import, adopt, sync) writes `leases/<ms>-<host>-<uuid>.json` ({digests, expires}) BEFORE it asks the store
  which blobs already exist, re-writes it with every digest it stored or reused once the files are in (so blobs that
  grew older than the grace during a long pull stay protected), keeps renewing it while it runs, and deletes it only
  after its record and log entry are in the bucket. After publishing, it checks again that every blob it referenced
  exists and stores again any that vanished.
- gc (any host) lists live leases, refreshes its catalog from the whole log, lists blobs, and deletes a blob only if
  no record references it, no live lease names it, and it is older than the grace. Candidates go in batches: before
  each batch it re-lists leases and then refreshes from the log again (a lease gone means its record is in the log
  by then), and before each delete it HEADs the blob for its age.

What remains: a pull that writes its lease, finds an old unreferenced blob and publishes a record naming it, all
between gc's last lease listing and its DELETE of that blob (one HEAD and one DELETE apart), is caught by the pull's
post-publish check, which stores the blob again; only a pull that also finishes that check inside the same gap could
leave a record naming a missing blob, which `verify` reports and a re-pull repairs. S3 has no portable conditional
DELETE on age that would close it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid

from hubmirror.gc import GcReport, collect
from hubmirror.store.bucket import SharedBucket, encode

log = logging.getLogger("hubmirror.sitelog.leases")

LEASE_TTL_ENV = "HUBMIRROR_LEASE_TTL"
DEFAULT_LEASE_TTL = 900.0  # renewed every third of it while the pull runs; a killed pull's lease lapses after it


class Lease:
    """The digests a pull is about to reference, held in the bucket until its records are published."""

    def __init__(self, bucket: SharedBucket, host: str, digests, ttl: float | None = None):
        self.bucket = bucket
        self.ttl = float(ttl or os.environ.get(LEASE_TTL_ENV) or DEFAULT_LEASE_TTL)
        self.key = bucket.key("leases", f"{int(time.time() * 1000):013d}-{host}-{uuid.uuid4().hex[:12]}.json")
        self.host = host
        self.digests = {d for d in digests if d}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _write(self) -> None:
        with self._lock:
            body = {"host": self.host, "expires": time.time() + self.ttl, "digests": sorted(self.digests)}
            self.bucket.put(self.key, encode(body))

    def extend(self, digests) -> None:
        """Name more digests (and renew)."""
        with self._lock:
            self.digests.update(d for d in digests if d)
        self._write()

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self._write()
            except Exception:  # noqa: BLE001 - a missed renewal is retried; the lease lapses only after a whole TTL
                log.info("lease %s: renewal failed, retried in %.0f s", self.key, self.ttl / 3)

    def __enter__(self) -> Lease:
        self._write()
        self._renewer = threading.Thread(target=self._renew, name="lease-renewer", daemon=True)
        self._renewer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        try:
            self.bucket.delete(self.key)
        except Exception:  # noqa: BLE001 - it lapses by itself
            log.info("lease %s: not deleted; it lapses after its TTL", self.key)


def live_lease_digests(bucket: SharedBucket, now: float | None = None) -> set[str]:
    """Digests named by every lease that has not expired."""
    now = time.time() if now is None else now
    digests: set[str] = set()
    for key in bucket.list("leases/"):
        body = bucket.get_json(key)
        if body and float(body.get("expires") or 0) > now:
            digests.update(d for d in body.get("digests") or [] if isinstance(d, str))
    return digests


def collect_site(site, catalog, store, *, grace_seconds: float, dry_run: bool = False) -> GcReport:
    """gc for a store many hosts share (see the module's docstring for the protocol)."""
    full = True

    def guard() -> set[str]:
        nonlocal full
        leased = live_lease_digests(site.bucket)  # first the leases, then the log: a lease gone is a record logged
        site.refresh(catalog, full=full)
        full = False
        return leased

    return collect(catalog, store, grace_seconds=grace_seconds, dry_run=dry_run, guard=guard)
