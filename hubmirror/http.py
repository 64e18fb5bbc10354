"""HTTP plumbing shared by the source plugins: sessions, ranged GETs that resume, upstream error mapping."""

from __future__ import annotations

import re
from typing import Callable

import requests

from hubmirror import __version__
from hubmirror.download import Download
from hubmirror.errors import HubmirrorError

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


def open_range(
    session: requests.Session,
    url: str,
    offset: int,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
    check: Callable[[requests.Response], None] | None = None,
    digests_from: Callable[[requests.Response], dict[str, str]] | None = None,
) -> Download:
    """GET `url` from byte `offset` (a Range request when offset > 0), following redirects.

    requests drops `Authorization` when a redirect leaves the host, as signed CDN URLs require. A 206 must start at
    `offset`; a 200 means the server ignored the range and the stream starts at 0; a 416 (nothing past `offset`)
    is retried from 0. `check` raises the source's own errors for a failed response; `digests_from` reads the
    digests a response announces (they are checked like published ones). A transfer that breaks off mid-body is a
    one-line error, and what arrived stays for the next pull to resume.
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
        return open_range(session, url, 0, headers=headers, timeout=timeout, check=check, digests_from=digests_from)
    if check is not None:
        check(resp)
    resp.raise_for_status()
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
