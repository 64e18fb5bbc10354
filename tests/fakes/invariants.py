"""What must hold of a mirror after any crash or race: checked by the crash-injection and concurrency tests."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path


def mirror_problems(root: Path) -> list[str]:
    """Every broken invariant of the mirror at `root` (empty when sound):
    no catalog row without its blob, no blob whose bytes mismatch its name, no cached model without a revision,
    no file row of a revision that is not catalogued, nothing half-written visible in blobs/."""
    problems = []
    blob_dir = root / "blobs" / "sha256"
    blobs = {p.name: p for p in blob_dir.iterdir()} if blob_dir.is_dir() else {}
    for name, path in blobs.items():
        if path.is_symlink() or not path.is_file():
            problems.append(f"blobs/sha256/{name} is not a regular file")
            continue
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        if h.hexdigest() != name:
            problems.append(f"blob {name} holds bytes hashing to {h.hexdigest()}")
    catalog = root / "catalog.db"
    if not catalog.exists():
        return problems
    db = sqlite3.connect(catalog)
    try:
        for (digest,) in db.execute("SELECT DISTINCT sha256 FROM files"):
            if digest not in blobs:
                problems.append(f"catalog references missing blob {digest}")
        for (key,) in db.execute("SELECT key FROM models WHERE cached = 1 AND key NOT IN "
                                 "(SELECT model_key FROM revisions)"):
            problems.append(f"cached model {key} has no revision")
        for key, commit in db.execute("SELECT DISTINCT model_key, commit_id FROM files WHERE "
                                      "(model_key, commit_id) NOT IN (SELECT model_key, commit_id FROM revisions)"):
            problems.append(f"files of {key}@{commit} without their revision")
    finally:
        db.close()
    return problems
