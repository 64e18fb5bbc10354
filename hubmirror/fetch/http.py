"""HTTP for the source plugins: sessions, JSON API requests, ranged GETs that resume, bounded ranged GETs for
pieces, whole-file spooling, and the mapping of failed answers to one-line hubmirror errors.

A source maps its service's error answers with an `ErrorMapper`: it returns the hubmirror error a response means (its
service's error format: headers, a JSON body), or None; any failed answer it leaves unmapped gets `status_error`.
Every request is retried as `hubmirror.fetch.retries` says; only idempotent requests are: GET, HEAD and OPTIONS, and
any request whose caller says `idempotent=True` (Kaggle's ModelApiService calls are POSTed reads).
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import json
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from hubmirror import __version__
from hubmirror.errors import (
    AccessDeniedError,
    DiskFullError,
    HubmirrorError,
    NotFoundError,
    TransferBrokenError,
    redact,
)
from hubmirror.fetch.download import Download
from hubmirror.fetch.redirects import check_redirect
from hubmirror.fetch.retries import (
    RETRY_STATUSES,
    Retrier,
    current_retrier,
    effective_timeout,
    retry_after_seconds,
)

ErrorMapper = Callable[[requests.Response], HubmirrorError | None]

CHUNK_SIZE = 1024 * 1024
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)$")
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _transient(exc: BaseException) -> bool:
    """A transport failure worth another try: connection refused, reset or dropped, a timeout; not a bad URL, a
    certificate that does not verify or a redirect loop."""
    if isinstance(exc, (requests.exceptions.SSLError, requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
                        requests.exceptions.MissingSchema, requests.exceptions.InvalidHeader,
                        requests.exceptions.TooManyRedirects)):
        return False
    return isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                            requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError))


def _status_why(resp: requests.Response) -> str:
    after = resp.headers.get("Retry-After")
    return f"HTTP {resp.status_code}" + (f" (Retry-After: {after})" if after else "")


def new_session() -> requests.Session:
    """A session with hubmirror's User-Agent, a connection pool sized for parallel downloads, and redirects checked
    against `hubmirror.fetch.redirects` before they are followed."""
    session = _GuardedSession()
    session.headers["User-Agent"] = f"hubmirror/{__version__}"
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=16)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


ENVIRONMENT_ORIGINS = 64  # origins whose environment settings a session keeps (the upstream names the hosts)


class _GuardedSession(requests.Session):
    """requests' session, each redirect checked (`check_redirect`) against where the request began, and what the
    environment says of an origin (proxies, `NO_PROXY`, the CA bundle) read once per session, not per request."""

    _origin: str | None = None
    _environment: dict | None = None

    def merge_environment_settings(self, url, proxies, stream, verify, cert):
        """requests' own settings for a request, the environment's part kept per origin: requests reads every
        variable of the environment at each request (~0.2 ms: ~60 ms of CPU for the ~300 requests of 1 GiB through
        Xet), and a command's environment does not change under it. Settings passed to the request itself (none of
        hubmirror's) are merged by requests as usual."""
        if proxies or verify is not None or cert is not None:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        if self._environment is None or len(self._environment) >= ENVIRONMENT_ORIGINS:
            self._environment = {}
        key = (*urlsplit(url)[:2], stream)
        settings = self._environment.get(key)
        if settings is None:
            settings = self._environment[key] = super().merge_environment_settings(url, {}, stream, None, None)
        return {**settings, "proxies": dict(settings["proxies"])}

    def resolve_redirects(self, resp, req, **kwargs):
        self._origin = req.url  # a session serves one thread (SourceContext.session, RegistryClient.session)
        return super().resolve_redirects(resp, req, **kwargs)

    def get_redirect_target(self, resp):
        target = super().get_redirect_target(resp)
        if target is not None:
            check_redirect(self._origin or resp.request.url, urljoin(resp.url, target))
        return target


def transport_error(url: str, kind: str, detail: str) -> HubmirrorError:
    """The one-line error for a transport failure of `kind` (`redirects`, `unreachable`, `timeout`, else any)."""
    return HubmirrorError({
        "redirects": f"too many redirects (a redirect loop?) fetching {url}",
        "unreachable": f"cannot reach {url}: {detail}",
        "timeout": f"timed out fetching {url}",
    }.get(kind, f"fetching {url} failed: {detail}"))


