"""A client of the OCI distribution API (distribution-spec v1.1), the requests docker, podman and oras send:

- `GET /v2/` (the ping: a 401 here starts the auth flow, see `registry_auth`);
- `HEAD /v2/<name>/blobs/<digest>`: is a blob there already (then it is not uploaded);
- `POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<repo>`: cross-repository mount (201), else an upload (202);
- `POST /v2/<name>/blobs/uploads/` then `PUT <Location>?digest=…` with the body (monolithic), or `PATCH <Location>`
  chunks with `Content-Range` and a final empty `PUT <Location>?digest=…` (chunked; a failed chunk is resumed from
  the offset `GET <Location>` reports in its `Range`); a relative `Location` is taken against the registry;
- `PUT /v2/<name>/manifests/<reference>` with the manifest's media type as `Content-Type`;
- `GET /v2/<name>/manifests/<reference>` with an `Accept` list (capped at MAX_MANIFEST, checked against its digest);
- `GET /v2/<name>/blobs/<digest>`, from an offset with `Range` (redirects to storage followed, without the
  registry's Authorization);
- `GET /v2/<name>/referrers/<digest>` (OCI 1.1; a 404 means the registry has none: see `registry_referrers`).
"""

from __future__ import annotations

import mmap
import re
import threading
from hashlib import sha256
from typing import Self
from urllib.parse import quote, urljoin

import requests

from hubmirror.errors import (
    AccessDeniedError,
    HubmirrorError,
    IntegrityError,
    NotFoundError,
    TransferBrokenError,
    redact,
)
from hubmirror.exchange.modelpack import INDEX_MT, MANIFEST_MT
from hubmirror.exchange.oci_layout import DIGEST_RE, MAX_MANIFEST, check_bytes, digest_hex
from hubmirror.exchange.registry_auth import RegistryAuth, credentials_for
from hubmirror.exchange.registry_target import Target
from hubmirror.fetch.download import Download
from hubmirror.fetch.http import (
    describe_network_error,
    get_streaming,
    new_session,
    open_range,
    raise_for,
    request,
)
from hubmirror.fetch.retries import current_retrier

DEFAULT_CHUNK = 64 << 20  # blobs at least this large are uploaded in PATCH chunks of this size
MAX_CHUNK_FAILURES = 5


def registry_errors(resp: requests.Response) -> HubmirrorError | None:
    """The one-line error of a failed registry answer, with the registry's own error code and message."""
    if resp.status_code < 400:
        return None
    try:
        first = (resp.json().get("errors") or [{}])[0]
        detail = f": {first.get('code')}: {str(first.get('message'))[:200]}"
    except (ValueError, AttributeError, IndexError, TypeError):
        detail = ""
    where = f"{redact(resp.url)}: HTTP {resp.status_code}{detail}"
    if resp.status_code in (401, 403):
        return AccessDeniedError(f"{where} (access denied: check the credentials for this registry)")
    if resp.status_code == 404:
        return NotFoundError(where)
    return HubmirrorError(where)


class _BlobBytes:
    """A blob's bytes by range, as request bodies: slices of the file mapped into memory where it is a local file
    (each handed to the socket whole, straight from the page cache: no copy, no per-block Python loop), else read
    from it (seekable; at most one chunk at a time)."""

    def __init__(self, f, size: int):
        self.f = f
        self._map = _mapped(f, size)

    def piece(self, start: int, end: int) -> bytes | memoryview:
        if self._map is not None:
            return memoryview(self._map)[start:end]
        self.f.seek(start)
        return self.f.read(end - start)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:  # a slice is still referenced (by an error's traceback): unmapped once it goes
                pass


def _mapped(f, size: int) -> mmap.mmap | None:
    """The first `size` bytes of `f` mapped read-only, or None where it is no file of the local file system (an
    in-memory or remote blob) or an empty one."""
    try:
        return mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ) if size else None
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both; ValueError: a shorter file
        return None


