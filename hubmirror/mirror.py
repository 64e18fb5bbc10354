"""A mirror: a self-contained directory with `catalog.db` and the blob store at its root."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hubmirror.catalog import CATALOG_NAME, Catalog
from hubmirror.locks import mirror_lock
from hubmirror.sources import SourceContext
from hubmirror.store import BlobStore, LocalBlobStore

HOME_ENV = "HUBMIRROR_HOME"


def default_root() -> Path:
    """`$HUBMIRROR_HOME`, else the current directory."""
    return Path(os.environ.get(HOME_ENV) or ".").resolve()


@dataclass
class Mirror:
    root: Path
    catalog: Catalog
    store: BlobStore

    @classmethod
    def open(cls, root: Path, *, create: bool = False) -> "Mirror":
        """Open the mirror at `root`; with `create`, make one there first if there is none."""
        root = Path(root).resolve()
        if create:
            root.mkdir(parents=True, exist_ok=True)
        store = LocalBlobStore(root)
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
