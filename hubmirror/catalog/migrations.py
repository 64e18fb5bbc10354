"""Schema of catalog.db, as sqlite-utils migrations (applied in order, each in its own transaction)."""

from __future__ import annotations

from hubmirror.catalog.sqlite import Database, Migrations

migrations = Migrations("hubmirror")

# `facets` holds one token per filterable value (see catalog.facet_token), so filters narrow searches in the index.
FTS_COLUMNS = ["key", "model_id", "task", "library", "architecture", "license", "tags", "description", "facets"]


@migrations()
def m001_initial(db: Database) -> None:
    db["sources"].create({"name": str, "plugin": str, "description": str, "first_seen": str}, pk="name")
    db["models"].create(
        {
            "key": str,  # "source:model_id"
            "source": str,
            "model_id": str,
            "task": str,
            "library": str,
            "architecture": str,
            "license": str,
            "tags": str,  # space-separated, for search and display
            "description": str,
            "downloads": int,
            "likes": int,
            "last_modified": str,
            "gated": int,
            "cached": int,  # 1 once a revision is fully stored
            "size_bytes": int,  # of the newest pulled revision
            "file_count": int,
            "latest_commit": str,
            "metadata": str,  # JSON: everything else the source said
            "facets": str,  # search tokens of source, task, license, library, cached
            "indexed_at": str,
            "updated_at": str,
        },
        pk="key",
        not_null={"source", "model_id", "cached"},
        defaults={"cached": 0},
    )
    # Each filter with the sort order of a filter-only search, so that those read 20 index entries, not sort all.
    for column in ("source", "task", "license", "library", "cached"):
        db["models"].create_index([column, "downloads"])
    db["models"].create_index(["downloads"])
    db["revisions"].create(
        {"model_key": str, "commit_id": str, "pulled_at": str, "size_bytes": int, "file_count": int},
        pk=("model_key", "commit_id"),
        foreign_keys=[("model_key", "models", "key")],
    )
    db["refs"].create(
        {"model_key": str, "name": str, "commit_id": str, "updated_at": str},
        pk=("model_key", "name"),
        foreign_keys=[("model_key", "models", "key")],
    )
    db["files"].create(
        {
            "model_key": str,
            "commit_id": str,
            "path": str,
            "size": int,
            "sha256": str,  # the blob's name in the store
            "git_sha1": str,
            "upstream_digests": str,  # JSON {algorithm: hex} as the upstream published them
            "etag": str,
            "lfs": int,
        },
        pk=("model_key", "commit_id", "path"),
        not_null={"sha256", "size"},
    )
    db["files"].create_index(["sha256"])
    db["files"].create_index(["git_sha1"])
    db["benchmarks"].create(
        {
            "id": int,
            "model_key": str,
            "commit_id": str,
            "status": str,
            "device": str,
            "dtype": str,
            "batch_size": int,
            "latency_p50_ms": float,
            "latency_p90_ms": float,
            "latency_p99_ms": float,
            "throughput": float,
            "peak_memory_bytes": int,
            "parameters": int,
            "environment": str,
            "created_at": str,
        },
        pk="id",
    )
    db["benchmarks"].create_index(["model_key"])
    db["scans"].create(
        {"sha256": str, "scanner": str, "scanner_version": str, "verdict": str, "details": str, "scanned_at": str},
        pk=("sha256", "scanner"),
    )
    db["models"].enable_fts(FTS_COLUMNS, tokenize="porter unicode61", create_triggers=True)


@migrations()
def m002_quarantine_allowances(db: Database) -> None:
    """Files an operator allows despite their admission verdict, one by one."""
    db["allowed"].create({"sha256": str, "reason": str, "allowed_at": str}, pk="sha256")


@migrations()
def m003_file_basename_index(db: Database) -> None:
    """Files by exact base name (what `serve` answers `/torch/checkpoints/{name}` with): the path after its last '/'.
    rtrim strips the characters of the name, leaving the directory; replace drops that prefix."""
    db.execute("CREATE INDEX files_basename ON files(replace(path, rtrim(path, replace(path, '/', '')), ''))")


@migrations()
def m004_site_log(db: Database) -> None:
    """A mirror whose store is a bucket shared by many hosts keeps this catalog as a derived index of the bucket's
    records (hubmirror/sitelog): the log entries already applied, and which bucket record each revision came from."""
    db["site_log"].create({"name": str, "applied_at": str}, pk="name")
    db["site_revisions"].create({"model_key": str, "commit_id": str, "record": str}, pk=("model_key", "commit_id"))


