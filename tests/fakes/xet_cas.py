"""An imitation of the Hub's Xet storage (CAS) on 127.0.0.1, filled by the official client itself.

What is stored is what `hf_xet` uploads to it (`POST /v1/xorbs/default/{hash}`, `POST /v1/shards`: the xorb-grant and
v2 shard routes answer 404, so the client takes the plain routes it falls back to), so the chunking, xorb and shard
bytes are the official client's, not this imitation's. From the shards (read by hubmirror.xet.shard) it learns each
file's reconstruction terms and each xorb's chunks, and answers what a downloading client asks (the Xet spec, hub-docs
`docs/xet/api.md`): `GET /v2/reconstructions/{file_id}` (and v1's `fetch_info` shape at
`/v1/reconstructions/{file_id}`), with an optional `Range`, and xorb byte ranges at signed transfer URLs
(`/xorb/default/{hash}?X-Xet-Signed-Range=…`, one or several ranges, `multipart/byteranges` for several) that refuse a
range outside what they were signed for and any `Authorization` header, as the Hub's transfer CDN does. Read routes
want a token the Hub issued (`FakeHub`'s xet-read-token route). Tests can make it hostile (`CasFaults`).
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

from hubmirror.xet.shard import ShardFile, parse_shard
from tests.fakes.httpserver import Handler, LoopbackServer


def chunk_offsets(xorb: bytes) -> list[int]:
    """Byte offset of each chunk's 8-byte header in a serialized xorb, and the end of the last one (spec: xorb.md)."""
    offsets, at = [], 0
    while at + 8 <= len(xorb) and xorb[at] == 0:
        offsets.append(at)
        at += 8 + int.from_bytes(xorb[at + 1:at + 4], "little")
    return offsets + [at]


@dataclass
class CasFaults:
    """Hostile answers a test may ask for."""

    flip_xorb_byte: bool = False  # flip one byte of every xorb range sent (inside a chunk's data)
    reconstruction: object = None  # a callable(dict) -> dict applied to every reconstruction answer
    bytes_per_second: float | None = None  # throttle every xorb range sent
    no_v2: bool = False  # answer v2 reconstructions 404, as a CAS that serves v1 only
    advertised_url: str | None = None  # the CAS URL the Hub's token route names instead of this CAS's own
    refuse_tokens: int = 0  # answer this many more reconstruction requests 401, as for an expired token


