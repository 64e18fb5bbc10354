"""Mixin of Catalog: where the mirror holds Xet chunks (table `xet_chunks`, migration m010; hubmirror.xet.chunks)."""

from __future__ import annotations

import logging
import sqlite3
import threading

from hubmirror.catalog.connection import chunks

log = logging.getLogger("hubmirror.catalog")


def refused_xet_claim(sha256: str, xet_hash: str, holder: str) -> None:
    """Log that blob `sha256`'s claim to `xet_hash` was not recorded because blob `holder` holds it."""
    log.warning("not recording Xet hash %s for blob %s: blob %s holds it (one of the two claims is false); the file "
                "is served without Xet", xet_hash, sha256, holder)

_WRITES = threading.Lock()  # one connection serves every pull thread: one chunk-index transaction at a time


class XetChunks:
    def xet_chunk_rows(self, xorb: str, start: int, end: int) -> list[tuple]:
        """(idx, sha256 hex, file_offset, length) of the chunks [start, end) of `xorb`
        that the mirror has recorded."""
        rows = self.conn.execute(
            "SELECT idx, lower(hex(sha256)), file_offset, length FROM xet_chunks "
            "WHERE xorb = ? AND idx >= ? AND idx < ? ORDER BY idx", (bytes.fromhex(xorb), start, end))
        return rows.fetchall()

    def put_xet_chunks(self, sha256: str, rows: list[tuple]) -> None:
        """Record `rows` of (xorb hex, idx, file_offset, length) as held in blob `sha256`
        (this host's own knowledge: derived data, written here directly)."""
        blob = bytes.fromhex(sha256)
        with _WRITES, self.transaction():
            self.conn.executemany(
                "INSERT OR REPLACE INTO xet_chunks VALUES (?, ?, ?, ?, ?)",
                [(bytes.fromhex(x), i, blob, at, n) for x, i, at, n in rows])

    def put_xet_layout(self, sha256: str, xet_hash: str, layout: bytes) -> bool:
        """Record blob `sha256`'s Xet file hash and packed layout (through the mirror's writer); see
        `_put_xet_layout` for when it is refused (False)."""
        with _WRITES, self.transaction():
            return self._put_xet_layout(sha256, xet_hash, layout)

    def _put_xet_layout(self, sha256: str, xet_hash: str, layout: bytes) -> bool:
        """Record (or replace) blob `sha256`'s Xet hash and layout; False, nothing written, when another blob holds
        that hash. A Xet file hash names one content, so one of the two claims is false (an upstream's or another
        host's), and serve answers a reconstruction with the bytes of the one blob that holds the hash: the first
        claim stands (`refused_xet_claim` says so), the file of the other is served by plain resolve."""
        try:
            self.conn.execute("INSERT INTO xet_files VALUES (?, ?, ?) ON CONFLICT (sha256) DO UPDATE SET "
                              "xet_hash = excluded.xet_hash, layout = excluded.layout", (sha256, xet_hash, layout))
        except sqlite3.IntegrityError:  # the unique index on xet_hash (migration m011)
            return False
        return True

    def replace_xet_layout(self, false_holder: str, sha256: str, xet_hash: str, layout: bytes) -> None:
        """Drop blob `false_holder`'s layout (its claim to `xet_hash` found false) and record `sha256`'s, at once."""
        with _WRITES, self.transaction():
            self.conn.execute("DELETE FROM xet_files WHERE sha256 = ?", (false_holder,))
            self._put_xet_layout(sha256, xet_hash, layout)

    def xet_hashes(self, sha256s: list[str]) -> dict[str, str]:
        """{sha256: Xet file hash} of the blobs among `sha256s` that have a Xet layout."""
        found = {}
        for part in chunks(list(dict.fromkeys(sha256s))):
            marks = ", ".join("?" * len(part))
            found.update(self.conn.execute(f"SELECT sha256, xet_hash FROM xet_files WHERE sha256 IN ({marks})",
                                           part).fetchall())
        return found

    def xet_layout(self, sha256: str) -> bytes | None:
        """The packed layout of blob `sha256`, or None."""
        row = self.conn.execute("SELECT layout FROM xet_files WHERE sha256 = ?", (sha256,)).fetchone()
        return row[0] if row else None

    def path_of_blob(self, model_key: str, commit: str, sha256: str) -> str | None:
        """The path of a file of that revision whose blob is `sha256` (the first by path), or None."""
        row = self.conn.execute("SELECT path FROM files WHERE model_key = ? AND commit_id = ? AND sha256 = ? "
                                "ORDER BY path LIMIT 1", (model_key, commit, sha256)).fetchone()
        return row[0] if row else None

    def xet_file(self, xet_hash: str) -> tuple[str, bytes] | None:
        """(sha256, packed layout) of the blob with that Xet file hash (one at most: migration m011), or None."""
        return self.conn.execute("SELECT sha256, layout FROM xet_files WHERE xet_hash = ?", (xet_hash,)).fetchone()
