"""A file's chunk layout as Xet sees it: its terms in file order, each a run of chunks [start, start + n) of one xorb
with every chunk's length. Packed for the catalog as, per term, the xorb's 32 bytes, start and n (u32 LE) and the n
lengths (u32 LE)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from hubmirror.xet.format import MAX_CHUNK_SIZE


@dataclass(frozen=True)
class LayoutTerm:
    xorb: str
    start: int
    lengths: tuple[int, ...]

    @property
    def end(self) -> int:
        return self.start + len(self.lengths)

    @property
    def size(self) -> int:
        return sum(self.lengths)


def layout_from_chunks(chunks: list[tuple[int, str, int, int]], size: int) -> list[LayoutTerm] | None:
    """The terms of a file from its chunks as (file_offset, xorb, idx, length), or None unless they cover bytes
    [0, size) back to back."""
    terms: list[LayoutTerm] = []
    at = 0
    for offset, xorb, idx, length in sorted(chunks):
        if offset != at:
            return None
        last = terms[-1] if terms else None
        if last is not None and last.xorb == xorb and last.end == idx:
            terms[-1] = LayoutTerm(xorb, last.start, last.lengths + (length,))
        else:
            terms.append(LayoutTerm(xorb, idx, (length,)))
        at += length
    return terms if at == size else None


def pack_layout(terms: list[LayoutTerm]) -> bytes:
    return b"".join(bytes.fromhex(t.xorb) + struct.pack(f"<II{len(t.lengths)}I", t.start, len(t.lengths), *t.lengths)
                    for t in terms)


def unpack_layout(raw: bytes) -> list[LayoutTerm]:
    """The terms of a packed layout; ValueError where it is malformed (a term cut short or empty, a chunk empty or
    longer than the spec's largest): a layout may come from another host or a bundle."""
    terms, at = [], 0
    while at < len(raw):
        if at + 40 > len(raw):
            raise ValueError("a layout term is cut short")
        start, count = struct.unpack_from("<II", raw, at + 32)
        if count == 0 or at + 40 + 4 * count > len(raw):
            raise ValueError("a layout term is empty or cut short")
        lengths = struct.unpack_from(f"<{count}I", raw, at + 40)
        if not all(0 < n <= MAX_CHUNK_SIZE for n in lengths):
            raise ValueError("a layout chunk is empty or longer than a chunk can be")
        terms.append(LayoutTerm(raw[at:at + 32].hex(), start, lengths))
        at += 40 + 4 * count
    return terms
