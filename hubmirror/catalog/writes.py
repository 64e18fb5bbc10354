"""Catalogue writes: stored revisions (models, revisions, refs, files), listings, removals."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

from hubmirror.catalog.connection import utc_now
from hubmirror.catalog.search import search_facets
from hubmirror.crashpoints import crashpoint
from hubmirror.upstream import bounded_commit_info

if TYPE_CHECKING:
    from hubmirror.upstream import ModelMetadata, RemoteFile, ResolvedRevision


@dataclass
class StoredFile:
    """A file of a revision whose bytes are in the store, with the digests computed while storing it."""

    remote: RemoteFile
    sha256: str
    git_sha1: str | None
    size: int
    reused: bool = False  # the bytes were already in the store


MAX_METADATA_JSON = 1 << 20  # bytes of a model's extra metadata (card data, config) kept
MAX_DESCRIPTION = 64 << 10
MAX_TAGS, MAX_TAG = 1000, 200


class RevisionWrites:
    """Mixin of Catalog: what pull, import, adopt, index and rm write."""

    def record_revisions(self, revisions: list[tuple[ResolvedRevision, list[StoredFile]]], plugin: str,
                         source_description: str = "", scans: list[dict] | None = None) -> None:
        """Catalogue fully stored revisions (files, refs, the models' metadata) and their files' admission verdicts
        in one transaction."""
        now = utc_now()
        with self.transaction():
            with self.search_index_batch({revision.ref.key for revision, _ in revisions}):
                self.record_scans(scans or [], now)
                for revision, stored in revisions:
                    self._record_revision(revision, stored, plugin, source_description, now)
            crashpoint("catalog.before_commit")
        crashpoint("catalog.after_commit")

    def record_index(self, metas: Iterable[ModelMetadata], plugin: str, source_description: str = "") -> int:
        """Add or refresh listed models (not cached unless they already are) in one transaction, once the whole
        listing is read; return how many."""
        metas = list(metas)
        now = utc_now()
        with self.transaction():
            for source in {meta.source for meta in metas}:
                self.db["sources"].insert({"name": source, "plugin": plugin, "description": source_description,
                                           "first_seen": now}, ignore=True)
            with self.search_index_batch({meta.key for meta in metas}):
                self._upsert_models(metas, cached=False, now=now, indexed=True)
            crashpoint("catalog.before_commit")
        crashpoint("catalog.after_commit")
        return len(metas)

    def _record_revision(self, revision: ResolvedRevision, stored: list[StoredFile], plugin: str,
                         source_description: str, now: str) -> None:
        key = revision.ref.key
        size = sum(f.size for f in stored)
        self.db["sources"].insert(
            {"name": revision.ref.source, "plugin": plugin, "description": source_description, "first_seen": now},
            ignore=True,
        )
        self._upsert_models([revision.metadata], cached=True, now=now)
        self.db["models"].update(key, {"size_bytes": size, "file_count": len(stored), "latest_commit": revision.commit})
        info = bounded_commit_info(revision.commit_info)
        kind = "commit" if revision.requested == revision.commit else revision.requested_kind
        before = self.conn.execute("SELECT commit_id FROM refs WHERE model_key = ? AND name = ?",
                                   [key, revision.requested]).fetchone()
        if before and before[0] != revision.commit and kind not in ("tag", "commit"):  # the branch moved on
            info["previous"] = before[0]  # what it pointed at here before: this mirror's view of its history
        elif (held := self.conn.execute("SELECT commit_info FROM revisions WHERE model_key = ? AND commit_id = ?",
                                        [key, revision.commit]).fetchone()) and held[0]:
            info.setdefault("previous", json.loads(held[0]).get("previous"))  # pulled again: keep what was known
            if info["previous"] is None:
                del info["previous"]
        self.db["revisions"].upsert(
            {"model_key": key, "commit_id": revision.commit, "pulled_at": now, "size_bytes": size,
             "file_count": len(stored), "commit_info": json.dumps(info, sort_keys=True) if info else None},
            pk=("model_key", "commit_id"),
        )
        self.db["refs"].upsert(
            {"model_key": key, "name": revision.requested, "commit_id": revision.commit, "updated_at": now,
             "kind": kind},
            pk=("model_key", "name"),
        )
        self.db["files"].upsert_all(
            (
                {
                    "model_key": key,
                    "commit_id": revision.commit,
                    "path": f.remote.path,
                    "size": f.size,
                    "sha256": f.sha256,
                    "git_sha1": f.git_sha1,
                    "upstream_digests": json.dumps(f.remote.digests, sort_keys=True),
                    "etag": f.remote.etag,
                    "lfs": int(f.remote.lfs),
                }
                for f in stored
            ),
            pk=("model_key", "commit_id", "path"),
        )

    def _upsert_models(self, metas: list[ModelMetadata], *, cached: bool, now: str, indexed: bool = False) -> None:
        """Insert or update models' metadata, one SQLite upsert each (a new model fires only the insert trigger);
        `cached` False leaves already cached models cached; `indexed` stamps them as listed now."""
        already = set() if cached else {r[0] for r in self.conn.execute(
            "SELECT key FROM models WHERE cached = 1 AND key IN (SELECT value FROM json_each(?))",
            [json.dumps([m.key for m in metas])])}
        stamp = {"indexed_at": now} if indexed else {}
        rows = [self._model_row(m, cached=cached or m.key in already, now=now) | stamp for m in metas]
        if not rows:
            return
        columns = list(rows[0])
        values = ", ".join(":" + c for c in columns)
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != "key")
        self.conn.executemany(f"INSERT INTO models ({', '.join(columns)}) VALUES ({values}) "
                              f"ON CONFLICT(key) DO UPDATE SET {updates}", rows)

    @staticmethod
    def _model_row(meta: ModelMetadata, *, cached: bool, now: str) -> dict:
        """The `models` row of `meta`, every text within its bound (an upstream's metadata is hostile until
        checked: a 20 MB card or a million tags never reach the catalog, the search index or a page)."""
        extra = json.dumps(meta.extra, sort_keys=True, default=str)
        if len(extra) > MAX_METADATA_JSON:
            extra = json.dumps({"omitted": f"the upstream's metadata was over {MAX_METADATA_JSON} bytes"})
        return {
            "key": meta.key,
            "source": meta.source,
            "model_id": meta.model_id,
            "task": meta.task,
            "library": meta.library,
            "architecture": meta.architecture,
            "license": meta.license,
            "tags": " ".join(t[:MAX_TAG] for t in meta.tags[:MAX_TAGS]),
            "description": meta.description[:MAX_DESCRIPTION] if meta.description else meta.description,
            "downloads": meta.downloads,
            "likes": meta.likes,
            "last_modified": meta.last_modified,
            "gated": int(meta.gated),
            "kind": meta.kind,
            "metadata": extra,
            "facets": search_facets(meta, cached),
            "cached": int(cached),
            "updated_at": now,
        }

    def remove(self, key: str, commit: str | None = None) -> int:
        """Forget a model (or one of its revisions); return the number of file rows removed. Blobs stay for gc."""
        where, args = ("model_key = ?", [key]) if commit is None else ("model_key = ? AND commit_id = ?", [key, commit])
        with self.transaction():
            removed = self.db.execute(f"DELETE FROM files WHERE {where}", args).rowcount
            self.db.execute(f"DELETE FROM refs WHERE {where}", args)
            self.db.execute(f"DELETE FROM revisions WHERE {where}", args)
            left = self.db.execute("SELECT count(*) FROM revisions WHERE model_key = ?", [key]).fetchone()[0]
            if not left:
                self.db.execute("DELETE FROM models WHERE key = ?", [key])
            else:
                latest = self.db.execute(
                    "SELECT commit_id, size_bytes, file_count FROM revisions WHERE model_key = ? "
                    "ORDER BY pulled_at DESC, rowid DESC LIMIT 1", [key]).fetchone()
                self.db["models"].update(key, dict(zip(("latest_commit", "size_bytes", "file_count"), latest, strict=True)))
        return removed

