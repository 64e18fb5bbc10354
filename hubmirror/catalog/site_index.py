"""The catalog as a derived index of a site bucket (hubmirror/sitelog): which log entries are applied, and one
transaction that makes a model's revisions and refs what the bucket says, plus verdicts, allowances, benchmarks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hubmirror.catalog.connection import chunks, utc_now
from hubmirror.catalog.writes import StoredFile
from hubmirror.catalog.xet_chunks import refused_xet_claim
from hubmirror.crashpoints import crashpoint

if TYPE_CHECKING:
    from hubmirror.access.tokens import TokenRecord
    from hubmirror.upstream import ResolvedRevision


@dataclass
class SiteRevision:
    """A revision to (re)write from a bucket record: what the record holds, and its digest."""

    record: str  # hex sha256 of the record object
    revision: ResolvedRevision
    files: list[StoredFile]
    plugin: str
    source_description: str
    pulled_at: str


@dataclass
class SiteModel:
    """A model as the bucket's ref object has it: every revision's record digest and the refs."""

    key: str
    records: dict[str, str]  # commit -> record hex (every revision the bucket holds)
    refs: dict[str, str]  # ref name -> commit
    kinds: dict[str, str] = field(default_factory=dict)  # ref name -> its kind (upstream.REF_KINDS), where known
    write: list[SiteRevision] = field(default_factory=list)  # revisions whose record differs from the local one


@dataclass
class SiteChanges:
    entries: list[str] = field(default_factory=list)  # log entry names applied by this change
    models: list[SiteModel] = field(default_factory=list)
    scans: list[dict] = field(default_factory=list)
    allowances: dict[str, dict | None] = field(default_factory=dict)  # sha256 -> {reason, allowed_at} or None
    benchmarks: list[dict] = field(default_factory=list)
    tokens: dict[str, TokenRecord | None] = field(default_factory=dict)  # id -> record, or None: revoked
    xet: list[tuple[str, str, bytes]] = field(default_factory=list)  # (sha256, Xet file hash, packed layout)


class SiteIndex:
    """Mixin of Catalog: applying a site bucket's records."""

    def site_applied(self, names: list[str]) -> set[str]:
        """Which of these log entry names are applied here."""
        found: set[str] = set()
        for chunk in chunks(names):
            found.update(r[0] for r in self.conn.execute(
                f"SELECT name FROM site_log WHERE name IN ({','.join('?' * len(chunk))})", chunk))
        return found

    def site_last_entry(self) -> str | None:
        return self.conn.execute("SELECT max(name) FROM site_log").fetchone()[0]

    def site_records(self, key: str) -> dict[str, str]:
        """{commit: record hex} of a model's revisions as applied from the bucket."""
        return dict(self.conn.execute("SELECT commit_id, record FROM site_revisions WHERE model_key = ?", [key]))

    def apply_site(self, changes: SiteChanges) -> None:
        """Make the catalog hold what the bucket says, in one transaction (readers never see half of it)."""
        now = utc_now()
        with self.transaction():
            if changes.scans:
                self.record_scans([{k: s[k] for k in ("sha256", "scanner_version", "verdict", "details")}
                                   for s in changes.scans], now)
            with self.search_index_batch({m.key for m in changes.models}):  # revisions are their model's (SiteLog)
                for model in changes.models:
                    self._apply_site_model(model, now)
            for sha256, allowed in changes.allowances.items():
                if allowed is None:
                    self.conn.execute("DELETE FROM allowed WHERE sha256 = ?", [sha256])
                else:
                    self.db["allowed"].upsert({"sha256": sha256, "reason": allowed.get("reason"),
                                               "allowed_at": allowed.get("allowed_at") or now}, pk="sha256")
            columns = set(self.db["benchmarks"].columns_dict) - {"id"}  # a row from a bucket adds no column
            for row in changes.benchmarks:
                self.db["benchmarks"].insert({k: v for k, v in row.items() if k in columns})
            for token_id, record in changes.tokens.items():
                if record is None:
                    self._revoke_token(token_id)
                else:
                    self._put_token(record)
            for sha256, xet_hash, layout in changes.xet:
                if not self._put_xet_layout(sha256, xet_hash, layout):
                    refused_xet_claim(sha256, xet_hash, self.xet_file(xet_hash)[0])
            self.db["site_log"].insert_all(({"name": n, "applied_at": now} for n in changes.entries),
                                           pk="name", ignore=True)
            crashpoint("catalog.before_commit")
        crashpoint("catalog.after_commit")

    def _apply_site_model(self, model: SiteModel, now: str) -> None:
        key = model.key
        local = [r[0] for r in self.conn.execute("SELECT commit_id FROM revisions WHERE model_key = ?", [key])]
        for commit in local:
            if commit not in model.records:
                for table in ("files", "refs", "revisions", "site_revisions"):
                    self.conn.execute(f"DELETE FROM {table} WHERE model_key = ? AND commit_id = ?", [key, commit])
        for site in sorted(model.write, key=lambda s: s.pulled_at):
            commit = site.revision.commit
            self.conn.execute("DELETE FROM files WHERE model_key = ? AND commit_id = ?", [key, commit])
            self._record_revision(site.revision, site.files, site.plugin, site.source_description, site.pulled_at)
            self.db["site_revisions"].upsert({"model_key": key, "commit_id": commit, "record": site.record},
                                             pk=("model_key", "commit_id"))
        self.conn.execute("DELETE FROM refs WHERE model_key = ?", [key])
        present = {r[0] for r in self.conn.execute("SELECT commit_id FROM revisions WHERE model_key = ?", [key])}
        self.db["refs"].insert_all(({"model_key": key, "name": name, "commit_id": commit, "updated_at": now,
                                     "kind": model.kinds.get(name)}
                                    for name, commit in model.refs.items() if commit in present), pk=("model_key", "name"))
        if not present:
            self.conn.execute("DELETE FROM models WHERE key = ?", [key])
            return
        latest = self.conn.execute("SELECT commit_id, size_bytes, file_count FROM revisions WHERE model_key = ? "
                                   "ORDER BY pulled_at DESC, rowid DESC LIMIT 1", [key]).fetchone()
        self.db["models"].update(key, dict(zip(("latest_commit", "size_bytes", "file_count"), latest, strict=True)))
