"""`hubmirror adopt PATH`: bring caches already on this machine into the mirror, with no network.

- A Hugging Face cache (`models--org--name/{refs,blobs,snapshots,trees}`): each snapshot file is checked against the
  name of the blob it links to (sha256 for LFS files, git blob id for the rest) or, for copies, against the client's
  `trees/<commit>.json`. A revision is adopted whole or not at all.
- A torch cache (`$TORCH_HOME/hub/checkpoints/*`): each file through the `file:` source, checked against the hash
  prefix of its name.
Files that nothing vouches for are reported and left out, unless `allow_unverified`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from hubmirror.errors import HubmirrorError, IntegrityError, UnsafePathError, UsageError
from hubmirror.mirror import Mirror
from hubmirror.plugin_manager import PluginRegistry
from hubmirror.pull import check_listing, pull, store_revisions
from hubmirror.records import ModelMetadata, ModelRef, RemoteFile, ResolvedRevision
from hubmirror.safepath import check_relative_path
from hubmirror.sources import Download, Source, SourceContext, local_download

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")
_HASH_PREFIX = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")


@dataclass
class AdoptReport:
    adopted: list[str] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)  # left out (or adopted, with allow_unverified)
    corrupt: list[str] = field(default_factory=list)  # bytes that disagree with what the layout records
    skipped: list[str] = field(default_factory=list)  # things adopt does not take, and why


class _AdoptedFiles(Source):
    """Reads files of a local cache for the store; nothing to resolve."""

    name = "adopt"
    description = "files adopted from a local cache"

    def resolve(self, ref: ModelRef, ctx: SourceContext) -> ResolvedRevision:
        raise UsageError("adopted files are read in place, not resolved")

    def open_file(self, revision: ResolvedRevision, file: RemoteFile, ctx: SourceContext, offset: int = 0) -> Download:
        return local_download(file.location, offset)


def _snapshot_file(repo_dir: Path, snapshot: Path, path: Path, rel: str, tree: dict) -> RemoteFile:
    """One snapshot entry with the digests the cache layout vouches for (none if it vouches for nothing)."""
    if path.is_symlink():
        target = path.resolve()
        if target.parent != (repo_dir / "blobs").resolve():
            raise UnsafePathError(f"{path} links outside the repository's blobs folder")
        name = target.name
        digests = {"sha256": name} if _SHA256.match(name) else {"git-sha1": name} if _SHA1.match(name) else {}
        return RemoteFile(rel, target.stat().st_size, digests, etag=name, lfs="sha256" in digests, location=target)
    entry = tree.get(rel) or {}
    digests = {}
    if entry.get("lfs_sha256"):
        digests["sha256"] = entry["lfs_sha256"]
    elif entry.get("blob_id"):
        digests["git-sha1"] = entry["blob_id"]
    return RemoteFile(rel, path.stat().st_size, digests, lfs="sha256" in digests, location=path)


def hf_cache_revisions(repo_dir: Path, report: AdoptReport) -> list[ResolvedRevision]:
    """The revisions of one `models--org--name` folder, one per ref (or per bare snapshot)."""
    repo_id = repo_dir.name[len("models--"):].replace("--", "/", 1)
    refs: dict[str, list[str]] = {}
    refs_dir = repo_dir / "refs"
    if refs_dir.is_dir():
        for ref_file in sorted(p for p in refs_dir.rglob("*") if p.is_file()):
            refs.setdefault(ref_file.read_text().strip(), []).append(ref_file.relative_to(refs_dir).as_posix())
    revisions = []
    for snapshot in sorted((repo_dir / "snapshots").iterdir() if (repo_dir / "snapshots").is_dir() else []):
        commit = snapshot.name
        label = f"hf:{repo_id}@{commit}"
        if not _SHA1.match(commit):
            report.skipped.append(f"{label}: not a commit-named snapshot")
            continue
        try:
            tree = json.loads((repo_dir / "trees" / f"{commit}.json").read_text()).get("files", {})
        except (OSError, ValueError):
            tree = {}
        try:
            files = [
                _snapshot_file(repo_dir, snapshot, Path(dirpath) / name,
                               check_relative_path((Path(dirpath) / name).relative_to(snapshot).as_posix()), tree)
                for dirpath, _, names in os.walk(snapshot) for name in sorted(names)
            ]
        except (UnsafePathError, OSError) as exc:
            report.corrupt.append(f"{label}: {exc}")
            continue
        unverified = [f.path for f in files if not f.digests]
        report.unverified.extend(f"{label}:{p}" for p in unverified)
        meta = ModelMetadata("hf", repo_id, extra={"adopted_from": str(repo_dir)})
        for requested in refs.get(commit, [commit]):
            revisions.append(ResolvedRevision(ModelRef("hf", repo_id), commit, requested, meta, files))
    return revisions


def adopt(mirror: Mirror, registry: PluginRegistry, path: Path, *, allow_unverified: bool = False) -> AdoptReport:
    """Adopt the caches found at `path` (an HF hub cache, a `TORCH_HOME`, or one of their folders)."""
    path = Path(path)
    if not path.is_dir():
        raise UsageError(f"{path} is not a directory")
    report = AdoptReport()
    ctx = mirror.source_context(registry)
    repo_dirs = [path] if path.name.startswith("models--") else sorted(
        p for base in (path, path / "hub") for p in (base.iterdir() if base.is_dir() else [])
        if p.is_dir() and p.name.startswith("models--"))
    with mirror.shared_lock(f"adopt {path}"):
        source = _AdoptedFiles()
        for repo_dir in repo_dirs:
            for revision in hf_cache_revisions(repo_dir, report):
                label = f"{revision.ref.key}@{revision.commit}"
                if not allow_unverified and any(not f.digests for f in revision.files):
                    report.skipped.append(f"{label} ({revision.requested}): has unverifiable files")
                    continue
                try:
                    check_listing(revision)
                    store_revisions(mirror, source, "adopt", [(revision, revision.files)], ctx)
                    report.adopted.append(f"{label} ({revision.requested})")
                except IntegrityError as exc:
                    report.corrupt.append(f"{label}: {exc}")
    for checkpoints in (path / "checkpoints", path / "hub" / "checkpoints"):
        if checkpoints.is_dir():
            _adopt_checkpoints(mirror, registry, ctx, checkpoints, report, allow_unverified)
    for base in (path, path / "hub"):
        for repo in sorted(base.glob("*_*_*")) if base.is_dir() else []:
            if (repo / "hubconf.py").is_file():
                report.skipped.append(f"{repo}: a torch hub checkout records no digests; pull torchhub:OWNER/REPO:REF")
    return report


def _adopt_checkpoints(mirror, registry, ctx, directory: Path, report: AdoptReport, allow_unverified: bool) -> None:
    for file in sorted(p for p in directory.iterdir() if p.is_file() and not p.is_symlink()):
        if not _HASH_PREFIX.search(file.name):
            report.unverified.append(str(file))
            if not allow_unverified:
                report.skipped.append(f"{file}: its name carries no hash prefix")
                continue
        ref = registry.source("file")[0].parse(str(file.resolve()))
        try:
            for result in pull(mirror, registry, ref, ctx):
                report.adopted.append(f"{result.revision.ref.key}@{result.revision.commit}")
        except IntegrityError as exc:
            report.corrupt.append(f"{file}: {exc}")
        except HubmirrorError as exc:
            report.skipped.append(f"{file}: {exc}")
