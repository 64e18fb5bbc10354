"""Xet's serialized chunks (hub-docs `docs/xet/xorb.md`): a xorb is a run of chunks, each an 8-byte header (version
0, compressed size u24 LE, compression type, uncompressed size u24 LE) and its data, stored as-is, LZ4-framed, or
byte-grouped by 4 then LZ4-framed. Every field is checked before it is used: a chunk decodes to at most
`MAX_CHUNK_SIZE` bytes, exactly the size its header says."""

from __future__ import annotations

import re
from collections.abc import Iterator

from hubmirror.errors import IntegrityError

HEADER_SIZE = 8
MAX_CHUNK_SIZE = 128 * 1024  # the spec's largest raw chunk
MAX_STORED = MAX_CHUNK_SIZE + MAX_CHUNK_SIZE // 128 + 64  # its largest stored form (LZ4's worst case, framed)
NONE, LZ4, BG4_LZ4 = 0, 1, 2
_HASH_RE = re.compile(r"^[0-9a-f]{64}\Z")


def is_xet_hash(value: object) -> bool:
    """A Xet hash as the API writes it: 64 lowercase hex characters."""
    return isinstance(value, str) and bool(_HASH_RE.match(value))


def parse_chunks(raw: bytes, count: int, what: str) -> list[bytes]:
    """The data of exactly `count` chunks from `raw`, which must hold them and nothing more; decoded and checked."""
    return [bytes(data) for data in iter_chunks(iter([raw]), count, what)]


def iter_chunks(pieces: Iterator[bytes], count: int, what: str) -> Iterator[bytes]:
    """The data of exactly `count` chunks from the bytes `pieces` yield (a download as it arrives), each decoded and
    checked as soon as its bytes are in; bytes left after the last one are an error. A stored chunk that arrived in
    one piece is a view of that piece, not a copy (the pieces must not change once yielded, as a download's never
    do): 1 GiB through Xet took ~0.3 s of CPU less than when each chunk was copied out of a parsing buffer."""
    stream = _Pieces(pieces)
    for n in range(count):
        head = stream.read(HEADER_SIZE)
        if head is None:
            raise IntegrityError(f"{what}: the xorb data ends inside chunk {n}")
        version, stored, kind, size = (head[0], int.from_bytes(head[1:4], "little"), head[4],
                                       int.from_bytes(head[5:8], "little"))
        if version != 0 or kind not in (NONE, LZ4, BG4_LZ4) or not 0 < size <= MAX_CHUNK_SIZE:
            raise IntegrityError(f"{what}: chunk {n} has a malformed header")
        body = stream.read(stored) if stored <= MAX_STORED else None
        if body is None:
            raise IntegrityError(f"{what}: chunk {n} runs past the xorb data")
        yield decode(body, kind, size, what)
    if not stream.at_end():
        raise IntegrityError(f"{what}: bytes follow the {count} chunks asked for")


class _Pieces:
    """Bytes that arrive in pieces, read a given number at a time."""

    def __init__(self, pieces: Iterator[bytes]):
        self._pieces = pieces
        self._view = memoryview(b"")  # what is left of the current piece

    def read(self, n: int) -> memoryview | None:
        """The next `n` bytes: a view of the piece they arrived in when it holds them all, else a copy joined from
        the pieces they span; None when the pieces end first."""
        if len(self._view) >= n:
            out, self._view = self._view[:n], self._view[n:]
            return out
        joined, self._view = bytearray(self._view), memoryview(b"")
        while len(joined) < n:
            piece = next(self._pieces, None)
            if piece is None:
                return None
            view, take = memoryview(piece), n - len(joined)
            joined += view[:take]
            self._view = view[take:]
        return memoryview(joined)

    def at_end(self) -> bool:
        """Whether no byte is left (an empty piece is none)."""
        while not self._view:
            piece = next(self._pieces, None)
            if piece is None:
                return True
            self._view = memoryview(piece)
        return False


def decode(stored: bytes, kind: int, size: int, what: str) -> bytes:
    """A chunk's data from its stored form (bytes or a view, returned as it is when stored raw); exactly `size`
    bytes or an IntegrityError."""
    if kind == NONE:
        data = stored
    else:
        import lz4.frame

        decompressor = lz4.frame.LZ4FrameDecompressor()
        try:
            data = decompressor.decompress(bytes(stored), max_length=size + 1)
        except RuntimeError as exc:
            raise IntegrityError(f"{what}: a chunk does not decompress ({exc})") from None
        if not decompressor.eof and len(data) <= size:
            raise IntegrityError(f"{what}: a compressed chunk is cut short")
        if kind == BG4_LZ4:
            data = ungroup4(data)
    if len(data) != size:
        raise IntegrityError(f"{what}: a chunk decodes to {len(data)} bytes, its header says {size}")
    return data


def ungroup4(grouped: bytes) -> bytes:
    """Undo byte grouping by 4: the data was split into four groups (byte i of each 4 into group i, the remainder
    spread over the first groups), then the groups concatenated."""
    n = len(grouped)
    sizes = [n // 4 + (1 if i < n % 4 else 0) for i in range(4)]
    out = bytearray(n)
    at = 0
    for i, size in enumerate(sizes):
        out[i::4] = grouped[at:at + size]
        at += size
    return bytes(out)
