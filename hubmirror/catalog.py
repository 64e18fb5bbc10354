"""catalog.db: sources, models, revisions, refs, files, benchmark and scan results, with full-text search."""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from hubmirror.crashpoints import crashpoint
from hubmirror.errors import NoMirrorError
from hubmirror.records import ModelMetadata, RemoteFile, ResolvedRevision

CATALOG_NAME = "catalog.db"
SCHEMA_VERSION = 2  # how many migrations hubmirror.migrations holds; stored as PRAGMA user_version
RANK_CANDIDATES = 500
_MAX_QUERY_WORDS = 8
# What a query word found in these columns adds to a model's score (every candidate has each word somewhere,
# the description at least).
_FIELD_WEIGHTS = [("key model_id", 8), ("task library architecture tags license", 3)]


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class StoredFile:
    """A file of a revision whose bytes are in the store, with the digests computed while storing it."""

    remote: RemoteFile
    sha256: str
    git_sha1: str | None
    size: int
    reused: bool = False  # the bytes were already in the store


def facet_token(kind: str, value) -> str:
    """The search token standing for `kind = value` (letters and digits only, so the tokenizer keeps it whole)."""
    return "hmf" + kind + re.sub(r"[^0-9a-z]", "", str(value).lower())


def search_facets(meta: ModelMetadata, cached: bool) -> str:
    """The facet tokens of a model, for the `facets` search column."""
    values = {"source": meta.source, "task": meta.task, "license": meta.license, "library": meta.library,
              "cached": int(cached)}
    return " ".join(facet_token(kind, value) for kind, value in values.items() if value is not None)


def fts_words(text: str) -> list[str]:
    """The words of `text` as quoted FTS5 strings, so that user input cannot inject FTS syntax."""
    return [f'"{w}"' for w in dict.fromkeys(re.findall(r"\w+", text.lower()))][:_MAX_QUERY_WORDS]


