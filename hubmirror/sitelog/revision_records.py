"""Revision records: what the catalog knows of one revision (the model's metadata, the commit, every file with its
digests), as one immutable JSON object named by the sha256 of its bytes. Deterministic: the same revision pulled on
two hosts gives the same bytes (unless the upstream's metadata changed between the two pulls)."""

from __future__ import annotations

import hashlib
import json

from hubmirror.catalog import StoredFile
from hubmirror.errors import IntegrityError
from hubmirror.store import check_digest
from hubmirror.store.bucket import encode
from hubmirror.upstream import (
    ModelMetadata,
    ModelRef,
    RemoteFile,
    ResolvedRevision,
    bounded_commit_info,
    check_listing,
)

FORMAT = "hubmirror-record/1"


def build_record(revision: ResolvedRevision, stored: list[StoredFile], plugin: str, description: str) -> dict:
    meta = revision.metadata
    model = {"source": meta.source, "model_id": meta.model_id, "task": meta.task, "library": meta.library,
             "architecture": meta.architecture, "license": meta.license, "tags": " ".join(meta.tags),
             "description": meta.description, "downloads": meta.downloads, "likes": meta.likes,
             "last_modified": meta.last_modified, "gated": int(meta.gated),
             "metadata": json.dumps(meta.extra, sort_keys=True, default=str)}
    if meta.kind != "model":  # a model's record is the same bytes as before datasets
        model["kind"] = meta.kind
    files = [{"path": f.remote.path, "size": f.size, "sha256": f.sha256, "git_sha1": f.git_sha1,
              "upstream_digests": f.remote.digests, "etag": f.remote.etag, "lfs": int(f.remote.lfs)}
             for f in sorted(stored, key=lambda f: f.remote.path)]
    record = {"format": FORMAT, "model": model, "commit": revision.commit, "files": files, "plugin": plugin,
              "source_description": description}
    if info := bounded_commit_info(revision.commit_info):
        record["commit_info"] = info
    return record


def record_bytes(record: dict) -> tuple[bytes, str]:
    body = encode(record)
    return body, hashlib.sha256(body).hexdigest()


def parse_record(record: dict) -> tuple[ResolvedRevision, list[StoredFile], str, str]:
    """(revision, stored files, plugin, source description) of a record, every name and digest checked as a
    bundle's are (records come from a shared bucket: another host, or anyone with write access, wrote them)."""
    model = record.get("model") or {}
    source, model_id, commit = model.get("source"), model.get("model_id"), record.get("commit")
    if not all(isinstance(v, str) and v for v in (source, model_id, commit)):
        raise IntegrityError("a site record names no model or commit")
    meta = ModelMetadata.from_row(model)
    remotes, stored = [], []
    for row in record.get("files") or []:
        digest = check_digest(row.get("sha256"))
        if not isinstance(row.get("size"), int) or row["size"] < 0:
            raise IntegrityError(f"{source}:{model_id}: {row.get('path')!r}: bad size in a site record")
        upstream = {a: v for a, v in (row.get("upstream_digests") or {}).items() if isinstance(v, str)}
        remote = RemoteFile(row["path"], row["size"], upstream, etag=row.get("etag"), lfs=bool(row.get("lfs")))
        remotes.append(remote)
        stored.append(StoredFile(remote, digest, row.get("git_sha1"), row["size"], reused=True))
    revision = ResolvedRevision(ModelRef(source, model_id), commit, commit, meta, remotes,
                                commit_info=bounded_commit_info(record.get("commit_info")))
    check_listing(revision)
    return revision, stored, str(record.get("plugin") or "site"), str(record.get("source_description") or "")


def merge_records(existing: dict, mine: dict) -> dict:
    """One record for one commit pulled twice with different file selections: the existing one plus the files only
    `mine` has (a commit's path names the same bytes everywhere). Returns `existing` itself when it holds them all."""
    paths = {f["path"] for f in existing.get("files") or []}
    extra = [f for f in mine.get("files") or [] if f["path"] not in paths]
    if not extra:
        return existing
    return {**existing, "files": sorted([*existing["files"], *extra], key=lambda f: f["path"])}