@migrations()
def m005_exact_search(db: Database) -> None:
    """The search index of hubmirror.catalog.search: a document per model and ordering (name, and all words by
    downloads, likes and last modification) in a contentless FTS5 table whose rowids give each ordering, kept by
    triggers; it replaces models_fts.
    Indexes for exact-name lookups and for sorting by likes and by last modification."""
    from hubmirror.catalog.search import SEARCH_TABLE, create_search_triggers, fill_search_index

    db["models"].disable_fts()
    db.execute(f"CREATE VIRTUAL TABLE {SEARCH_TABLE} USING fts5(text, content='', detail=none, "
               "tokenize='porter unicode61')")
    fill_search_index(db.conn)
    create_search_triggers(db.conn)
    db.execute("CREATE INDEX models_id_lower ON models(lower(model_id))")
    db.execute("CREATE INDEX models_name_lower ON models(lower(replace(model_id, rtrim(model_id, "
               "replace(model_id, '/', '')), '')))")
    db.execute("CREATE INDEX models_likes ON models(likes)")
    db.execute("CREATE INDEX models_last_modified ON models(coalesce(last_modified, updated_at))")


@migrations()
def m006_tokens(db: Database) -> None:
    """The tokens `serve` accepts (hubmirror.access.tokens): a slow hash of each, never the token; a revoked one keeps
    its row (`revoked_at`) for good."""
    db["tokens"].create({"id": str, "name": str, "scope": str, "hash": str, "repos": str, "gated": str,
                         "created_at": str, "expires_at": str, "revoked_at": str}, pk="id")
    db["tokens"].create_index(["name"])


@migrations()
def m007_model_access(db: Database) -> None:
    """What a server's access check needs of each model (its key, whether it is gated or private) in a narrow table
    in downloads order, kept by triggers: a search filtered for one reader checks its thousands of candidates there
    instead of reading their whole rows (hubmirror.catalog.search)."""
    from hubmirror.catalog.search import create_access_table

    create_access_table(db.conn)


@migrations()
def m008_ref_kinds_and_commit_info(db: Database) -> None:
    """What the upstream says of a ref (`kind`: branch, tag, pr, or commit for a revision asked by its commit; NULL
    where it was not said) and of a commit (`commit_info`: JSON {date, title, message, authors} as far as known), so
    that `serve` answers refs and commits as the Hub does."""
    db["refs"].add_column("kind", str)
    db["revisions"].add_column("commit_info", str)


@migrations()
def m009_kinds(db: Database) -> None:
    """What each catalogued repository holds: `model` (every row so far) or `dataset` (upstream.KINDS), with the
    (kind, downloads) index a listing of one kind reads in order."""
    db["models"].add_column("kind", str, not_null_default="model")
    db["models"].create_index(["kind", "downloads"])


@migrations()
def m010_xet_chunks(db: Database) -> None:
    """Where the mirror holds the chunks of Xet xorbs (hubmirror.xet.chunks): chunk `idx` of xorb `xorb` (its 32-byte
    hash) is `length` bytes at `file_offset` of the blob `sha256`; recorded once a blob read through Xet verified
    (where a chunk lies within a serialized xorb is not kept: it depends on the server that serialized it, and
    another mirror serves the same xorb otherwise), so that a new revision's reconstruction takes
    the chunks the mirror holds from its own store; and (`xet_files`) each such blob's Xet file hash and layout."""
    db.execute("CREATE TABLE xet_chunks (xorb BLOB NOT NULL, idx INTEGER NOT NULL, sha256 BLOB NOT NULL, "
               "file_offset INTEGER NOT NULL, length INTEGER NOT NULL, PRIMARY KEY (xorb, idx)) WITHOUT ROWID")
    # a blob read whole through Xet: its Xet file hash and its chunk layout (hubmirror.xet.layout), so that serve
    # presents it to Xet clients as the upstream's xorbs, read from the blob itself
    db.execute("CREATE TABLE xet_files (sha256 TEXT PRIMARY KEY, xet_hash TEXT NOT NULL, layout BLOB NOT NULL) "
               "WITHOUT ROWID")
    db.execute("CREATE INDEX xet_files_hash ON xet_files (xet_hash)")


@migrations()
def m011_one_blob_per_xet_hash(db: Database) -> None:
    """A Xet file hash names one content, so it names one blob: the index on it becomes unique. Rows giving one hash
    to several blobs (one claim of them false, recorded by an earlier version from an upstream or another host) are
    dropped first; those files are served by plain resolve until a pull reads them through Xet again."""
    db.execute("DELETE FROM xet_files WHERE xet_hash IN "
               "(SELECT xet_hash FROM xet_files GROUP BY xet_hash HAVING count(*) > 1)")
    db.execute("DROP INDEX xet_files_hash")
    db.execute("CREATE UNIQUE INDEX xet_files_hash ON xet_files (xet_hash)")
