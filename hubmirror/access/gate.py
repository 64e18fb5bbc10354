"""Who a request to `serve` is: a `Principal` from its bearer token or its web session, or None (refused).

A mirror with no tokens and no `serve --token` is open: everyone is `OPEN`, as before there were tokens. Otherwise a
request shows a token the Hub's way (`Authorization: Bearer`, what huggingface_hub sends from `HF_TOKEN`), or the
web catalog's session cookie. A personal token is looked up by its id, refused at once when revoked or expired, and
checked against its slow hash once per process (the tokens already checked are remembered under a keyed digest, so
a request costs a dict lookup; at most two slow checks run at a time).

The session cookie is `<issued>.<nonce>.<subject>.<mac>`: when it was issued, a random nonce, whose it is (`op`,
the operator; else a token id), and an HMAC under a key only this site's servers can make (the subject's token hash
or the operator's token, under the session secret). It never carries a token, expires (`HUBMIRROR_SESSION_HOURS`,
12), stops working when its token is revoked, and logging out revokes it on the server that answered.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from hubmirror.access.policy import OPEN, OPERATOR, Principal
from hubmirror.access.tokens import TokenRecord, split

COOKIE = "hubmirror_session"
SESSION_HOURS_ENV = "HUBMIRROR_SESSION_HOURS"
SESSION_SECRET_ENV = "HUBMIRROR_SESSION_SECRET"  # nosec B105 - the name of a variable, not a secret
SESSION_SECRET_FILE = "session.key"  # nosec B105 - a file name, not a secret
_LABEL = b"hubmirror web session v3"
_REMEMBERED = 100_000  # tokens checked, newest kept
_OPERATOR_SUBJECT = "op"


def session_seconds() -> int:
    return max(1, round(float(os.environ.get(SESSION_HOURS_ENV) or 12) * 3600))


def session_secret(root: Path) -> bytes:
    """The key under which this site's servers sign sessions: `HUBMIRROR_SESSION_SECRET` (the same on every host of a
    fleet), else `session.key` at the mirror's root, made (owner-only) on first use."""
    if value := os.environ.get(SESSION_SECRET_ENV):
        return value.encode()
    path = Path(root) / SESSION_SECRET_FILE
    if not path.exists():  # made whole beside it, then linked in: a reader never sees half of it
        made = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(made, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_hex(32).encode())
        try:
            os.link(made, path)
        except FileExistsError:
            pass  # another server made it first: theirs it is
        finally:
            os.unlink(made)
    return path.read_bytes()


def principal_of(record: TokenRecord) -> Principal:
    return Principal(record.name, record.scope, record.repos, record.gated, "user", record.id)


class Gate:
    """Who requests are, for one server: `tokens()` gives the live token records by id (as of the catalog's last
    commit; revoked ones absent), `operator` is `serve --token` (or None), `secret()` the session secret."""

    def __init__(self, tokens: Callable[[], dict[str, TokenRecord]], operator: str | None,
                 secret: Callable[[], bytes]):
        self._tokens = tokens
        self._operator = f"Bearer {operator}".encode() if operator else None
        self._secret_source = secret  # asked once, when a session is first made or checked
        self._secret: bytes | None = None
        self._digest_key = secrets.token_bytes(32)
        self._checked: OrderedDict[bytes, str] = OrderedDict()  # keyed digest of a token -> the hash it matched
        self._lock = threading.Lock()
        self._slow = threading.BoundedSemaphore(2)
        self._revoked: dict[str, float] = {}  # session nonce -> when it would have expired anyway

    def open(self) -> bool:
        """Whether the mirror is open to everyone (no tokens, no operator token)."""
        return self._operator is None and not self._tokens()

    async def principal(self, request: Request) -> Principal | None:
        """Who `request` is, or None where it shows no valid token or session (a mirror that is not open)."""
        if self.open():
            return OPEN
        header = request.headers.get("authorization")
        if header is not None:
            return await self.bearer(header)
        return self._session(request.cookies.get(COOKIE, ""))

    async def bearer(self, header: str) -> Principal | None:
        """The principal of an `Authorization` value (`Bearer <token>`)."""
        if self._operator is not None and hmac.compare_digest(header.encode("utf-8", "replace"), self._operator):
            return OPERATOR
        scheme, _, token = header.partition(" ")
        return await self.token(token.strip()) if scheme.lower() == "bearer" else None

    async def token(self, token: str) -> Principal | None:
        """The principal of a personal token, or None (unknown, revoked, expired, or not the token's secret)."""
        parts = split(token)
        record = self._tokens().get(parts[0]) if parts else None
        if record is None or record.expired():
            return None
        digest = hmac.new(self._digest_key, token.encode(), hashlib.sha256).digest()
        with self._lock:
            known = self._checked.get(digest)
        if known != record.hash:
            if not await run_in_threadpool(self._slow_check, record, parts[1]):
                return None
            with self._lock:
                self._checked[digest] = record.hash
                while len(self._checked) > _REMEMBERED:
                    self._checked.popitem(last=False)
        return principal_of(record)

    def _slow_check(self, record: TokenRecord, secret: str) -> bool:
        with self._slow:
            return record.matches(secret)

    # ---- web sessions ----
    def _key(self, subject: str) -> bytes | None:
        if subject == _OPERATOR_SUBJECT:
            base = self._operator
        else:
            record = self._tokens().get(subject)
            base = None if record is None or record.expired() else record.hash.encode()
        if base is None:
            return None
        if self._secret is None:
            self._secret = self._secret_source()
        return hmac.new(self._secret, base, hashlib.sha256).digest()

    def _mac(self, key: bytes, issued: str, nonce: str, subject: str) -> str:
        return hmac.new(key, _LABEL + f"|{issued}|{nonce}|{subject}".encode(), hashlib.sha256).hexdigest()

    def new_session(self, principal: Principal) -> str:
        """A fresh cookie value for `principal` (the operator, or a token's holder)."""
        subject = _OPERATOR_SUBJECT if principal.kind == "operator" else principal.token_id
        issued, nonce = str(int(time.time())), secrets.token_hex(16)
        return f"{issued}.{nonce}.{subject}.{self._mac(self._key(subject), issued, nonce, subject)}"

    def _valid(self, value: str) -> tuple[str, str] | None:
        """(nonce, subject) of a valid, unexpired, unrevoked session cookie `value`, else None."""
        parts = value.split(".")
        if len(parts) != 4:
            return None
        issued, nonce, subject, mac = parts
        if not (issued.isascii() and issued.isdigit() and len(issued) <= 12 and nonce and mac):
            return None
        key = self._key(subject)
        if key is None or not hmac.compare_digest(mac.encode(), self._mac(key, issued, nonce, subject).encode()):
            return None
        if time.time() > int(issued) + session_seconds():
            return None
        with self._lock:
            return None if nonce in self._revoked else (nonce, subject)

    def _session(self, value: str) -> Principal | None:
        valid = self._valid(value)
        if valid is None:
            return None
        if valid[1] == _OPERATOR_SUBJECT:
            return OPERATOR
        record = self._tokens().get(valid[1])
        return None if record is None else principal_of(record)

    def end_session(self, request: Request) -> None:
        """Log out: the request's session is refused from now on (by this process; elsewhere it runs out)."""
        valid = self._valid(request.cookies.get(COOKIE, ""))
        if valid is None:
            return
        now = time.time()
        with self._lock:
            for old in [n for n, until in self._revoked.items() if until < now]:
                del self._revoked[old]
            self._revoked[valid[0]] = now + session_seconds()
