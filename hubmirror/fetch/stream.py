"""One file in one stream: resume, hash while streaming, verify, commit.

A download that breaks off mid-body (a reset, a stalled connection past the read timeout, a short body) is reopened
from the bytes the writer holds, with a Range request, within the same pull and the file's retry budget
(`hubmirror.fetch.retries.retrying`); the whole-file digest check at the end is the same either way. When the budget
is spent the error says how many bytes are kept in the store's temp area for the next pull to resume.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import nullcontext

from hubmirror.catalog import StoredFile
from hubmirror.crashpoints import crashpoint
from hubmirror.digests import HashingBehind, MultiHasher
from hubmirror.errors import Cancelled, HubmirrorError, IntegrityError, TransferBrokenError
from hubmirror.fetch.download import Download, adopt_announced_digests
from hubmirror.fetch.retries import retrying
from hubmirror.fetch.stored import already_stored, commit_verified
from hubmirror.sources import Source, SourceContext
from hubmirror.store import BlobStore
from hubmirror.upstream import RemoteFile, ResolvedRevision

_HASH_BEHIND_FROM = 8 << 20  # smaller files are hashed in line: a helper thread would cost more than it overlaps


class Held:
    """How many bytes of the file the writer holds: what a failure leaves for the next pull."""

    bytes = 0


def fetch_stream(source: Source, revision: ResolvedRevision, file: RemoteFile, store: BlobStore, ctx: SourceContext,
                 key: str, held: Held, *, on_bytes: Callable[[int], None], stop: threading.Event | None) -> StoredFile:
    """Store `file` from one stream, continuing the partial bytes kept under `key`; `held` follows the bytes held.

    The bytes are hashed once, as they stream in (bytes left by an interrupted attempt are re-read once to hash
    them). Size and every digest the upstream publishes, in its listing or on the download itself (Kaggle's
    `x-goog-hash`), are checked before the blob becomes visible; wrong bytes are discarded."""
    what = f"{revision.ref}: {file.path}"
    with store.writer(key) as writer, retrying(what, cancel=stop) as retrier:
        stored = already_stored(store, file)
        if stored is not None:  # another process stored it while we waited for the writer
            on_bytes(file.size or 0)
            return stored
        if file.size is not None and writer.offset > file.size:
            writer.restart()
        download = None
        if not (file.size is not None and 0 < file.size == writer.offset):  # else every byte is held already
            download = _reopen(source, revision, file, ctx, writer, writer.offset)
        # after the first open: what the download announces (Kaggle's md5) is checked too
        expected = {alg: value.lower() for alg, value in file.digests.items()}
        hasher = MultiHasher(set(expected), file.size)
        for chunk in writer.existing_chunks():
            hasher.update(chunk)
        held.bytes = hasher.size
        on_bytes(held.bytes)
        while download is not None:
            try:
                try:
                    _copy(download, revision, file, writer, hasher, on_bytes, stop)
                finally:
                    download.close()
                    held.bytes = hasher.size
                download = None
                if file.size is not None and held.bytes < file.size:  # ended early without an error: resume
                    raise TransferBrokenError(f"{what}: the stream ended early", f"the stream ended after "
                                              f"{held.bytes} of {file.size} bytes")
            except TransferBrokenError as exc:
                why = f"the transfer broke off ({exc.reason})"
                retrier.retry(TransferBrokenError(f"{what}: {why}", exc.reason),
                              f"{why}; resuming from byte {held.bytes}", held=held.bytes)
                download = _reopen(source, revision, file, ctx, writer, held.bytes)
                if download.start != held.bytes:  # the upstream sent the file from its first byte
                    on_bytes(-held.bytes)
                    hasher, held.bytes = MultiHasher(set(expected), file.size), 0
        return commit_verified(writer, revision, file, hasher.hexdigests(), hasher.size)


def _reopen(source, revision, file, ctx, writer, offset: int) -> Download:
    """The upstream stream of `file` from byte `offset` (where the writer stands), its announced digests adopted;
    when the upstream answers from byte 0 instead, the writer starts again."""
    download = source.open_file(revision, file, ctx, offset=offset)
    try:
        adopt_announced_digests(f"{revision.ref}: {file.path}", file.digests, download)
    except BaseException:
        download.close()
        raise
    if download.start != offset:
        if download.start != 0:
            download.close()
            raise HubmirrorError(f"{revision.ref}: {file.path}: asked for bytes from {offset}, the upstream sent "
                                 f"them from {download.start}")
        writer.restart()
    return download


def _copy(download, revision, file, writer, hasher: MultiHasher, on_bytes, stop) -> None:
    """Append the download's bytes to the writer and the hasher (a large file's hashed a chunk behind, on a thread
    of its own: `HashingBehind`); when it returns or raises, the hasher has every byte the writer got."""
    behind = file.size is not None and file.size >= _HASH_BEHIND_FROM
    with HashingBehind(hasher) if behind else nullcontext(hasher) as feed:
        copied = hasher.size
        for chunk in download.chunks:
            if stop is not None and stop.is_set():
                raise Cancelled("pull cancelled")
            writer.write(chunk)
            crashpoint("transfer.chunk")
            feed.update(chunk)
            copied += len(chunk)
            on_bytes(len(chunk))
            if file.size is not None and copied > file.size:
                raise IntegrityError(
                    f"{revision.ref}: {file.path}: upstream sent more than the {file.size} bytes announced; "
                    "the bytes were refused"
                )
