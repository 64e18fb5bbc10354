"""`hubmirror import`: a bundle into the mirror. Every digest string is checked before it becomes a path, a tar's
links, devices and escaping names are refused, every blob's size, sha256 and upstream digests (git blob ids included)
are checked before anything reaches the catalog, and the revisions are published in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hubmirror.admit import admit_revisions
from hubmirror.errors import IntegrityError, UsageError
from hubmirror.exchange.oci_layout import BundleReader, digest_hex
from hubmirror.exchange.signing import SIGNATURE_NAME
from hubmirror.fetch.download import Download
from hubmirror.mirror import Mirror
from hubmirror.sources import Source, SourceContext
from hubmirror.upstream import ModelMetadata, ModelRef, RemoteFile, ResolvedRevision, check_listing
from hubmirror.xet.carried import record_carried
from hubmirror.xet.own_layouts import layouts_at_admission


@dataclass
class ImportReport:
    revisions: list[str] = field(default_factory=list)
    blobs_imported: int = 0
    blobs_present: int = 0
    signed_by: str | None = None
    flagged: list[dict] = field(default_factory=list)  # verdict rows of files quarantined or admitted unscanned
    xet_layouts: int = 0  # Xet layouts the bundle carried, checked and recorded (hubmirror.xet.carried)


class _BundleSource(Source):
    """Reads a bundle's (or a registry's) blobs for the store; nothing to resolve."""

    name = "import"
    description = "models imported from a bundle"

    def __init__(self, reader: BundleReader):
        self.reader = reader

    def resolve(self, ref: ModelRef, ctx: SourceContext) -> ResolvedRevision:
        raise UsageError("bundle revisions come from the bundle's manifests")

    def open_file(self, revision: ResolvedRevision, file: RemoteFile, ctx: SourceContext, offset: int = 0) -> Download:
        if not self.reader.has_blob(file.location):
            raise IntegrityError(f"{revision.ref}: {file.path}: blob {file.location} is in neither the bundle nor "
                                 "this mirror (import the earlier bundle of an incremental export first)")
        return self.reader.download(file.location, offset)


def revisions_of(manifest: dict, rows: dict) -> list[ResolvedRevision]:
    """The catalog revisions a manifest describes (one per ref), with every file's expected digests."""
    model = rows.get("model") or {}
    source, model_id, commit = model.get("source"), model.get("model_id"), rows.get("commit")
    if not all(isinstance(v, str) and v for v in (source, model_id, commit)):
        raise IntegrityError("a bundle config names no model or commit")
    by_digest = {}
    for layer in manifest.get("layers") or []:
        by_digest.setdefault(digest_hex(layer.get("digest")), layer)
    files = []
    for row in rows.get("files") or []:
        hex_digest = digest_hex(f"sha256:{row.get('sha256')}")
        layer = by_digest.get(hex_digest)
        if layer is None or layer.get("size") != row.get("size"):
            raise IntegrityError(f"{source}:{model_id}: {row.get('path')!r} is not a layer of its manifest")
        upstream = row.get("upstream_digests") or {}
        digests = {alg: v for alg, v in upstream.items() if isinstance(v, str)} | {"sha256": hex_digest}
        files.append(RemoteFile(row["path"], row["size"], digests, etag=row.get("etag"), lfs=bool(row.get("lfs")),
                                location=hex_digest))
    meta = ModelMetadata.from_row(model)
    return [ResolvedRevision(ModelRef(source, model_id), commit, name, meta, files)
            for name in (rows.get("refs") or [commit])]


def import_bundle(mirror: Mirror, bundle: Path, trusted: list | None = None) -> ImportReport:
    """Import every revision of the bundle, verified, in one catalog transaction; importing twice changes nothing."""
    reader = BundleReader.open(bundle)
    signed_by = None
    if trusted:
        from hubmirror.exchange.signing import verify

        signature = reader.read_small(SIGNATURE_NAME)
        signed_by = verify(reader.read_small("index.json") or b"", [signature] if signature else [], trusted)
    return admit(mirror, reader, str(bundle), signed_by)


def admit(mirror: Mirror, reader: BundleReader, what: str, signed_by: str | None = None) -> ImportReport:
    """Admit every revision `reader` holds (a bundle's, a registry's): manifests and file lists checked first, then
    each blob stored and verified, then the revisions published in one transaction."""
    report = ImportReport(signed_by=signed_by)
    revisions, carried = [], {}
    for manifest, rows in reader.revisions():
        for revision in revisions_of(manifest, rows):
            check_listing(revision)
            revisions.append(revision)
        carried.update({row.get("sha256"): row["xet"] for row in rows.get("files") or []
                        if isinstance(row, dict) and row.get("xet") is not None})
    if not revisions:
        raise UsageError(f"{what}: the bundle holds no model")
    source = _BundleSource(reader)
    with mirror.shared_lock(f"import {what}"):
        results = admit_revisions(mirror, source, "import", [(r, r.files) for r in revisions], SourceContext(),
                                  own_layouts=False)
    admitted = {f.sha256: f.size for r in results for f in r.files if f.remote.path not in r.quarantined}
    report.xet_layouts = record_carried(mirror, {sha256: (size, carried[sha256]) for sha256, size in admitted.items()
                                                 if sha256 in carried})
    layouts_at_admission(mirror, {f.sha256: f.size for r in results for f in r.files})
    blobs = {f.sha256: f.reused for result in results for f in result.files}
    report.revisions = [f"{r.revision.ref.key}@{r.revision.commit} ({r.revision.requested})" for r in results]
    report.blobs_present = sum(blobs.values())
    report.blobs_imported = len(blobs) - report.blobs_present
    for r in results:
        verdicts = mirror.catalog.file_verdicts(r.revision.ref.key, r.revision.commit)
        report.flagged += [verdicts[path] for path in dict.fromkeys(r.quarantined + r.unscanned)]
    return report
