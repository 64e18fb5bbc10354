"""Many hosts, one bucket: the catalog records live in the bucket (see log.py for the layout and protocol), and each
host's catalog.db is an index of them that refreshes incrementally and can be rebuilt from the bucket alone.

Commands call the helpers here with a Mirror; on a mirror whose store is not a bucket they do exactly what the local
catalog did before (so a local mirror behaves as it always has).
"""

from __future__ import annotations

import logging
import os
import threading
from contextlib import nullcontext

from hubmirror.s3client import BucketLocation

log = logging.getLogger("hubmirror.sitelog")

REFRESH_ENV = "HUBMIRROR_SITE_REFRESH"
DEFAULT_REFRESH_SECONDS = 3.0  # serve's refresh period: another host's pull shows within it (plus one LIST)


def site_for(mirror):
    """The SiteLog of a mirror whose store lives in a bucket (its `site` attribute, else one made from the store's
    `location`), or None for a local mirror. Cached on the mirror."""
    site = getattr(mirror, "site", None)
    if site is not None:
        return site
    location = getattr(mirror.store, "location", None)
    if not isinstance(location, BucketLocation):
        return None
    from hubmirror.sitelog.log import SiteLog, host_id

    site = SiteLog(location, host_id(mirror.root))
    try:
        mirror.site = site
    except AttributeError:  # a frozen or slotted Mirror: made again next time
        pass
    return site


def refresh(mirror, *, full: bool = False) -> int:
    """Bring the mirror's catalog up to the bucket's log (no-op for a local mirror); return entries applied."""
    site = site_for(mirror)
    return site.refresh(mirror.catalog, full=full) if site else 0


def record_revisions(mirror, revisions, plugin: str, description: str = "", scans=None) -> None:
    site = site_for(mirror)
    if site is None:
        mirror.catalog.record_revisions(revisions, plugin, description, scans)
    else:
        site.publish_revisions(mirror.catalog, revisions, plugin, description, scans)


def remove(mirror, key: str, commit: str | None = None) -> int:
    """Forget a model or a revision; return the file rows removed (here)."""
    site = site_for(mirror)
    if site is None:
        return mirror.catalog.remove(key, commit)
    rows = mirror.catalog.files(key, commit) if commit else [
        f for r in mirror.catalog.revisions(key) for f in mirror.catalog.files(key, r["commit_id"])]
    site.publish_removal(mirror.catalog, key, commit)
    return len(rows)


def record_scans(mirror, scans: list[dict]) -> None:
    site = site_for(mirror)
    if site is None:
        mirror.catalog.record_scans(scans)
    else:
        site.publish_scans(mirror.catalog, scans)


def allow(mirror, sha256: str, reason: str | None) -> None:
    """Allow one file (`reason`), or revoke its allowance (None)."""
    site = site_for(mirror)
    if site is not None:
        site.publish_allowance(mirror.catalog, sha256, reason)
    elif reason is None:
        mirror.catalog.revoke(sha256)
    else:
        mirror.catalog.allow(sha256, reason)


def record_benchmark(mirror, row: dict) -> None:
    site = site_for(mirror)
    if site is None:
        mirror.catalog.record_benchmark(row)
    else:
        site.publish_benchmark(mirror.catalog, row)


def lease(mirror, digests):
    """A lease on `digests` in the bucket for the duration of a pull (a no-op context for a local mirror)."""
    site = site_for(mirror)
    if site is None:
        return nullcontext(None)
    from hubmirror.sitelog.leases import Lease

    return Lease(site.bucket, site.host, digests)


def collect(mirror, *, grace_seconds: float, dry_run: bool = False):
    """gc with the bucket's safety rules (None for a local mirror: the caller runs the local gc)."""
    site = site_for(mirror)
    if site is None:
        return None
    from hubmirror.sitelog.leases import collect_site

    return collect_site(site, mirror.catalog, mirror.store, grace_seconds=grace_seconds, dry_run=dry_run)


def start_refresher(open_mirror, interval: float | None = None) -> threading.Event | None:
    """For `serve`: refresh the catalog from the bucket every `interval` seconds in a daemon thread, through a mirror
    of its own (`open_mirror()`); returns the event that stops it, or None for a local mirror."""
    mirror = open_mirror()
    if site_for(mirror) is None:
        mirror.close()
        return None
    interval = float(interval or os.environ.get(REFRESH_ENV) or DEFAULT_REFRESH_SECONDS)
    stop = threading.Event()

    def loop():
        try:
            while not stop.is_set():
                try:
                    refresh(mirror)
                except Exception as exc:  # noqa: BLE001 - the bucket unreachable for a while: serve what is indexed, retry
                    log.warning("site refresh failed: %s", exc)
                stop.wait(interval)
        finally:
            mirror.close()

    threading.Thread(target=loop, name="site-refresh", daemon=True).start()
    return stop