@dataclass
class FakeCas:
    """The CAS: xorbs, files and the requests made of it."""

    xorbs: dict[str, bytes] = field(default_factory=dict)
    files: dict[str, ShardFile] = field(default_factory=dict)
    chunk_sizes: dict[str, list[int]] = field(default_factory=dict)  # xorb -> its chunks' unpacked sizes
    read_tokens: set[str] = field(default_factory=set)
    requests: list[dict] = field(default_factory=list)
    auth_violations: list[str] = field(default_factory=list)
    xorb_bytes_sent: int = 0
    faults: CasFaults = field(default_factory=CasFaults)

    def __post_init__(self):
        self.write_token = "xet-write-" + secrets.token_hex(8)
        self._lock = threading.Lock()
        self.server = LoopbackServer(CasHandler, self)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> "FakeCas":
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def issue_read_token(self) -> tuple[str, int]:
        token = "xet-read-" + secrets.token_hex(12)
        with self._lock:
            self.read_tokens.add(token)
        return token, int(time.time()) + 3600

    def upload(self, contents: list[bytes | Path]) -> list[str]:
        """Upload `contents` with the official client (hf_xet) into this CAS; their Xet file hashes, in order."""
        from hf_xet import XetSession

        commit = XetSession().new_upload_commit(endpoint=self.url, token=self.write_token,
                                                token_expiry_unix_secs=int(time.time()) + 3600)
        handles = [commit.start_upload_bytes(c) if isinstance(c, bytes) else commit.start_upload_file(str(c))
                   for c in contents]
        report = commit.wait_to_finish()
        return [report.uploads[h.task_id()].xet_info.hash for h in handles]

    def log(self, handler: Handler) -> None:
        with self._lock:
            self.requests.append({"method": handler.command, "path": handler.path,
                                  "range": handler.headers.get("Range"), "at": time.monotonic()})

    def calls(self, prefix: str) -> list[dict]:
        return [r for r in self.requests if r["path"].startswith(prefix)]

    # -- reconstructions ---------------------------------------------------------------------------------------------

    def reconstruction(self, file_id: str, first: int, last: int | None, version: int) -> dict:
        """The answer to a reconstruction query for bytes [first, last] (inclusive) of a file: the terms that hold
        them, the first and last cut down to the chunks that do."""
        xfile = self.files[file_id]
        last = xfile.size - 1 if last is None else min(last, xfile.size - 1)
        terms, chosen, at, offset = [], {}, 0, 0
        for term in xfile.terms:
            if at + term.unpacked > first and at <= last:
                start, end, size, chunk_at = term.start, term.end, 0, at
                for idx in range(term.start, term.end):
                    length = self.chunk_sizes[term.xorb][idx]
                    if chunk_at + length <= first:
                        start = idx + 1
                    elif chunk_at > last:
                        end = idx
                        break
                    else:
                        size += length
                    chunk_at += length
                if not terms:
                    offset = first - (at + sum(self.chunk_sizes[term.xorb][term.start:start]))
                terms.append({"hash": term.xorb, "unpacked_length": size, "range": {"start": start, "end": end}})
                chosen.setdefault(term.xorb, []).append((start, end))
            at += term.unpacked
        answer = {"offset_into_first_range": offset, "terms": terms}
        if version == 2:
            answer["xorbs"] = {x: [self._multi_fetch(x, spans)] for x, spans in chosen.items()}
        else:
            answer["fetch_info"] = {x: [self._fetch(x, s, e) for s, e in merged(spans)] for x, spans in chosen.items()}
        if self.faults.reconstruction is not None:
            answer = self.faults.reconstruction(answer)
        return answer

    def _byte_range(self, xorb: str, start: int, end: int) -> tuple[int, int]:
        offsets = chunk_offsets(self.xorbs[xorb])
        return offsets[start], offsets[end] - 1

    def _multi_fetch(self, xorb: str, spans: list[tuple[int, int]]) -> dict:
        ranges = []
        for start, end in merged(spans):
            first, last = self._byte_range(xorb, start, end)
            ranges.append({"chunks": {"start": start, "end": end}, "bytes": {"start": first, "end": last}})
        signed = ",".join(f"{r['bytes']['start']}-{r['bytes']['end']}" for r in ranges)
        return {"url": self._signed_url(xorb, signed), "ranges": ranges}

    def _fetch(self, xorb: str, start: int, end: int) -> dict:
        first, last = self._byte_range(xorb, start, end)
        return {"range": {"start": start, "end": end}, "url": self._signed_url(xorb, f"{first}-{last}"),
                "url_range": {"start": first, "end": last}}

    def _signed_url(self, xorb: str, ranges: str) -> str:
        return (f"{self.url}/xorb/default/{xorb}?X-Xet-Signed-Range={quote('bytes=' + ranges)}"
                f"&Expires={int(time.time()) + 3600}&Signature=imitation")


def merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Chunk ranges [start, end) sorted, overlapping or touching ones joined."""
    out: list[list[int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(s, e) for s, e in out]


def parse_ranges(header: str | None) -> list[tuple[int, int]] | None:
    """`bytes=a-b[,c-d…]` as inclusive (first, last) pairs; None when absent or not of that form."""
    if not header or not header.startswith("bytes="):
        return None
    try:
        pairs = [tuple(int(x) for x in part.strip().split("-")) for part in header[6:].split(",")]
    except ValueError:
        return None
    return pairs if all(len(p) == 2 and p[0] <= p[1] for p in pairs) else None


class CasHandler(Handler):
    owner: FakeCas

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _token(self) -> str:
        auth = self.headers.get("Authorization", "")
        return auth[7:] if auth.startswith("Bearer ") else ""

    def do_POST(self):
        cas = self.owner
        cas.log(self)
        path = urlsplit(self.path).path
        body = self._body()
        if path == "/v1/telemetry":
            return self.send_json(200, {})
        if self._token() != cas.write_token:
            return self.send_json(401 if not self._token() else 403, {"error": "write token required"})
        if path.startswith("/v1/xorb-grants/") or path == "/v2/shards":
            return self.send_json(404, {"error": "not offered"})  # the client falls back to the plain routes
        if path.startswith("/v1/xorbs/default/"):
            with cas._lock:
                inserted = path.rsplit("/", 1)[1] not in cas.xorbs
                cas.xorbs[path.rsplit("/", 1)[1]] = body
            return self.send_json(200, {"was_inserted": inserted})
        if path == "/v1/shards":
            try:
                files, xorbs = parse_shard(body)
            except ValueError as err:
                return self.send_json(400, {"error": str(err)})
            for xorb, sizes in xorbs.items():
                if xorb not in cas.xorbs or len(chunk_offsets(cas.xorbs[xorb])) != len(sizes) + 1:
                    return self.send_json(400, {"error": f"shard lists xorb {xorb} that was not uploaded whole"})
            with cas._lock:
                cas.files.update(files)
                cas.chunk_sizes.update(xorbs)
            return self.send_json(200, {"result": 1})
        return self.send_json(404, {"error": "Not Found"})

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        cas = self.owner
        cas.log(self)
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        if parts[0] == "xorb":
            return self._xorb(parts, parse_qs(url.query))
        if self._token() not in cas.read_tokens | {cas.write_token}:
            return self.send_json(401, {"error": "invalid or missing token"})
        if len(parts) == 3 and parts[1] == "reconstructions" and parts[0] in ("v1", "v2"):
            file_id = parts[2]
            with cas._lock:
                refuse, cas.faults.refuse_tokens = cas.faults.refuse_tokens > 0, max(0, cas.faults.refuse_tokens - 1)
            if refuse:
                return self.send_json(401, {"error": "token expired"})
            if parts[0] == "v2" and cas.faults.no_v2:
                return self.send_json(404, {"error": "Not Found"})
            if file_id not in cas.files:
                return self.send_json(404, {"error": "file not found"})
            wanted = parse_ranges(self.headers.get("Range"))
            first, last = wanted[0] if wanted else (0, None)
            if first >= cas.files[file_id].size and cas.files[file_id].size:
                return self.send_json(416, {"error": "range start past the end of the file"})
            return self.send_json(200, cas.reconstruction(file_id, first, last, int(parts[0][1])))
        return self.send_json(404, {"error": "Not Found"})  # global dedup (/v1/chunks/…) knows nothing here

    def _xorb(self, parts: list[str], query: dict) -> None:
        cas = self.owner
        if self.headers.get("Authorization"):
            cas.auth_violations.append(self.path)
            return self.send_json(400, {"error": "Authorization header sent to a signed transfer URL"})
        data = cas.xorbs.get(parts[-1]) if len(parts) == 3 else None
        signed = parse_ranges(unquote((query.get("X-Xet-Signed-Range") or [""])[0]))
        wanted = parse_ranges(self.headers.get("Range"))
        if data is None or signed is None:
            return self.send_json(404, {"error": "NoSuchKey"})
        if wanted is None or any(not any(s <= a and b <= e for s, e in signed) for a, b in wanted):
            return self.send_json(403, {"error": "range not covered by the signature"})
        parts_out = []
        for first, last in wanted:
            piece = bytearray(data[first:last + 1])
            if cas.faults.flip_xorb_byte and len(piece) > 8:
                piece[len(piece) // 2] ^= 0xFF
            parts_out.append((first, last, bytes(piece)))
        with cas._lock:
            cas.xorb_bytes_sent += sum(len(p) for *_, p in parts_out)
        if len(parts_out) == 1:
            first, last, piece = parts_out[0]
            return self._send(206, piece, {"Content-Range": f"bytes {first}-{last}/{len(data)}",
                                           "Content-Type": "application/octet-stream"})
        boundary = "imitation" + secrets.token_hex(8)
        body = b"".join(
            f"--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes {a}-{b}/{len(data)}"
            f"\r\n\r\n".encode() + piece + b"\r\n" for a, b, piece in parts_out) + f"--{boundary}--\r\n".encode()
        self._send(206, body, {"Content-Type": f"multipart/byteranges; boundary={boundary}"})

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "HEAD":
            return
        rate = self.owner.faults.bytes_per_second
        step = 64 * 1024 if rate else len(body) or 1
        for at in range(0, len(body), step):
            self.wfile.write(body[at:at + step])
            if rate:
                time.sleep(step / rate)


def xet_read_token_answer(cas: FakeCas) -> tuple[dict, dict[str, str]]:
    """The Hub's answer to `GET /api/{type}s/{repo}/xet-read-token/{rev}`: JSON body and headers (both are read)."""
    token, expires = cas.issue_read_token()
    url = cas.faults.advertised_url or cas.url
    body = {"accessToken": token, "exp": expires, "casUrl": url}
    headers = {"X-Xet-Cas-Url": url, "X-Xet-Access-Token": token, "X-Xet-Token-Expiration": str(expires)}
    return body, headers

