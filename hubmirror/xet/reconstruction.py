"""A CAS's answer to a reconstruction query (hub-docs `docs/xet/download-protocol.md`), checked before any of it is
used: the terms (chunk ranges of xorbs, in file order) and for each the signed URL and byte range its chunks are read
from. v2 answers carry `xorbs` (several ranges a URL), v1 answers `fetch_info` (one range a URL); both become the same
`Reconstruction`. Everything an upstream says is bounded: the number of terms, each term's size, each range's bytes,
and a URL may lead only where a redirect from the CAS may (`hubmirror.fetch.redirects`)."""

from __future__ import annotations

from dataclasses import dataclass

from hubmirror.errors import IntegrityError
from hubmirror.fetch.redirects import check_redirect
from hubmirror.xet.format import HEADER_SIZE, MAX_CHUNK_SIZE, MAX_STORED, is_xet_hash

MAX_TERMS = 1 << 17  # a segment of SEGMENT_BYTES in chunks of 8 KiB, the chunker's smallest but a file's last
SEGMENT_BYTES = 1 << 30  # a file is asked for in segments of this many bytes (the spec suggests batches)


@dataclass(frozen=True)
class Fetch:
    """A signed URL and the chunks [chunk_start, chunk_end) of one xorb at bytes [byte_start, byte_end) of it."""

    url: str
    chunk_start: int
    chunk_end: int
    byte_start: int
    byte_end: int


@dataclass(frozen=True)
class Term:
    """Chunks [start, end) of `xorb`, `unpacked` bytes decoded, read through `fetch`."""

    xorb: str
    start: int
    end: int
    unpacked: int
    fetch: Fetch


@dataclass(frozen=True)
class Reconstruction:
    """The terms of a byte range of a file, and how many bytes of the first to skip."""

    offset: int
    terms: list[Term]


def _int(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise IntegrityError(f"{what}: the reconstruction holds a malformed number")
    return value


def _span(value: object, what: str) -> tuple[int, int]:
    """A {start, end} object as a pair (chunk ranges end-exclusive, byte ranges end-inclusive: the caller knows)."""
    if not isinstance(value, dict):
        raise IntegrityError(f"{what}: the reconstruction holds a malformed range")
    return _int(value.get("start"), what), _int(value.get("end"), what)


def _fetch(url: object, chunks: object, byte_range: object, cas_url: str, what: str) -> Fetch:
    if not isinstance(url, str) or len(url) > 16384:
        raise IntegrityError(f"{what}: the reconstruction holds a malformed URL")
    check_redirect(cas_url, url, how="sent the client to")
    start, end = _span(chunks, what)
    first, last = _span(byte_range, what)
    if not start < end or not first <= last or last - first + 1 > (end - start) * (HEADER_SIZE + MAX_STORED):
        raise IntegrityError(f"{what}: the reconstruction gives a byte range that cannot hold its chunks")
    return Fetch(url, start, end, first, last + 1)


def _fetches(answer: dict, cas_url: str, what: str) -> dict[str, list[Fetch]]:
    """xorb hash -> its fetches, from a v2 `xorbs` or a v1 `fetch_info` map."""
    found: dict[str, list[Fetch]] = {}
    if isinstance(answer.get("xorbs"), dict):
        for xorb, entries in answer["xorbs"].items():
            for entry in entries if isinstance(entries, list) else [None]:
                if not isinstance(entry, dict) or not isinstance(entry.get("ranges"), list):
                    raise IntegrityError(f"{what}: the reconstruction holds a malformed fetch entry")
                found.setdefault(xorb, []).extend(
                    _fetch(entry.get("url"), r.get("chunks") if isinstance(r, dict) else None,
                           r.get("bytes") if isinstance(r, dict) else None, cas_url, what)
                    for r in entry["ranges"])
    elif isinstance(answer.get("fetch_info"), dict):
        for xorb, entries in answer["fetch_info"].items():
            for entry in entries if isinstance(entries, list) else [None]:
                if not isinstance(entry, dict):
                    raise IntegrityError(f"{what}: the reconstruction holds a malformed fetch entry")
                found.setdefault(xorb, []).append(
                    _fetch(entry.get("url"), entry.get("range"), entry.get("url_range"), cas_url, what))
    else:
        raise IntegrityError(f"{what}: the reconstruction says where no chunk is")
    if sum(len(f) for f in found.values()) > MAX_TERMS:
        raise IntegrityError(f"{what}: the reconstruction lists over {MAX_TERMS} ranges")
    return found


def parse_reconstruction(answer: object, cas_url: str, wanted: int, what: str) -> Reconstruction:
    """The checked reconstruction of `wanted` bytes of a file from a CAS's JSON `answer`."""
    if not isinstance(answer, dict) or not isinstance(answer.get("terms"), list):
        raise IntegrityError(f"{what}: the CAS answered something that is not a reconstruction")
    raw_terms = answer["terms"]
    if not raw_terms or len(raw_terms) > MAX_TERMS:
        raise IntegrityError(f"{what}: the reconstruction holds {len(raw_terms)} terms")
    fetches = _fetches(answer, cas_url, what)
    terms, total = [], 0
    for raw in raw_terms:
        if not isinstance(raw, dict) or not is_xet_hash(raw.get("hash")):
            raise IntegrityError(f"{what}: the reconstruction holds a malformed term")
        start, end = _span(raw.get("range"), what)
        unpacked = _int(raw.get("unpacked_length"), what)
        if not start < end or not 0 < unpacked <= (end - start) * MAX_CHUNK_SIZE:
            raise IntegrityError(f"{what}: a term's size does not fit its chunks")
        fetch = next((f for f in fetches.get(raw["hash"], ()) if f.chunk_start <= start and end <= f.chunk_end), None)
        if fetch is None:
            raise IntegrityError(f"{what}: the reconstruction says nowhere to read chunks {start}-{end} of a xorb")
        terms.append(Term(raw["hash"], start, end, unpacked, fetch))
        total += unpacked
    offset = _int(answer.get("offset_into_first_range", 0), what)
    if offset >= terms[0].unpacked or total - offset < wanted or total - terms[-1].unpacked - offset >= wanted:
        raise IntegrityError(f"{what}: the reconstruction's terms do not cover the {wanted} bytes asked for, "
                             "or cover far more")
    return Reconstruction(offset, terms)
