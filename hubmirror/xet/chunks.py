"""Which Xet chunks the mirror already holds, and where: chunk i of xorb X is `length` bytes at some offset of a stored
blob. A reader notes each chunk it writes into a file; the notes are recorded in the catalog only once that file's
whole-file digest verified (`confirm`), and a chunk is taken from a blob only while the store still holds it. So a
new revision of a model moves over the network only the chunks the mirror has never held; whatever a lying upstream
said of a chunk can cost a download, never a wrong byte (every file is verified whole before it is catalogued): a
file that does not verify with chunks taken from the store is read again in the same pull with every chunk from the
upstream, and its places, once it verifies, replace the false ones."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from hubmirror.errors import IntegrityError
from hubmirror.xet.layout import layout_from_chunks, pack_layout


@dataclass(frozen=True)
class Place:
    """Where one chunk lies: in blob `sha256` at `file_offset`, `length` bytes."""

    sha256: str
    file_offset: int
    length: int


class ChunkIndex:
    """The chunk index of one mirror (its catalog and store), shared by the threads of a pull."""

    def __init__(self, catalog, store, record_layout=None, catalog_lock: threading.Lock | None = None):
        """`record_layout(sha256, xet_hash, packed)`: the mirror writer's (a site's layouts are site state), else the
        catalog's own; `catalog_lock`: held around each use of `catalog`, where other threads share its
        connection."""
        self.catalog, self.store = catalog, store
        self._record_layout = record_layout or catalog.put_xet_layout
        self._pending: dict[str, dict[int, tuple]] = {}
        self._held: dict[str, bool] = {}
        self._from_store: set[str | None] = set()  # files given chunks read from the store
        self._distrusted: set[str | None] = set()  # files that did not verify with them: none from the store now
        self._lock = threading.Lock()
        self._catalog_lock = catalog_lock or threading.Lock()

    def places(self, xorb: str, start: int, end: int) -> dict[int, Place]:
        """The chunks [start, end) of `xorb` held in blobs the store still has, by chunk index."""
        found = {}
        with self._catalog_lock:
            rows = self.catalog.xet_chunk_rows(xorb, start, end)
        for idx, sha256, file_offset, length in rows:
            if self._blob_held(sha256):
                found[idx] = Place(sha256, file_offset, length)
        return found

    def _blob_held(self, sha256: str) -> bool:
        with self._lock:
            known = self._held.get(sha256)
        if known is None:
            known = self.store.exists(sha256)
            with self._lock:
                self._held[sha256] = known
        return known

    def read(self, run: list[Place]) -> bytes:
        """The bytes of consecutive chunks `run`, which lie back to back in one blob."""
        first, size = run[0], sum(p.length for p in run)
        with self.store.open_range(first.sha256, first.file_offset, first.file_offset + size) as f:
            data = f.read(size)
        if len(data) != size:
            raise IntegrityError(f"blob {first.sha256[:12]} is shorter than the chunks recorded in it")
        return data

    def note(self, sha256: str, file_hash: str, chunks: list[tuple[str, int, int, int]]) -> None:
        """Chunks (xorb, idx, file_offset, length) written into the file that should verify as `sha256` (Xet file
        hash `file_hash`), recorded only if it does."""
        with self._lock:
            noted = self._pending.setdefault(sha256, {})
            for xorb, idx, file_offset, length in chunks:
                noted[file_offset] = (file_hash, xorb, idx, length)

    def confirm(self, sha256: str, size: int) -> None:
        """The file `sha256` of `size` bytes verified: record the chunks noted for it, and, when they cover it whole,
        its Xet file hash and layout (what `serve` presents to Xet clients)."""
        with self._lock:
            noted = self._pending.pop(sha256, {})
            self._held[sha256] = True
        if not noted:
            return
        rows = [(x, i, at, n) for at, (_, x, i, n) in noted.items()]
        hashes = {h for h, *_ in noted.values()}
        layout = layout_from_chunks([(at, x, i, n) for x, i, at, n in rows], size) if len(hashes) == 1 else None
        with self._catalog_lock:
            self.catalog.put_xet_chunks(sha256, rows)
            if layout:
                self._record_layout(sha256, hashes.pop(), pack_layout(layout))

    def trusts(self, sha256: str | None) -> bool:
        """Whether the file expected as `sha256` may take chunks from the store (not after it failed with them)."""
        with self._lock:
            return sha256 not in self._distrusted

    def took_from_store(self, sha256: str | None) -> None:
        """The file expected as `sha256` was given chunks read from the store."""
        with self._lock:
            self._from_store.add(sha256)

    def forget(self, sha256: str | None) -> bool:
        """The file expected as `sha256` did not verify: drop what was noted for it. True when it had taken chunks
        from the store (then it takes none in this pull: read again, every chunk comes from the upstream, and once
        it verifies, its chunks' places replace the false ones)."""
        with self._lock:
            self._pending.pop(sha256 or "", None)
            if sha256 not in self._from_store or sha256 in self._distrusted:
                return False
            self._distrusted.add(sha256)
            return True
