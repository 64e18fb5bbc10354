"""Admission: every blob a pull, import or adopt brings in gets a verdict before its revision is catalogued, and
`hubmirror scan` re-judges blobs whose verdict came from older rules or engines.

Some rules depend on a file's name as well as its bytes (a `.safetensors` file must be one, a `.onnx` file is parsed
as ONNX whatever its first byte, TensorFlow files are known by name). A blob's verdict therefore covers every name
under which its bytes are catalogued: each distinct reading of those names (`file_verdict.reading`) is judged, the
worst verdict wins, and a new name for stored bytes is judged before it is catalogued. The readings judged are kept
with the verdict (`details.readings`), so only a reading not judged yet costs a scan.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from hubmirror.catalog import Catalog
from hubmirror.scanning import scan_file
from hubmirror.scanning.file_verdict import Verdict, reading, scanner_versions
from hubmirror.store import BlobStore


def judge(store: BlobStore, catalog: Catalog, files: Iterable[tuple[str, str]], *, force: bool = False) -> list[dict]:
    """Scan rows for the blobs of `files` ((sha256, path) pairs; the catalog's other names for those blobs are added)
    whose verdict does not yet cover every reading of their names under the current scanners. Four files at a time,
    each streamed (from its local path, else through `store.open`): memory is bounded by the scanners' caps, not by
    the files' sizes."""
    current = scanner_versions()
    pairs = list(files)
    names: dict[str, dict[str, str]] = {}  # sha256 -> {reading: a name with that reading}
    for sha, path in [*pairs, *catalog.names_of({sha for sha, _ in pairs})]:
        names.setdefault(sha, {}).setdefault(reading(path), path)
    known = catalog.scan_rows(names)
    todo = []
    for sha, by_reading in names.items():
        row = known.get(sha)
        kept = None if force or row is None or row["scanner_version"] != current else \
            Verdict.from_details(row["verdict"], row["details"])
        missing = sorted(name for r, name in by_reading.items() if kept is None or r not in kept.readings)
        if missing:
            todo.append((sha, missing, kept))

    def one(item: tuple[str, list[str], Verdict | None]) -> dict:
        sha, missing, verdict = item
        for name in missing:
            path = store.local_path(sha)
            if path is not None:  # a local file: read it directly
                found = scan_file(path, name)
            else:  # a remote backend: its seekable reader (ranged reads, so only what the engines look at travels)
                with store.open(sha) as f:
                    found = scan_file(f, name)
            found.readings = [reading(name)]
            verdict = found if verdict is None else verdict.combined(found)
        return {"sha256": sha, "scanner_version": current, "verdict": verdict.verdict, "details": verdict.details()}

    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="scan") as pool:
        return list(pool.map(one, todo))
