"""Admission verdicts in the catalog: what the scanner said of each blob, which files an operator allowed, and which
are quarantined under the mirror's policy. This module owns the scanner's name: every verdict row is the admission
scanner's."""

from __future__ import annotations

from hubmirror.catalog.connection import chunks, utc_now
from hubmirror.config import unscanned_policy

SCANNER = "hubmirror-admission"
# Whether a scan row `s` keeps its blob out: any verdict but clean, except `unscanned` where the mirror's policy admits
# it, unless an operator allowed that blob. Its one parameter: whether the policy admits unscanned files.
_HELD = ("(s.verdict != 'clean' AND NOT (s.verdict = 'unscanned' AND ?) "
         "AND s.sha256 NOT IN (SELECT sha256 FROM allowed))")


class Verdicts:
    """Mixin of Catalog: scan verdicts, allowances and the quarantine they make."""

    def record_scans(self, scans: list[dict], now: str | None = None) -> None:
        """Upsert admission verdicts ({sha256, scanner_version, verdict, details})."""
        now = now or utc_now()
        self.db["scans"].upsert_all(({**s, "scanner": SCANNER, "scanned_at": now} for s in scans),
                                    pk=("sha256", "scanner"))

    def scan_rows(self, digests) -> dict[str, dict]:
        """{sha256: {scanner_version, verdict, details}} of those of `digests` the scanner has judged."""
        rows = {}
        for chunk in chunks(sorted(digests)):
            marks = ",".join("?" * len(chunk))
            for row in self._rows(f"SELECT sha256, scanner_version, verdict, details FROM scans WHERE scanner = ? "
                                  f"AND sha256 IN ({marks})", [SCANNER, *chunk]):
                rows[row["sha256"]] = row
        return rows

    def names_of(self, digests) -> list[tuple[str, str]]:
        """(sha256, path) of every catalogued file whose bytes are one of `digests`."""
        names = []
        for chunk in chunks(sorted(digests)):
            names += self.conn.execute(f"SELECT DISTINCT sha256, path FROM files WHERE sha256 IN "
                                       f"({','.join('?' * len(chunk))})", chunk).fetchall()
        return [(sha, path) for sha, path in names]

    def _judged(self, where: str, args: list) -> list[dict]:
        rows = self._rows(
            "SELECT f.model_key, f.commit_id, f.path, f.sha256, s.verdict, s.details, "
            f"s.sha256 IN (SELECT sha256 FROM allowed) AS allowed, {_HELD} AS quarantined FROM files f "
            f"JOIN scans s ON s.sha256 = f.sha256 AND s.scanner = ? WHERE {where} ORDER BY 1, 2, 3",
            [self._admits_unscanned(), SCANNER, *args])
        return [{**r, "allowed": bool(r["allowed"]), "quarantined": bool(r["quarantined"])} for r in rows]

    def flagged(self) -> list[dict]:
        """Referenced files whose verdict is not clean, each saying whether it is quarantined (and allowed)."""
        return self._judged("s.verdict != 'clean'", [])

    def quarantined(self) -> list[dict]:
        """Referenced files that the verdict and policy keep out and no operator allowed."""
        return [r for r in self.flagged() if r["quarantined"]]

    def file_verdicts(self, key: str, commit: str) -> dict[str, dict]:
        """{path: verdict row} of one revision's judged files."""
        return {r["path"]: r for r in self._judged("f.model_key = ? AND f.commit_id = ?", [key, commit])}

    def is_quarantined(self, sha256: str) -> bool:
        return self.conn.execute(
            f"SELECT 1 FROM scans s WHERE s.sha256 = ? AND s.scanner = ? AND {_HELD}",
            [sha256, SCANNER, self._admits_unscanned()]).fetchone() is not None

    def _admits_unscanned(self) -> bool:
        """The `[admission] unscanned` policy in the config.toml beside catalog.db (read at each question, so an
        edit applies at once, to the server too)."""
        return unscanned_policy(self.path.parent) == "admit"

    def allow(self, sha256: str, reason: str) -> None:
        with self.transaction():
            self.db["allowed"].upsert({"sha256": sha256, "reason": reason, "allowed_at": utc_now()}, pk="sha256")

    def revoke(self, sha256: str) -> int:
        return self.conn.execute("DELETE FROM allowed WHERE sha256 = ?", [sha256]).rowcount
