"""One large file over several connections: bounded Range requests for its pieces, each written at its offset
(`BlobWriter.write_at`), the whole file hashed once in order by the calling thread as its unbroken prefix grows (read
back from the writer, while the pieces arrive on their own threads), then verified and committed.

`hubmirror.fetch.files` decides which files come this way (`wanted`: at least `Connections.threshold` bytes, from a
source that serves bounded ranges, `Source.open_range`); anything else comes in one stream (`stream.py`). The first
piece is asked for before the others: an upstream that answers it with the whole file (no Range support) makes
`fetch_pieces` return None, and the caller streams the file instead. For a file nothing of which is held yet, that first
request asks for all of it (`Range: bytes=0-{size-1}`), and the connection carries it alone for PROBE_SECONDS from its
first chunk: when its rate since then says it would bring the rest within `Connections.alone_within` seconds, it does
(more connections would not beat one that fast); otherwise it stops at the next piece boundary and the rest comes in
pieces. Measured on the 91 MB MiniLM weights from loopback: stored in 0.17-0.20 s alone vs 0.21-0.26 s in pieces, and
0.14-0.22 s (median ~0.16) once its bytes were hashed by the calling thread, read back, rather than by the piece's own
thread between its reads (one core receives while the other hashes). Pieces are resumed across processes: the writer
remembers which byte ranges it holds (see the store contract), so an interrupted pull asks only for the missing ones
next time. Each piece has its own retry budget (`hubmirror.fetch.retries.retrying`): its request is retried like any
ranged GET (429, 5xx, transport failures), and a piece that breaks off mid-body is asked for again from where it broke.
A piece that fails for good stops the others and fails the file with one line, keeping what arrived for the next pull.
Wrong bytes are IntegrityError, nothing stored.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from hubmirror.catalog import StoredFile
from hubmirror.crashpoints import crashpoint
from hubmirror.digests import SHA256_PREFIX, MultiHasher
from hubmirror.errors import Cancelled, HubmirrorError, IntegrityError, TransferBrokenError
from hubmirror.fetch.download import Download, adopt_announced_digests
from hubmirror.fetch.retries import retrying
from hubmirror.fetch.stored import already_stored, commit_verified
from hubmirror.sources import Source, SourceContext
from hubmirror.store import BlobStore, BlobWriter
from hubmirror.upstream import RemoteFile, ResolvedRevision

PROBE_SECONDS = 0.05  # how long a new file's first connection runs alone, from its first chunk, before it is judged
FIRST_CHUNK_SECONDS = 1.0  # judged without a rate when no chunk came by then


def wanted(source: Source, file: RemoteFile, ctx: SourceContext) -> bool:
    """Whether `file` goes over several connections: large enough, and its source can serve bounded ranges."""
    limits = ctx.connections
    return (
        limits.per_file > 1
        and isinstance(file.size, int)
        and file.size >= max(1, limits.threshold)
        and file.size > limits.piece_size
        and type(source).open_range is not Source.open_range
    )


def missing_pieces(held: list[tuple[int, int]], size: int, piece_size: int) -> list[tuple[int, int]]:
    """The byte ranges of [0, size) not in `held` (sorted, disjoint), cut into pieces of at most `piece_size`."""
    pieces = []
    position = 0
    for start, end in [*held, (size, size)]:
        while position < min(start, size):
            stop = min(start, size, position + piece_size)
            pieces.append((position, stop))
            position = stop
        position = max(position, end)
    return pieces


def fetch_pieces(
    source: Source,
    revision: ResolvedRevision,
    file: RemoteFile,
    store: BlobStore,
    ctx: SourceContext,
    key: str,
    *,
    on_bytes: Callable[[int], None] = lambda n: None,
    stop: threading.Event | None = None,
) -> StoredFile | None:
    """Store `file` from pieces fetched at once over `ctx.connections.per_file` connections, resuming the pieces
    the writer of `key` holds; None (nothing fetched, partial bytes kept) when the upstream will not serve ranges."""
    writer = store.writer(key)
    try:
        stored = _fetch(source, revision, file, store, ctx, writer, on_bytes, stop)
    except IntegrityError:
        writer.discard()
        raise
    except BaseException:
        writer.suspend()
        raise
    if stored is None:
        writer.suspend()
    return stored


def _fetch(source, revision, file, store, ctx, writer: BlobWriter, on_bytes, stop) -> StoredFile | None:
    size = file.size
    stored = already_stored(store, file)
    if stored is not None:  # another process stored it while we waited for the writer
        writer.discard()
        on_bytes(size)
        return stored
    held = writer.held()
    if held and held[-1][1] > size:
        writer.restart()
        held = []
    pieces = missing_pieces(held, size, ctx.connections.piece_size)
    run = _Run(source, revision, file, ctx, writer, on_bytes, stop)
    alone = not held and len(pieces) > 1 and ctx.connections.alone_within > 0  # it may carry the file alone
    first = None
    if pieces:
        first = source.open_range(revision, file, ctx, pieces[0][0], size if alone else pieces[0][1])
        if first is None:
            return None
        try:
            run.adopt_digests(first)
        except BaseException:
            first.close()
            raise
    on_bytes(size - sum(end - start for start, end in pieces))
    hasher = MultiHasher(_algorithms(file), size)
    run.start([(0, size)] if alone else pieces, first, front=alone)
    judging = alone  # until the front piece is judged (see `judge_front`)
    try:
        while True:
            seen = run.progress
            for chunk in writer.existing_chunks(hasher.size):  # the file in order, as its unbroken prefix grows
                hasher.update(chunk)
            if judging and (time.monotonic() >= run.probe_deadline() or run.finished() or run.failed()):
                judging = False
                cut = run.judge_front()
                if cut is not None:
                    run.add(missing_pieces([(0, cut)], size, ctx.connections.piece_size))
            if hasher.size >= size or run.failed():
                break
            if run.finished():
                if run.progress == seen:  # nothing was written since the read: the file is as whole as it gets
                    break
                continue
            run.wait(seen, until=run.probe_deadline() if judging else None)
    finally:
        run.close()
    run.raise_failure()
    if hasher.size < size:
        raise HubmirrorError(f"{file.path}: transfer ended after {hasher.size} of {size} bytes")
    digests = hasher.hexdigests()
    if _algorithms(file) - set(digests) - {"git-sha1"}:  # a digest announced by a later piece: one more pass
        rehash = MultiHasher(_algorithms(file), size)
        for chunk in writer.existing_chunks():
            rehash.update(chunk)
        digests = rehash.hexdigests()
    return commit_verified(writer, revision, file, digests, hasher.size)


def _algorithms(file: RemoteFile) -> set[str]:
    return set(file.digests) - {SHA256_PREFIX}


class _Run:
    """The pieces of one file in flight: a pool of `per_file` threads, each fetching one piece at a time."""

    def __init__(self, source, revision, file, ctx, writer, on_bytes, stop):
        self.source, self.revision, self.file, self.ctx = source, revision, file, ctx
        self.writer, self.on_bytes, self.stop = writer, on_bytes, stop
        self.progress = 0  # bumped after every write: the hashing thread waits on it
        self._cond = threading.Condition()
        self._halt = threading.Event()
        self._digests_lock = threading.Lock()
        self._futures = []
        self._pool: ThreadPoolExecutor | None = None
        self._front_end = file.size  # where the front piece (a new file's first, asked for all of it) stops
        self._front_at = 0  # the bytes the front piece has taken
        self._front_lock = threading.Lock()
        self._started = 0.0
        self._first: tuple[float, int] | None = None  # when the front's first chunk came, and its bytes then taken

    def adopt_digests(self, download: Download) -> None:
        """Take the digests a response announces (as a stream does); two different values for one is refused."""
        with self._digests_lock:
            adopt_announced_digests(f"{self.revision.ref}: {self.file.path}", self.file.digests, download)

    def start(self, pieces: list[tuple[int, int]], first: Download | None, *, front: bool = False) -> None:
        """Fetch `pieces`, the first through `first`; with `front`, the one piece is the front (see `judge_front`)."""
        if not pieces:
            return
        workers = self.ctx.connections.per_file if front else min(self.ctx.connections.per_file, len(pieces))
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="piece")
        self._started = time.monotonic()
        self.add(pieces, first, front=front)

    def add(self, pieces: list[tuple[int, int]], first: Download | None = None, *, front: bool = False) -> None:
        """Fetch `pieces` too (called before the hashing loop runs)."""
        for i, (start, end) in enumerate(pieces):
            future = self._pool.submit(self._piece, start, end, first if i == 0 else None, front and i == 0)
            future.add_done_callback(self._done)
            self._futures.append(future)

    def probe_deadline(self) -> float:
        """When the front piece is to be judged (`time.monotonic`): PROBE_SECONDS after its first chunk came, or
        FIRST_CHUNK_SECONDS after it was asked for while none has. Its rate is measured from that first chunk, not
        from the request: the wait for a first byte (a Xet read asks for a reconstruction, then for a xorb: 50 ms
        went by before the MiniLM weights' first chunk from loopback) says nothing of how fast the bytes then come."""
        with self._front_lock:
            first = self._first
        return self._started + FIRST_CHUNK_SECONDS if first is None else first[0] + PROBE_SECONDS

    def judge_front(self) -> int | None:
        """Once `probe_deadline` has come (or the front ended): None when it is to bring the whole file (it is done,
        or at its rate since its first chunk the rest takes at most `alone_within` seconds), else the offset it now
        stops at (the first piece boundary past what it has taken), the rest of the file to come in pieces. The
        caller hashes meanwhile: what the front piece brought is hashed as it comes, the probe included."""
        size, piece = self.file.size, self.ctx.connections.piece_size
        if self.finished() or self.failed():
            return None
        with self._front_lock:
            taken = self._front_at
            if self._first is not None:
                first_at, first_taken = self._first
                since, elapsed = taken - first_taken, time.monotonic() - first_at
                if since > 0 and (size - taken) * elapsed <= self.ctx.connections.alone_within * since:
                    return None
            cut = (taken // piece + 1) * piece  # strictly past: a front at a boundary would wait on a chunk for nothing
            if cut >= size:
                return None
            self._front_end = cut
        return cut

    def _take(self, position: int, chunk: bytes) -> bytes:
        """The part of the front piece's `chunk` (at `position`) below where the front stops, noted as taken."""
        with self._front_lock:
            keep = max(0, min(len(chunk), self._front_end - position))
            self._front_at = position + keep
            if self._first is None and keep:
                self._first = (time.monotonic(), self._front_at)
        return chunk if keep == len(chunk) else chunk[:keep]

    def _done(self, future) -> None:
        if not future.cancelled() and future.exception() is not None:
            self._halt.set()
        self._notify()

    def _notify(self) -> None:
        with self._cond:
            self.progress += 1
            self._cond.notify_all()

    def wait(self, seen: int, until: float | None = None) -> None:
        """Until a piece writes or ends after `seen` was read, at most a second or until `until` (monotonic)."""
        timeout = 1.0 if until is None else min(1.0, max(0.0, until - time.monotonic()))
        with self._cond:
            self._cond.wait_for(lambda: self.progress != seen, timeout=timeout)

    def finished(self) -> bool:
        return all(f.done() for f in self._futures)

    def failed(self) -> bool:
        return self._halt.is_set() or (self.stop is not None and self.stop.is_set())

    def close(self) -> None:
        """Stop what is still running (after a failure) and wait for the threads."""
        if self._pool is not None:
            if not self.finished():
                self._halt.set()
            for future in self._futures:
                future.cancel()
            self._pool.shutdown(wait=True)

    def raise_failure(self) -> None:
        """Raise the first real failure of a piece (not the Cancelled of the pieces it stopped), if any."""
        errors = [f.exception() for f in self._futures if not f.cancelled() and f.exception() is not None]
        real = [e for e in errors if not isinstance(e, Cancelled)]
        if real:
            raise real[0]
        if errors or (self.stop is not None and self.stop.is_set()):
            raise Cancelled("pull cancelled")

    def _check(self) -> None:
        if self._halt.is_set() or (self.stop is not None and self.stop.is_set()):
            raise Cancelled("pull cancelled")

    def _piece(self, start: int, end: int, download: Download | None, front: bool = False) -> None:
        """Fetch bytes [start, end) into the writer, asking again from where a broken transfer stopped; the front
        piece stops where `judge_front` says."""
        what = f"{self.revision.ref}: {self.file.path}: bytes {start}-{end - 1}"
        position = start
        try:
            with retrying(what, cancel=self._halt) as retrier:  # open_bounded, in this thread, retries under it
                while position < (stop := self._front_end if front else end):
                    self._check()
                    if download is None:
                        download = self.source.open_range(self.revision, self.file, self.ctx, position, stop)
                        if download is None:
                            raise HubmirrorError(f"{what}: the upstream stopped answering range requests")
                        self.adopt_digests(download)
                    try:
                        for chunk in download.chunks:
                            self._check()
                            if position + len(chunk) > end:
                                raise IntegrityError(f"{what}: the upstream sent more bytes than asked for; "
                                                     "the bytes were refused")
                            if front:
                                chunk = self._take(position, chunk)
                            if chunk:
                                self.writer.write_at(position, chunk)
                                crashpoint("transfer.chunk")
                                position += len(chunk)
                                self.on_bytes(len(chunk))
                                self._notify()
                            if front and position >= self._front_end:
                                break
                        if position < (self._front_end if front else end):
                            raise TransferBrokenError(f"{what}: the transfer ended at byte {position}", "short")
                    except TransferBrokenError as exc:
                        retrier.retry(exc if what in str(exc) else TransferBrokenError(f"{what}: {exc}", exc.reason),
                                      f"the transfer broke off ({exc.reason}); resuming from byte {position}",
                                      held=position)
                    finally:
                        download.close()
                        download = None
        finally:
            if download is not None:  # handed over, never read: cancelled before its turn
                download.close()

