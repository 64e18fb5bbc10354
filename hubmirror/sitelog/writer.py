"""`SiteWriter`: the catalog writer of a mirror whose store is a bucket many hosts share. Every change is published
to the bucket (records, refs, log; see log.py) and then applied to this host's catalog, an index of the bucket."""

from __future__ import annotations

from hubmirror.sitelog.leases import Lease, collect_site
from hubmirror.sitelog.log import SiteLog
from hubmirror.sitelog.refresher import Refresher
from hubmirror.writer import CatalogWriter


class SiteWriter(CatalogWriter):
    def __init__(self, catalog, store, site: SiteLog):
        super().__init__(catalog, store)
        self.site = site

    def record_revisions(self, revisions, plugin, description="", scans=None) -> None:
        self.site.publish_revisions(self.catalog, revisions, plugin, description, scans)

    def remove(self, key: str, commit: str | None = None) -> int:
        catalog = self.catalog
        rows = catalog.files(key, commit) if commit else [
            f for r in catalog.revisions(key) for f in catalog.files(key, r["commit_id"])]
        self.site.publish_removal(catalog, key, commit)
        return len(rows)

    def record_scans(self, scans: list[dict]) -> None:
        self.site.publish_scans(self.catalog, scans)

    def allow(self, sha256: str, reason: str | None) -> None:
        self.site.publish_allowance(self.catalog, sha256, reason)

    def record_benchmark(self, row: dict) -> None:
        self.site.publish_benchmark(self.catalog, row)

    def put_token(self, record) -> None:
        self.site.publish_token(self.catalog, record.id, record)

    def revoke_token(self, token_id: str) -> None:
        self.site.publish_token(self.catalog, token_id, None)

    def record_xet_layout(self, sha256: str, xet_hash: str, layout: bytes) -> bool:
        """Site state: every host serves the blob through Xet (published; where another blob holds the hash, the
        first claim stands on every host, which apply the log in one order: no host drops what others hold)."""
        self.site.publish_xet_layout(self.catalog, sha256, xet_hash, layout)
        return True

    def lease(self, digests):
        return Lease(self.site.bucket, self.site.host, digests)

    def refresh(self, *, full: bool = False) -> int:
        return self.site.refresh(self.catalog, full=full)

    def collect(self, *, grace_seconds: float, dry_run: bool = False):
        return collect_site(self.site, self.catalog, self.store, grace_seconds=grace_seconds, dry_run=dry_run)

    def start_refresher(self, open_mirror, interval: float | None = None) -> Refresher:
        """Refresh every `interval` seconds (`HUBMIRROR_SITE_REFRESH`, else 3) in the background, backing off while
        the bucket fails (see refresher.py)."""
        return Refresher(open_mirror, interval).start()
