"""Admission verdicts in the catalog: what the scanner said of each blob, and which files an operator allowed.
This module owns the scanner's name: every verdict row is the admission scanner's."""

from __future__ import annotations

from hubmirror.catalog.connection import utc_now

SCANNER = "hubmirror-admission"


class Verdicts:
    """Mixin of Catalog: scan verdicts and allowances."""

    def record_scans(self, scans: list[dict], now: str | None = None) -> None:
        """Upsert admission verdicts ({sha256, scanner_version, verdict, details})."""
        now = now or utc_now()
        self.db["scans"].upsert_all(({**s, "scanner": SCANNER, "scanned_at": now} for s in scans),
                                    pk=("sha256", "scanner"))

    def scan_versions(self) -> dict[str, str]:
        """{sha256: scanner version} of every blob the scanner has judged."""
        return dict(self.conn.execute("SELECT sha256, scanner_version FROM scans WHERE scanner = ?", [SCANNER]))

    def quarantined(self) -> list[dict]:
        """Referenced files whose verdict is not clean and that no operator allowed."""
        return self._rows(
            "SELECT f.model_key, f.commit_id, f.path, f.sha256, s.verdict, s.details FROM files f "
            "JOIN scans s ON s.sha256 = f.sha256 AND s.scanner = ? "
            "WHERE s.verdict != 'clean' AND f.sha256 NOT IN (SELECT sha256 FROM allowed) ORDER BY 1, 2, 3", [SCANNER])

    def is_quarantined(self, sha256: str) -> bool:
        return self.conn.execute(
            "SELECT 1 FROM scans WHERE sha256 = ? AND scanner = ? AND verdict != 'clean' "
            "AND sha256 NOT IN (SELECT sha256 FROM allowed)", [sha256, SCANNER]).fetchone() is not None

    def allow(self, sha256: str, reason: str) -> None:
        with self.transaction():
            self.db["allowed"].upsert({"sha256": sha256, "reason": reason, "allowed_at": utc_now()}, pk="sha256")

    def revoke(self, sha256: str) -> int:
        return self.conn.execute("DELETE FROM allowed WHERE sha256 = ?", [sha256]).rowcount

