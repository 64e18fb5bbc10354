"""Moving one upstream file into the store: resume, hash while streaming, verify, commit."""

from __future__ import annotations

import threading
from typing import Callable

from hubmirror.catalog import StoredFile
from hubmirror.crashpoints import crashpoint
from hubmirror.digests import MultiHasher, mismatches
from hubmirror.errors import HubmirrorError, IntegrityError
from hubmirror.records import RemoteFile, ResolvedRevision
from hubmirror.sources import Download, Source, SourceContext
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
    them). Size and every digest the upstream publishes, in its listing or on the download itself (Kaggle's
    `x-goog-hash`), are checked before the blob becomes visible; wrong bytes are discarded, bytes from a broken
    transfer are kept and resumed with a Range request next time.
    """
    with store.writer(resume_key(revision, file)) as writer:
        if file.sha256 and store.exists(file.sha256):  # another process stored it while we waited
            on_bytes(file.size or 0)
            return StoredFile(file, file.sha256, file.digests.get("git-sha1"), store.stat(file.sha256).size)
        if file.size is not None and writer.offset > file.size:
            writer.restart()
        held_all = file.size is not None and 0 < file.size == writer.offset
        download = None if held_all else _open(source, revision, file, ctx, writer)
        try:
            expected = {alg: value.lower() for alg, value in file.digests.items()}
            hasher = MultiHasher(set(expected), file.size)
            for chunk in writer.existing_chunks():
                hasher.update(chunk)
            on_bytes(writer.offset)
            if download is not None:
                _copy(download, revision, file, writer, hasher, on_bytes, stop)
        finally:
            if download is not None:
                download.close()
        digests = hasher.hexdigests()
        if file.size is not None and hasher.size < file.size:
            raise HubmirrorError(f"{file.path}: transfer ended after {hasher.size} of {file.size} bytes")
        bad = mismatches(expected, digests)
        if bad:
            raise IntegrityError(f"{revision.ref}: {file.path}: {bad[0]}; the bytes were refused")
        writer.commit(digests["sha256"], hasher.size)
    return StoredFile(file, digests["sha256"], digests.get("git-sha1"), hasher.size)


def _open(source, revision, file, ctx, writer) -> Download:
    """Open the upstream stream from where the writer stands; adopt the digests the download itself announces."""
    download = source.open_file(revision, file, ctx, offset=writer.offset)
    if download.start != writer.offset:  # the upstream ignored the range: start again from zero
        writer.restart()
    for alg, value in download.digests.items():
        if file.digests.get(alg, value).lower() != value.lower():
            download.close()
            raise IntegrityError(f"{revision.ref}: {file.path}: the upstream announces two different {alg} digests")
        file.digests[alg] = value
    return download


def _copy(download, revision, file, writer, hasher, on_bytes, stop) -> None:
    """Append the download's bytes to the writer and the hasher."""
    for chunk in download.chunks:
        if stop is not None and stop.is_set():
            raise Cancelled("pull cancelled")
        writer.write(chunk)
        crashpoint("transfer.chunk")
        hasher.update(chunk)
        on_bytes(len(chunk))
        if file.size is not None and hasher.size > file.size:
            raise IntegrityError(
                f"{revision.ref}: {file.path}: upstream sent more than the {file.size} bytes announced; "
                "the bytes were refused"
            )