def describe_network_error(url: str, exc: Exception) -> HubmirrorError:
    """A one-line error for a transport failure of requests (refused connection, timeout, redirect loop)."""
    if isinstance(exc, requests.TooManyRedirects):
        return transport_error(url, "redirects", "")
    if isinstance(exc, requests.ConnectionError):
        return transport_error(url, "unreachable", type(exc).__name__)
    if isinstance(exc, requests.Timeout):
        return transport_error(url, "timeout", "")
    return transport_error(url, "other", str(exc))


def status_error(resp: requests.Response) -> HubmirrorError | None:
    """The generic error for a failed answer (HTTP ≥ 400), naming the URL without its query (it may be signed)."""
    if resp.status_code < 400:
        return None
    where = redact(resp.url)
    if resp.status_code in (401, 403):
        return AccessDeniedError(f"{where}: access denied (HTTP {resp.status_code})")
    if resp.status_code == 404:
        return NotFoundError(f"{where}: not found (HTTP 404)")
    return HubmirrorError(f"{where}: the server answered HTTP {resp.status_code}")


def _error_for(resp: requests.Response, errors: ErrorMapper | None) -> HubmirrorError | None:
    """The error a response means: the source's mapping first, then `status_error`."""
    return (errors(resp) if errors else None) or status_error(resp)


def raise_for(resp: requests.Response, errors: ErrorMapper | None) -> None:
    """Raise the error a response means (see `_error_for`)."""
    error = _error_for(resp, errors)
    if error is not None:
        resp.close()
        raise error


def request(
    session: requests.Session,
    method: str,
    url: str,
    *,
    timeout: float,
    errors: ErrorMapper,
    headers: dict[str, str] | None = None,
    json: Any = None,
    params: Any = None,
    allow_redirects: bool = True,
    idempotent: bool | None = None,
    stream: bool = False,
) -> requests.Response:
    """Send one API request (`json` as its body); a transport failure or a failed answer is a one-line error.

    Retried (see the module's docstring) when idempotent: GET, HEAD and OPTIONS are; another method only when the
    caller says `idempotent=True` (a POST that only reads)."""
    if idempotent is None:
        idempotent = method.upper() in IDEMPOTENT_METHODS
    retrier = current_retrier(f"{method} {redact(url)}") if idempotent else None
    while True:
        try:
            resp = session.request(method, url, headers=headers, json=json, params=params,
                                   timeout=effective_timeout(timeout), allow_redirects=allow_redirects, stream=stream)
        except requests.RequestException as exc:
            error = describe_network_error(url, exc)
            if retrier is None or not _transient(exc):
                raise error from exc
            retrier.retry(error, type(exc).__name__)
            continue
        if retrier is not None and resp.status_code in RETRY_STATUSES:
            error = _error_for(resp, errors)
            resp.close()
            retrier.retry(error, _status_why(resp), retry_after=retry_after_seconds(resp.headers.get("Retry-After")))
            continue
        raise_for(resp, errors)
        return resp


MAX_JSON_BYTES = 64 << 20  # an API answer longer than this is refused, never read whole into memory


def json_body(resp: requests.Response, limit: int = MAX_JSON_BYTES) -> Any:
    """The response's JSON value, read to at most `limit` bytes (a streamed response is read here, then closed);
    a longer answer, or one that is not JSON, is a one-line error naming the URL."""
    body = bytearray()
    try:
        for chunk in resp.iter_content(1 << 16):
            body += chunk
            if len(body) > limit:
                raise HubmirrorError(f"{redact(resp.url)} answered over {limit >> 20} MiB: refused")
    except requests.RequestException as exc:
        raise describe_network_error(resp.url, exc) from exc
    finally:
        resp.close()
    try:
        return json.loads(body)
    except ValueError:
        raise HubmirrorError(f"{redact(resp.url)} answered something that is not JSON") from None


def request_json(session: requests.Session, method: str, url: str, **kwargs) -> Any:
    """`request` (streamed), then the answer's JSON value (see `json_body`: bounded)."""
    return json_body(request(session, method, url, stream=True, **kwargs))


