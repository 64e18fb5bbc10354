"""Mixin of Catalog: where the mirror holds Xet chunks (table `xet_chunks`, migration m010; hubmirror.xet.chunks)."""

from __future__ import annotations

import threading

_WRITES = threading.Lock()  # one connection serves every pull thread: one chunk-index transaction at a time


class XetChunks:
    def xet_chunk_rows(self, xorb: str, start: int, end: int) -> list[tuple]:
        """(idx, sha256 hex, file_offset, length, xorb_offset, serialized) of the chunks [start, end) of `xorb`
        that the mirror has recorded."""
        rows = self.conn.execute(
            "SELECT idx, lower(hex(sha256)), file_offset, length, xorb_offset, serialized FROM xet_chunks "
            "WHERE xorb = ? AND idx >= ? AND idx < ? ORDER BY idx", (bytes.fromhex(xorb), start, end))
        return rows.fetchall()

    def put_xet_chunks(self, sha256: str, rows: list[tuple]) -> None:
        """Record `rows` of (xorb hex, idx, file_offset, length, xorb_offset, serialized) as held in blob `sha256`."""
        blob = bytes.fromhex(sha256)
        with _WRITES, self.transaction():
            self.conn.executemany(
                "INSERT OR REPLACE INTO xet_chunks VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(bytes.fromhex(x), i, blob, fo, n, xo, s) for x, i, fo, n, xo, s in rows])
