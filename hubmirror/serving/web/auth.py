"""The web catalog's session with `serve --token`: a cookie that proves its holder knew the token, for a while.

The cookie is `<issued>.<nonce>.<mac>`: when it was issued (epoch seconds), a random nonce, and an HMAC of both under
the expected `Authorization` value. It never carries the token, needs no shared state (any number of `serve`
processes agree on it), stops working when the token changes, and expires `SESSION_SECONDS` after it was issued
(`HUBMIRROR_SESSION_HOURS`, 12). Logging out revokes it on the server that answered (its nonce is remembered until
it would have expired); other processes let it run out. Compared in constant time, like the bearer header.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time

from starlette.requests import Request

COOKIE = "hubmirror_session"
SESSION_HOURS_ENV = "HUBMIRROR_SESSION_HOURS"
_LABEL = b"hubmirror web session v2"
_revoked: dict[str, float] = {}  # nonce -> when its session would have expired anyway
_revoked_lock = threading.Lock()


def session_seconds() -> int:
    return max(1, round(float(os.environ.get(SESSION_HOURS_ENV) or 12) * 3600))


def _mac(expected: bytes, issued: str, nonce: str) -> str:
    return hmac.new(expected, _LABEL + f"|{issued}|{nonce}".encode(), hashlib.sha256).hexdigest()


def new_session(expected: bytes) -> str:
    """A fresh cookie value for the token whose `Authorization` header is `expected`."""
    issued, nonce = str(int(time.time())), secrets.token_hex(16)
    return f"{issued}.{nonce}.{_mac(expected, issued, nonce)}"


def _valid(value: str, expected: bytes) -> str | None:
    """The nonce of a valid, unexpired, unrevoked session cookie `value`, else None."""
    issued, _, rest = value.partition(".")
    nonce, _, mac = rest.partition(".")
    if not (issued.isascii() and issued.isdigit() and len(issued) <= 12 and nonce and mac):
        return None
    if not hmac.compare_digest(mac.encode(), _mac(expected, issued, nonce).encode()):
        return None
    if time.time() > int(issued) + session_seconds():
        return None
    with _revoked_lock:
        return None if nonce in _revoked else nonce


def has_session(request: Request, expected: bytes) -> bool:
    """Whether the request carries a live session cookie of that token."""
    return _valid(request.cookies.get(COOKIE, ""), expected) is not None


def revoke(request: Request, expected: bytes) -> None:
    """Log out: the request's session is refused from now on (by this process; elsewhere it runs out)."""
    nonce = _valid(request.cookies.get(COOKIE, ""), expected)
    if nonce is None:
        return
    now = time.time()
    with _revoked_lock:
        for old in [n for n, until in _revoked.items() if until < now]:
            del _revoked[old]
        _revoked[nonce] = now + session_seconds()


def token_matches(given: str, expected: bytes) -> bool:
    """Whether a token typed into the login form is the server's (in constant time)."""
    return hmac.compare_digest(f"Bearer {given}".encode(), expected)


def is_allowed(request: Request, expected: bytes | None) -> bool:
    """Whether a request may see the mirror: no token set, the bearer header, or a live session cookie."""
    if expected is None:
        return True
    header = request.headers.get("authorization", "").encode()
    return hmac.compare_digest(header, expected) or has_session(request, expected)
