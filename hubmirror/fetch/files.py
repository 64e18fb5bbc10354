"""The files of a pull into the store: which way each comes (already stored, in pieces over several connections, or
one stream) is decided here and nowhere else; the files are fetched in parallel; a failure is worded once."""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import replace

from hubmirror.catalog import Catalog, StoredFile
from hubmirror.errors import Cancelled, DiskFullError, HubmirrorError, IntegrityError, reworded
from hubmirror.fetch import pieces
from hubmirror.fetch.stored import already_stored, resume_key
from hubmirror.fetch.stream import Held, fetch_stream
from hubmirror.sources import Source, SourceContext
from hubmirror.store import BlobStore
from hubmirror.upstream import RemoteFile, ResolvedRevision

DEFAULT_WORKERS = 8
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
log = logging.getLogger("hubmirror.pull")


def fetch_files(source: Source, wanted: list[tuple[ResolvedRevision, RemoteFile]], store: BlobStore,
                ctx: SourceContext, *, catalog: Catalog | None = None, record_layout=None,
                workers: int = DEFAULT_WORKERS,
                on_start: Callable[[int], None] = lambda total: None,
                on_bytes: Callable[[int], None] = lambda n: None) -> dict[int, StoredFile]:
    """Store every distinct file of `wanted` once, keyed by `id(file)` (revisions of one reference may share file
    objects): what the store holds already (by sha256, or by a git id `catalog` knows) is not fetched; the rest is
    fetched `workers` at a time. A file that fails lets the others finish (they are stored, and reused next time);
    a full disk or anything unforeseen stops them all (their bytes kept). Then one error names every failure.
    With `catalog`, chunks read through Xet are indexed (hubmirror.xet.chunks), a verified file's layout recorded by
    `record_layout` (the mirror writer's)."""
    unique: dict[int, tuple[ResolvedRevision, RemoteFile]] = {}
    for revision, f in wanted:
        unique.setdefault(id(f), (revision, f))
    stored: dict[int, StoredFile] = {}
    todo = []
    for key, (revision, f) in unique.items():
        known = already_stored(store, f, catalog)
        if known is not None:
            stored[key] = known
        else:
            todo.append((key, revision, f))
    todo.sort(key=lambda item: -(item[2].size or 0))  # the largest first: the pull ends when its longest file does
    on_start(sum(f.size or 0 for _, _, f in todo))
    ctx = connections_for(source, [f for _, _, f in todo], ctx, workers)
    if catalog is not None and ctx.xet_chunks is None:
        from hubmirror.xet.chunks import ChunkIndex

        ctx = replace(ctx, xet_chunks=ChunkIndex(catalog, store, record_layout))
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="pull") as pool:
        futures = {
            key: pool.submit(fetch_file, source, revision, f, store, ctx, on_bytes=on_bytes, stop=stop)
            for key, revision, f in todo
        }
        try:
            for fut in as_completed(futures.values()):
                exc = None if fut.cancelled() else fut.exception()
                if exc is None or isinstance(exc, Cancelled):
                    continue
                if isinstance(exc, DiskFullError) or not isinstance(exc, HubmirrorError):
                    stop.set()  # the disk is full, or something unforeseen: the other files stop too (kept)
                    for other in futures.values():
                        other.cancel()
                else:
                    log.info("failed: %s; the other files of the pull go on", exc)
        except BaseException:
            stop.set()
            for other in futures.values():
                other.cancel()
            raise
    failed = [fut.exception() for fut in futures.values() if not fut.cancelled() and fut.exception() is not None]
    real = [exc for exc in failed if not isinstance(exc, Cancelled)] or failed
    if real:
        raise _one_error(real)
    stored.update({key: fut.result() for key, fut in futures.items()})
    return stored


def connections_for(source: Source, files: list[RemoteFile], ctx: SourceContext, workers: int) -> SourceContext:
    """`ctx`, or a copy fetching every file in one stream when the large files alone keep every download worker busy:
    each then already has a connection of its own, and pieces would add threads and a second read for hashing, not
    bandwidth (measured: 1 GiB in 8 files from loopback, 2.4 s in pieces vs 2.2 s in streams). A batch of fewer large
    files than workers keeps pieces, which is what beats a server that throttles each connection."""
    large = sum(pieces.wanted(source, f, ctx) for f in files)
    if large < max(1, workers):
        return ctx
    return replace(ctx, connections=replace(ctx.connections, per_file=1))


def fetch_file(source: Source, revision: ResolvedRevision, file: RemoteFile, store: BlobStore, ctx: SourceContext,
               *, on_bytes: Callable[[int], None] = lambda n: None,
               stop: threading.Event | None = None) -> StoredFile:
    """Store `file` and return it with its computed digests: in pieces when `pieces.wanted` says so and the upstream
    serves ranges, else in one stream. Either way size and every published digest are checked before the blob is
    visible. When it fails for good, or the disk is full, the bytes are kept for the next pull and the error names
    the file."""
    what = f"{revision.ref}: {file.path}"
    key = resume_key(revision, file)
    held = Held()
    try:
        while True:
            try:
                stored = None
                if pieces.wanted(source, file, ctx):
                    stored = pieces.fetch_pieces(source, revision, file, store, ctx, key, on_bytes=on_bytes,
                                                 stop=stop)
                if stored is None:  # a small file, or the upstream serves no ranges: one stream
                    stored = fetch_stream(source, revision, file, store, ctx, key, held, on_bytes=on_bytes,
                                          stop=stop)
                break
            except IntegrityError:
                # a file that took Xet chunks from the store and did not verify is read again, every chunk from
                # the upstream: what the chunk index said of a chunk may be false (an upstream's word)
                if ctx.xet_chunks is None or not ctx.xet_chunks.forget(file.sha256):
                    raise
                log.warning("%s: did not verify with chunks taken from the store; fetching it whole", what)
        if ctx.xet_chunks is not None:
            ctx.xet_chunks.confirm(stored.sha256, stored.size)  # the chunks read into it, now that it verified
        return stored
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            kept = f" ({held.bytes} bytes of it are kept in the mirror's tmp/)" if held.bytes else ""
            raise DiskFullError(f"disk full while storing {what} ({exc.strerror}): nothing was catalogued; free "
                                f"space, then pull again to resume{kept}") from exc
        raise
    except (Cancelled, DiskFullError):
        raise
    except HubmirrorError as exc:  # the retry budget is spent, or the upstream refused: name the file
        text = str(exc) if what in str(exc) else f"{what}: {exc}"
        if held.bytes:
            text += f"; {held.bytes} bytes are kept for the next pull to resume"
        raise reworded(exc, text) from exc


def _one_error(errors: list[BaseException]) -> BaseException:
    """One error for the files that failed: the error itself for one file, else one line naming every one (the
    first's class and exit code)."""
    first = errors[0]
    if len(errors) == 1 or not isinstance(first, HubmirrorError):
        return first
    shown = "; ".join(str(e) for e in errors[:3]) + (f"; and {len(errors) - 3} more" if len(errors) > 3 else "")
    return reworded(first, f"{len(errors)} files failed: {shown}")
