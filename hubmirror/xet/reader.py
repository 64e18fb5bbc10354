"""Reading a file from a Xet CAS as the official client (hf_xet) reads it: a reconstruction query for a byte range
(`GET {cas}/v2/reconstructions/{file}` with `Range`, falling back to v1 on 404/501, with the CAS read token as bearer
and the client's own headers), then one ranged GET per xorb range at the signed URLs it names (no Authorization
there), the chunks decoded and put together in term order. Unlike hf_xet 1.8, which keeps no chunk cache, chunks the
mirror already holds (`hubmirror.xet.chunks.ChunkIndex`) are read from its store and only the rest is fetched: a new
revision that changes 1 % of a file moves about 1 % of it.

The result is a `Download` of bytes [start, end) of the file, so the core resumes, retries and verifies it as any
other download; every chunk written is noted for the index, which records them once the whole file verified."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from urllib.parse import quote

from hubmirror.errors import HubmirrorError, IntegrityError
from hubmirror.fetch.download import Download
from hubmirror.fetch.http import CHUNK_SIZE, json_body, open_bounded, request
from hubmirror.xet.chunks import ChunkIndex, Place
from hubmirror.xet.format import iter_chunks
from hubmirror.xet.reconstruction import SEGMENT_BYTES, Term, parse_reconstruction

MAX_RECONSTRUCTION_JSON = 32 << 20  # a segment's answer (1 GiB in at most 131,072 terms) is far smaller
YIELD_BYTES = CHUNK_SIZE  # the stream's pieces, as the core's other downloads


@dataclass(frozen=True)
class CasAccess:
    """Where the CAS is and the read token for it (from the Hub's xet-read-token route)."""

    cas_url: str
    token: str
    expires: int


@dataclass(frozen=True)
class XetSource:
    """How to reach one file's chunks: its Xet hash and size, the token (`access(renew)`: a fresh one when `renew`),
    the client headers sent with every request (never the Hub's Authorization), the HTTP session and timeout."""

    file_hash: str
    size: int
    access: Callable[[bool], CasAccess]
    headers: dict[str, str]
    session: object
    timeout: float
    what: str


class _NotServed(HubmirrorError):
    """The CAS does not serve this reconstruction route (404/501): the client tries v1."""


class _TokenRefused(HubmirrorError):
    """The CAS refused the read token (401): the client asks the Hub for a new one, once."""


def open_xet(src: XetSource, start: int, end: int, index: ChunkIndex | None, sha256: str | None) -> Download:
    """Bytes [start, end) of the file, chunks the mirror holds read from its store; each chunk written is noted in
    `index` under the `sha256` the file must verify as."""
    return Download(start=start, chunks=_stream(src, start, end, index, sha256))


def _stream(src: XetSource, start: int, end: int, index: ChunkIndex | None, sha256: str | None) -> Iterator[bytes]:
    """The bytes of [start, end) in pieces of about YIELD_BYTES (chunks are ~64 KiB: a write, a hash update and a
    range note each would cost more than the bytes)."""
    held: list[bytes] = []
    size = 0
    for data in _chunk_data(src, start, end, index, sha256):
        held.append(data)
        size += len(data)
        if size >= YIELD_BYTES:
            yield b"".join(held)
            held, size = [], 0
    if held:
        yield b"".join(held)


def _chunk_data(src: XetSource, start: int, end: int, index: ChunkIndex | None,
                sha256: str | None) -> Iterator[bytes]:
    """The bytes of [start, end) chunk by chunk, a reconstruction per segment of at most SEGMENT_BYTES, term after
    term; each term's decoded size checked against what the CAS said of it."""
    pos = start
    while pos < end:
        stop = min(end, pos + SEGMENT_BYTES)
        recon = _reconstruction(src, pos, stop)
        at = pos - recon.offset  # file offset of the first term's first byte
        for term in recon.terms:
            if at >= stop:
                break
            term_bytes, cut, written = 0, False, []
            try:
                with closing(_term_chunks(src, term, index, sha256)) as chunks:
                    for data, idx in chunks:
                        written.append((term.xorb, idx, at, len(data)))
                        lo, hi = max(pos, at), min(stop, at + len(data))
                        if lo < hi:
                            yield data[lo - at:hi - at]
                        at += len(data)
                        term_bytes += len(data)
                        if at >= stop and stop < src.size:  # a piece is complete: the rest of the term is not read
                            cut = True
                            break
            finally:  # also when the reader stops early (a piece cut short): what it read of the term is noted
                if index is not None and sha256:
                    index.note(sha256, src.file_hash, written)
            if not cut and term_bytes != term.unpacked:
                raise IntegrityError(f"{src.what}: a term decodes to {term_bytes} bytes, the CAS said "
                                     f"{term.unpacked}")
        if at < stop:
            raise IntegrityError(f"{src.what}: the CAS's chunks end at byte {at}, before byte {stop}")
        pos = stop


def _reconstruction(src: XetSource, start: int, stop: int):
    """The checked reconstruction of bytes [start, stop): v2, else v1 where the CAS serves no v2; a token the CAS
    refuses is renewed once."""
    version, renewed = "v2", False
    while True:
        access = src.access(renewed)
        url = f"{access.cas_url.rstrip('/')}/{version}/reconstructions/{quote(src.file_hash, safe='')}"
        headers = {**src.headers, "Authorization": f"Bearer {access.token}", "Range": f"bytes={start}-{stop - 1}"}
        try:
            resp = request(src.session, "GET", url, headers=headers, timeout=src.timeout, stream=True,
                           errors=lambda r, v=version: _cas_error(r, src.what, v))
        except _TokenRefused:
            if renewed:
                raise
            renewed = True
            continue
        except _NotServed:  # (raised for v2 only)
            version = "v1"
            continue
        return parse_reconstruction(json_body(resp, MAX_RECONSTRUCTION_JSON), access.cas_url, stop - start, src.what)


def _cas_error(resp, what: str, version: str) -> HubmirrorError | None:
    status = resp.status_code
    if status < 400:
        return None
    if status in (404, 501) and version == "v2":
        return _NotServed(f"{what}: the CAS has no v2 reconstructions")
    if status == 401:
        return _TokenRefused(f"{what}: the CAS refused the read token (HTTP 401)")
    if status == 404:
        return IntegrityError(f"{what}: the CAS does not know the file its Hub names (HTTP 404)")
    return HubmirrorError(f"{what}: the CAS answered HTTP {status}")


def _term_chunks(src: XetSource, term: Term, index: ChunkIndex | None,
                 sha256: str | None) -> Iterator[tuple[bytes, int]]:
    """(data, chunk index) of each chunk of `term`, in order, as they arrive: from the store when the mirror holds
    every chunk of the term (and the file, expected as `sha256`, has not failed with chunks from it), else the
    term's signed range from the CAS (where a chunk lies inside a serialized xorb depends on the server that
    serialized it, so no sub-range is computed from what another server sent)."""
    trusted = index is not None and index.trusts(sha256)
    local = index.places(term.xorb, term.start, term.end) if trusted else {}
    if len(local) == term.end - term.start:
        index.took_from_store(sha256)
        yield from _local_chunks(index, local, term.start, term.end)
        return
    fetch = term.fetch
    count = fetch.chunk_end - fetch.chunk_start
    with closing(_xorb_chunks(src, fetch.url, fetch.byte_start, fetch.byte_end, count)) as chunks:
        for idx, chunk in enumerate(chunks, fetch.chunk_start):
            if term.start <= idx < term.end:
                yield chunk, idx
            if idx + 1 >= term.end:
                return  # the rest of the range is other terms' (a range shared by terms is read by each)


def _local_chunks(index: ChunkIndex, local: dict[int, Place], start: int, end: int) -> Iterator[tuple[bytes, int]]:
    """Chunks [start, end), all held, read from the store a run of back-to-back chunks at a time."""
    run: list[tuple[int, Place]] = []
    for idx in range(start, end + 1):
        place = local.get(idx) if idx < end else None
        if run and (place is None or run[-1][1].sha256 != place.sha256
                    or run[-1][1].file_offset + run[-1][1].length != place.file_offset):
            data, at = index.read([p for _, p in run]), 0
            for i, p in run:
                yield data[at:at + p.length], i
                at += p.length
            run = []
        if place is not None:
            run.append((idx, place))


def _xorb_chunks(src: XetSource, url: str, start: int, end: int, count: int) -> Iterator[bytes]:
    """The `count` chunks at bytes [start, end) of a xorb at its signed URL (the client's headers, no
    Authorization), each as soon as it has arrived."""
    download = open_bounded(src.session, url, start, end, headers=src.headers, timeout=src.timeout)
    if download is None:
        raise IntegrityError(f"{src.what}: the xorb store answered a range request with a whole object")
    try:
        yield from iter_chunks(download.chunks, count, src.what)
    finally:
        download.close()
