"""Admission: every blob a pull, import or adopt brings in gets a verdict before its revision is catalogued, and
`hubmirror scan` re-judges blobs whose verdict came from older rules or engines."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from hubmirror.catalog import Catalog
from hubmirror.scanning import scan_file
from hubmirror.scanning.file_verdict import scanner_versions
from hubmirror.store import BlobStore


def judge(store: BlobStore, catalog: Catalog, files: dict[str, str], *, force: bool = False) -> list[dict]:
    """Scan rows for the blobs in `files` ({sha256: a path naming it}) not yet judged by the current scanners.
    Four files at a time, each streamed (from its local path, else through `store.open`): memory is bounded by the
    scanners' caps, not by the files' sizes."""
    current = scanner_versions()
    known = catalog.scan_versions()
    todo = [(sha, name) for sha, name in files.items() if force or known.get(sha) != current]

    def one(item: tuple[str, str]) -> dict:
        sha, name = item
        path = store.local_path(sha)
        if path is not None:  # a local file: read it directly
            verdict = scan_file(path, name)
        else:  # a remote backend: its seekable reader (ranged reads, so only what the engines look at travels)
            with store.open(sha) as f:
                verdict = scan_file(f, name)
        return {"sha256": sha, "scanner_version": current, "verdict": verdict.verdict,
                "details": json.dumps({"format": verdict.format, "findings": verdict.findings})}

    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="scan") as pool:
        return list(pool.map(one, todo))