def open_range(
    session: requests.Session,
    url: str,
    offset: int,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
    errors: ErrorMapper | None = None,
    digests_from: Callable[[requests.Response], dict[str, str]] | None = None,
    retrier: Retrier | None = None,
) -> Download:
    """GET `url` from byte `offset` (a Range request when offset > 0), following redirects.

    requests drops `Authorization` when a redirect leaves the host, as signed CDN URLs require. A 206 must start at
    `offset`; a 200 means the server ignored the range and the stream starts at 0; a 416 (nothing past `offset`)
    is retried from 0. `errors` maps a failed answer to the source's own error (else `status_error`);
    `digests_from` reads the digests a response announces (they are checked like published ones). Opening is
    retried (see the module's docstring) under `retrier`, else the file's (`retrying`), else one of its own. A
    transfer that breaks off mid-body raises `TransferBrokenError`; `fetch_file` resumes it from the bytes held.
    """
    retrier = retrier or current_retrier(f"GET {redact(url)}")
    req_headers = {"Accept-Encoding": "identity", **(headers or {})}
    while True:
        if offset:
            req_headers["Range"] = f"bytes={offset}-"
        else:
            req_headers.pop("Range", None)
        resp = get_streaming(session, url, req_headers, timeout=timeout, errors=errors, retrier=retrier)
        if resp.status_code == 416 and offset:
            resp.close()
            offset = 0
            continue
        break
    raise_for(resp, errors)
    start = 0
    if resp.status_code == 206:
        match = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
        if not match or int(match.group(1)) != offset:
            resp.close()
            raise HubmirrorError(f"{redact(url)}: server answered a range request with a different range")
        start = offset
    digests = digests_from(resp) if digests_from else {}
    return Download(start=start, chunks=stream_body(resp, redact(url)), close=resp.close, digests=digests)


def get_streaming(session: requests.Session, url: str, headers: dict[str, str], *, timeout: float,
                  errors: ErrorMapper | None, retrier: Retrier) -> requests.Response:
    """A streamed GET of `url` (redirects followed), retried under `retrier` on transport failures and on the
    statuses in RETRY_STATUSES (honouring Retry-After); any other answer is returned as it is."""
    while True:
        try:
            resp = session.get(url, headers=headers, stream=True, timeout=effective_timeout(timeout),
                               allow_redirects=True)
        except requests.RequestException as exc:
            error = describe_network_error(url, exc)
            if not _transient(exc):
                raise error from exc
            retrier.retry(error, type(exc).__name__)
            continue
        if resp.status_code in RETRY_STATUSES:
            error = _error_for(resp, errors)
            resp.close()
            retrier.retry(error, _status_why(resp), retry_after=retry_after_seconds(resp.headers.get("Retry-After")))
            continue
        return resp


_BROKEN = (requests.RequestException, urllib3.exceptions.HTTPError, http.client.HTTPException, ConnectionError,
           TimeoutError)


_READ_STEP = 256 * 1024


def stream_body(resp: requests.Response, what: str) -> Iterator[bytes]:
    """The body of a streamed response in chunks of CHUNK_SIZE (the last one shorter), every byte that arrived handed
    on before a broken connection (reset, read timeout, a body shorter than its Content-Length) is raised as a
    `TransferBrokenError`, so that a resume starts exactly after them (`iter_content` drops a partial chunk).

    Each chunk is a fresh bytearray the socket was read into, never reused, so a consumer may keep it: the bytes
    are copied once, from the socket (a plain body is read straight from `http.client`; measured in
    benchmarks/pull_vs_snapshot_download.py, the copies of joining reads cost a tenth of a pull's CPU). It is read
    in steps of _READ_STEP because a read broken off midway loses the count of what it had copied."""
    read_into, finish = _body_reader(resp)
    chunk, filled = bytearray(CHUNK_SIZE), 0
    try:
        while True:
            got = read_into(memoryview(chunk)[filled:filled + _READ_STEP])
            if not got:
                finish()
                break
            filled += got
            if filled == CHUNK_SIZE:
                yield chunk
                chunk, filled = bytearray(CHUNK_SIZE), 0
    except _BROKEN as exc:
        if filled:
            yield chunk[:filled]
        reason = _cause(exc)
        raise TransferBrokenError(f"{what}: the transfer broke off ({reason})", reason) from exc
    if filled:
        yield chunk[:filled]


