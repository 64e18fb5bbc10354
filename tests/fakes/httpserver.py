"""A small threaded HTTP/1.1 server base for the imitation hubs: routing helpers, JSON, Range, sendfile, and the
network faults a test may ask for (throttling, a connection reset or stalled after N bytes)."""

from __future__ import annotations

import json
import os
import re
import select
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """(start, end-exclusive) for a single byte range, None for no/ignored Range, "unsatisfiable" for a 416."""
    if not header:
        return None
    match = _RANGE_RE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return None  # RFC 9110: an invalid Range is ignored
    first, last = match.groups()
    if first == "":
        n = int(last)
        if n == 0:
            return "unsatisfiable"
        return max(0, size - n), size
    start = int(first)
    end = min(size, int(last) + 1) if last else size
    if start >= size or end <= start:
        return "unsatisfiable"
    return start, end


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """A client hanging up mid-response (a killed download) is normal here, not worth a traceback."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class LoopbackServer:
    """Runs a `ThreadingHTTPServer` on 127.0.0.1 in a daemon thread; a context manager that stops it."""

    def __init__(self, handler_class: type[BaseHTTPRequestHandler], owner, port: int = 0):
        handler = type(handler_class.__name__, (handler_class,), {"owner": owner})
        self.httpd = _QuietServer(("127.0.0.1", port), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), name="loopback-http", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "LoopbackServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


class Handler(BaseHTTPRequestHandler):
    """Base handler: keep-alive, quiet logging, JSON and byte-range responses."""

    protocol_version = "HTTP/1.1"
    owner = None  # set by LoopbackServer
    server_version = "imitation"
    # TCP_NODELAY, as the Hub's servers and CDN (and uvicorn) send: with Nagle's algorithm a body written after its
    # headers waits for the client's delayed ACK, 40 ms a response that no real server adds (measured here: a tree
    # page and a README each took 42 ms instead of 2 ms)
    disable_nagle_algorithm = True

    def log_message(self, format, *args):  # noqa: A002 - signature fixed by the base class
        pass

    def send_json(self, status: int, payload, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_content(
        self,
        size: int,
        read: Callable[[int, int], bytes],
        headers: dict[str, str],
        *,
        sendfile_path=None,
        honour_range: bool = True,
        bytes_per_second: float | None = None,
        transform: Callable[[int, bytes], bytes] | None = None,
        reset_after: int | None = None,
        stall_after: int | None = None,
        stall_seconds: float = 30.0,
    ) -> None:
        """Answer GET/HEAD for content of `size` bytes with 200, 206 or 416, streaming `read(start, end)`.

        `sendfile_path` sends from disk with zero copy; `bytes_per_second` throttles; `transform(offset, chunk)`
        lets a test corrupt what goes on the wire; `reset_after` bytes of the body, the connection is reset (TCP RST);
        `stall_after` bytes, nothing more is sent on a connection kept open, until the client hangs up (or
        `stall_seconds` pass).
        """
        rng = parse_range(self.headers.get("Range"), size) if honour_range else None
        if rng == "unsatisfiable":
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start, end = rng if rng else (0, size)
        self.send_response(206 if rng else 200)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start))
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        self.end_headers()
        if self.command == "HEAD":
            return
        cuts = [x for x in (reset_after, stall_after) if x is not None]
        cut = min(cuts) if cuts else None
        if sendfile_path is not None and bytes_per_second is None and transform is None and cut is None:
            with open(sendfile_path, "rb") as f:
                self.connection.sendfile(f, start, end - start)
            return
        limit = end if cut is None else min(end, start + cut)
        step = 64 * 1024 if bytes_per_second else 1024 * 1024
        offset = start
        while offset < limit:
            chunk = read(offset, min(limit, offset + step))
            if transform is not None:
                chunk = transform(offset, chunk)
            self.wfile.write(chunk)
            offset += len(chunk)
            if bytes_per_second:
                time.sleep(len(chunk) / bytes_per_second)
        if limit < end:  # cut short: reset or stall, whichever comes first
            if reset_after == cut:
                self.reset_connection()
            else:
                self.stall(stall_seconds)

    def reset_connection(self, grace: float = 0.1) -> None:
        """Drop the connection with a TCP reset (SO_LINGER 0, then close), as a dying peer or a middlebox does.
        A reset discards what the client's socket holds unread, so the client gets `grace` seconds to read what was
        sent first ("reset after N bytes" then means N bytes arrived)."""
        time.sleep(grace)
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        os.close(self.connection.detach())
        self.close_connection = True

    def stall(self, seconds: float) -> None:
        """Send nothing more on an open connection until the client hangs up or `seconds` pass, then close it."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            readable, _, _ = select.select([self.connection], [], [], 0.05)
            if readable:  # the client closed (or sent something, which a stalled server would not read either)
                break
        self.close_connection = True

    def send_status(self, status: int, headers: dict[str, str] | None = None) -> None:
        """An error answer a test scripted (429 with Retry-After, 503, ...), as JSON with `headers`."""
        self.send_json(status, {"error": f"imitated HTTP {status}"}, headers)
