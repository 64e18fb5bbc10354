"""One upstream revision brought into the mirror file by file, for `serve --upstream` (hubmirror.serving.proxy).

Each file is fetched once whatever the number of clients asking (single flight): a few background workers take the
files in listing order, a large file a client asks for is the next they take, and a small one nobody has started yet
starts at once on a thread of its own, so a request waits for its own file (and at most the large files in flight),
never for the whole revision. A file is servable once it is in the
store, verified against the upstream's digests (`hubmirror.fetch.files.fetch_file`) and its admission verdict is in the
catalog (a quarantined file is then refused by the server like any other). Downloads run on the fetch's own threads,
never on a client's, so a slow client slows nobody. When every file is in, the revision is catalogued once through
`hubmirror.admit.admit_revisions`, exactly as a pull catalogues it (each file found stored, none fetched again).
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import replace

from hubmirror.catalog import StoredFile
from hubmirror.errors import Cancelled
from hubmirror.upstream import RemoteFile, ResolvedRevision

log = logging.getLogger("hubmirror.serving.proxy")
ON_DEMAND = threading.BoundedSemaphore(16)  # small files fetched at once for waiting clients, over every revision


class RevisionFetch:
    """`revision` (resolved by `source`, listing checked) being stored from upstream into `mirror`; `on_end(self,
    error)` is called once, from a fetch thread, after the revision is catalogued (error None) or has failed."""

    def __init__(self, mirror, source, plugin: str, revision: ResolvedRevision, ctx, *, workers: int,
                 on_end: Callable[[RevisionFetch, BaseException | None], None],
                 on_file: Callable[[str], None] = lambda status: None):
        self.revision = revision
        self.commit: str = revision.commit
        self._mirror, self._source, self._plugin, self._ctx = mirror, source, plugin, ctx
        self._workers = max(1, workers)
        self._on_end, self._on_file = on_end, on_file
        self._files = {f.path: f for f in revision.files}
        self._landed: dict[str, Future] = {path: Future() for path in self._files}  # each file's StoredFile
        self._lock = threading.Lock()  # guards `_waiting`
        self._waiting: list[str] = list(self._files)  # the files nobody has started, the next to start first
        self._catalog_lock = threading.Lock()  # the mirror's catalog connection, one thread at a time
        if ctx.xet_chunks is None:  # files read through Xet keep their chunk layout, to be served through Xet
            from hubmirror.xet.chunks import ChunkIndex

            self._ctx = replace(ctx, xet_chunks=ChunkIndex(mirror.catalog, mirror.store,
                                                           mirror.writer.record_xet_layout, self._catalog_lock))
        self._stop = threading.Event()
        self._context = contextvars.copy_context()  # the fetch's threads record metrics where their starter did
        self.quarantined: list[str] = []  # once catalogued: the paths the admission scan quarantined

    def start(self) -> None:
        """Start the background workers (the fetch closes `mirror` when it ends)."""
        self._thread(self._run, f"proxy {self.revision.ref}")

    def stop(self) -> None:
        """Stop fetching (the server is shutting down): partial downloads stay in the store for the next time."""
        self._stop.set()

    def files(self) -> list[RemoteFile]:
        """The revision's files as the upstream lists them."""
        return list(self._files.values())

    def landed(self, path: str) -> Future | None:
        """The future of `path`'s StoredFile, or None when the revision has no such file. A small file nobody has
        started is started now; a large one is the next the background workers take (they fetch each over several
        connections: a few at a time, so that the first files land early rather than all at the end)."""
        future = self._landed.get(path)
        if future is None:
            return None
        size = self._files[path].size
        small = size is None or size < self._ctx.connections.threshold
        if small and ON_DEMAND.acquire(blocking=False):  # a thread of its own, while there are few
            if self._claim(path):
                self._thread(self._fetch_on_demand, f"proxy {path}", path)
            else:
                ON_DEMAND.release()
        else:  # a large file, or too many at once: the next the background workers take
            with self._lock:
                if path in self._waiting:
                    self._waiting.remove(path)
                    self._waiting.insert(0, path)
        return future

    def _fetch_on_demand(self, path: str) -> None:
        try:
            self._fetch(path)
        finally:
            ON_DEMAND.release()

    def _thread(self, target, name: str, *args) -> threading.Thread:
        thread = threading.Thread(target=self._context.copy().run, args=(target, *args), name=name, daemon=True)
        thread.start()
        return thread

    def _claim(self, path: str) -> bool:
        """Whether the caller is the one to fetch `path` (nobody had started it)."""
        with self._lock:
            if path not in self._waiting:
                return False
            self._waiting.remove(path)
            return True

    def _next(self) -> str | None:
        with self._lock:
            return self._waiting.pop(0) if self._waiting else None

    def _run(self) -> None:
        error = None
        try:
            with self._mirror.shared_lock(f"serve --upstream {self.revision.ref}"):
                workers = [self._thread(self._work, "proxy worker")
                           for _ in range(min(self._workers, len(self._files)))]
                for worker in workers:
                    worker.join()
                wait(self._landed.values())
                failed = [f.exception() for f in self._landed.values() if f.exception() is not None]
                if failed:
                    raise failed[0]
                self._catalogue()
        except BaseException as exc:  # noqa: BLE001 - handed to on_end, which reports it
            error = exc
        finally:
            self._mirror.close()
        self._on_end(self, error)

    def _work(self) -> None:
        """Fetch the next waiting file until every one is started (by this worker, another, or a client)."""
        while (path := self._next()) is not None:
            if self._stop.is_set():
                self._landed[path].set_exception(Cancelled("the server is shutting down"))
            else:
                self._fetch(path)

    def _fetch(self, path: str) -> None:
        """Store, verify and admission-scan one file, then settle its future (with the error when it fails: the
        other files go on, to be served meanwhile and found stored when the revision is fetched again)."""
        from hubmirror.fetch.files import fetch_file
        from hubmirror.scanning.judge import judge

        future = self._landed[path]
        try:
            stored = fetch_file(self._source, self.revision, self._files[path], self._mirror.store, self._ctx,
                                stop=self._stop)
            with self._catalog_lock:
                self._mirror.writer.record_scans(judge(self._mirror.store, self._mirror.catalog,
                                                         [(stored.sha256, path)]))
        except BaseException as exc:  # noqa: BLE001 - the waiting requests get it
            self._on_file("error")
            future.set_exception(exc)
            return
        log.debug("%s: %s landed", self.revision.ref, path)
        self._on_file("ok")
        future.set_result(stored)

    def _catalogue(self) -> None:
        """One catalog revision, as `hubmirror pull` records it. Files the Hub lists by git id alone carry their
        computed sha256 too, so that the pull finds them stored rather than fetching them again."""
        from hubmirror.admit import admit_revisions

        landed = {path: f.result() for path, f in self._landed.items()}
        files = [_with_sha256(f, landed[f.path]) for f in self._files.values()]
        with self._catalog_lock:
            [result] = admit_revisions(self._mirror, self._source, self._plugin, [(self.revision, files)], self._ctx)
        self.quarantined = result.quarantined


def _with_sha256(remote: RemoteFile, stored: StoredFile) -> RemoteFile:
    if remote.sha256 is not None:
        return remote
    return replace(remote, digests={**remote.digests, "sha256": stored.sha256})
