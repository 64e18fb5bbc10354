"""Where a mirror's catalog changes go, decided once when the mirror opens (`Mirror.writer`).

A mirror on this machine writes its own catalog.db (`LocalWriter`). A mirror whose store is a bucket many hosts share
publishes every change to the bucket first and then applies it to its catalog, which is an index of the bucket
(`hubmirror.sitelog.writer.SiteWriter`). Every command writes through this one interface, whichever it is.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING

from hubmirror.catalog.xet_chunks import refused_xet_claim

if TYPE_CHECKING:
    from hubmirror.access.tokens import TokenRecord
    from hubmirror.catalog import Catalog, StoredFile
    from hubmirror.gc import GcReport
    from hubmirror.sitelog.refresher import Refresher
    from hubmirror.store import BlobStore
    from hubmirror.upstream import ModelMetadata, ResolvedRevision

log = logging.getLogger("hubmirror.catalog")  # a false Xet claim settled (hubmirror.catalog.xet_chunks)


class CatalogWriter(ABC):
    """One mirror's catalog changes."""

    def __init__(self, catalog: Catalog, store: BlobStore):
        self.catalog = catalog
        self.store = store

    @abstractmethod
    def record_revisions(self, revisions: list[tuple[ResolvedRevision, list[StoredFile]]], plugin: str,
                         description: str = "", scans: list[dict] | None = None) -> None:
        """Catalogue stored revisions (and their files' scan verdicts) in one transaction."""

    @abstractmethod
    def remove(self, key: str, commit: str | None = None) -> int:
        """Forget a model, or one revision of it; return the file rows removed."""

    @abstractmethod
    def record_scans(self, scans: list[dict]) -> None:
        """Record admission verdicts of stored blobs."""

    @abstractmethod
    def allow(self, sha256: str, reason: str | None) -> None:
        """Allow one quarantined file (`reason`), or revoke its allowance (None)."""

    @abstractmethod
    def record_benchmark(self, row: dict) -> None:
        """Record one benchmark row."""

    @abstractmethod
    def put_token(self, record: TokenRecord) -> None:
        """Add a token `serve` accepts (its record: a slow hash, never the token)."""

    @abstractmethod
    def revoke_token(self, token_id: str) -> None:
        """Revoke a token for good."""

    def record_xet_layout(self, sha256: str, xet_hash: str, layout: bytes) -> bool:
        """Record a verified blob's Xet file hash and chunk layout (hubmirror.xet.layout, packed), what `serve`
        presents it through Xet by. Where another blob holds that hash (`Catalog._put_xet_layout`: one of the two
        claims is false), the bytes decide when both blobs are local files: if the official client's hasher finds
        the newcomer's claim true and the holder's false, the holder's layout goes and the newcomer's is recorded.
        Whether it was recorded."""
        if self.catalog.put_xet_layout(sha256, xet_hash, layout):
            return True
        held = self.catalog.xet_file(xet_hash)
        if held is None:
            return False
        from hubmirror.xet.carried import true_xet_hashes

        truth = true_xet_hashes(self.store, [held[0], sha256])
        if truth.get(sha256) != xet_hash or truth.get(held[0], xet_hash) == xet_hash:
            refused_xet_claim(sha256, xet_hash, held[0])
            return False
        self.catalog.replace_xet_layout(held[0], sha256, xet_hash, layout)
        log.warning("blob %s held Xet hash %s falsely (its bytes hash to %s): blob %s, whose bytes it is, holds it "
                    "now", held[0], xet_hash, truth[held[0]], sha256)
        return True

    def record_index(self, models: Iterable[ModelMetadata], plugin: str, description: str) -> int:
        """Put a source's listing in this host's catalog (searchable, not cached); return how many models. A listing
        is not site state: each host indexes what it wants to search."""
        return self.catalog.record_index(models, plugin, description)

    def lease(self, digests: Iterable[str]) -> AbstractContextManager:
        """Held while a pull stores and catalogues `digests`: a shared store's gc on any host spares them. Yields the
        lease (to `extend`), or None where no other host collects garbage."""
        return nullcontext(None)

    def refresh(self, *, full: bool = False) -> int:
        """Catch up with what other hosts published; return the changes applied."""
        return 0

    @abstractmethod
    def collect(self, *, grace_seconds: float, dry_run: bool = False) -> "GcReport":
        """Mark and sweep the store's unreferenced blobs older than the grace period."""

    def start_refresher(self, open_mirror: Callable, interval: float | None = None) -> Refresher | None:
        """For `serve`: keep refreshing in the background through a mirror of its own (`open_mirror()`); returns
        the running `hubmirror.sitelog.refresher.Refresher`, or None where there is nothing to refresh from."""
        return None


class LocalWriter(CatalogWriter):
    """A mirror on this machine: changes go straight into its catalog.db."""

    def record_revisions(self, revisions, plugin, description="", scans=None) -> None:
        self.catalog.record_revisions(revisions, plugin, description, scans)

    def remove(self, key: str, commit: str | None = None) -> int:
        return self.catalog.remove(key, commit)

    def record_scans(self, scans: list[dict]) -> None:
        self.catalog.record_scans(scans)

    def allow(self, sha256: str, reason: str | None) -> None:
        if reason is None:
            self.catalog.revoke(sha256)
        else:
            self.catalog.allow(sha256, reason)

    def record_benchmark(self, row: dict) -> None:
        self.catalog.record_benchmark(row)

    def put_token(self, record: TokenRecord) -> None:
        self.catalog.put_token(record)

    def revoke_token(self, token_id: str) -> None:
        self.catalog.revoke_token(token_id)

    def collect(self, *, grace_seconds: float, dry_run: bool = False) -> "GcReport":
        from hubmirror.gc import collect

        return collect(self.catalog, self.store, grace_seconds=grace_seconds, dry_run=dry_run)
