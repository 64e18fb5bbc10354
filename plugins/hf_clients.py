"""Hugging Face client caches: the `hf-cache` layout `hubmirror materialize` writes and the adopter that brings such a
cache into the mirror.

The layout is `models--org--name/{blobs,snapshots,refs,trees}` (a dataset's: `datasets--org--name`) as
huggingface_hub ≥ 1.22 writes it: blobs named by
sha256 or git blob id, snapshot entries as relative symlinks, refs written atomically, `trees/<commit>.json`, for
`HF_HUB_OFFLINE=1` clients with `HF_HUB_CACHE` pointing at the target. Repo ids and commits are the served ones
(hubmirror.serving.hub_ids: timm models appear under their `hf_hub_id`).

Adopting checks each snapshot file against the name of the blob it links to (sha256 for LFS files, git blob id for the
rest) or, for copies, against the client's `trees/<commit>.json`. A revision is adopted whole or not at all.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from hubmirror.plugins.huggingface import HuggingFaceSource

from hubmirror.api import (
    Adopter,
    Adoption,
    AdoptReport,
    Layout,
    ModelMetadata,
    ModelRef,
    Placer,
    RemoteFile,
    ResolvedRevision,
    UnsafePathError,
    check_relative_path,
    hookimpl,
    hub_commit,
    is_valid_digest,
    repo_id,
    served_file,
)

CACHEDIR_TAG = ("Signature: 8a477f597d28d172789f06886806bc55\n"
               "# hubmirror: a Hugging Face cache materialised from a mirror\n")
REPO_PREFIX = "models--"
DATASET_PREFIX = "datasets--"  # a dataset's folder (its served id `datasets/org/name`)


class HfCacheLayout(Layout):
    name = "hf-cache"
    description = "a Hugging Face hub cache (HF_HUB_CACHE=TARGET, HF_HUB_OFFLINE=1)"

    def write(self, placer: Placer, model: dict, commit: str) -> None:

        catalog = placer.mirror.catalog
        served = repo_id(model, placer.registry)
        folder = (DATASET_PREFIX + served.removeprefix("datasets/") if served.startswith("datasets/")
                  else REPO_PREFIX + served).replace("/", "--")
        sha = hub_commit(model["key"], commit)
        tree = {}
        for row in catalog.files(model["key"], commit):
            served = served_file(row)
            blob = placer.place(served.sha256, f"{folder}/blobs/{served.etag}")
            if blob is None:
                continue
            placer.link(f"{folder}/snapshots/{sha}/{served.path}", blob)
            entry = {"size": served.size, "blob_id": served.oid}
            if served.lfs:
                entry.update(lfs_sha256=served.sha256, lfs_size=served.size)
            tree[served.path] = entry
        placer.write_text(f"{folder}/trees/{sha}.json", json.dumps({"format_version": 1, "files": tree}))
        names = {r["name"] for r in catalog.refs(model["key"]) if r["commit_id"] == commit}
        if model["latest_commit"] == commit:
            names.add("main")
        for name in names:
            placer.write_text(f"{folder}/refs/{name}", sha)

    def finish(self, placer: Placer) -> None:
        placer.write_text("CACHEDIR.TAG", CACHEDIR_TAG)


def _digests(name: str) -> dict[str, str]:
    """What a blob's name in the cache vouches for: its sha256 (LFS files), its git blob id (the rest), or nothing."""
    return {alg: name for alg in ("sha256", "git-sha1") if is_valid_digest(alg, name)}


def _snapshot_file(repo_dir: Path, path: Path, rel: str, tree: dict) -> RemoteFile:
    """One snapshot entry with the digests the cache layout vouches for (none if it vouches for nothing)."""
    if path.is_symlink():
        target = path.resolve()
        if target.parent != (repo_dir / "blobs").resolve():
            raise UnsafePathError(f"{path} links outside the repository's blobs folder")
        digests = _digests(target.name)
        return RemoteFile(rel, target.stat().st_size, digests, etag=target.name, lfs="sha256" in digests,
                          location=target)
    entry = tree.get(rel) or {}
    digests = {}
    if entry.get("lfs_sha256"):
        digests["sha256"] = entry["lfs_sha256"]
    elif entry.get("blob_id"):
        digests["git-sha1"] = entry["blob_id"]
    return RemoteFile(rel, path.stat().st_size, digests, lfs="sha256" in digests, location=path)


def _refs(repo_dir: Path) -> dict[str, list[str]]:
    """{commit: [ref names pointing at it]} from the cache's `refs/` folder."""
    refs: dict[str, list[str]] = {}
    refs_dir = repo_dir / "refs"
    for ref_file in sorted(p for p in refs_dir.rglob("*") if p.is_file()) if refs_dir.is_dir() else []:
        refs.setdefault(ref_file.read_text().strip(), []).append(ref_file.relative_to(refs_dir).as_posix())
    return refs


def cache_revisions(repo_dir: Path, report: AdoptReport) -> list[ResolvedRevision]:
    """The revisions of one `models--org--name` (or `datasets--org--name`) folder, one per ref (or per bare
    snapshot)."""
    source = HuggingFaceSource.name
    dataset = repo_dir.name.startswith(DATASET_PREFIX)
    repo = repo_dir.name.removeprefix(DATASET_PREFIX if dataset else REPO_PREFIX).replace("--", "/", 1)
    repo = f"datasets/{repo}" if dataset else repo
    refs = _refs(repo_dir)
    revisions = []
    for snapshot in sorted((repo_dir / "snapshots").iterdir() if (repo_dir / "snapshots").is_dir() else []):
        commit = snapshot.name
        label = f"{source}:{repo}@{commit}"
        if not is_valid_digest("git-sha1", commit):
            report.skipped.append(f"{label}: not a commit-named snapshot")
            continue
        try:
            tree = json.loads((repo_dir / "trees" / f"{commit}.json").read_text()).get("files", {})
        except (OSError, ValueError):
            tree = {}
        try:
            files = [
                _snapshot_file(repo_dir, Path(dirpath) / name,
                               check_relative_path((Path(dirpath) / name).relative_to(snapshot).as_posix()), tree)
                for dirpath, _, names in os.walk(snapshot) for name in sorted(names)
            ]
        except (UnsafePathError, OSError) as exc:
            report.corrupt.append(f"{label}: {exc}")
            continue
        report.unverified.extend(f"{label}:{f.path}" for f in files if not f.digests)
        meta = ModelMetadata(source, repo, extra={"adopted_from": str(repo_dir)},
                             kind="dataset" if dataset else "model")
        for requested in refs.get(commit, [commit]):
            revisions.append(ResolvedRevision(ModelRef(source, repo), commit, requested, meta, files))
    return revisions


class HfCacheAdopter(Adopter):
    name = "hf-cache"
    description = "a Hugging Face hub cache (its models--org--name and datasets--org--name folders)"

    def find(self, path: Path) -> list[Path]:
        if path.name.startswith((REPO_PREFIX, DATASET_PREFIX)):
            return [path]
        return sorted(p for base in (path, path / "hub") for p in (base.iterdir() if base.is_dir() else [])
                      if p.is_dir() and p.name.startswith((REPO_PREFIX, DATASET_PREFIX)))

    def adopt(self, found: Path, adoption: Adoption) -> AdoptReport:
        report = AdoptReport()
        for revision in cache_revisions(found, report):
            adoption.store(revision, report)
        return report


@hookimpl
def register_layouts(register):
    register(HfCacheLayout())


@hookimpl
def register_adopters(register):
    register(HfCacheAdopter())
