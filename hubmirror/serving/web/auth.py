"""The web catalog's session with `serve --token`: a cookie that proves its holder knew the token.

The cookie's value is an HMAC of the fixed label below under the expected `Authorization` value, so it never carries
the token, needs no server-side state (any number of `serve` processes agree on it) and stops working when the token
changes. Compared in constant time, like the bearer header.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request

COOKIE = "hubmirror_session"
_LABEL = b"hubmirror web session v1"


def session_value(expected: bytes) -> str:
    """The cookie value that stands for the token whose `Authorization` header is `expected`."""
    return hmac.new(expected, _LABEL, hashlib.sha256).hexdigest()


def has_session(request: Request, expected: bytes) -> bool:
    """Whether the request carries the session cookie of that token."""
    return hmac.compare_digest(request.cookies.get(COOKIE, "").encode(), session_value(expected).encode())


def token_matches(given: str, expected: bytes) -> bool:
    """Whether a token typed into the login form is the server's (in constant time)."""
    return hmac.compare_digest(f"Bearer {given}".encode(), expected)


def is_allowed(request: Request, expected: bytes | None) -> bool:
    """Whether a request may see the mirror: no token set, the bearer header, or the session cookie."""
    if expected is None:
        return True
    header = request.headers.get("authorization", "").encode()
    return hmac.compare_digest(header, expected) or has_session(request, expected)
