"""`SignedBucket`: a site's shared bucket whose objects of trust are signed by a site key and checked against the
keys every host pins, so that write access to the bucket alone changes nothing any host trusts.

What it signs: the objects that decide what a host serves, to whom, and how it judges it: ref objects (which record,
hence which bytes, a name points to), allowances, tokens, and log entries (which carry scan verdicts and benchmark
rows). Records
need no signature of their own (a record is named by the sha256 of its bytes, and only a signed ref names one);
leases only keep blobs from gc, so a forged one costs storage, never trust.

An object of trust is stored as the envelope {"payload": <the object's JSON text>, "signature": {"algorithm":
"ed25519", "public_key", "signature"}}, the signature over `DOMAIN`, the object's key below the store's prefix and
the payload, so that a signed object cannot be replayed under another key (an allowance of one file as another's), nor
a bundle's signature taken for a site object. What a bucket writer without a pinned key can still do is deny
service: delete objects, or put back an older object that was once signed (docs/security.md).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hubmirror.exchange.signing import public_key_text
from hubmirror.store.bucket import MAX_OBJECT, SharedBucket, SiteError, encode

DOMAIN = b"hubmirror-site-object-v1\n"
SIGNED_KINDS = ("refs", "allowed", "log", "tokens")  # the first part of a key below the prefix


class SignedBucket(SharedBucket):
    """`inner` with every object of trust signed by `signer` when written (None: this host may read the site, never
    publish to it) and accepted when read only if one of `trusted` signed it."""

    def __init__(self, inner: SharedBucket, signer: Ed25519PrivateKey | None, trusted: list[Ed25519PublicKey]):
        if not trusted and signer is None:
            raise ValueError("a signed bucket needs a key to sign with or keys to trust")
        self.inner = inner
        self.signer = signer
        self.trusted = {public_key_text(k): k for k in trusted}
        if signer is not None:
            self.trusted.setdefault(public_key_text(signer.public_key()), signer.public_key())
        self._base = inner.key()

    def __str__(self) -> str:
        return str(self.inner)

    def _below_prefix(self, key: str) -> str:
        return key[len(self._base) + 1:] if self._base else key

    def _signed(self, key: str) -> bool:
        return self._below_prefix(key).split("/", 1)[0] in SIGNED_KINDS

    def _message(self, key: str, payload: bytes) -> bytes:
        return DOMAIN + self._below_prefix(key).encode() + b"\n" + payload

    def seal(self, key: str, body: bytes) -> bytes:
        """The envelope of `body` stored at `key` (bodies of other kinds as they are)."""
        if not self._signed(key):
            return body
        if self.signer is None:
            raise SiteError(f"{self}: this host has no [site] signing_key, so it may read the site but not publish "
                            "to it")
        signature = self.signer.sign(self._message(key, body))
        return encode({"payload": body.decode(), "signature": {
            "algorithm": "ed25519", "public_key": public_key_text(self.signer.public_key()),
            "signature": base64.b64encode(signature).decode()}})

    def open(self, key: str, body: bytes) -> bytes:
        """The payload of the envelope at `key`, once a pinned key's signature over it checks out."""
        if not self._signed(key):
            return body
        try:
            envelope = json.loads(body)
            payload = envelope["payload"].encode()
            signed = envelope["signature"]
            key_text, signature = signed["public_key"], base64.b64decode(signed["signature"], validate=True)
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            raise SiteError(f"{key} is not signed") from None
        pinned = self.trusted.get(key_text) if isinstance(key_text, str) else None
        if pinned is None:
            raise SiteError(f"{key} is signed by a key this host does not trust")
        try:
            pinned.verify(signature, self._message(key, payload))
        except InvalidSignature:
            raise SiteError(f"{key}: its signature does not verify") from None
        return payload

    # ---- SharedBucket ----
    def key(self, *parts: str) -> str:
        return self.inner.key(*parts)

    def get(self, key: str, max_bytes: int = MAX_OBJECT) -> tuple[bytes, str] | None:
        got = self.inner.get(key, max_bytes)
        return None if got is None else (self.open(key, got[0]), got[1])

    def put(self, key: str, body: bytes) -> None:
        self.inner.put(key, self.seal(key, body))

    def put_if_absent(self, key: str, body: bytes) -> bool:
        return self.inner.put_if_absent(key, self.seal(key, body))

    def put_if_match(self, key: str, body: bytes, etag: str) -> bool:
        return self.inner.put_if_match(key, self.seal(key, body), etag)

    def delete(self, key: str) -> None:
        if self._signed(key) and self.signer is None:
            self.seal(key, b"")  # the same refusal as a write
        self.inner.delete(key)

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[str]:
        return self.inner.list(prefix, start_after)
