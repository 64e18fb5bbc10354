"""Signed registry artifacts: what `export oci://… --sign KEY` attaches to the manifest (or image index) it tags, and
what `import oci://…` checks against `[import] trusted_keys` before admitting anything.

The signature is a bundle's own signature document (`signing.sign`, Ed25519) over the exact bytes of the tagged
manifest or index: it binds their digest and, through it, every manifest, config and layer digest below, so a
swapped manifest or layer fails. It travels as an OCI 1.1 referrer of that manifest (artifactType SIGNATURE_MT, an
empty config, one layer holding the document), found through the referrers API or the referrers tag
(`registry_referrers`).
"""

from __future__ import annotations

from pathlib import Path

from hubmirror.exchange.modelpack import descriptor, json_object
from hubmirror.exchange.registry import RegistryClient
from hubmirror.exchange.registry_referrers import artifact_manifest, list_referrers, push_referrer
from hubmirror.exchange.signing import SIGNATURE_MT, sign, verify

MAX_SIGNATURES = 16  # signature artifacts read per manifest (one per key that signed it, normally)
MAX_SIGNATURE_DOC = 64 * 1024


def push_signature(client: RegistryClient, media_type: str, signed: bytes, signing_key: Path) -> str:
    """Sign the manifest or index `signed` (pushed already, of `media_type`) and attach the signature to it; return
    the signature artifact's digest."""
    subject = descriptor(media_type, signed)
    manifest, blobs = artifact_manifest(SIGNATURE_MT, subject, [(SIGNATURE_MT, sign(signed, signing_key))])
    return push_referrer(client, SIGNATURE_MT, manifest, blobs, subject["digest"])


def check_signature(reader, trusted: list) -> str:
    """The pinned key that signed the manifest or index `reader` (a `registry_pull.RegistryReader`) reads, as it read
    it; an IntegrityError when no signature is attached to it or none verifies."""
    signed, digest = reader.subject()
    docs = []
    for entry in list_referrers(reader.client, digest, SIGNATURE_MT)[:MAX_SIGNATURES]:
        manifest = json_object(reader.read_manifest(entry), "signature manifest")
        docs += [reader.verified_blob(layer, MAX_SIGNATURE_DOC) for layer in manifest.get("layers") or []
                 if isinstance(layer, dict) and layer.get("mediaType") == SIGNATURE_MT][:1]
    return verify(signed, docs, trusted, what=str(reader.client.target))
