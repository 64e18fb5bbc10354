"""`hubmirror import oci://…`: a registry's ModelPack artifacts (one manifest, or an image index of several) into the
mirror, read through `RegistryReader` by the same admission path as a bundle (`bundle_import.admit`): manifests
capped, typed and checked against their digests, file names checked, every blob's bytes verified while stored,
one catalog transaction, the admission scan and its quarantine. A mirror with `[import] trusted_keys` first checks
the signature attached to what the target names (`registry_signature`).
"""

from __future__ import annotations

from hubmirror.errors import IntegrityError
from hubmirror.exchange.bundle_import import ImportReport, admit
from hubmirror.exchange.modelpack import INDEX_MT, MANIFEST_MT, json_object
from hubmirror.exchange.oci_layout import BundleReader, check_bytes, digest_hex, unique_entries
from hubmirror.exchange.registry import RegistryClient
from hubmirror.exchange.registry_signature import check_signature
from hubmirror.exchange.registry_target import Target
from hubmirror.fetch.download import Download
from hubmirror.mirror import Mirror


class RegistryReader(BundleReader):
    """A registry repository's tag or digest, read as a bundle: its index (or its one manifest) and its blobs."""

    def __init__(self, client: RegistryClient):
        self.client = client
        target = client.target
        self.origin = f"{target.registry}/{target.repository}"
        self.requested = target.reference
        self._index: dict | None = None
        self._manifests: dict[str, bytes] = {}
        self._subject: tuple[bytes, str] | None = None

    def subject(self) -> tuple[bytes, str]:
        """(bytes, digest) of the manifest or index the tag or digest names, read once: what everything else is
        read by (through the digests it lists), and what a signature signs."""
        self.index()
        return self._subject

    def index(self) -> dict:
        if self._index is None:
            data, media_type, digest = self.client.get_manifest(self.client.target.reference or "latest")
            self._subject = (data, digest)
            if media_type == INDEX_MT:
                index = json_object(data, "image index")
                if not isinstance(index.get("manifests"), list):
                    raise IntegrityError(f"{self.client.target}: the image index lists no manifests")
                self._index = {**index, "manifests": unique_entries(index["manifests"], str(self.client.target))}
            else:
                self._manifests[digest] = data
                self._index = {"manifests": [{"mediaType": MANIFEST_MT, "digest": digest, "size": len(data)}]}
        return self._index

    def read_manifest(self, descriptor: dict) -> bytes:
        held = self._manifests.get(descriptor.get("digest"))
        if held is not None:
            return check_bytes(held, digest_hex(descriptor["digest"]), descriptor.get("size"))
        return self.client.read_manifest(descriptor)

    def read_blob(self, hex_digest: str, limit: int) -> bytes:
        return self.client.read_blob(hex_digest, limit)

    def has_blob(self, hex_digest: str) -> bool:
        return True  # asked for when it is fetched: a blob the registry lacks is a 404 then

    def download(self, hex_digest: str, offset: int = 0) -> Download:
        return self.client.open_blob(hex_digest, offset)


def import_from_registry(mirror: Mirror, target: Target, *, plain_http: bool = False,
                         trusted: list | None = None) -> ImportReport:
    """Pull and admit the artifacts `target` names, all or nothing; with `trusted` keys, only when a signature by one
    of them is attached to the manifest or index the target names (checked before anything is admitted)."""
    reader = RegistryReader(RegistryClient(target, plain_http=plain_http))
    signed_by = None
    if trusted:
        signed_by = check_signature(reader, trusted)
    return admit(mirror, reader, str(target), signed_by)
