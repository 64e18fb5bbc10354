"""`hubmirror export`: revisions of the mirror into a bundle (an OCI image layout, directory or plain tar), one manifest
per revision whose config blob carries the catalog's rows and whose layers are the files; optionally signed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from hubmirror import __version__
from hubmirror.catalog import Catalog
from hubmirror.exchange.oci_layout import (
    ARTIFACT_TYPE,
    CONFIG_MT,
    INDEX_MT,
    LAYER_MT,
    MANIFEST_MT,
    REF_NAME,
    TITLE,
    BundleReader,
    DirWriter,
    TarWriter,
    descriptor,
    digest_hex,
)
from hubmirror.exchange.signing import SIGNATURE_NAME
from hubmirror.mirror import Mirror
from hubmirror.store import OCI_LAYOUT


@dataclass
class ExportReport:
    manifests: int = 0
    blobs_written: int = 0
    blobs_skipped: int = 0  # already in the previous bundle
    bytes_written: int = 0
    signed: bool = False
    quarantined: list[str] = field(default_factory=list)  # files left out: the admission scan quarantined them


def revision_config(catalog: Catalog, key: str, commit: str, report: ExportReport) -> dict:
    """Everything the catalog knows about one revision, for the manifest's config blob (quarantined files left out)."""
    model = catalog.model(key)
    refs = [r["name"] for r in catalog.refs(key) if r["commit_id"] == commit]
    files = []
    for f in catalog.files(key, commit):
        if catalog.is_quarantined(f["sha256"]):
            report.quarantined.append(f"{key}@{commit}:{f['path']}")
        else:
            files.append(f)
    for f in files:
        f["upstream_digests"] = json.loads(f["upstream_digests"] or "{}")
    return {"hubmirror": __version__, "model": model, "commit": commit, "refs": refs, "files": files}


def export_bundle(mirror: Mirror, selection: list[tuple[str, str]], out: Path, *, since: Path | None = None,
                  signing_key: Path | None = None) -> ExportReport:
    """Write the revisions in `selection` to `out` (a directory, or a tar when `out` ends in .tar)."""
    shipped = BundleReader.open(since).blob_digests() if since else set()
    report = ExportReport()
    metadata_blobs: dict[str, bytes] = {}
    layers: dict[str, int] = {}
    index = {"schemaVersion": 2, "mediaType": INDEX_MT, "manifests": []}
    for key, commit in selection:
        config = json.dumps(revision_config(mirror.catalog, key, commit, report), sort_keys=True, default=str).encode()
        config_desc = descriptor(CONFIG_MT, config)
        files = json.loads(config)["files"]
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": MANIFEST_MT, "artifactType": ARTIFACT_TYPE, "config": config_desc,
            "layers": [{"mediaType": LAYER_MT, "digest": f"sha256:{f['sha256']}", "size": f["size"],
                        "annotations": {TITLE: f["path"]}} for f in files],
            "annotations": {"org.hubmirror.model": key, "org.hubmirror.commit": commit},
        }, sort_keys=True).encode()
        manifest_desc = descriptor(MANIFEST_MT, manifest)
        metadata_blobs[digest_hex(config_desc["digest"])] = config
        metadata_blobs[digest_hex(manifest_desc["digest"])] = manifest
        index["manifests"].append({**manifest_desc, "artifactType": ARTIFACT_TYPE,
                                   "annotations": {REF_NAME: f"{key}@{commit}"}})
        for f in files:
            layers[f["sha256"]] = f["size"]
        report.manifests += 1
    index_bytes = json.dumps(index, indent=2, sort_keys=True).encode()
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


