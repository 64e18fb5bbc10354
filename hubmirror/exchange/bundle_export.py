"""`hubmirror export`: revisions of the mirror as ModelPack artifacts (`modelpack`), into a bundle (an OCI image
layout, directory or plain tar; optionally signed) or, through `registry_push`, into a registry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path

from hubmirror.catalog import Catalog
from hubmirror.exchange import modelpack
from hubmirror.exchange.modelpack import ARTIFACT_TYPE, INDEX_MT, MANIFEST_MT, REF_NAME, descriptor
from hubmirror.exchange.oci_layout import BundleReader, DirWriter, TarWriter, digest_hex
from hubmirror.exchange.signing import SIGNATURE_NAME
from hubmirror.mirror import Mirror
from hubmirror.store import OCI_LAYOUT
from hubmirror.xet.carried import carried_fields


@dataclass
class ExportReport:
    manifests: int = 0
    blobs_written: int = 0
    blobs_skipped: int = 0  # already in the previous bundle (or, pushing, in the registry)
    bytes_written: int = 0
    signed: bool = False
    quarantined: list[str] = field(default_factory=list)  # files left out: the admission scan quarantined them
    blobs_mounted: int = 0  # pushing: blobs mounted from another repository of the registry
    tags: list[str] = field(default_factory=list)  # pushing: the tags written


@dataclass
class Artifact:
    """One revision as an OCI artifact: its manifest, the small blobs it names, and its files' blobs in the store."""

    key: str
    commit: str
    manifest: bytes
    metadata: dict[str, bytes]  # hex digest -> config / catalog layer
    layers: dict[str, int]  # hex digest -> size, of the files

    def index_entry(self) -> dict:
        """The artifact's descriptor in an image index (bundle index.json, or a registry index)."""
        return {**descriptor(MANIFEST_MT, self.manifest), "artifactType": ARTIFACT_TYPE,
                "annotations": {REF_NAME: f"{self.key}@{self.commit}"}}


def revision_rows(catalog: Catalog, key: str, commit: str, report: ExportReport) -> dict:
    """Everything the catalog knows about one revision, for its catalog layer (quarantined files left out)."""
    refs = [r["name"] for r in catalog.refs(key) if r["commit_id"] == commit]
    files = []
    for f in catalog.files(key, commit):
        if catalog.is_quarantined(f["sha256"]):
            report.quarantined.append(f"{key}@{commit}:{f['path']}")
        else:
            # with the sha256 always: an import records it as verified, and the rows must not change on the way back
            upstream = {**json.loads(f["upstream_digests"] or "{}"), "sha256": f["sha256"]}
            files.append({**f, "upstream_digests": upstream})
    carried = carried_fields(catalog, [f["sha256"] for f in files])  # served through Xet on the other side too
    files = [{**f, "xet": carried[f["sha256"]]} if f["sha256"] in carried else f for f in files]
    return modelpack.catalog_rows(catalog.model(key), commit, refs, files)


def build_artifacts(catalog: Catalog, selection: list[tuple[str, str]], report: ExportReport) -> list[Artifact]:
    """The ModelPack artifact of each selected revision."""
    artifacts = []
    for key, commit in selection:
        rows = revision_rows(catalog, key, commit, report)
        manifest, config, catalog_layer = modelpack.build(rows)
        metadata = {sha256(data).hexdigest(): data for data in (config, catalog_layer)}
        artifacts.append(Artifact(key, commit, manifest, metadata, {f["sha256"]: f["size"] for f in rows["files"]}))
        report.manifests += 1
    return artifacts


def index_document(artifacts: list[Artifact]) -> bytes:
    """The image index naming every artifact: a bundle's index.json, and what a registry tag of several holds."""
    index = {"schemaVersion": 2, "mediaType": INDEX_MT, "manifests": [a.index_entry() for a in artifacts]}
    return json.dumps(index, indent=2, sort_keys=True).encode()


def export_bundle(mirror: Mirror, selection: list[tuple[str, str]], out: Path, *, since: Path | None = None,
                  signing_key: Path | None = None) -> ExportReport:
    """Write the revisions in `selection` to `out` (a directory, or a tar when `out` ends in .tar)."""
    shipped = BundleReader.open(since).blob_digests() if since else set()
    report = ExportReport()
    artifacts = build_artifacts(mirror.catalog, selection, report)
    metadata_blobs: dict[str, bytes] = {}
    layers: dict[str, int] = {}
    for artifact in artifacts:
        metadata_blobs[digest_hex(artifact.index_entry()["digest"])] = artifact.manifest
        metadata_blobs.update(artifact.metadata)
        layers.update(artifact.layers)
    index_bytes = index_document(artifacts)
    signature = None
    if signing_key is not None:
        from hubmirror.exchange.signing import sign

        signature = sign(index_bytes, signing_key)
        report.signed = True
    writer = TarWriter(out) if out.suffix == ".tar" else DirWriter(out)
    try:
        writer.add_bytes("oci-layout", json.dumps(OCI_LAYOUT).encode())
        for hex_digest, data in metadata_blobs.items():
            writer.add_bytes(f"blobs/sha256/{hex_digest}", data)
        for hex_digest, size in layers.items():
            if hex_digest in shipped:
                report.blobs_skipped += 1
                continue
            with mirror.store.open(hex_digest) as f:
                writer.add_file(f"blobs/sha256/{hex_digest}", f, size)
            report.blobs_written += 1
            report.bytes_written += size
        if signature is not None:
            writer.add_bytes(SIGNATURE_NAME, signature)
        writer.add_bytes("index.json", index_bytes)  # last: a bundle without an index is incomplete
        writer.finish()
    except BaseException:
        writer.abort()
        raise
    return report


