"""Ed25519 signatures (cryptography) over a bundle's index.json or a registry artifact's manifest, and the keys a site
pins to check them."""

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

SIGNATURE_NAME = "index.json.sig"  # a bundle's signature document
SIGNATURE_MT = "application/vnd.hubmirror.signature.v1+json"  # the same document, as a registry artifact


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


def load_private_key(private_key_path: Path) -> Ed25519PrivateKey:
    """The Ed25519 key of a PEM file (`keygen`); anything else is a one-line usage error."""
    try:
        key = serialization.load_pem_private_key(Path(private_key_path).read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the signing key {private_key_path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(f"{private_key_path} is not an Ed25519 private key")
    return key


def sign(index_bytes: bytes, private_key_path: Path) -> bytes:
    """The detached signature document of `index_bytes` (a bundle's index.json, a registry manifest or index)."""
    key = load_private_key(private_key_path)
    return json.dumps({"algorithm": "ed25519", "public_key": public_key_text(key.public_key()),
                       "signature": base64.b64encode(key.sign(index_bytes)).decode()}, indent=2).encode()


def load_public_key(text: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text.strip(), validate=True))
    except ValueError as exc:
        raise UsageError(f"not an Ed25519 public key (base64 of 32 bytes): {exc}") from None


def verify(signed: bytes, signature_docs: list[bytes], trusted: list[Ed25519PublicKey],
           what: str = "the bundle") -> str:
    """Check that one of `signature_docs` signs `signed` with a pinned key; return that key. Keys carried in the
    signature documents count only if pinned (whoever can alter the bundle or artifact can swap a key it carries)."""
    if not signature_docs:
        raise IntegrityError(f"{what} is not signed, and this mirror accepts only signed bundles and artifacts "
                             "([import] trusted_keys)")
    signatures = []
    for doc in signature_docs:
        try:
            signatures.append(base64.b64decode(json.loads(doc)["signature"], validate=True))
        except (ValueError, KeyError, TypeError):
            raise IntegrityError(f"{what}: a signature document is malformed") from None
    for key in trusted:
        for signature in signatures:
            try:
                key.verify(signature, signed)
                return public_key_text(key)
            except InvalidSignature:
                continue
    raise IntegrityError(f"{what}: the signature does not verify against any key pinned in this mirror's config")
