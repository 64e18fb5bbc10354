"""The catalog seen as Hub repositories: repo ids, revisions and lookups by key, safe to call from many threads.

Every method blocks on SQLite, so the server calls them from worker threads. Each call borrows a read connection
of its own from a pool (a sqlite3 connection is never used by two threads at once). The repo-id map is the one cache:
it is rebuilt whenever another connection has committed anything (`PRAGMA data_version`), so a pull, an `rm` or a
metadata refresh shows at the next request.
"""

from __future__ import annotations

import json
import queue
import threading
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Iterator

from hubmirror.catalog import CATALOG_NAME, Catalog
from hubmirror.serving import hf_api
from hubmirror.serving.hub_ids import (
    ServedFile,
    assign_repo_ids,
    hub_commit,
    served_file,
)
from hubmirror.store import BlobStore, LocalBlobStore


class MirrorView:
    """The mirror at `root` as Hub repositories, with repo ids as `registry`'s plugins claim them, and its blobs in
    `store` (the mirror's own: the local directory at `root` by default)."""

    def __init__(self, root: Path, registry, store: BlobStore | None = None):
        self.registry = registry
        self.store = store if store is not None else LocalBlobStore(root)  # the blobs, local or in a bucket
        self.xet_cas = None  # set by create_app when files are presented through Xet (hubmirror.serving.xet_cas)
        self._path = Path(root) / CATALOG_NAME
        self._watch = Catalog(self._path, create=False)  # opened first: it brings the schema up to date
        self._lock = threading.Lock()  # guards the watch connection, the map and the list of connections
        self._version: int | None = None
        self._repos: dict[str, dict] = {}
        self._repo_of: dict[str, str] = {}  # model key -> the repo id it is served under
        self._tokens: dict = {}  # token id -> TokenRecord of the live tokens
        self._tokens_seen: tuple | None = None
        self._idle: queue.SimpleQueue[Catalog] = queue.SimpleQueue()
        self._opened: list[Catalog] = [self._watch]
        self.upstream = None  # `serve --upstream`: a hubmirror.serving.proxy.Upstream that pulls what is missing

    def repos(self) -> dict[str, dict]:
        """{repo id: model row} of every cached model, as of the last commit to the catalog."""
        return self._current()[0]

    def repo_of(self) -> dict[str, str]:
        """{model key: repo id} of every cached model."""
        return self._current()[1]

    def tokens(self) -> dict:
        """{id: `hubmirror.access.tokens.TokenRecord`} of the tokens not revoked, as of the last commit."""
        return self._current()[2]

    def _current(self) -> tuple[dict, dict, dict]:
        with self._lock:
            version = self._watch.conn.execute("PRAGMA data_version").fetchone()[0]
            if version != self._version:
                self._repos = assign_repo_ids(self._watch.models(cached_only=True), self.registry)
                self._repo_of = {m["key"]: rid for rid, m in self._repos.items()}
                # read again only when a token was added or revoked (10,000 records are worth not rebuilding)
                seen = self._watch.conn.execute("SELECT count(*), max(rowid), count(revoked_at) FROM tokens").fetchone()
                if seen != self._tokens_seen:
                    self._tokens, self._tokens_seen = self._watch.token_records(), seen
                self._version = version
            return self._repos, self._repo_of, self._tokens

    def commit(self, model: dict, revision: str | None) -> tuple[str, str] | None:
        """(catalog commit, served 40-hex commit) that a ref, a catalog commit or a served commit names; None and
        `main` (unless a ref has that name) name the newest revision."""
        key = model["key"]
        with self.catalog() as catalog:
            if revision in (None, "main"):  # the `main` ref where the mirror has one, else the newest revision
                revision = "main" if catalog.commit_for(key, "main") else None
            commit = catalog.commit_for(key, revision)
            if commit is None:
                commit = next((r["commit_id"] for r in catalog.revisions(key)
                               if hub_commit(key, r["commit_id"]) == revision), None)
        return None if commit is None else (commit, hub_commit(key, commit))

    def file(self, model: dict, commit: str, path: str) -> ServedFile | None:
        with self.catalog() as catalog:
            row = catalog.file(model["key"], commit, path)
            return None if row is None else self._with_xet(catalog, [served_file(row)])[0]

    def files(self, model: dict, commit: str, directory: str = "") -> list[ServedFile]:
        """The files of a revision, or those below `directory`, by path."""
        with self.catalog() as catalog:
            return self._with_xet(catalog, [served_file(r) for r in catalog.files_under(model["key"], commit,
                                                                                        directory)])

    def _with_xet(self, catalog, files: list[ServedFile]) -> list[ServedFile]:
        """`files`, those LFS files this server presents through Xet (files read through Xet) with their Xet file
        hash."""
        if self.xet_cas is None or not files:
            return files
        hashes = catalog.xet_hashes([f.sha256 for f in files if f.lfs])
        return [replace(f, xet_hash=hashes[f.sha256]) if f.sha256 in hashes else f for f in files]

    def paths(self, model: dict, commit: str, wanted: list[str]) -> tuple[list[ServedFile], dict[str, str]]:
        """The files and the directories ({path: git tree id}) among `wanted` paths of a revision, each found by
        key."""
        files, directories = [], {}
        with self.catalog() as catalog:
            for path in dict.fromkeys(wanted):
                row = catalog.file(model["key"], commit, path)
                if row is not None:
                    files.extend(self._with_xet(catalog, [served_file(row)]))
                elif path and path not in directories and catalog.has_files_under(model["key"], commit, path):
                    below = [served_file(r) for r in catalog.files_under(model["key"], commit, path)]
                    directories[path] = hf_api.tree_ids(below, path)[path]
        return files, directories

    def refs_document(self, model: dict, include_prs: bool) -> dict:
        """The `/refs` answer for a model (hf_api.refs) from the catalog's refs."""
        with self.catalog() as catalog:
            rows = catalog.refs(model["key"])
        return hf_api.refs(model, rows, include_prs)

    def history(self, model: dict, commit: str) -> list[dict]:
        """The revisions rows of `commit`'s history the mirror holds, newest first: `commit`, then the commit its
        branch pointed at before it in this mirror (`commit_info.previous`, recorded at pull time), and so on."""
        with self.catalog() as catalog:
            rows = {r["commit_id"]: r for r in catalog.revisions(model["key"])}
        found, seen = [], set()
        while commit in rows and commit not in seen:
            seen.add(commit)
            found.append(rows[commit])
            commit = json.loads(rows[commit].get("commit_info") or "{}").get("previous")
        return found

    def revision_date(self, model: dict, commit: str) -> str | None:
        """The upstream's date of a held revision's commit, where it said one."""
        with self.catalog() as catalog:
            row = next((r for r in catalog.revisions(model["key"]) if r["commit_id"] == commit), None)
        return None if row is None else json.loads(row.get("commit_info") or "{}").get("date")

    def upstream_commits(self, model: dict, revision: str,
                         query: list[tuple[str, str]]) -> tuple[list[dict], str | None] | None:
        """A proxy's upstream page of `/commits/{revision}` and the query of its next page; None here (no
        upstream: the mirror's own revisions answer)."""
        return None

    def upstream_listing(self, kind: str, query: list[tuple[str, str]]) -> tuple[list[dict], str | None] | None:
        """A proxy's upstream page of `/api/models` (or `/api/datasets`) and the query of its next page; None here
        (the mirror's own models answer)."""
        return None

    def newest_file_named(self, name: str) -> dict | None:
        """{sha256, size} of the newest cached file whose base name is exactly `name`."""
        with self.catalog() as catalog:
            return catalog.newest_file_named(name)

    def is_quarantined(self, sha256: str) -> bool:
        with self.catalog() as catalog:
            return catalog.is_quarantined(sha256)

    def close(self) -> None:
        if self.upstream is not None:
            self.upstream.close()
        with self._lock:
            for catalog in self._opened:
                catalog.close()
            self._opened.clear()

    @contextmanager
    def catalog(self) -> Iterator[Catalog]:
        """A read connection for this thread alone until the block ends (then back to the pool)."""
        try:
            catalog = self._idle.get_nowait()
        except queue.Empty:
            catalog = Catalog(self._path, create=False)
            with self._lock:
                self._opened.append(catalog)
        try:
            yield catalog
        finally:
            self._idle.put(catalog)
