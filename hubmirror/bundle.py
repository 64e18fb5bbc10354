"""Export and import of verified bundles: an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`),
as a directory or a plain `.tar`, with one manifest per model revision.

A manifest's config blob carries the catalog's rows for the revision (model metadata, refs, files with their upstream
digests); its layers are the files, titled with their paths. Import checks every digest string before it becomes a
path, refuses links, devices and escaping names in a tar, checks the size then the sha256 of every blob (and every
upstream digest, git blob ids included) before anything reaches the catalog, and publishes in one transaction.
"""

from __future__ import annotations

import io
import json
from hashlib import sha256
import os
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from hubmirror import __version__
from hubmirror.catalog import Catalog
from hubmirror.digests import MultiHasher
from hubmirror.errors import HubmirrorError, IntegrityError, UnsafePathError, UsageError
from hubmirror.mirror import Mirror
from hubmirror.pull import check_listing, store_revisions
from hubmirror.records import ModelMetadata, ModelRef, RemoteFile, ResolvedRevision
from hubmirror.scanning import SCANNER
from hubmirror.signing import SIGNATURE_NAME
from hubmirror.sources import Download, Source, SourceContext
from hubmirror.store import OCI_LAYOUT

INDEX_MT = "application/vnd.oci.image.index.v1+json"
MANIFEST_MT = "application/vnd.oci.image.manifest.v1+json"
ARTIFACT_TYPE = "application/vnd.hubmirror.model.v1"
CONFIG_MT = "application/vnd.hubmirror.model.config.v1+json"
LAYER_MT = "application/octet-stream"
TITLE = "org.opencontainers.image.title"
REF_NAME = "org.opencontainers.image.ref.name"
DIGEST_RE = re.compile(r"^sha256:([0-9a-f]{64})$")
MAX_METADATA_BLOB = 64 * 1024 * 1024
_CHUNK = 1 << 20


def digest_hex(digest: str) -> str:
    """The hex part of `sha256:<64 hex>`; anything else is refused before it can become a path."""
    match = DIGEST_RE.match(digest) if isinstance(digest, str) else None
    if match is None:
        raise IntegrityError(f"bundle digest {digest!r} is not sha256:<64 hex digits>")
    return match.group(1)


def _descriptor(media_type: str, data: bytes) -> dict:
    return {"mediaType": media_type, "digest": f"sha256:{sha256(data).hexdigest()}", "size": len(data)}


# -- export ------------------------------------------------------------------------------------------------------------

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
        if catalog.is_quarantined(f["sha256"], SCANNER):
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
        config_desc = _descriptor(CONFIG_MT, config)
        files = json.loads(config)["files"]
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": MANIFEST_MT, "artifactType": ARTIFACT_TYPE, "config": config_desc,
            "layers": [{"mediaType": LAYER_MT, "digest": f"sha256:{f['sha256']}", "size": f["size"],
                        "annotations": {TITLE: f["path"]}} for f in files],
            "annotations": {"org.hubmirror.model": key, "org.hubmirror.commit": commit},
        }, sort_keys=True).encode()
        manifest_desc = _descriptor(MANIFEST_MT, manifest)
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
        from hubmirror.signing import sign

        signature = sign(index_bytes, signing_key)
        report.signed = True
    writer = _TarWriter(out) if out.suffix == ".tar" else _DirWriter(out)
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


class _DirWriter:
    def __init__(self, out: Path):
        self.out = out
        (out / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)

    def add_bytes(self, name: str, data: bytes) -> None:
        self.add_file(name, io.BytesIO(data), len(data))

    def add_file(self, name: str, f, size: int) -> None:
        target = self.out / name
        if target.exists() and target.stat().st_size == size and name.startswith("blobs/"):
            return  # content-addressed: already written by an earlier export into this directory
        temp = target.with_name(f".{target.name}.partial")
        with open(temp, "wb") as out:
            while chunk := f.read(_CHUNK):
                out.write(chunk)
        os.replace(temp, target)

    def finish(self) -> None:
        pass

    def abort(self) -> None:
        (self.out / "index.json").unlink(missing_ok=True)


class _TarWriter:
    def __init__(self, out: Path):
        self.out = out
        self.temp = out.with_name(out.name + ".partial")
        self.tar = tarfile.open(self.temp, "w", format=tarfile.PAX_FORMAT)

    def add_bytes(self, name: str, data: bytes) -> None:
        self.add_file(name, io.BytesIO(data), len(data))

    def add_file(self, name: str, f, size: int) -> None:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mode = 0o644
        self.tar.addfile(info, f)

    def finish(self) -> None:
        self.tar.close()
        os.replace(self.temp, self.out)

    def abort(self) -> None:
        self.tar.close()
        self.temp.unlink(missing_ok=True)


# -- reading bundles ---------------------------------------------------------------------------------------------------

