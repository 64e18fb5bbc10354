"""Benchmark results in the catalog."""

from __future__ import annotations

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

