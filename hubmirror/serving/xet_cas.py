"""serve's Xet storage: what the Hub's CAS answers a downloading client, from the blobs the mirror holds whole.

A blob read through Xet has its Xet file hash and chunk layout in the catalog (`xet_files`, hubmirror.xet.layout).
For such a file, `/resolve` carries `X-Xet-Hash` and the `xet-auth` link, the tree its `xetHash`, and:

- `GET /api/{models|datasets}/{repo}/xet-read-token/{rev}` (behind the mirror's access control, as every repo
  route): a CAS token for that repo and revision, in the `X-Xet-*` headers and as `{accessToken, exp, casUrl}`.
  The CAS is this server, under `/xet-cas`; the token is signed with the site's session key (every host of a fleet
  honours it) and expires in `TOKEN_SECONDS`.
- `GET /xet-cas/v2/reconstructions/{xet_hash}` (and `/v1/…`, `Range` honoured): the file's terms — the upstream's
  own xorb hashes and chunk ranges, so a new revision's reconstruction names the chunks the old one did — each with
  a signed URL of its own, for a file of the revision the token names only.
- `GET /xet-cas/xorb/{xorb}?f=…&t=…&e=…&s=…`: a term's chunks serialized uncompressed (8-byte header, then the
  bytes) straight from the stored blob: no second copy of any byte is kept; `Range` honoured within the term. A
  blob in a store others can write to (a bucket) is hashed whole once per version of its bytes before any range of
  it is sent, and read only while it is still that version (hubmirror.serving.blob_checks), as plain ranges are.

A quarantined blob gets no reconstruction; a token for one repo opens no other's files."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import time
from collections.abc import Iterator
from types import SimpleNamespace

from starlette.responses import JSONResponse, Response, StreamingResponse

from hubmirror.serving.blob_checks import ensure_checked
from hubmirror.serving.hf_api import HubError
from hubmirror.xet.format import HEADER_SIZE, is_xet_hash
from hubmirror.xet.layout import LayoutTerm, unpack_layout

TOKEN_SECONDS = 3600
READ_SIZE = 4 << 20
IOV_MAX = 1024  # buffers one preadv takes (Linux's UIO_MAXIOV)
_RANGE = re.compile(r"bytes=(\d{1,19})-(\d{0,19})", re.ASCII)


def asked_span(range_header: str | None, size: int) -> tuple[int, int]:
    """[first, last] (inclusive) of `size` bytes a `Range: bytes=a-[b]` asks for; the whole for none or another
    form; first > last when it starts past the end."""
    if range_header and (match := _RANGE.fullmatch(range_header.strip())):
        return int(match.group(1)), min(size - 1, int(match.group(2) or size - 1))
    return 0, size - 1


def serialized_size(term: LayoutTerm) -> int:
    return term.size + HEADER_SIZE * len(term.lengths)


class XetCas:
    """Tokens, reconstructions and xorb bodies for one server (its view of the mirror, its signing key)."""

    def __init__(self, view, secret: bytes):
        self.view = view
        self._key = hmac.new(secret, b"hubmirror xet-cas", hashlib.sha256).digest()
        self.reconstructions = 0  # answered (tests and benchmarks read these)
        self.ranges = 0

    # -- tokens and signatures ---------------------------------------------------------------------------------------

    def _sign(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    def token_response(self, base_url: str, repo: str, model_key: str, commit: str, principal) -> Response:
        """The xet-read-token answer for a revision of `repo` (served id) that `principal` may read (checked by the
        caller); who it was issued to rides in the token, for the audit log of the reads made with it."""
        expires = int(time.time()) + TOKEN_SECONDS
        claim = base64.urlsafe_b64encode(json.dumps(
            [expires, repo, model_key, commit, principal.name, principal.kind, principal.token_id]).encode()).decode()
        token = f"{claim}.{self._sign(claim)}"
        cas_url = f"{base_url}/xet-cas"
        return JSONResponse({"accessToken": token, "exp": expires, "casUrl": cas_url},
                            headers={"X-Xet-Cas-Url": cas_url, "X-Xet-Access-Token": token,
                                     "X-Xet-Token-Expiration": str(expires)})

    def _claims(self, authorization: str) -> list:
        """[expires, served repo id, model key, commit, principal's name, kind, token id] of a CAS token (this
        server signed them: nothing else can be in one); a 401 for a missing, forged or expired token."""
        token = authorization[7:] if authorization.startswith("Bearer ") else ""
        claim, _, signature = token.partition(".")
        if not claim or not hmac.compare_digest(signature, self._sign(claim)):
            raise HubError(401, None, "invalid or missing CAS token")
        claims = json.loads(base64.urlsafe_b64decode(claim))
        if claims[0] < time.time():
            raise HubError(401, None, "expired CAS token")
        return claims

    # -- reconstructions ---------------------------------------------------------------------------------------------

    def reconstruction(self, authorization: str, version: str, file_hash: str, range_header: str | None,
                       base_url: str, audited) -> Response:
        """A reconstruction answer; `audited` (the request's state) gets who and what for the audit log: the read
        of a file through Xet is audited here, where the file is named (its bytes go by the signed URLs)."""
        _, repo, model_key, commit, name, kind, token_id = self._claims(authorization)
        audited.principal = SimpleNamespace(name=name, kind=kind, token_id=token_id)
        audited.file_request = True
        if not is_xet_hash(file_hash):
            raise HubError(400, None, "malformed file id")
        with self.view.catalog() as catalog:
            found = catalog.xet_file(file_hash)
            path = catalog.path_of_blob(model_key, commit, found[0]) if found is not None else None
        audited.read = (repo, commit, path)
        if path is None:
            raise HubError(404, None, "file not found")
        sha256, packed = found
        if self.view.is_quarantined(sha256):
            raise HubError(403, None, "this file is quarantined by the mirror's admission scan")
        terms = unpack_layout(packed)
        size = sum(t.size for t in terms)
        first, last = asked_span(range_header, size)
        if first > last:
            raise HubError(416, None, "range start past the end of the file")
        expires = int(time.time()) + TOKEN_SECONDS
        chosen, at, offset = [], 0, 0
        for index, term in enumerate(terms):
            if at + term.size > first and at <= last:
                if not chosen:
                    offset = first - at
                chosen.append((index, term))
            at += term.size
        answer = {"offset_into_first_range": offset,
                  "terms": [{"hash": t.xorb, "unpacked_length": t.size, "range": {"start": t.start, "end": t.end}}
                            for _, t in chosen]}
        fetches: dict[str, list[dict]] = {}
        for index, term in chosen:
            url = self._xorb_url(base_url, term.xorb, sha256, index, expires)
            span = {"start": 0, "end": serialized_size(term) - 1}
            if version == "v2":
                entry = {"url": url, "ranges": [{"chunks": {"start": term.start, "end": term.end}, "bytes": span}]}
            else:
                entry = {"range": {"start": term.start, "end": term.end}, "url": url, "url_range": span}
            fetches.setdefault(term.xorb, []).append(entry)
        answer["xorbs" if version == "v2" else "fetch_info"] = fetches
        self.reconstructions += 1
        return JSONResponse(answer)

    def _xorb_url(self, base_url: str, xorb: str, sha256: str, index: int, expires: int) -> str:
        query = f"f={sha256}&t={index}&e={expires}"
        return f"{base_url}/xet-cas/xorb/{xorb}?{query}&s={self._sign(xorb + '?' + query)}"

    # -- xorb bodies -------------------------------------------------------------------------------------------------

    def xorb(self, xorb: str, params, range_header: str | None) -> Response:
        """A term's chunks, serialized uncompressed, from the blob (a signed URL of `reconstruction`)."""
        query = f"f={params.get('f', '')}&t={params.get('t', '')}&e={params.get('e', '')}"
        if not hmac.compare_digest(params.get("s", ""), self._sign(xorb + "?" + query)):
            raise HubError(403, None, "this transfer URL is not signed by this site")
        if int(params["e"]) < time.time():
            raise HubError(403, None, "this transfer URL has expired")
        sha256, index = params["f"], int(params["t"])
        with self.view.catalog() as catalog:
            packed = catalog.xet_layout(sha256)
        terms = unpack_layout(packed) if packed is not None else []
        if not 0 <= index < len(terms) or terms[index].xorb != xorb or self.view.is_quarantined(sha256):
            raise HubError(404, None, "no such xorb range")
        term, file_offset = terms[index], sum(t.size for t in terms[:index])
        tag = self._checked_version(sha256, sum(t.size for t in terms))
        total = serialized_size(term)
        first, last = asked_span(range_header, total)
        if first > last:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{total}"})
        body = self._serialized(sha256, file_offset, term, first, last + 1, tag)
        self.ranges += 1
        return StreamingResponse(body, status_code=206, media_type="application/octet-stream",
                                 headers={"Content-Range": f"bytes {first}-{last}/{total}",
                                          "Content-Length": str(last + 1 - first), "Accept-Ranges": "bytes"})

    def _checked_version(self, sha256: str, size: int) -> str | None:
        """None for a blob that is a local file; for one in a store others can write to (a bucket), the version of
        its bytes that hashed to its name (blob_checks: once per version), which every range is then read from."""
        store = self.view.store
        if store.local_path(sha256) is not None:
            return None
        info = store.stat(sha256)
        if info is None or info.size != size:
            raise HubError(502, None, "the stored blob does not match its layout (run hubmirror verify)")
        ensure_checked(store, sha256, size, info.tag)
        return info.tag

    def _serialized(self, sha256: str, file_offset: int, term: LayoutTerm, start: int, end: int,
                    tag: str | None) -> Iterator[bytes]:
        """Bytes [start, end) of the term's serialized chunks: each chunk's header, then its bytes, read from the
        blob in one pass (the term's chunks lie back to back in it), sent in pieces of up to READ_SIZE."""
        parts: list[bytes | int] = []  # headers (their asked part) and how many blob bytes follow each
        at, data_at, first_data = 0, 0, None
        for length in term.lengths:
            header = bytes([0]) + length.to_bytes(3, "little") + bytes([0]) + length.to_bytes(3, "little")
            if max(start, at) < min(end, at + HEADER_SIZE):
                parts.append(header[max(start, at) - at:min(end, at + HEADER_SIZE) - at])
            lo, hi = max(start, at + HEADER_SIZE), min(end, at + HEADER_SIZE + length)
            if lo < hi:
                first_data = data_at + lo - at - HEADER_SIZE if first_data is None else first_data
                parts.append(hi - lo)
            at, data_at = at + HEADER_SIZE + length, data_at + length
            if at >= end:
                break
        wanted = sum(p for p in parts if isinstance(p, int))
        left = sum(len(p) if isinstance(p, bytes) else p for p in parts)  # bytes of the body
        base = file_offset + (first_data or 0)
        path = self.view.store.local_path(sha256)
        with open(path, "rb", buffering=0) if path else self.view.store.open_range(sha256, base, base + wanted,
                                                                                   tag) as f:
            fill = _reader_at(f.fileno(), base) if path else _reader_of(f)
            for block, slots in _blocks(parts, left):
                fill(slots)
                yield block


def _blocks(parts: list[bytes | int], total: int) -> Iterator[tuple[memoryview, list[memoryview]]]:
    """The body in pieces of up to READ_SIZE: each one buffer with the headers already in it, and the slots of it
    that the blob's bytes go into, in blob order (a piece's blob bytes are one run of the blob)."""
    block, filled, slots = memoryview(bytearray(min(READ_SIZE, total))), 0, []
    for part in parts:
        header = isinstance(part, bytes)
        done, todo = 0, len(part) if header else part
        while todo:
            if filled == len(block):
                yield block, slots
                total -= filled
                block, filled, slots = memoryview(bytearray(min(READ_SIZE, total))), 0, []
            n = min(todo, len(block) - filled)
            if header:
                block[filled:filled + n] = part[done:done + n]
            else:
                slots.append(block[filled:filled + n])
            filled, done, todo = filled + n, done + n, todo - n
    if filled:
        yield block[:filled], slots


def _reader_at(fd: int, offset: int):
    """Fills a piece's slots from a local file, from `offset` on: one `preadv` per piece (a call per chunk cost
    serve 0.2 CPU s per GiB more than plain resolve)."""
    position = offset

    def fill(slots: list[memoryview]) -> None:
        nonlocal position
        while slots:
            n = os.preadv(fd, slots[:IOV_MAX], position)
            if not n:
                raise HubError(502, None, "the stored blob is shorter than its layout")
            position += n
            while slots and n >= len(slots[0]):
                n -= len(slots.pop(0))
            if n:
                slots[0] = slots[0][n:]

    return fill


def _reader_of(stream):
    """Fills a piece's slots from a stream of the blob's bytes (a store without local files)."""

    def fill(slots: list[memoryview]) -> None:
        for slot in slots:
            while len(slot):
                n = _read_into(stream, slot)
                if not n:
                    raise HubError(502, None, "the stored blob is shorter than its layout")
                slot = slot[n:]

    return fill


def _read_into(stream, view: memoryview) -> int:
    """Read from `stream` into `view` (straight in where the stream can); how many bytes came, 0 at its end."""
    if hasattr(stream, "readinto"):
        return stream.readinto(view)
    data = stream.read(len(view))
    view[:len(data)] = data
    return len(data)
