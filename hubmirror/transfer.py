"""Moving one upstream file into the store: resume, hash while streaming, verify, commit."""

from __future__ import annotations

import threading
from typing import Callable

from hubmirror.catalog import StoredFile
from hubmirror.digests import MultiHasher, mismatches
from hubmirror.errors import HubmirrorError, IntegrityError
from hubmirror.records import RemoteFile, ResolvedRevision
from hubmirror.sources import Source, SourceContext
from hubmirror.store import BlobStore


class Cancelled(HubmirrorError):
    """Another file of the same pull failed, or the user interrupted it; partial bytes are kept for resume."""


def resume_key(revision: ResolvedRevision, file: RemoteFile) -> str:
    """Names the partial download of a file, so that any later process continues it."""
    return file.sha256 or f"{revision.ref.key}@{revision.commit}:{file.path}"


def fetch_file(
    source: Source,
    revision: ResolvedRevision,
    file: RemoteFile,
    store: BlobStore,
    ctx: SourceContext,
    *,
    on_bytes: Callable[[int], None] = lambda n: None,
    stop: threading.Event | None = None,
) -> StoredFile:
    """Store `file` and return it with its computed digests.

    The bytes are hashed once, as they stream in (bytes left by an interrupted attempt are re-read once to hash
    them). Size and every published digest are checked before the blob becomes visible; wrong bytes are discarded,
    bytes from a broken transfer are kept and resumed with a Range request next time.
    """
    expected = {alg: value.lower() for alg, value in file.digests.items()}
    with store.writer(resume_key(revision, file)) as writer:
        if file.sha256 and store.exists(file.sha256):  # another process stored it while we waited
            on_bytes(file.size or 0)
            return StoredFile(file, file.sha256, expected.get("git-sha1"), store.stat(file.sha256).size)
        hasher = MultiHasher(set(expected), file.size)
        if file.size is not None and writer.offset > file.size:
            writer.restart()
        for chunk in writer.existing_chunks():
            hasher.update(chunk)
        on_bytes(writer.offset)
        if file.size is None or writer.offset < file.size or file.size == 0:
            hasher = _stream_into(source, revision, file, ctx, writer, hasher, on_bytes, stop)
        digests = hasher.hexdigests()
        if file.size is not None and hasher.size < file.size:
            raise HubmirrorError(f"{file.path}: transfer ended after {hasher.size} of {file.size} bytes")
        bad = mismatches(expected, digests)
        if bad:
            raise IntegrityError(f"{revision.ref}: {file.path}: {bad[0]}; the bytes were refused")
        writer.commit(digests["sha256"])
    return StoredFile(file, digests["sha256"], digests.get("git-sha1"), hasher.size)


def _stream_into(source, revision, file, ctx, writer, hasher, on_bytes, stop) -> MultiHasher:
    """Append the upstream's bytes to `writer`; return the hasher that has seen every byte the writer holds."""
    download = source.open_file(revision, file, ctx, offset=writer.offset)
    try:
        if download.start != writer.offset:  # the upstream ignored the range: start again from zero
            on_bytes(-writer.offset)
            writer.restart()
            hasher = MultiHasher(set(file.digests), file.size)
        for chunk in download.chunks:
            if stop is not None and stop.is_set():
                raise Cancelled("pull cancelled")
            writer.write(chunk)
            hasher.update(chunk)
            on_bytes(len(chunk))
            if file.size is not None and hasher.size > file.size:
                raise IntegrityError(
                    f"{revision.ref}: {file.path}: upstream sent more than the {file.size} bytes announced; "
                    "the bytes were refused"
                )
    finally:
        download.close()
    return hasher
