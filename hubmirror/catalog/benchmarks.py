"""Benchmark results in the catalog."""

from __future__ import annotations

import json

from hubmirror.catalog.connection import utc_now


class Benchmarks:
    """Mixin of Catalog: benchmark rows."""

    def record_benchmark(self, row: dict) -> None:
        with self.transaction():
            self.db["benchmarks"].insert({**row, "created_at": utc_now()})

    def benchmarks(self, latest_only: bool = True) -> list[dict]:
        """Benchmark rows (the newest per model and device unless `latest_only` is False), fastest first."""
        where = ("WHERE b.id IN (SELECT max(id) FROM benchmarks GROUP BY model_key, device)" if latest_only else "")
        return self._rows(f"SELECT b.*, m.task, m.library FROM benchmarks b LEFT JOIN models m ON m.key = b.model_key "
                          f"{where} ORDER BY b.throughput IS NULL, b.throughput DESC, b.model_key")

    def run_row(self, key: str, commit: str, run: str) -> dict | None:
        """The row a bench run (by its id) wrote for this revision, if it wrote one."""
        rows = self._rows("SELECT * FROM benchmarks WHERE model_key = ? AND commit_id = ? AND json_valid(environment) "
                          "AND json_extract(environment, '$.run') = ? ORDER BY id LIMIT 1", [key, commit, run])
        return rows[0] if rows else None

    def measured_revisions(self, device: str, dtype: str, batch: int, versions: dict) -> set[tuple[str, str]]:
        """(model key, commit) pairs that have a row for this device, dtype and requested batch, measured with these
        library versions."""
        found = self.db.execute(
            "SELECT model_key, commit_id, json_extract(environment, '$.versions'), "
            "coalesce(json_extract(environment, '$.requested_batch'), batch_size) FROM benchmarks "
            "WHERE device = ? AND dtype = ? AND json_valid(environment)", [device, dtype]).fetchall()
        return {(key, commit) for key, commit, measured_with, requested in found
                if requested == batch and measured_with and json.loads(measured_with) == versions}
