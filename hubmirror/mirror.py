"""A mirror: a self-contained directory with `catalog.db` and the blob store at its root."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hubmirror.catalog import CATALOG_NAME, Catalog
from hubmirror.errors import UsageError
from hubmirror.locks import mirror_lock
from hubmirror.sources import SourceContext
from hubmirror.store import BlobStore, LocalBlobStore

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


def open_store(root: Path, store_url: str | None = None) -> BlobStore:
    """The blob store of the mirror at `root` (see `store_url_for`). Only the URL is read here: endpoint,
    credentials and region come from the AWS chain when the store is used, and are never written anywhere."""
    url = store_url_for(root, store_url)
    if not url:
        return LocalBlobStore(root)
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme == "s3":
        from hubmirror.s3client import BucketLocation
        from hubmirror.store.s3 import S3BlobStore

        return S3BlobStore(BucketLocation.parse(url))
    raise UsageError(f"store URL {url!r}: unknown scheme; expected s3://BUCKET[/PREFIX]")


@dataclass
class Mirror:
    root: Path
    catalog: Catalog
    store: BlobStore

    @classmethod
    def open(cls, root: Path, *, create: bool = False, store_url: str | None = None) -> "Mirror":
        """Open the mirror at `root`; with `create`, make one there first if there is none. The blob store is
        `store_url` (`--store`), else `$HUBMIRROR_STORE`, else `[store] url` in the mirror's config.toml, else the
        local `blobs/` under `root` (see `open_store`)."""
        root = Path(root).resolve()
        if create:
            root.mkdir(parents=True, exist_ok=True)
        store = open_store(root, store_url)
        catalog = Catalog(root / CATALOG_NAME, create=create)
        if create:
            store.initialise()
        return cls(root, catalog, store)

    def source_context(self, registry, endpoint: str | None = None) -> SourceContext:
        """What sources get from this mirror: the other sources (to delegate) and scratch space in tmp/."""
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
