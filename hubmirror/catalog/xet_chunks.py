"""Mixin of Catalog: where the mirror holds Xet chunks (table `xet_chunks`, migration m010; hubmirror.xet.chunks)."""

from __future__ import annotations

import threading

from hubmirror.catalog.connection import chunks

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

    def put_xet_layout(self, sha256: str, xet_hash: str, layout: bytes) -> None:
        """Record blob `sha256`'s Xet file hash and packed layout (through the mirror's writer)."""
        with _WRITES, self.transaction():
            self._put_xet_layout(sha256, xet_hash, layout)

    def _put_xet_layout(self, sha256: str, xet_hash: str, layout: bytes) -> None:
        self.conn.execute("INSERT OR REPLACE INTO xet_files VALUES (?, ?, ?)", (sha256, xet_hash, layout))

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
        """(sha256, packed layout) of a blob with that Xet file hash, or None."""
        return self.conn.execute("SELECT sha256, layout FROM xet_files WHERE xet_hash = ? LIMIT 1",
                                 (xet_hash,)).fetchone()