def _body_reader(resp: requests.Response) -> tuple[Callable[[memoryview], int], Callable[[], None]]:
    """`readinto` for the body and what to do at its end. A body without content coding is read straight from the
    `http.client` response beneath urllib3 (one copy, from the socket); at its end a body shorter than its
    Content-Length raises `IncompleteRead` (urllib3's own check, skipped that way) and the connection goes back to
    the pool. Anything else (gzip, bytes urllib3 already buffered) goes through urllib3's `readinto`."""
    raw = resp.raw
    plain = getattr(raw, "_fp", None)
    coded = resp.headers.get("Content-Encoding", "identity").lower() not in ("identity", "")
    if coded or not isinstance(plain, http.client.HTTPResponse) or getattr(raw, "_decoded_buffer", None):
        return raw.readinto, lambda: None

    def finish() -> None:
        if plain.length:  # None when chunked (http.client raises IncompleteRead itself then); 0 when whole
            raise http.client.IncompleteRead(b"", plain.length)
        raw.release_conn()

    return plain.readinto, finish


def _cause(exc: BaseException) -> str:
    """The kind of a transport failure, naming a read timeout (which may come wrapped in a ConnectionError)."""
    if isinstance(exc, (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError, TimeoutError)) \
            or "Read timed out" in str(exc):
        return "read timeout: the connection stalled"
    if isinstance(exc, urllib3.exceptions.ProtocolError) and exc.args and isinstance(exc.args[-1], BaseException):
        return type(exc.args[-1]).__name__  # the socket's own error (ConnectionResetError, IncompleteRead)
    return type(exc).__name__


def spool(session: requests.Session, url: str, *, timeout: float, directory: Path | None) -> tuple[IO[bytes], str]:
    """GET `url` whole into an anonymous temp file in `directory` (gone once closed): the file, rewound, and the
    sha256 of what arrived. A body that breaks off is resumed with a Range request, within the retry budget."""
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    file = tempfile.TemporaryFile(dir=directory)
    digest = hashlib.sha256()
    held = 0
    retrier = current_retrier(f"GET {redact(url)}")
    try:
        while True:
            download = open_range(session, url, held, timeout=timeout, retrier=retrier)
            try:
                if download.start != held:  # the server ignored the range: start again
                    file.seek(0)
                    file.truncate()
                    digest, held = hashlib.sha256(), 0
                for chunk in download.chunks:
                    file.write(chunk)
                    digest.update(chunk)
                    held += len(chunk)
                break
            except TransferBrokenError as exc:
                retrier.retry(exc, f"the transfer broke off ({exc.reason}); resuming from byte {held}", held=held)
            finally:
                download.close()
    except BaseException as exc:
        file.close()
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(f"disk full while downloading {redact(url)} into {directory or 'a temp file'} "
                                f"({exc.strerror})") from exc
        raise
    file.seek(0)
    return file, digest.hexdigest()


def open_bounded(
    session,
    url: str,
    start: int,
    end: int,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
    errors=None,
) -> Download | None:
    """GET bytes [start, end) of `url` with `Range: bytes=start-(end-1)`, following redirects: a bounded
    `open_range`, retried the same way (under the thread's `retrying` budget, else its own); None (the
    response closed) when the server answers with the whole file (200) instead of a 206 of exactly that range.

    `errors` maps a failed answer to the source's own error (else `status_error`). A transfer that breaks off
    mid-body raises `TransferBrokenError`; what arrived stays written.
    """
    where = redact(url)
    headers = {"Accept-Encoding": "identity", **(headers or {}), "Range": f"bytes={start}-{end - 1}"}
    resp = get_streaming(session, url, headers, timeout=timeout, errors=errors, retrier=current_retrier(f"GET {where}"))
    if resp.status_code == 200:
        resp.close()
        return None
    raise_for(resp, errors)
    match = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
    if resp.status_code != 206 or not match or (int(match.group(1)), int(match.group(2))) != (start, end - 1):
        resp.close()
        raise HubmirrorError(f"{where}: the server answered the request for bytes {start}-{end - 1} with "
                             f"HTTP {resp.status_code} {resp.headers.get('Content-Range', '')!r}")
    return Download(start=start, chunks=_piece_body(resp, where), close=resp.close)


def _piece_body(resp, what: str):
    """The response's body in chunks of `CHUNK_SIZE` (read whole by urllib3: a third of the CPU of
    `stream_body`, which hands on every byte before a break; a piece loses at most the chunk in
    flight, and asks again from the last byte written); a broken connection is a `TransferBrokenError`."""
    try:
        yield from resp.iter_content(CHUNK_SIZE)
    except (requests.RequestException, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as exc:
        reason = _cause(exc)
        raise TransferBrokenError(f"{what}: the transfer broke off ({reason})", reason) from exc
