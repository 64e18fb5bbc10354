"""A real OCI registry for the tests: Debian's `docker-registry` (the CNCF distribution registry, written by nobody
here) on 127.0.0.1 with filesystem storage in a temporary directory, optionally with htpasswd basic auth or token
auth (`auth: token:`, with `TokenServer` below issuing the JWTs it checks).

`registry()` writes the registry's config YAML, starts `docker-registry serve` in its own process group on a free
loopback port, waits (bounded) until `/v2/` answers, and yields a `Registry`. On exit the process group is terminated,
then killed, and always waited for.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

BINARY = shutil.which("docker-registry") or "/usr/bin/docker-registry"
SERVICE = "hubmirror-test-registry"
ISSUER = "hubmirror-test-issuer"
INDEX_MT = "application/vnd.oci.image.index.v1+json"


@dataclass
class Registry:
    host: str  # 127.0.0.1:PORT
    storage: Path
    process: subprocess.Popen

    def url(self, path: str = "") -> str:
        return f"http://{self.host}{path}"

    def cpu_seconds(self) -> float:
        """CPU time (user + sys, all its threads) the registry process has used so far (Linux's /proc)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14, 15


def available() -> bool:
    return os.access(BINARY, os.X_OK)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def htpasswd(path: Path, users: dict[str, str]) -> Path:
    """An htpasswd file of bcrypt hashes, the only kind distribution accepts."""
    import bcrypt

    path.write_text("".join(f"{user}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(5)).decode()}\n"
                            for user, pw in users.items()))
    return path


@contextmanager
def registry(directory: Path, *, auth: dict | None = None, timeout: float = 20.0) -> Iterator[Registry]:
    """Run the registry with storage under `directory`; `auth` is the config's `auth:` section, if any."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    storage = directory / "storage"
    config = {
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True},
                    "cache": {"blobdescriptor": "inmemory"}},  # as Debian's package configures it
        "http": {"addr": f"127.0.0.1:{port}", "secret": uuid.uuid4().hex},
    }
    if auth:
        config["auth"] = auth
    config_path = directory / "config.yml"
    config_path.write_text(json.dumps(config))  # JSON is YAML
    log = open(directory / "registry.log", "wb")
    proc = subprocess.Popen([BINARY, "serve", str(config_path)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        _wait_until_up(f"http://127.0.0.1:{port}/v2/", proc, timeout, directory / "registry.log")
        yield Registry(f"127.0.0.1:{port}", storage, proc)
    finally:
        _stop(proc)
        log.close()


def _wait_until_up(url: str, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # 401: up, and asking for credentials
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"docker-registry did not answer within {timeout} s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


# -- token auth --------------------------------------------------------------------------------------------------------

def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class LoopbackServer:
    """An HTTP server on a free loopback port, in a thread while the `with` block runs."""

    def __init__(self, handler):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


class TokenServer(LoopbackServer):
    """A token service for the registry's `auth: token:`: checks basic credentials and issues RS256 JWTs granting
    what was asked (`scope=repository:NAME:ACTIONS`), signed by a self-signed certificate the registry trusts
    (`rootcertbundle`), the certificate carried in the JWT's `x5c` header. Records each request's scopes."""

    def __init__(self, directory: Path, users: dict[str, str]):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.users = users
        self.requests: list[dict] = []
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hubmirror test token issuer")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(self.key, hashes.SHA256()))
        self.cert_der = cert.public_bytes(serialization.Encoding.DER)
        self.cert_path = directory / "token-cert.pem"
        directory.mkdir(parents=True, exist_ok=True)
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        super().__init__(self._handler())
        self.url = f"http://{self.host}/token"

    def auth_config(self) -> dict:
        return {"token": {"realm": self.url, "service": SERVICE, "issuer": ISSUER,
                          "rootcertbundle": str(self.cert_path)}}

    def jwt(self, subject: str, scopes: list[str]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]})
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "x5c": [base64.b64encode(self.cert_der).decode()]}
        claims = {"iss": ISSUER, "sub": subject, "aud": SERVICE, "exp": now + 300, "nbf": now - 10, "iat": now,
                  "jti": uuid.uuid4().hex, "access": access}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True  # as real servers send (see tests.fakes.httpserver.Handler)

            def log_message(self, *args):
                pass

            def do_GET(self):
                query = parse_qs(urlsplit(self.path).query)
                scopes = query.get("scope", [])
                server.requests.append({"scopes": scopes, "service": query.get("service", [None])[0],
                                        "authorized": "Authorization" in self.headers})
                subject = ""
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Basic "):
                    user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                    if server.users.get(user) != password:
                        self.send_response(401)
                        self.end_headers()
                        return
                    subject = user
                granted = scopes if subject else [s for s in scopes if s.endswith(":pull")]
                body = json.dumps({"token": server.jwt(subject, granted)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler



# -- faults between client and registry --------------------------------------------------------------------------------

class FaultyProxy(LoopbackServer):
    """An HTTP proxy in front of the registry (the client talks to it as to the registry; `Host` is passed on, so the
    registry's Location headers name the proxy) that breaks chosen exchanges: `break_patch` (the connection of the
    Nth PATCH drops: before it reaches the registry, or with `lose_answer` after, its answer lost) and
    `cut_blob_gets` (that many blob GETs without a Range send half their body, then drop). `log` records
    (method, path, Range) of every request. With `referrers_api` it adds what distribution 2.8 lacks, the OCI 1.1
    referrers API: a manifest PUT carrying a `subject` is answered with `OCI-Subject` and remembered, and
    `GET /v2/<name>/referrers/<digest>` lists what was remembered for that digest."""

    def __init__(self, upstream: str, *, break_patch: int = 0, lose_answer: bool = False, cut_blob_gets: int = 0,
                 referrers_api: bool = False):
        self.upstream = upstream
        self.referrers: dict[tuple[str, str], list[dict]] | None = {} if referrers_api else None
        self.break_patch = break_patch
        self.lose_answer = lose_answer
        self.cut_blob_gets = cut_blob_gets
        self.log: list[tuple[str, str, str | None]] = []
        self._patches = 0
        self._lock = threading.Lock()
        super().__init__(self._handler())

    def _fault(self, method: str, path: str, headers) -> str | None:
        with self._lock:
            self.log.append((method, path, headers.get("Range")))
            if method == "PATCH":
                self._patches += 1
                if self._patches == self.break_patch:
                    return "lose" if self.lose_answer else "drop"
            if method == "GET" and "/blobs/sha256:" in path and not headers.get("Range") and self.cut_blob_gets:
                self.cut_blob_gets -= 1
                return "cut"
        return None

    def _referrers_index(self, path: str) -> bytes:
        name, _, digest = urlsplit(path).path[len("/v2/"):].partition("/referrers/")
        with self._lock:
            listed = list(self.referrers.get((name, digest), []))
        return json.dumps({"schemaVersion": 2, "mediaType": INDEX_MT, "manifests": listed}).encode()

    def _remember_referrer(self, method: str, path: str, body: bytes | None, status: int) -> dict:
        """The headers to add to a forwarded answer: `OCI-Subject` for a manifest with a subject, now remembered."""
        name, sep, _ = urlsplit(path).path[len("/v2/"):].partition("/manifests/")
        if self.referrers is None or method != "PUT" or not sep or status != 201 or not body:
            return {}
        manifest = json.loads(body)
        if "subject" not in manifest:
            return {}
        entry = {"mediaType": manifest["mediaType"], "digest": "sha256:" + hashlib.sha256(body).hexdigest(),
                 "size": len(body), "artifactType": manifest.get("artifactType")}
        with self._lock:
            self.referrers.setdefault((name, manifest["subject"]["digest"]), []).append(entry)
        return {"OCI-Subject": manifest["subject"]["digest"]}

    def _handler(self):
        import http.client

        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def _forward(self):
                fault = proxy._fault(self.command, self.path, self.headers)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if fault == "drop":
                    self.close_connection = True
                    return
                if proxy.referrers is not None and self.command == "GET" and "/referrers/" in self.path:
                    data = proxy._referrers_index(self.path)
                    self.send_response(200)
                    self.send_header("Content-Type", INDEX_MT)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                conn = http.client.HTTPConnection(proxy.upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                if fault == "lose":
                    self.close_connection = True
                    return
                self.send_response(resp.status)
                added = proxy._remember_referrer(self.command, self.path, body, resp.status)
                for k, v in [*resp.getheaders(), *added.items()]:
                    if k.lower() not in ("connection", "transfer-encoding", "keep-alive", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                if fault == "cut":
                    self.send_header("Connection", "close")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data[: len(data) // 2] if fault == "cut" else data)
                if fault == "cut":
                    self.wfile.flush()
                    self.close_connection = True

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward

        return Handler
