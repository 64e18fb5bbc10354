"""Run `hubmirror serve`'s app on a free loopback port in a background thread (tests and benchmarks)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import uvicorn

from hubmirror.serving.app import create_app, server_config


class MirrorServer:
    def __init__(self, root: Path, token: str | None = None, registry=None, upstream: dict | None = None,
                 xet: bool = True, audit=None):
        self.app = app = create_app(root, token, registry, upstream=upstream, xet=xet, audit=audit)
        self.server = uvicorn.Server(server_config(app, "127.0.0.1", 0))  # `serve`'s own; lifespan closes the catalog
        self.thread = threading.Thread(target=self.server.run, name="mirror-server", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "MirrorServer":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the mirror server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
