"""The catalog's SQLite connection: opening (and migrating) catalog.db, and whole write transactions."""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator

from hubmirror.errors import NoMirrorError

CATALOG_NAME = "catalog.db"
SCHEMA_VERSION = 11  # how many migrations hubmirror.catalog.migrations holds; stored as PRAGMA user_version
MMAP_BYTES = 4 << 30  # of catalog.db mapped for reads (SQLite caps it at its build's maximum)


def chunks(values: list, size: int = 500):
    """`values` in slices of at most `size` (SQLite's bound parameters per statement are limited)."""
    for i in range(0, len(values), size):
        yield values[i:i + size]


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class CatalogConnection:
    """One connection to catalog.db. Writes are whole transactions; readers never see half a pull."""

    def __init__(self, path: Path | str, *, create: bool = True):
        path = self.path = Path(path)
        if not create and not path.exists():
            raise NoMirrorError(f"no mirror at {path.parent} ({CATALOG_NAME} not found): pull something first or pass --root")
        self.conn = sqlite3.connect(str(path), timeout=60, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA busy_timeout = 60000")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        # Reads through the OS page cache shared by every connection and process, not a copy per connection: a
        # reader's filtered search touches a thousand scattered pages (p99 at a million models 9.5 ms, 10.5-17 ms
        # with read() calls). SQLite caps it at its build's maximum; catalogs are never truncated under a reader.
        self.conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
        self._db = None
        if self.conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            self._migrate()

    @property
    def db(self):
        """The sqlite-utils view of the connection, for writes (imported on first use: reads need only sqlite3)."""
        if self._db is None:
            from hubmirror.catalog.sqlite import Database

            # sqlite-utils' own plugins are not run on the catalog: none is needed, and finding them scans every
            # installed distribution's entry points (~5-25 ms per command that writes)
            self._db = Database(self.conn, execute_plugins=False)
        return self._db

    def _migrate(self) -> None:
        """Bring the schema up to date; one process at a time (the write lock is taken before looking)."""
        from hubmirror.catalog.migrations import migrations

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

    def _lazy_rows(self, sql: str, args: Iterable = ()) -> Iterator[dict]:
        """The rows of `sql` as dicts, read from the cursor as they are consumed."""
        cursor = self.conn.execute(sql, list(args))
        names = [d[0] for d in cursor.description]
        try:
            yield from (dict(zip(names, row, strict=True)) for row in cursor)
        finally:
            cursor.close()

