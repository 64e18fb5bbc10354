"""HTTP plumbing shared by the source plugins: sessions, JSON API requests, ranged GETs that resume, whole-file
spooling, and the mapping of failed answers to one-line hubmirror errors.

A source maps its service's error answers with an `ErrorMapper`: it returns the hubmirror error a response means (its
service's error format: headers, a JSON body), or None; any failed answer it leaves unmapped gets `status_error`.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import requests

from hubmirror import __version__
from hubmirror.download import Download
from hubmirror.errors import AccessDeniedError, HubmirrorError, NotFoundError

ErrorMapper = Callable[[requests.Response], HubmirrorError | None]

CHUNK_SIZE = 1024 * 1024
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def new_session() -> requests.Session:
    """A session with hubmirror's User-Agent and a connection pool sized for parallel downloads."""
    session = requests.Session()
    session.headers["User-Agent"] = f"hubmirror/{__version__}"
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=16)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def describe_network_error(url: str, exc: Exception) -> HubmirrorError:
    """A one-line error for a transport failure (refused connection, timeout, redirect loop)."""
    if isinstance(exc, requests.TooManyRedirects):
        return HubmirrorError(f"too many redirects (a redirect loop?) fetching {url}")
    if isinstance(exc, requests.ConnectionError):
        return HubmirrorError(f"cannot reach {url}: {type(exc).__name__}")
    if isinstance(exc, requests.Timeout):
        return HubmirrorError(f"timed out fetching {url}")
    return HubmirrorError(f"fetching {url} failed: {exc}")


def status_error(resp: requests.Response) -> HubmirrorError | None:
    """The generic error for a failed answer (HTTP ≥ 400), naming the URL without its query (it may be signed)."""
    if resp.status_code < 400:
        return None
    parts = urlsplit(resp.url)
    where = f"{parts.scheme}://{parts.netloc}{parts.path}"
    if resp.status_code in (401, 403):
        return AccessDeniedError(f"{where}: access denied (HTTP {resp.status_code})")
    if resp.status_code == 404:
        return NotFoundError(f"{where}: not found (HTTP 404)")
    return HubmirrorError(f"{where}: the server answered HTTP {resp.status_code}")


def _raise_for(resp: requests.Response, errors: ErrorMapper | None) -> None:
    """Raise the error a response means: the source's mapping first, then `status_error`."""
    error = (errors(resp) if errors else None) or status_error(resp)
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
    allow_redirects: bool = True,
) -> requests.Response:
    """Send one API request (`json` as its body); a transport failure or a failed answer is a one-line error."""
    try:
        resp = session.request(method, url, headers=headers, json=json, timeout=timeout,
                               allow_redirects=allow_redirects)
    except requests.RequestException as exc:
        raise describe_network_error(url, exc) from exc
    _raise_for(resp, errors)
    return resp


def json_body(resp: requests.Response) -> Any:
    """The response's JSON value; anything else is a one-line error naming the URL."""
    try:
        return resp.json()
    except ValueError:
        raise HubmirrorError(f"{resp.url} answered something that is not JSON") from None


def request_json(session: requests.Session, method: str, url: str, **kwargs) -> Any:
    """`request`, then the answer's JSON value (see `json_body`)."""
    return json_body(request(session, method, url, **kwargs))


def open_range(
    session: requests.Session,
    url: str,
    offset: int,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
    errors: ErrorMapper | None = None,
    digests_from: Callable[[requests.Response], dict[str, str]] | None = None,
) -> Download:
    """GET `url` from byte `offset` (a Range request when offset > 0), following redirects.

    requests drops `Authorization` when a redirect leaves the host, as signed CDN URLs require. A 206 must start at
    `offset`; a 200 means the server ignored the range and the stream starts at 0; a 416 (nothing past `offset`)
    is retried from 0. `errors` maps a failed answer to the source's own error (else `status_error`);
    `digests_from` reads the digests a response announces (they are checked like published ones). A transfer that
    breaks off mid-body is a one-line error, and what arrived stays for the next pull to resume.
    """
    req_headers = {"Accept-Encoding": "identity", **(headers or {})}
    if offset:
        req_headers["Range"] = f"bytes={offset}-"
    try:
        resp = session.get(url, headers=req_headers, stream=True, timeout=timeout, allow_redirects=True)
    except requests.RequestException as exc:
        raise describe_network_error(url, exc) from exc
    if resp.status_code == 416 and offset:
        resp.close()
        return open_range(session, url, 0, headers=headers, timeout=timeout, errors=errors, digests_from=digests_from)
    _raise_for(resp, errors)
    start = 0
    if resp.status_code == 206:
        match = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
        if not match or int(match.group(1)) != offset:
            resp.close()
            raise HubmirrorError(f"{url}: server answered a range request with a different range")
        start = offset
    digests = digests_from(resp) if digests_from else {}
    return Download(start=start, chunks=_guarded(resp.iter_content(CHUNK_SIZE), url), close=resp.close,
                    digests=digests)


def _guarded(chunks, url: str):
    """The body's chunks, with a broken connection turned into a hubmirror error."""
    try:
        yield from chunks
    except requests.RequestException as exc:
        raise HubmirrorError(f"{url}: the transfer broke off ({type(exc).__name__}); pull again to resume") from exc


def spool(session: requests.Session, url: str, *, timeout: float, directory: Path | None) -> tuple[IO[bytes], str]:
    """GET `url` whole into an anonymous temp file in `directory` (gone once closed): the file, rewound, and the
    sha256 of what arrived."""
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    file = tempfile.TemporaryFile(dir=directory)
    digest = hashlib.sha256()
    try:
        download = open_range(session, url, 0, timeout=timeout)
        try:
            for chunk in download.chunks:
                file.write(chunk)
                digest.update(chunk)
        finally:
            download.close()
    except BaseException:
        file.close()
        raise
    file.seek(0)
    return file, digest.hexdigest()