class RegistryClient:
    """One repository of one registry, authenticated as docker would (see `registry_auth`); usable from several
    threads at once."""

    def __init__(self, target: Target, *, plain_http: bool = False, push: bool = False, mount_from: tuple = (),
                 timeout: float = 60.0, chunk_size: int = DEFAULT_CHUNK):
        self.target = target
        self.base = f"{'http' if plain_http else 'https'}://{target.registry}"
        self.timeout = timeout
        self.chunk_size = chunk_size
        scopes = [f"repository:{target.repository}:{'pull,push' if push else 'pull'}"]
        scopes += [f"repository:{repo}:pull" for repo in mount_from]
        self.auth = RegistryAuth(target.registry, credentials_for(target.registry), scopes, timeout)
        self._local = threading.local()
        self.ping()

    @property
    def session(self) -> requests.Session:
        """The calling thread's session (sessions are not shared across threads); all share one auth."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = new_session()
            session.auth = self.auth
        return session

    def url(self, path: str) -> str:
        return f"{self.base}/v2/{self.target.repository}/{path}"

    def _request(self, method: str, url: str, **kwargs) -> requests.Response:
        return request(self.session, method, url, timeout=self.timeout, errors=registry_errors, **kwargs)

    def _send(self, method: str, url: str, *, data=None, headers: dict | None = None) -> requests.Response:
        """A request with a body (not retried: uploads resume by asking the registry what it holds)."""
        try:
            resp = self.session.request(method, urljoin(self.base, url), data=data, headers=headers,
                                        timeout=self.timeout)
        except requests.RequestException as exc:
            raise describe_network_error(redact(url), exc) from exc
        raise_for(resp, registry_errors)
        return resp

    def ping(self) -> None:
        """`GET /v2/`: the registry speaks distribution, and the credentials (if it wants some) are good."""
        resp = self._request("GET", f"{self.base}/v2/")
        resp.close()

    # -- blobs -------------------------------------------------------------------------------------------------------

    def has_blob(self, digest: str) -> bool:
        try:
            self._request("HEAD", self.url(f"blobs/{digest}")).close()
        except NotFoundError:
            return False
        return True

    def mount(self, digest: str, from_repository: str) -> str | None:
        """Mount a blob another repository of the registry holds: None when mounted, else the upload location the
        registry opened instead (it does not know the blob there)."""
        resp = self._send("POST", self.url(f"blobs/uploads/?mount={quote(digest)}&from={quote(from_repository)}"))
        return None if resp.status_code == 201 else self._location(resp)

    def start_upload(self) -> str:
        return self._location(self._send("POST", self.url("blobs/uploads/")))

    def _location(self, resp: requests.Response) -> str:
        location = resp.headers.get("Location")
        if not location:
            raise HubmirrorError(f"{self.target.registry}: an upload answer carries no Location")
        return urljoin(self.base, location)

    def upload(self, digest: str, size: int, opener, location: str | None = None) -> None:
        """Upload a blob of `size` bytes (`opener()` opens it, seekable), monolithic or, from `chunk_size` bytes,
        in PATCH chunks, each body a piece of `_BlobBytes`. A chunk that fails is resumed from the offset the registry
        reports for the upload; where the registry has given the upload up (distribution does, once a chunk landed
        whose answer was lost), a new upload starts from byte 0. MAX_CHUNK_FAILURES failures in a row end it."""
        location = location or self.start_upload()
        with opener() as f, _BlobBytes(f, size) as blob:
            if size < self.chunk_size:
                self._finish(location, digest, blob.piece(0, size))
            else:
                self._finish(self._send_chunks(location, size, blob), digest, b"")

    def _send_chunks(self, location: str, size: int, blob: _BlobBytes) -> str:
        """PATCH the blob's bytes in `chunk_size` chunks, resuming failed ones; the location to finish it at."""
        offset, failures = 0, 0
        while offset < size:
            end = min(offset + self.chunk_size, size)
            try:
                resp = self._send("PATCH", location, data=blob.piece(offset, end), headers={
                    "Content-Type": "application/octet-stream", "Content-Range": f"{offset}-{end - 1}"})
            except HubmirrorError:
                failures += 1
                if failures >= MAX_CHUNK_FAILURES:
                    raise
                offset, location = self._resume(location)
                continue
            failures = 0
            location = self._location(resp)
            offset = end
        return location

    def _resume(self, location: str) -> tuple[int, str]:
        """(offset, location) to go on with an upload: what `GET <location>` reports it holds (`Range: 0-N`), else
        a new upload from 0."""
        try:
            resp = self._request("GET", location)
        except HubmirrorError:
            return 0, self.start_upload()
        match = re.match(r"^(?:bytes=)?0-(\d+)$", resp.headers.get("Range", ""))
        return (int(match.group(1)) + 1 if match else 0), self._location(resp)

    def _finish(self, location: str, digest: str, body) -> None:
        separator = "&" if "?" in location else "?"
        self._send("PUT", f"{location}{separator}digest={quote(digest)}", data=body,
                   headers={"Content-Type": "application/octet-stream"})

    def open_blob(self, hex_digest: str, offset: int = 0) -> Download:
        """A blob's bytes from `offset` (a Range GET; redirects to storage followed)."""
        return open_range(self.session, self.url(f"blobs/sha256:{hex_digest}"), offset, timeout=self.timeout,
                          errors=registry_errors)

    def read_blob(self, hex_digest: str, limit: int) -> bytes:
        """At most `limit` bytes of a small blob, unchecked; a transfer that breaks off is resumed with Range."""
        data = bytearray()
        retrier = current_retrier(f"GET blob sha256:{hex_digest}")
        while True:
            download = self.open_blob(hex_digest, len(data))
            try:
                if download.start != len(data):  # the registry ignored the range: start again
                    data.clear()
                for chunk in download.chunks:
                    data += chunk
                    if len(data) >= limit:
                        break
                return bytes(data[:limit])
            except TransferBrokenError as exc:
                retrier.retry(exc, f"the transfer broke off; resuming from byte {len(data)}", held=len(data))
            finally:
                download.close()

    # -- manifests ---------------------------------------------------------------------------------------------------

    def put_manifest(self, reference: str, media_type: str, data: bytes) -> requests.Response:
        """PUT a manifest or index; the answer (its `OCI-Subject` header says the registry indexed a `subject`)."""
        return self._send("PUT", self.url(f"manifests/{reference}"), data=data, headers={"Content-Type": media_type})

    def _get_document(self, url: str) -> tuple[bytes, str, requests.Response]:
        """(bytes, media type, answer) of a manifest or index at `url`: at most MAX_MANIFEST bytes, and an OCI image
        manifest or index media type."""
        resp = get_streaming(self.session, url, {"Accept": f"{MANIFEST_MT}, {INDEX_MT}"}, timeout=self.timeout,
                             errors=registry_errors, retrier=current_retrier(f"GET {url}"))
        try:
            raise_for(resp, registry_errors)
            media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
            if media_type not in (MANIFEST_MT, INDEX_MT):
                raise IntegrityError(f"{self.target}: the registry answered a manifest of type {media_type!r}, "
                                     "not an OCI image manifest or index")
            if int(resp.headers.get("Content-Length") or 0) > MAX_MANIFEST:
                raise IntegrityError(f"{self.target}: manifest larger than {MAX_MANIFEST} bytes; refused")
            data = bytearray()
            for chunk in resp.iter_content(1 << 16):
                data += chunk
                if len(data) > MAX_MANIFEST:
                    break
        finally:
            resp.close()
        if len(data) > MAX_MANIFEST:
            raise IntegrityError(f"{self.target}: manifest larger than {MAX_MANIFEST} bytes; refused")
        return bytes(data), media_type, resp

    def get_manifest(self, reference: str) -> tuple[bytes, str, str]:
        """(bytes, media type, digest) of a manifest or index (see `_get_document`), whose bytes match the digest
        asked for (or the one the registry announces)."""
        data, media_type, resp = self._get_document(self.url(f"manifests/{reference}"))
        expected = reference if DIGEST_RE.match(reference) else resp.headers.get("Docker-Content-Digest")
        digest = f"sha256:{sha256(data).hexdigest()}"
        if expected and expected != digest:
            raise IntegrityError(f"{self.target}: the manifest's bytes do not match {expected}")
        return data, media_type, digest

    def referrers(self, digest: str, artifact_type: str) -> bytes | None:
        """The image index `GET /v2/<name>/referrers/<digest>?artifactType=…` answers (the manifests whose `subject`
        is `digest`); None when the registry has no referrers API (a 404: the referrers tag schema then holds them)."""
        try:
            url = self.url(f"referrers/{digest}?artifactType={quote(artifact_type)}")
            data, media_type, _ = self._get_document(url)
        except NotFoundError:
            return None
        if media_type != INDEX_MT:
            raise IntegrityError(f"{self.target}: the referrers of {digest} are a {media_type}, not an image index")
        return data

    def read_manifest(self, descriptor: dict) -> bytes:
        """The manifest an index entry names, checked against the entry's digest and size."""
        hex_digest = digest_hex(descriptor.get("digest"))
        data, media_type, _ = self.get_manifest(descriptor["digest"])
        if media_type != descriptor.get("mediaType"):
            raise IntegrityError(f"{self.target}: {descriptor['digest']} is a {media_type}, not what the index says")
        return check_bytes(data, hex_digest, descriptor.get("size"))