class BundleReader:
    """Read access to a bundle's named entries and blobs, whatever its container."""

    @staticmethod
    def open(path: Path) -> "BundleReader":
        path = Path(path)
        if path.is_dir():
            return DirBundle(path)
        if path.is_file():
            return TarBundle(path)
        raise UsageError(f"{path}: no such bundle")

    def read_small(self, name: str) -> bytes | None: ...

    def open_blob(self, hex_digest: str, offset: int = 0): ...

    def has_blob(self, hex_digest: str) -> bool: ...

    def index(self) -> dict:
        data = self.read_small("index.json")
        if data is None:
            raise IntegrityError("the bundle has no index.json (an interrupted export?)")
        try:
            index = json.loads(data)
        except ValueError:
            raise IntegrityError("the bundle's index.json is not JSON") from None
        if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
            raise IntegrityError("the bundle's index.json lists no manifests")
        return index

    def verified_blob(self, descriptor: dict) -> bytes:
        """A small blob (manifest, config), checked against its descriptor's size and digest before use."""
        hex_digest = digest_hex(descriptor.get("digest"))
        size = descriptor.get("size")
        if not isinstance(size, int) or not 0 <= size <= MAX_METADATA_BLOB:
            raise IntegrityError(f"bundle descriptor of {hex_digest} has a bad size {size!r}")
        if not self.has_blob(hex_digest):
            raise IntegrityError(f"bundle blob {hex_digest} is missing")
        with self.open_blob(hex_digest) as f:
            data = f.read(size + 1)
        hasher = MultiHasher(set(), len(data))
        hasher.update(data)
        if len(data) != size or hasher.hexdigests()["sha256"] != hex_digest:
            raise IntegrityError(f"bundle blob {hex_digest} does not match its digest or size")
        return data

    def manifests(self) -> list[tuple[dict, dict]]:
        """(manifest, config) of every model revision in the bundle, each verified."""
        out = []
        for descriptor in self.index()["manifests"]:
            manifest = _json_object(self.verified_blob(descriptor), "manifest")
            config = _json_object(self.verified_blob(manifest.get("config") or {}), "config")
            out.append((manifest, config))
        return out

    def blob_digests(self) -> set[str]:
        """Every blob the bundle names (metadata and layers), as hex digests."""
        digests = set()
        for descriptor in self.index()["manifests"]:
            digests.add(digest_hex(descriptor["digest"]))
        for manifest, _ in self.manifests():
            digests.add(digest_hex(manifest["config"]["digest"]))
            digests.update(digest_hex(layer["digest"]) for layer in manifest.get("layers") or [])
        return digests


def _json_object(data: bytes, what: str) -> dict:
    try:
        value = json.loads(data)
    except ValueError:
        raise IntegrityError(f"a bundle {what} is not JSON") from None
    if not isinstance(value, dict):
        raise IntegrityError(f"a bundle {what} is not a JSON object")
    return value


class DirBundle(BundleReader):
    def __init__(self, root: Path):
        self.root = root.resolve()

    def _path(self, name: str) -> Path | None:
        path = self.root / name
        if path.is_symlink() or not path.is_file():
            return None
        if self.root not in path.resolve().parents:
            raise UnsafePathError(f"bundle entry {name} escapes the bundle directory")
        return path

    def read_small(self, name: str) -> bytes | None:
        path = self._path(name)
        return path.read_bytes()[:MAX_METADATA_BLOB] if path else None

    def has_blob(self, hex_digest: str) -> bool:
        return self._path(f"blobs/sha256/{hex_digest}") is not None

    def open_blob(self, hex_digest: str, offset: int = 0):
        f = open(self._path(f"blobs/sha256/{hex_digest}"), "rb")
        f.seek(offset)
        return f


class TarBundle(BundleReader):
    """A plain tar; every member is checked up front, and blobs are read in place (no extraction)."""

    ALLOWED = re.compile(r"^(oci-layout|index\.json|index\.json\.sig|blobs|blobs/sha256|blobs/sha256/[0-9a-f]{64})$")

    def __init__(self, path: Path):
        self.path = path
        self.members: dict[str, tarfile.TarInfo] = {}
        try:
            with tarfile.open(path, "r:") as tar:
                for info in tar.getmembers():
                    self._admit(info)
        except tarfile.ReadError as exc:
            raise IntegrityError(f"{path}: not a readable plain tar ({exc})") from None
        size = path.stat().st_size
        for info in self.members.values():
            if info.offset_data + info.size > size:
                raise IntegrityError(f"{path}: truncated (member {info.name} ends past the end of the file)")

    def _admit(self, info: tarfile.TarInfo) -> None:
        name = info.name[2:] if info.name.startswith("./") else info.name
        name = name.rstrip("/")
        if not self.ALLOWED.match(name):
            raise UnsafePathError(f"{self.path}: unexpected member {info.name!r} (bundles hold only an OCI layout)")
        if info.isdir():
            return
        if not info.isfile() or info.sparse is not None:
            raise UnsafePathError(f"{self.path}: member {info.name!r} is a link or special file")
        self.members[name] = info

    def read_small(self, name: str) -> bytes | None:
        info = self.members.get(name)
        if info is None:
            return None
        with open(self.path, "rb") as f:
            f.seek(info.offset_data)
            return f.read(min(info.size, MAX_METADATA_BLOB))

    def has_blob(self, hex_digest: str) -> bool:
        return f"blobs/sha256/{hex_digest}" in self.members

    def open_blob(self, hex_digest: str, offset: int = 0):
        info = self.members[f"blobs/sha256/{hex_digest}"]
        f = open(self.path, "rb")
        f.seek(info.offset_data + offset)
        return _Bounded(f, info.size - offset)


