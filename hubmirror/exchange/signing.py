"""Ed25519 signatures over a bundle's index.json (cryptography), and the keys a site pins to check them."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from hubmirror.errors import IntegrityError, UsageError

SIGNATURE_NAME = "index.json.sig"


def generate_keypair(directory: Path, name: str = "hubmirror-signing") -> tuple[Path, Path]:
    """Write NAME.key (PEM, owner-only) and NAME.pub (base64 raw public key); return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    private = directory / f"{name}.key"
    public = directory / f"{name}.pub"
    if private.exists():
        raise UsageError(f"{private} exists; refusing to overwrite a signing key")
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    public.write_text(public_key_text(key.public_key()) + "\n")
    return private, public


def public_key_text(key: Ed25519PublicKey) -> str:
    return base64.b64encode(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def sign(index_bytes: bytes, private_key_path: Path) -> bytes:
    """The detached signature document for index.json."""
    try:
        key = serialization.load_pem_private_key(Path(private_key_path).read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the signing key {private_key_path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(f"{private_key_path} is not an Ed25519 private key")
    return json.dumps({"algorithm": "ed25519", "public_key": public_key_text(key.public_key()),
                       "signature": base64.b64encode(key.sign(index_bytes)).decode()}, indent=2).encode()


def load_public_key(text: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text.strip(), validate=True))
    except ValueError as exc:
        raise UsageError(f"not an Ed25519 public key (base64 of 32 bytes): {exc}") from None


def verify(index_bytes: bytes, signature_doc: bytes | None, trusted: list[Ed25519PublicKey]) -> str:
    """Check the signature against the pinned keys; return the signing key. Keys carried in the bundle count
    only if pinned (whoever can alter the bundle can swap a key it carries)."""
    if signature_doc is None:
        raise IntegrityError("the bundle is not signed, and this mirror requires signed bundles")
    try:
        doc = json.loads(signature_doc)
        signature = base64.b64decode(doc["signature"], validate=True)
    except (ValueError, KeyError, TypeError):
        raise IntegrityError("the bundle's signature file is malformed") from None
    for key in trusted:
        try:
            key.verify(signature, index_bytes)
            return public_key_text(key)
        except InvalidSignature:
            continue
    raise IntegrityError("the bundle's signature does not verify against any key pinned in this mirror's config")
