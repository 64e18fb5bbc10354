"""Catalogue reads: models, revisions, refs, files and the commits names point at."""

from __future__ import annotations

from typing import Iterable


class ModelReads:
    """Mixin of Catalog: lookups by key."""

    # The expression is the one migration m003 indexes: the planner uses the index only for that exact expression.
    NEWEST_FILE_NAMED = (
        "SELECT sha256, size, model_key FROM files WHERE replace(path, rtrim(path, replace(path, '/', '')), '') = ? "
        "AND EXISTS (SELECT 1 FROM models WHERE key = files.model_key AND cached = 1) ORDER BY rowid DESC LIMIT 1")

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

    def file(self, key: str, commit: str, path: str) -> dict | None:
        """One file row of a revision (a primary-key lookup)."""
        rows = self._rows("SELECT * FROM files WHERE model_key = ? AND commit_id = ? AND path = ?", [key, commit, path])
        return rows[0] if rows else None

    def files_under(self, key: str, commit: str, directory: str) -> list[dict]:
        """File rows of a revision below `directory` ('' for all), read as one range of the primary key."""
        if not directory:
            return self.files(key, commit)
        # every path that starts with "dir/" sorts between "dir/" and "dir0" ('0' follows '/')
        return self._rows("SELECT * FROM files WHERE model_key = ? AND commit_id = ? AND path > ? AND path < ? "
                          "ORDER BY path", [key, commit, f"{directory}/", f"{directory}0"])

    def has_files_under(self, key: str, commit: str, directory: str) -> bool:
        """Whether `directory` holds a file of the revision (one step into the primary key)."""
        return self.conn.execute("SELECT 1 FROM files WHERE model_key = ? AND commit_id = ? AND path > ? AND path < ? "
                                 "LIMIT 1", [key, commit, f"{directory}/", f"{directory}0"]).fetchone() is not None

    def newest_file_named(self, name: str) -> dict | None:
        """The newest file of a cached model whose base name is exactly `name` (case-sensitive; by index)."""
        rows = self._rows(self.NEWEST_FILE_NAMED, [name])
        return rows[0] if rows else None

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

