"""A mirror: a self-contained directory with `catalog.db` and the blob store at its root."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hubmirror.catalog import CATALOG_NAME, Catalog
from hubmirror.locks import mirror_lock
from hubmirror.store import BlobStore, LocalBlobStore
from hubmirror.writer import CatalogWriter, LocalWriter

HOME_ENV = "HUBMIRROR_HOME"
STORE_ENV = "HUBMIRROR_STORE"


def default_root() -> Path:
    """`$HUBMIRROR_HOME`, else the current directory."""
    return Path(os.environ.get(HOME_ENV) or ".").resolve()


def store_url_for(root: Path, store_url: str | None = None) -> str | None:
    """The store URL in force: `store_url` (`--store`), else `$HUBMIRROR_STORE`, else `[store] url` in
    `root`/config.toml; None means the local `blobs/` under `root`."""
    if store_url:
        return store_url
    if os.environ.get(STORE_ENV):
        return os.environ[STORE_ENV]
    from hubmirror.config import store_url as configured

    return configured(root)


def open_store(root: Path, store_url: str | None = None, registry=None) -> BlobStore:
    """The blob store of the mirror at `root` (see `store_url_for`): the local `blobs/`, or what the store backend
    registered for the URL's scheme opens (`register_stores`; `registry`, else the default plugins). Only the URL is
    read here: a backend takes endpoint and credentials from its own environment when the store is used."""
    url = store_url_for(root, store_url)
    if not url:
        return LocalBlobStore(root)
    if registry is None:
        from hubmirror.plugin_manager import PluginRegistry

        registry = PluginRegistry()
    return registry.store_backend(url).open(url)


def writer_for(root: Path, catalog: Catalog, store: BlobStore, bucket) -> CatalogWriter:
    """The catalog writer of a mirror: its site's, where the store has a bucket many hosts share (`bucket`), else
    local."""
    if bucket is None:
        return LocalWriter(catalog, store)
    from hubmirror.config import site_keys
    from hubmirror.sitelog.log import SiteLog, host_id
    from hubmirror.sitelog.writer import SiteWriter

    keys = site_keys(root)
    if keys is not None:
        from hubmirror.sitelog.signed import SignedBucket

        bucket = SignedBucket(bucket, *keys)
    return SiteWriter(catalog, store, SiteLog(bucket, host_id(root)))


@dataclass
class Mirror:
    root: Path
    catalog: Catalog
    store: BlobStore
    writer: CatalogWriter  # every catalog change goes through it (see hubmirror.writer)

    @classmethod
    def open(cls, root: Path, *, create: bool = False, store_url: str | None = None, registry=None) -> "Mirror":
        """Open the mirror at `root`; with `create`, make one there first if there is none. The blob store is
        `store_url` (`--store`), else `$HUBMIRROR_STORE`, else `[store] url` in the mirror's config.toml, else the
        local `blobs/` under `root` (see `open_store`). On a store many hosts share, the catalog is an index of the
        bucket: an empty `root` gets one (filled by `writer.refresh()`)."""
        root = Path(root).resolve()
        store = open_store(root, store_url, registry)
        bucket = store.shared_bucket()
        create = create or bucket is not None
        if create:
            root.mkdir(parents=True, exist_ok=True)
        catalog = Catalog(root / CATALOG_NAME, create=create)
        if create:
            store.initialise()
        return cls(root, catalog, store, writer_for(root, catalog, store, bucket))

    def source_context(self, registry, endpoint: str | None = None):
        """What sources get from this mirror (a `SourceContext`): the other sources (to delegate) and scratch space
        in tmp/."""
        from hubmirror.sources import SourceContext  # commands that read the catalog only never load sources

        return SourceContext(endpoint=endpoint, source_for=lambda name: registry.source(name)[0],
                             cache_dir=self.root / "tmp" / "cache")

    def shared_lock(self, what: str, timeout: float = 600.0):
        """Held while adding to the mirror (pull, import): many may hold it at once."""
        return mirror_lock(self.root, exclusive=False, timeout=timeout, what=what)

    def exclusive_lock(self, what: str, timeout: float = 600.0):
        """Held while deleting from the store (gc): no pull runs meanwhile."""
        return mirror_lock(self.root, exclusive=True, timeout=timeout, what=what)

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> "Mirror":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
