"""An imitation of a server that still speaks TF Hub's compressed-model protocol (tensorflow_hub 0.16.1,
`compressed_module_resolver.py`): `GET /{publisher}/{model}/{version}?tf-hub-format=compressed` → a 302 to storage,
which sends the tar.gz of the SavedModel folder; `?tf-hub-format=uncompressed` → 303 with a `gs://` path as body.

It refuses (400, logged in `refused`) what tensorflow_hub never sends: a request for a handle without exactly one
`tf-hub-format` of a format it knows, another method than GET, no User-Agent."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.fakes.httpserver import Handler, LoopbackServer


def tarball(files: dict[str, bytes | Path]) -> bytes:
    """A tar.gz of `files`, as TF Hub serves a module (the SavedModel folder's contents at the root)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, content in sorted(files.items()):
            data = content if isinstance(content, bytes) else Path(content).read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class FakeTfHub:
    def __init__(self):
        self.modules: dict[str, bytes] = {}  # "publisher/model/version" -> tarball bytes
        self.requests: list[str] = []
        self.refused: list[str] = []
        self.server = LoopbackServer(TfHubHandler, self)

    @property
    def url(self) -> str:
        return self.server.url

    def add_module(self, handle: str, files: dict[str, bytes | Path]) -> None:
        self.modules[handle] = tarball(files)

    def __enter__(self) -> "FakeTfHub":
        self.server.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop()


class TfHubHandler(Handler):
    owner: FakeTfHub

    def _refuse(self, why: str) -> None:
        self.owner.refused.append(f"{self.command} {self.path}: {why}")
        self.send_json(400, {"error": why})

    def _not_get(self):
        self.owner.requests.append(self.path)
        self._refuse(f"{self.command}: tensorflow_hub only GETs")

    do_POST = do_PUT = do_DELETE = _not_get

    def do_GET(self):
        hub = self.owner
        hub.requests.append(self.path)
        url = urlsplit(self.path)
        formats = parse_qs(url.query).get("tf-hub-format") or []
        fmt = formats[0] if len(formats) == 1 else ""
        if not self.headers.get("User-Agent"):
            return self._refuse("no User-Agent (urllib always sends one)")
        if url.path.startswith("/storage/"):
            data = hub.modules.get(url.path[len("/storage/"):-len(".tar.gz")])
            if data is None:
                return self.send_json(404, {"error": "not found"})
            return self.send_content(len(data), lambda a, b: data[a:b], {"Content-Type": "application/x-tar"})
        handle = url.path.strip("/")
        if fmt not in ("compressed", "uncompressed"):
            return self._refuse(f"tf-hub-format={formats} (tensorflow_hub sends one: compressed or uncompressed)")
        if handle not in hub.modules:
            return self.send_json(404, {"error": f"Module {handle} not found"})
        if fmt == "compressed":
            self.send_response(302)
            self.send_header("Location", f"{hub.url}/storage/{handle}.tar.gz")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if fmt == "uncompressed":
            body = f"gs://tfhub-modules/{handle}/uncompressed".encode()
            self.send_response(303)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return None
        return None
