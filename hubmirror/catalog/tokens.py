"""Mixin of Catalog: the tokens a mirror's server accepts (hubmirror.access.tokens), by id, as slow hashes only.

A revoked token keeps its row (`revoked_at` set) so that nothing, not even an old copy of its record replayed from a
bucket, brings it back: token ids are random and never reused.
"""

from __future__ import annotations

import json

from hubmirror.access.tokens import TokenRecord
from hubmirror.catalog.connection import utc_now


class AccessTokens:
    def token_records(self) -> dict[str, TokenRecord]:
        """{id: record} of every token not revoked (expired ones included: the server refuses those itself)."""
        rows = self.conn.execute("SELECT id, name, scope, hash, repos, gated, created_at, expires_at FROM tokens "
                                 "WHERE revoked_at IS NULL")
        return {r[0]: TokenRecord(r[0], r[1], r[2], r[3], tuple(json.loads(r[4])), tuple(json.loads(r[5])), r[6], r[7])
                for r in rows}

    def token_rows(self) -> list[dict]:
        """Every token's row, revoked ones too, oldest first (never a secret: there is none to show)."""
        return [dict(r) for r in self.db.query("SELECT id, name, scope, repos, gated, created_at, expires_at, "
                                               "revoked_at FROM tokens ORDER BY created_at, id")]

    def put_token(self, record: TokenRecord) -> None:
        with self.transaction():
            self._put_token(record)

    def revoke_token(self, token_id: str) -> None:
        with self.transaction():
            self._revoke_token(token_id)

    def _put_token(self, record: TokenRecord) -> None:
        if self.conn.execute("SELECT 1 FROM tokens WHERE id = ? AND revoked_at IS NOT NULL", [record.id]).fetchone():
            return  # revoked for good
        value = record.as_json()
        self.db["tokens"].upsert({**value, "repos": json.dumps(value["repos"]), "gated": json.dumps(value["gated"]),
                                  "revoked_at": None}, pk="id")

    def _revoke_token(self, token_id: str) -> None:
        self.conn.execute("INSERT OR IGNORE INTO tokens(id) VALUES (?)", [token_id])  # one never seen: refused ahead
        self.conn.execute("UPDATE tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?", [utc_now(), token_id])
