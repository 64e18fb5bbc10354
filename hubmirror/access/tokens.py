"""Tokens of the people and services a mirror serves: `hm_<id>_<secret>`, shown once, stored only as a slow hash.

The id (12 hex digits) finds a token's record at once; the secret (32 random bytes, base64url) is checked against the
record's scrypt hash (stdlib `hashlib.scrypt`: memory-hard, so a stolen catalog or bucket does not give the tokens
back). A record says whose the token is, its scope (`read`, `write`, `admin`), which repos it may read (globs; none:
every repo), which gated or private repos besides (globs), and until when.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

PREFIX = "hm_"
SCOPES = ("read", "write", "admin")
MAX_GLOBS = 10_000  # per token: globs of repos, and of gated repos
_TOKEN = re.compile(r"hm_([0-9a-f]{12})_([A-Za-z0-9_-]{43})\Z")
_ID = re.compile(r"[0-9a-f]{12}\Z")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}\Z")  # a person's or service's name
_GLOB = re.compile(r"[\x21-\x7e]{1,200}\Z")
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1  # ~16 MiB and tens of ms per check (the OWASP minimum, 2023)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _scrypt(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32,
                          maxmem=64 << 20)


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class TokenRecord:
    """What is stored of a token: never the token."""

    id: str
    name: str
    scope: str
    hash: str  # scrypt$<salt>$<key>, both base64url
    repos: tuple[str, ...] = ()
    gated: tuple[str, ...] = ()
    created_at: str = ""
    expires_at: str | None = None
    _expires: float | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        check_record(self)
        if self.expires_at is not None:
            object.__setattr__(self, "_expires", datetime.strptime(self.expires_at, "%Y-%m-%dT%H:%M:%SZ")
                               .replace(tzinfo=UTC).timestamp())

    def expired(self, now: float | None = None) -> bool:
        return self._expires is not None and (time.time() if now is None else now) >= self._expires

    def matches(self, secret: str) -> bool:
        """Whether `secret` is this token's (the slow check; constant time)."""
        _, salt, key = self.hash.split("$")
        return hmac.compare_digest(_b64(_scrypt(secret, base64.urlsafe_b64decode(salt + "=="))), key)

    def as_json(self) -> dict:
        return {"id": self.id, "name": self.name, "scope": self.scope, "hash": self.hash, "repos": list(self.repos),
                "gated": list(self.gated), "created_at": self.created_at, "expires_at": self.expires_at}

    @classmethod
    def from_json(cls, value) -> TokenRecord:
        """The record a JSON object describes; a `ValueError` saying what is wrong otherwise."""
        if not isinstance(value, dict):
            raise ValueError("a token record must be an object")
        try:
            return cls(value["id"], value["name"], value["scope"], value["hash"], tuple(value.get("repos") or ()),
                       tuple(value.get("gated") or ()), value.get("created_at") or "", value.get("expires_at"))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"a token record lacks {exc}") from None


def check_record(record: TokenRecord) -> None:
    """Raise `ValueError` unless every field of `record` has its shape (records come from buckets too)."""
    if not (isinstance(record.id, str) and _ID.match(record.id)):
        raise ValueError("a token id is 12 hex digits")
    if not (isinstance(record.name, str) and NAME.match(record.name)):
        raise ValueError(f"token name {str(record.name)[:70]!r}: letters, digits and ._@+- (at most 64)")
    if record.scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
    if not (isinstance(record.hash, str) and re.fullmatch(r"scrypt\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}",
                                                          record.hash)):
        raise ValueError("a token hash is scrypt$<salt>$<key>")
    for globs in (record.repos, record.gated):
        if len(globs) > MAX_GLOBS or not all(isinstance(g, str) and _GLOB.match(g) for g in globs):
            raise ValueError(f"repo globs are printable ASCII without spaces, at most {MAX_GLOBS}")
    if record.expires_at is not None and not (isinstance(record.expires_at, str) and re.fullmatch(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record.expires_at)):
        raise ValueError("expires_at is a UTC time, YYYY-MM-DDTHH:MM:SSZ")


def issue(name: str, scope: str = "read", repos: tuple[str, ...] = (), gated: tuple[str, ...] = (),
          lifetime: float | None = None) -> tuple[str, TokenRecord]:
    """A new token and its record (`lifetime` seconds from now; None: until revoked)."""
    token_id, secret, salt = secrets.token_hex(6), _b64(secrets.token_bytes(32)), secrets.token_bytes(16)
    now = time.time()
    record = TokenRecord(token_id, name, scope, f"scrypt${_b64(salt)}${_b64(_scrypt(secret, salt))}",
                         tuple(repos), tuple(gated), _iso(now), _iso(now + lifetime) if lifetime else None)
    return f"{PREFIX}{token_id}_{secret}", record


def split(token: str) -> tuple[str, str] | None:
    """(id, secret) of a string shaped as a token, else None."""
    match = _TOKEN.match(token) if isinstance(token, str) and len(token) < 100 else None
    return None if match is None else (match.group(1), match.group(2))