class Catalog:
    """The SQLite catalog of one mirror. Writes are whole transactions; readers never see half a pull."""

    def __init__(self, path: Path | str, *, create: bool = True):
        path = Path(path)
        if not create and not path.exists():
            raise NoMirrorError(f"no mirror at {path.parent} ({CATALOG_NAME} not found): pull something first or pass --root")
        self.conn = sqlite3.connect(str(path), timeout=60, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA busy_timeout = 60000")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self._db = None
        if self.conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            self._migrate()

    @property
    def db(self):
        """The sqlite-utils view of the connection, for writes (imported on first use: reads need only sqlite3)."""
        if self._db is None:
            from sqlite_utils import Database

            self._db = Database(self.conn)
        return self._db

    def _migrate(self) -> None:
        """Bring the schema up to date; one process at a time (the write lock is taken before looking)."""
        from hubmirror.migrations import migrations

        if self.db.journal_mode != "wal":
            self.db.enable_wal()  # must run outside a transaction; persists in the file
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            migrations.apply(self.db)
            self.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self):
        """A write transaction that takes SQLite's write lock up front (BEGIN IMMEDIATE): concurrent writers from
        other processes wait their turn (busy timeout) instead of failing on a stale read snapshot."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _rows(self, sql: str, args: Iterable = ()) -> list[dict]:
        cursor = self.conn.execute(sql, list(args))
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    # -- writes ---------------------------------------------------------------------------------------------------

    def record_revisions(self, revisions: list[tuple[ResolvedRevision, list[StoredFile]]], plugin: str,
                         source_description: str = "", scans: list[dict] | None = None) -> None:
        """Catalogue fully stored revisions (files, refs, the models' metadata) and their files' admission verdicts
        in one transaction."""
        now = utc_now()
        with self.transaction():
            self.record_scans(scans or [], now)
            for revision, stored in revisions:
                self._record_revision(revision, stored, plugin, source_description, now)
            crashpoint("catalog.before_commit")
        crashpoint("catalog.after_commit")

    def record_scans(self, scans: list[dict], now: str | None = None) -> None:
        """Upsert admission verdicts ({sha256, scanner, scanner_version, verdict, details})."""
        now = now or utc_now()
        self.db["scans"].upsert_all(({**s, "scanned_at": now} for s in scans), pk=("sha256", "scanner"))

    def scan_versions(self, scanner: str) -> dict[str, str]:
        """{sha256: scanner version} of every blob this scanner has judged."""
        return dict(self.conn.execute("SELECT sha256, scanner_version FROM scans WHERE scanner = ?", [scanner]))

    def quarantined(self, scanner: str) -> list[dict]:
        """Referenced files whose verdict is not clean and that no operator allowed."""
        return self._rows(
            "SELECT f.model_key, f.commit_id, f.path, f.sha256, s.verdict, s.details FROM files f "
            "JOIN scans s ON s.sha256 = f.sha256 AND s.scanner = ? "
            "WHERE s.verdict != 'clean' AND f.sha256 NOT IN (SELECT sha256 FROM allowed) ORDER BY 1, 2, 3", [scanner])

    def is_quarantined(self, sha256: str, scanner: str) -> bool:
        return self.conn.execute(
            "SELECT 1 FROM scans WHERE sha256 = ? AND scanner = ? AND verdict != 'clean' "
            "AND sha256 NOT IN (SELECT sha256 FROM allowed)", [sha256, scanner]).fetchone() is not None

    def _fastest(self, match: str, filters: str, args: list, limit: int) -> list[dict]:
        """Benchmarked models matching the query and filters, highest throughput first."""
        text = " AND m.rowid IN (SELECT rowid FROM models_fts WHERE models_fts MATCH ?)" if match else ""
        sql = ("SELECT m.*, b.throughput, b.latency_p50_ms, b.device FROM models m JOIN "
               "(SELECT model_key, device, max(throughput) AS throughput, min(latency_p50_ms) AS latency_p50_ms "
               "FROM benchmarks WHERE status = 'ok' AND throughput IS NOT NULL GROUP BY model_key, device) b "
               f"ON b.model_key = m.key WHERE 1 {filters}{text} ORDER BY b.throughput DESC LIMIT ?")
        return self._rows(sql, [*args, *([match] if match else []), limit])

    def record_benchmark(self, row: dict) -> None:
        with self.transaction():
            self.db["benchmarks"].insert({**row, "created_at": utc_now()})

    def benchmarks(self, latest_only: bool = True) -> list[dict]:
        """Benchmark rows (the newest per model and device unless `latest_only` is False), fastest first."""
        where = ("WHERE b.id IN (SELECT max(id) FROM benchmarks GROUP BY model_key, device)" if latest_only else "")
        return self._rows(f"SELECT b.*, m.task, m.library FROM benchmarks b LEFT JOIN models m ON m.key = b.model_key "
                          f"{where} ORDER BY b.throughput IS NULL, b.throughput DESC, b.model_key")

    def allow(self, sha256: str, reason: str) -> None:
        with self.transaction():
            self.db["allowed"].upsert({"sha256": sha256, "reason": reason, "allowed_at": utc_now()}, pk="sha256")

    def revoke(self, sha256: str) -> int:
        return self.conn.execute("DELETE FROM allowed WHERE sha256 = ?", [sha256]).rowcount

    def record_index(self, metas: Iterable[ModelMetadata], plugin: str, source_description: str = "") -> int:
        """Add or refresh listed models (not cached unless they already are) in one transaction; return how many."""
        now = utc_now()
        with self.transaction():
            rows = [self._model_row(meta, cached=False, now=now) | {"indexed_at": now} for meta in metas]
            for source in {row["source"] for row in rows}:
                self.db["sources"].insert({"name": source, "plugin": plugin, "description": source_description,
                                           "first_seen": now}, ignore=True)
            self.db["models"].upsert_all(rows, pk="key")
        return len(rows)

    def _record_revision(self, revision: ResolvedRevision, stored: list[StoredFile], plugin: str,
                         source_description: str, now: str) -> None:
        key = revision.ref.key
        size = sum(f.size for f in stored)
        self.db["sources"].insert(
            {"name": revision.ref.source, "plugin": plugin, "description": source_description, "first_seen": now},
            ignore=True,
        )
        self._upsert_model(revision.metadata, cached=True, now=now)
        self.db["models"].update(key, {"size_bytes": size, "file_count": len(stored), "latest_commit": revision.commit})
        self.db["revisions"].upsert(
            {"model_key": key, "commit_id": revision.commit, "pulled_at": now, "size_bytes": size,
             "file_count": len(stored)},
            pk=("model_key", "commit_id"),
        )
        self.db["refs"].upsert(
            {"model_key": key, "name": revision.requested, "commit_id": revision.commit, "updated_at": now},
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

    def _upsert_model(self, meta: ModelMetadata, *, cached: bool, now: str) -> None:
        """Insert or update a model's metadata; `cached` False leaves an already cached model cached."""
        self.db["models"].upsert(self._model_row(meta, cached=cached, now=now), pk="key")

    def _model_row(self, meta: ModelMetadata, *, cached: bool, now: str) -> dict:
        if not cached:
            row = self.conn.execute("SELECT cached FROM models WHERE key = ?", [meta.key]).fetchone()
            cached = bool(row and row[0])
        return {
            "key": meta.key,
            "source": meta.source,
            "model_id": meta.model_id,
            "task": meta.task,
            "library": meta.library,
            "architecture": meta.architecture,
            "license": meta.license,
            "tags": " ".join(meta.tags),
            "description": meta.description,
            "downloads": meta.downloads,
            "likes": meta.likes,
            "last_modified": meta.last_modified,
            "gated": int(meta.gated),
            "metadata": json.dumps(meta.extra, sort_keys=True, default=str),
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

    # -- reads ----------------------------------------------------------------------------------------------------

    def model(self, key: str) -> dict | None:
        rows = self._rows("SELECT * FROM models WHERE key = ?", [key])
        return rows[0] if rows else None

    def models(self, *, cached_only: bool = True, source: str | None = None) -> list[dict]:
        clauses, args = ["1"], []
        if cached_only:
            clauses.append("cached = 1")
        if source:
            clauses.append("source = ?")
            args.append(source)
        return self._rows(f"SELECT * FROM models WHERE {' AND '.join(clauses)} ORDER BY key", args)

    def revision_keys(self) -> list[tuple[str, str]]:
        """(model key, commit) of every stored revision."""
        return [tuple(r) for r in self.conn.execute("SELECT model_key, commit_id FROM revisions ORDER BY 1, 2")]

    def revisions(self, key: str) -> list[dict]:
        return self._rows("SELECT * FROM revisions WHERE model_key = ? ORDER BY pulled_at, rowid", [key])

    def refs(self, key: str) -> list[dict]:
        return self._rows("SELECT * FROM refs WHERE model_key = ? ORDER BY name", [key])

    def files(self, key: str, commit: str) -> list[dict]:
        return self._rows("SELECT * FROM files WHERE model_key = ? AND commit_id = ? ORDER BY path", [key, commit])

    def commit_for(self, key: str, revision: str | None) -> str | None:
        """The commit a revision name (ref or commit, or the newest when None) points at in this mirror."""
        if revision is None:
            model = self.model(key)
            return model["latest_commit"] if model else None
        row = self.conn.execute(
            "SELECT commit_id FROM refs WHERE model_key = ? AND name = ? UNION ALL "
            "SELECT commit_id FROM revisions WHERE model_key = ? AND commit_id = ?",
            [key, revision, key, revision],
        ).fetchone()
        return row[0] if row else None

    def file_rows(self, selection: Iterable[tuple[str, str]] | None = None) -> list[dict]:
        """File rows of the given (model key, commit) pairs, or of the whole catalog."""
        if selection is None:
            return self._rows("SELECT * FROM files ORDER BY sha256")
        rows: list[dict] = []
        for key, commit in selection:
            rows.extend(self.files(key, commit))
        return rows

    def referenced_digests(self) -> set[str]:
        return {row[0] for row in self.conn.execute("SELECT DISTINCT sha256 FROM files")}

    def sha256_for_git_sha1(self, git_sha1: str) -> str | None:
        row = self.conn.execute("SELECT sha256 FROM files WHERE git_sha1 = ? LIMIT 1", [git_sha1]).fetchone()
        return row[0] if row else None

    def search(
        self,
        query: str = "",
        *,
        source: str | None = None,
        task: str | None = None,
        license: str | None = None,
        library: str | None = None,
        cached: bool | None = None,
        limit: int = 20,
        fastest: bool = False,
    ) -> list[dict]:
        """Models matching every word of `query` (stemmed full-text search) and the filters, best first.

        Ranking: for each query word, a hit in the name counts most, then one in task/library/architecture/tags/
        license, then one in the description only; ties go to the most downloaded. Only the RANK_CANDIDATES most
        recently catalogued matches are ranked, so that a query matching most of a million-model catalog still
        answers in milliseconds. Filters are facet tokens in the same index (and checked exactly afterwards).
        """
        clauses, args = [], []
        for column, value in (("source", source), ("task", task), ("license", license), ("library", library)):
            if value:
                clauses.append(f"m.{column} = ?")
                args.append(value)
        if cached is not None:
            clauses.append("m.cached = ?")
            args.append(int(cached))
        filters = "".join(" AND " + c for c in clauses)
        words = fts_words(query)
        if fastest:
            return self._fastest(" ".join(words), filters, args, limit)
        if not words:
            sql = f"SELECT m.* FROM models m WHERE 1 {filters} ORDER BY m.downloads DESC, m.key LIMIT ?"
            return self._rows(sql, [*args, limit])
        facets = [
            f'"{facet_token(kind, value)}"'
            for kind, value in (("source", source), ("task", task), ("license", license), ("library", library),
                                ("cached", None if cached is None else int(cached)))
            if value is not None and value != ""
        ]
        match = " ".join(words + facets)
        lowest = self.conn.execute(
            "SELECT min(rowid) FROM (SELECT rowid FROM models_fts WHERE models_fts MATCH ? ORDER BY rowid DESC LIMIT ?)",
            [match, RANK_CANDIDATES],
        ).fetchone()[0]
        if lowest is None:
            return []
        score_terms, score_args = [], []
        for word in words:
            for columns, weight in _FIELD_WEIGHTS:
                score_terms.append(
                    f"{weight} * (m.rowid IN (SELECT rowid FROM models_fts WHERE models_fts MATCH ? AND rowid >= ?))"
                )
                score_args += [f"({{{columns}}} : {word}) AND ({match})", lowest]
        sql = (
            f"SELECT m.*, {' + '.join(score_terms)} AS score FROM models m "
            f"WHERE m.rowid >= ? AND m.rowid IN (SELECT rowid FROM models_fts WHERE models_fts MATCH ? AND rowid >= ?)"
            f"{filters} ORDER BY score DESC, m.downloads DESC, m.key LIMIT ?"
        )
        rows = self._rows(sql, [*score_args, lowest, match, lowest, *args, limit])
        return [{k: v for k, v in r.items() if k != "score"} for r in rows]
