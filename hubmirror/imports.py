"""Imports of dependencies without the optional modules they load for features hubmirror never uses.

Some libraries import an optional package at their own import when it happens to be installed: sqlite-utils loads
numpy and pandas (only to name column types for their scalars, which the catalog never stores), huggingface_hub's
HTTP stack (httpcore) loads trio (only for async clients running under trio; hubmirror's calls are synchronous).
Measured here: numpy cost every command that opens a catalog 40-70 ms and OpenBLAS threads; trio cost every
command that loads huggingface_hub 0.17 s (`huggingface_hub.hf_api`: 0.28 s with trio, 0.12 s without).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def hiding(*names: str) -> Iterator[None]:
    """Inside the block, an import of any of `names` not yet imported raises ImportError, as if it were not
    installed; after it they import as usual. A process that has already imported one keeps it, and the libraries
    imported in the block then see it as usual."""
    hidden = [name for name in names if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # the import system's own marker for "import this and fail"
    try:
        yield
    finally:
        for name in hidden:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]
