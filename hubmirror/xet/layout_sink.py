"""The CAS that hf_xet uploads to when hubmirror.xet.own_layouts has it chunk a stored file: a server on a Unix socket
that takes the one token it was made with, keeps the shards and drops the xorb bodies (the blob is the one copy).
Every body has a bound; a request it does not take (xorb grants, v2 shards) is a 404 after its body is read, and
hf_xet uses the plain routes (a connection hung up on instead is a failure hf_xet retries after seconds)."""

from __future__ import annotations

import json
import logging
import os
import socketserver
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger("hubmirror.xet")

MAX_XORB_BODY = 128 << 20  # a xorb is at most 64 MiB of chunk data plus its headers
MAX_SHARD_BODY = 512 << 20  # hf_xet cuts its shards far below this
MAX_SMALL_BODY = 64 << 10  # the body of another request it does not take (a xorb grant), read all the same


class LayoutSink(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """The CAS hf_xet uploads to: keeps the shards, drops the xorbs."""

    daemon_threads = True
    block_on_close = False  # closing does not wait for a stalled request (its socket times out on its own)

    def __init__(self, path: Path, token: str):
        self.token = token
        self.shards: list[bytes] = []
        self.lock = threading.Lock()
        super().__init__(str(path), _SinkHandler)
        os.chmod(path, 0o600)

    def handle_error(self, request, client_address) -> None:
        log.debug("xet layout sink: a request failed", exc_info=True)


class _SinkHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 300  # seconds a connection may stay silent
    server: LayoutSink

    def log_message(self, format, *args) -> None:
        pass

    def address_string(self) -> str:
        return "hf_xet"

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _refuse(self, status: int, message: str) -> None:
        self.close_connection = True  # its body, if any, is not read
        self._answer(status, {"error": message})

    def do_GET(self) -> None:
        self._refuse(404, "not found")

    def do_POST(self) -> None:
        length = self.headers.get("Content-Length", "")
        size = int(length) if length.isdigit() and len(length) < 12 else -1
        if self.headers.get("Authorization") != f"Bearer {self.server.token}":
            return self._refuse(401, "this sink takes the token it was made with")
        path = urlsplit(self.path).path
        if path.startswith("/v1/xorbs/default/") and 0 <= size <= MAX_XORB_BODY:
            while size and (piece := self.rfile.read(min(size, 1 << 20))):
                size -= len(piece)
            return self._answer(200, {"was_inserted": True})
        if path == "/v1/shards" and 0 <= size <= MAX_SHARD_BODY:
            body = self.rfile.read(size)
            with self.server.lock:
                self.server.shards.append(body)
            return self._answer(200, {"result": 1})
        if 0 <= size <= (MAX_SHARD_BODY if path == "/v2/shards" else MAX_SMALL_BODY):
            self.rfile.read(size)  # read, so the connection stays: a hang-up is a failure hf_xet retries, late
            return self._answer(404, {"error": "not offered"})  # hf_xet falls back to the routes above
        return self._refuse(404, "not offered")
