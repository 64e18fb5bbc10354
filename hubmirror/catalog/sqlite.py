"""sqlite-utils, imported without the numpy and pandas it loads when they are installed (only to name column types
for their scalars, which the catalog never stores): numpy's import alone cost every command that opens a catalog
about 40-70 ms and OpenBLAS threads (`import sqlite_utils`: 0.10 s with numpy, 0.06 s without, measured here).
A process that has already imported them keeps them, and sqlite-utils then sees them as usual."""

from __future__ import annotations

import sys

_HIDDEN = [name for name in ("numpy", "pandas") if name not in sys.modules]
for _name in _HIDDEN:
    sys.modules[_name] = None  # an import of it raises ImportError, as if it were not installed
try:
    from sqlite_utils import Database, Migrations
finally:
    for _name in _HIDDEN:
        if sys.modules.get(_name, False) is None:
            del sys.modules[_name]

__all__ = ["Database", "Migrations"]
