"""Xet shards (hub-docs `docs/xet/shard.md`, version 2): the metadata an uploading client sends its CAS. A shard's
file-info section gives each file's Xet hash and reconstruction terms (a xorb's chunks [start, end) and how many bytes
they decode to), its CAS-info section every new xorb's chunks and their lengths. Entries are 48 bytes; each section
ends with a bookend entry (32 bytes 0xff). Every count is checked against the bytes that are there before it is used.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from hubmirror.xet.format import MAX_CHUNK_SIZE

ENTRY = 48  # every entry, and the header, is 48 bytes
BOOKEND = b"\xff" * 32
WITH_VERIFICATION, WITH_METADATA_EXT = 1 << 31, 1 << 30  # file flags: verification entries, a sha256 entry follow


def hash_hex(raw: bytes) -> str:
    """A Xet hash as the API writes it: each 8-byte group as a little-endian u64, in hex (spec: api.md)."""
    return "".join(raw[i:i + 8][::-1].hex() for i in range(0, 32, 8))


@dataclass(frozen=True)
class ShardTerm:
    """One reconstruction term: chunks [start, end) of `xorb`, `unpacked` bytes once decoded."""

    xorb: str
    start: int
    end: int
    unpacked: int


@dataclass(frozen=True)
class ShardFile:
    terms: tuple[ShardTerm, ...]
    sha256: str | None  # the metadata extension's, where the client sent one

    @property
    def size(self) -> int:
        return sum(t.unpacked for t in self.terms)


def parse_shard(data: bytes) -> tuple[dict[str, ShardFile], dict[str, list[int]]]:
    """{file hash: its terms} and {xorb hash: its chunks' lengths} of a shard; ValueError on anything malformed."""
    if len(data) < ENTRY or struct.unpack_from("<Q", data, 32)[0] != 2:
        raise ValueError("not a version 2 shard")
    at = ENTRY

    def entries(count: int) -> list[bytes]:
        nonlocal at
        if count < 0 or at + count * ENTRY > len(data):
            raise ValueError("the shard is cut short")
        at += count * ENTRY
        return [data[i:i + ENTRY] for i in range(at - count * ENTRY, at, ENTRY)]

    files: dict[str, ShardFile] = {}
    while (head := entries(1)[0])[:32] != BOOKEND:
        flags, count = struct.unpack_from("<II", head, 32)
        terms = []
        for raw in entries(count):
            _cas_flags, unpacked, start, end = struct.unpack_from("<IIII", raw, 32)
            if end <= start or unpacked == 0:
                raise ValueError("a shard term is empty")
            terms.append(ShardTerm(hash_hex(raw[:32]), start, end, unpacked))
        if flags & WITH_VERIFICATION:
            entries(count)
        sha256 = entries(1)[0][:32].hex() if flags & WITH_METADATA_EXT else None
        files[hash_hex(head[:32])] = ShardFile(tuple(terms), sha256)
    xorbs: dict[str, list[int]] = {}
    while (head := entries(1)[0])[:32] != BOOKEND:
        (count,) = struct.unpack_from("<I", head, 36)
        lengths = [struct.unpack_from("<I", raw, 36)[0] for raw in entries(count)]
        if not all(0 < n <= MAX_CHUNK_SIZE for n in lengths):
            raise ValueError("a shard chunk is empty or longer than a chunk can be")
        xorbs[hash_hex(head[:32])] = lengths
    return files, xorbs
