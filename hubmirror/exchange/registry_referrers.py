"""OCI 1.1 referrers: artifacts (signatures, SBOMs) attached to a manifest by their `subject` field, pushed and listed
as distribution-spec v1.1 says. A registry with the referrers API indexes a pushed `subject` itself and says so with
an `OCI-Subject` header on the PUT; for one without it (distribution 2.8 answers `GET /v2/<name>/referrers/<digest>`
with 404) the pushing client keeps the list itself, in an image index tagged `<alg>-<encoded>` (the referrers tag
schema), and readers fall back to that tag.
"""

from __future__ import annotations

import io
import re

from hubmirror.errors import IntegrityError, NotFoundError
from hubmirror.exchange.modelpack import INDEX_MT, MANIFEST_MT, canonical_json, descriptor, json_object
from hubmirror.exchange.registry import RegistryClient

EMPTY_MT = "application/vnd.oci.empty.v1+json"  # the config of an artifact that needs none
EMPTY = b"{}"
_NOT_IN_TAG = re.compile(r"[^A-Za-z0-9_.-]")


def referrers_tag(digest: str) -> str:
    """The referrers tag of `digest`: algorithm (32 characters at most) `-` encoded part (64 at most), characters
    a tag cannot hold turned into `-`."""
    algorithm, _, encoded = digest.partition(":")
    return f"{_NOT_IN_TAG.sub('-', algorithm[:32])}-{_NOT_IN_TAG.sub('-', encoded[:64])}"


def artifact_manifest(artifact_type: str, subject: dict, layers: list[tuple[str, bytes]]) -> tuple[bytes, list[bytes]]:
    """(manifest, blobs) of an artifact of `artifact_type` attached to `subject`: an empty config, `layers` as
    (media type, bytes)."""
    manifest = canonical_json({
        "schemaVersion": 2, "mediaType": MANIFEST_MT, "artifactType": artifact_type,
        "config": descriptor(EMPTY_MT, EMPTY), "layers": [descriptor(mt, data) for mt, data in layers],
        "subject": subject})
    return manifest, [EMPTY] + [data for _, data in layers]


def push_referrer(client: RegistryClient, artifact_type: str, manifest: bytes, blobs: list[bytes],
                  subject_digest: str) -> str:
    """Push an artifact made by `artifact_manifest` (blobs, then the manifest by digest) and, where the registry did
    not index its subject, add it to the subject's referrers tag; return its digest."""
    for data in blobs:
        digest = descriptor("", data)["digest"]
        if not client.has_blob(digest):
            client.upload(digest, len(data), lambda data=data: io.BytesIO(data))
    entry = {**descriptor(MANIFEST_MT, manifest), "artifactType": artifact_type}
    answer = client.put_manifest(entry["digest"], MANIFEST_MT, manifest)
    if "OCI-Subject" not in answer.headers:
        tag = referrers_tag(subject_digest)
        index = _tag_index(client, tag) or {"schemaVersion": 2, "mediaType": INDEX_MT, "manifests": []}
        kept = [m for m in index["manifests"] if isinstance(m, dict) and m.get("digest") != entry["digest"]]
        client.put_manifest(tag, INDEX_MT, canonical_json({**index, "manifests": kept + [entry]}))
    return entry["digest"]


def list_referrers(client: RegistryClient, subject_digest: str, artifact_type: str) -> list[dict]:
    """Descriptors of the manifests of `artifact_type` attached to `subject_digest`: what the referrers API answers,
    else (a 404) what the referrers tag lists; none when neither has any."""
    data = client.referrers(subject_digest, artifact_type)
    if data is None:
        index = _tag_index(client, referrers_tag(subject_digest))
        if index is None:
            return []
    else:
        index = json_object(data, "referrers index")
        if not isinstance(index.get("manifests"), list):
            raise IntegrityError(f"{client.target}: the referrers index of {subject_digest} lists no manifests")
    return [m for m in index["manifests"]
            if isinstance(m, dict) and m.get("artifactType") == artifact_type and m.get("mediaType") == MANIFEST_MT]


def _tag_index(client: RegistryClient, tag: str) -> dict | None:
    """The image index under a referrers tag; None when the tag is not there or holds no image index (the spec:
    then there are no referrers)."""
    try:
        data, media_type, _ = client.get_manifest(tag)
    except NotFoundError:
        return None
    index = json_object(data, "referrers index") if media_type == INDEX_MT else {}
    if not isinstance(index.get("manifests"), list):
        return None
    return index