class _Bounded(io.RawIOBase):
    """A window of `size` bytes of an open file."""

    def __init__(self, f, size: int):
        self.f, self.left = f, size

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self.f.read(n)
        self.left -= len(data)
        return data

    def close(self) -> None:
        self.f.close()
        super().close()


# -- import ------------------------------------------------------------------------------------------------------------

@dataclass
class ImportReport:
    revisions: list[str] = field(default_factory=list)
    blobs_imported: int = 0
    blobs_present: int = 0
    signed_by: str | None = None


class _BundleSource(Source):
    """Reads a bundle's blobs for the store; nothing to resolve."""

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
        f = self.reader.open_blob(file.location, offset)
        return Download(offset, iter(lambda: f.read(_CHUNK), b""), f.close)


def revisions_of(manifest: dict, config: dict) -> list[ResolvedRevision]:
    """The catalog revisions a manifest describes (one per ref), with every file's expected digests."""
    model = config.get("model") or {}
    source, model_id, commit = model.get("source"), model.get("model_id"), config.get("commit")
    if not all(isinstance(v, str) and v for v in (source, model_id, commit)):
        raise IntegrityError("a bundle config names no model or commit")
    by_digest = {}
    for layer in manifest.get("layers") or []:
        by_digest.setdefault(digest_hex(layer.get("digest")), layer)
    files = []
    for row in config.get("files") or []:
        hex_digest = digest_hex(f"sha256:{row.get('sha256')}")
        layer = by_digest.get(hex_digest)
        if layer is None or layer.get("size") != row.get("size"):
            raise IntegrityError(f"{source}:{model_id}: {row.get('path')!r} is not a layer of its manifest")
        upstream = row.get("upstream_digests") or {}
        digests = {alg: v for alg, v in upstream.items() if isinstance(v, str)} | {"sha256": hex_digest}
        files.append(RemoteFile(row["path"], row["size"], digests, etag=row.get("etag"), lfs=bool(row.get("lfs")),
                                location=hex_digest))
    extra = json.loads(model.get("metadata") or "{}")
    meta = ModelMetadata(
        source=source, model_id=model_id, task=model.get("task"), library=model.get("library"),
        architecture=model.get("architecture"), license=model.get("license"),
        tags=(model.get("tags") or "").split(), description=model.get("description"),
        downloads=model.get("downloads"), likes=model.get("likes"), last_modified=model.get("last_modified"),
        gated=bool(model.get("gated")), extra=extra if isinstance(extra, dict) else {},
    )
    return [ResolvedRevision(ModelRef(source, model_id), commit, name, meta, files)
            for name in (config.get("refs") or [commit])]


def import_bundle(mirror: Mirror, bundle: Path, trusted: list | None = None) -> ImportReport:
    """Import every revision of the bundle, verified, in one catalog transaction; importing twice changes nothing."""
    reader = BundleReader.open(bundle)
    report = ImportReport()
    index_bytes = reader.read_small("index.json")
    if trusted:
        from hubmirror.signing import verify

        report.signed_by = verify(index_bytes or b"", reader.read_small(SIGNATURE_NAME), trusted)
    revisions = []
    for manifest, config in reader.manifests():
        for revision in revisions_of(manifest, config):
            check_listing(revision)
            revisions.append(revision)
    if not revisions:
        raise UsageError(f"{bundle}: the bundle holds no model")
    source = _BundleSource(reader)
    with mirror.shared_lock(f"import {bundle}"):
        results = store_revisions(mirror, source, "import", [(r, r.files) for r in revisions], SourceContext())
    blobs = {f.sha256: f.reused for result in results for f in result.files}
    report.revisions = [f"{r.revision.ref.key}@{r.revision.commit} ({r.revision.requested})" for r in results]
    report.blobs_present = sum(blobs.values())
    report.blobs_imported = len(blobs) - report.blobs_present
    return report


def export_selection(catalog: Catalog, refs: list[ModelRef], everything: bool, query: str | None) -> list[tuple[str, str]]:
    """(model key, commit) pairs to export: named refs (their revision or newest), every revision, or search hits."""
    if everything:
        return catalog.revision_keys()
    if query is not None:
        return [(m["key"], m["latest_commit"]) for m in catalog.search(query, cached=True, limit=10_000)]
    selection = []
    for ref in refs:
        commit = catalog.commit_for(ref.key, ref.revision)
        if commit is None:
            raise HubmirrorError(f"{ref} is not in the mirror")
        selection.append((ref.key, commit))
    return selection
