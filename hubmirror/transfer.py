"""Moving one upstream file into the store: resume, hash while streaming, verify, commit.

A download that breaks off mid-body (a reset, a stalled connection past the read timeout, a short body) is reopened
from the bytes the writer holds, with a Range request, within the same pull and the file's retry budget
(`hubmirror.http.retrying`); the whole-file digest check at the end is the same either way. When the budget is spent
the error names the file and the bytes held stay in the store's temp area for the next pull to resume.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable

from hubmirror import ranged_download
from hubmirror.catalog import StoredFile
from hubmirror.crashpoints import crashpoint
from hubmirror.digests import MultiHasher, mismatches
from hubmirror.errors import Cancelled, DiskFullError, HubmirrorError, IntegrityError, TransferBrokenError
from hubmirror.http import retrying
from hubmirror.records import RemoteFile, ResolvedRevision
from hubmirror.sources import Download, Source, SourceContext
from hubmirror.store import BlobStore

__all__ = ["Cancelled", "fetch_file", "open_download", "resume_key"]

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


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
    `x-goog-hash`), are checked before the blob becomes visible; wrong bytes are discarded. A transfer that breaks
    off is resumed from the bytes held (see the module's docstring); when it cannot be, or the disk is full, the bytes
    are kept for the next pull and the error names the file.
    """
    what = f"{revision.ref}: {file.path}"
    held = 0
    try:
        if ranged_download.wanted(source, file, ctx):  # a large file: pieces over several connections
            stored = ranged_download.fetch_ranged(source, revision, file, store, ctx, resume_key(revision, file),
                                                  on_bytes=on_bytes, stop=stop)
            if stored is not None:
                return stored  # else the upstream serves no ranges: one stream, below
        with store.writer(resume_key(revision, file)) as writer, retrying(what, cancel=stop) as retrier:
            if file.sha256 and store.exists(file.sha256):  # another process stored it while we waited
                on_bytes(file.size or 0)
                return StoredFile(file, file.sha256, file.digests.get("git-sha1"), store.stat(file.sha256).size)
            if file.size is not None and writer.offset > file.size:
                writer.restart()
            download = None
            if not (file.size is not None and 0 < file.size == writer.offset):  # else every byte is held already
                download = _reopen(source, revision, file, ctx, writer, writer.offset)
            # after the first open: what the download announces (Kaggle's md5) is checked too
            expected = {alg: value.lower() for alg, value in file.digests.items()}
            hasher = _hasher(expected, file)
            for chunk in writer.existing_chunks():
                hasher.update(chunk)
            held = hasher.size
            on_bytes(held)
            while download is not None:
                try:
                    try:
                        _copy(download, revision, file, writer, hasher, on_bytes, stop)
                    finally:
                        download.close()
                        held = hasher.size
                    download = None
                    if file.size is not None and held < file.size:  # ended early without an error: resume
                        raise TransferBrokenError(f"{what}: the stream ended early", f"the stream ended after {held} "
                                                  f"of {file.size} bytes")
                except TransferBrokenError as exc:
                    why = f"the transfer broke off ({exc.reason})"
                    retrier.retry(TransferBrokenError(f"{what}: {why}", exc.reason),
                                  f"{why}; resuming from byte {held}", held=held)
                    download = _reopen(source, revision, file, ctx, writer, held)
                    if download.start != held:  # the upstream sent the file from its first byte
                        on_bytes(-held)
                        hasher, held = _hasher(expected, file), 0
            digests = hasher.hexdigests()
            bad = mismatches(expected, digests)
            if bad:
                raise IntegrityError(f"{revision.ref}: {file.path}: {bad[0]}; the bytes were refused")
            writer.commit(digests["sha256"], hasher.size)
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            kept = f" ({held} bytes of it are kept in the mirror's tmp/)" if held else ""
            raise DiskFullError(f"disk full while storing {what} ({exc.strerror}): nothing was catalogued; free "
                                f"space, then pull again to resume{kept}") from exc
        raise
    except (IntegrityError, Cancelled, DiskFullError):
        raise
    except HubmirrorError as exc:  # the retry budget is spent, or the upstream refused: name the file
        text = str(exc) if what in str(exc) else f"{what}: {exc}"
        if held:
            text += f"; {held} bytes are kept for the next pull to resume"
        raise _reworded(exc, text) from exc
    return StoredFile(file, digests["sha256"], digests.get("git-sha1"), hasher.size)


def open_download(source: Source, revision: ResolvedRevision, file: RemoteFile, ctx: SourceContext,
                  offset: int) -> Download:
    """Open the upstream stream of `file` from byte `offset` (where the writer stands); adopt the digests the
    download itself announces. The one place a download is opened: a parallel ranged download would go here.
    The stream may start at 0 instead (an upstream that ignores ranges); `fetch_file` starts again then."""
    download = source.open_file(revision, file, ctx, offset=offset)
    for alg, value in download.digests.items():
        if file.digests.get(alg, value).lower() != value.lower():
            download.close()
            raise IntegrityError(f"{revision.ref}: {file.path}: the upstream announces two different {alg} digests")
        file.digests[alg] = value
    return download


def _reopen(source, revision, file, ctx, writer, offset: int) -> Download:
    """`open_download` from `offset`; when the upstream answers from byte 0 instead, the writer starts again."""
    download = open_download(source, revision, file, ctx, offset)
    if download.start != offset:
        if download.start != 0:
            download.close()
            raise HubmirrorError(f"{revision.ref}: {file.path}: asked for bytes from {offset}, the upstream sent "
                                 f"them from {download.start}")
        writer.restart()
    return download


def _hasher(expected: dict[str, str], file: RemoteFile) -> MultiHasher:
    return MultiHasher(set(expected), file.size)


def _reworded(exc: HubmirrorError, text: str) -> HubmirrorError:
    new = type(exc).__new__(type(exc))
    new.__dict__.update(exc.__dict__)
    new.args = (text,)
    return new


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
