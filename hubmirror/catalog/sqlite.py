"""sqlite-utils, imported without the numpy and pandas it loads when they are installed (see hubmirror.imports:
`import sqlite_utils` measured 0.10 s with numpy, 0.06 s without)."""

from __future__ import annotations

from hubmirror.imports import hiding

with hiding("numpy", "pandas"):
    from sqlite_utils import Database, Migrations

__all__ = ["Database", "Migrations"]
