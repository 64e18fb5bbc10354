"""`hubmirror pull`: resolve a reference, store every selected file verified, then catalogue the revision at once."""

from __future__ import annotations

import fnmatch
import logging
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from typing import Callable

from hubmirror import ranged_download
from hubmirror.catalog import StoredFile
from hubmirror.digests import is_valid_digest
from hubmirror.errors import Cancelled, DiskFullError, HubmirrorError, IntegrityError, UsageError
from hubmirror.mirror import Mirror
from hubmirror.plugin_manager import PluginRegistry
from hubmirror.records import ModelRef, RemoteFile, ResolvedRevision
from hubmirror.safepath import check_relative_path
from hubmirror.scanning.judge import judge
from hubmirror.sources import Source, SourceContext
from hubmirror.transfer import fetch_file

DEFAULT_WORKERS = 8
log = logging.getLogger("hubmirror.pull")


@dataclass
class PullResult:
    revision: ResolvedRevision
    files: list[StoredFile]
    reused: int  # files whose bytes were already in the store
    quarantined: list[str] = field(default_factory=list)  # paths of files the admission scan quarantined
    unscanned: list[str] = field(default_factory=list)  # paths of files in formats it does not inspect (any policy)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


def matches(path: str, include: list[str] | None, exclude: list[str] | None) -> bool:
    """huggingface_hub's allow/ignore pattern semantics: fnmatch, and a pattern ending in `/` means a folder."""

    def norm(patterns):
        return [p + "*" if p.endswith("/") else p for p in patterns or []]

    if include and not any(fnmatch.fnmatchcase(path, p) for p in norm(include)):
        return False
    return not any(fnmatch.fnmatchcase(path, p) for p in norm(exclude))


def check_listing(revision: ResolvedRevision) -> None:
    """Refuse a revision whose file list could hurt: unsafe or duplicate names, malformed digests, negative sizes."""
    seen: set[str] = set()
    for f in revision.files:
        check_relative_path(f.path)
        if f.path in seen:
            raise IntegrityError(f"{revision.ref}: upstream lists {f.path!r} twice")
        seen.add(f.path)
        if f.size is not None and (not isinstance(f.size, int) or f.size < 0):
            raise IntegrityError(f"{revision.ref}: {f.path}: upstream size {f.size!r} is not a byte count")
        for alg, value in f.digests.items():
            if not is_valid_digest(alg, value):
                raise IntegrityError(f"{revision.ref}: {f.path}: upstream {alg} {value!r} is malformed")


def pull(
    mirror: Mirror,
    registry: PluginRegistry,
    ref: ModelRef,
    ctx: SourceContext,
    *,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    workers: int = DEFAULT_WORKERS,
    on_start: Callable[[int], None] = lambda total: None,
    on_bytes: Callable[[int], None] = lambda n: None,
) -> list[PullResult]:
    """Mirror `ref` (one model, or several when the reference names several, like a PyTorch Hub repo's
    entrypoints). Nothing reaches the catalog unless every selected file of every one is stored and verified."""
    with mirror.shared_lock(f"pull {ref}"):
        source, plugin = registry.source(ref.source)
        selections = resolve_selections(source, ref, ctx, include, exclude)
        return store_revisions(mirror, source, plugin, selections, ctx, workers=workers, on_start=on_start,
                               on_bytes=on_bytes)


def resolve_selections(source: Source, ref: ModelRef, ctx: SourceContext, include: list[str] | None,
                       exclude: list[str] | None) -> list[tuple[ResolvedRevision, list[RemoteFile]]]:
    """Resolve `ref`, check every listing, and pick the files the patterns select (at least one per revision)."""
    selections = []
    for revision in source.resolve_all(ref, ctx):
        check_listing(revision)
        selected = [f for f in revision.files if matches(f.path, include, exclude)]
        if not selected:
            raise UsageError(f"{revision.ref}: no file of revision {revision.commit} matches the include/exclude patterns")
        selections.append((revision, selected))
    return selections


def store_revisions(
    mirror: Mirror,
    source: Source,
    plugin: str,
    selections: list[tuple[ResolvedRevision, list[RemoteFile]]],
    ctx: SourceContext,
    *,
    workers: int = DEFAULT_WORKERS,
    on_start: Callable[[int], None] = lambda total: None,
    on_bytes: Callable[[int], None] = lambda n: None,
) -> list[PullResult]:
    """Store the selected files of checked revisions (each distinct file once, verified), then catalogue the
    revisions in one transaction. The caller holds the mirror's shared lock."""
    from hubmirror import sitelog  # a bucket-backed mirror publishes to the bucket (a no-op lease for a local one)

    upfront = [f.sha256 for _, files in selections for f in files]
    with sitelog.lease(mirror, upfront) as lease:  # before asking which blobs exist: gc on any host spares them
        results = _store_and_catalogue(mirror, source, plugin, selections, ctx, workers, on_start, on_bytes, lease)
    for r in results:
        verdicts = mirror.catalog.file_verdicts(r.revision.ref.key, r.revision.commit)
        judged = [verdicts[f.remote.path] for f in r.files if f.remote.path in verdicts]
        r.quarantined = [v["path"] for v in judged if v["quarantined"]]
        r.unscanned = [v["path"] for v in judged if v["verdict"] == "unscanned"]
    return results


def _store_and_catalogue(mirror, source, plugin, selections, ctx, workers, on_start, on_bytes, lease):
    from hubmirror import sitelog

    stored = _store_files(mirror, source, selections, ctx, workers, on_start, on_bytes)
    for revision, files in selections:
        if revision.commit is None:  # content-addressed revision: pinned by what was stored (one file)
            if len(files) != 1:
                raise IntegrityError(f"{revision.ref}: a revision without a commit must hold exactly one file")
            revision.commit = stored[id(files[0])].sha256
    results = [
        PullResult(rev, [stored[id(f)] for f in files], reused=sum(stored[id(f)].reused for f in files))
        for rev, files in selections
    ]
    if lease is not None:  # every digest now, then whatever a gc on another host took before it saw them, again
        lease.extend(f.sha256 for r in results for f in r.files)
        _restore_missing(mirror, source, results, ctx, workers, on_start, on_bytes)
    missing = [f.remote.path for r in results for f in r.files if not mirror.store.exists(f.sha256)]
    if missing:
        raise IntegrityError(f"blobs vanished before cataloguing: {', '.join(missing)}")
    scans = judge(mirror.store, mirror.catalog, {f.sha256: f.remote.path for r in results for f in r.files})
    sitelog.record_revisions(mirror, [(r.revision, r.files) for r in results], plugin, source.description, scans)
    if lease is not None:  # a gc on another host that raced the lease: store again what it took
        _restore_missing(mirror, source, results, ctx, workers, on_start, on_bytes)
    return results


def _restore_missing(mirror, source, results, ctx, workers, on_start, on_bytes) -> None:
    """Store again the blobs of `results` that are gone (a gc on another host deleted them before the lease named
    them); the lease now protects them."""
    gone = [(r.revision, [f.remote]) for r in results for f in r.files if not mirror.store.exists(f.sha256)]
    if gone:
        log.warning("%d blobs vanished during the pull (a concurrent gc); storing them again", len(gone))
        _store_files(mirror, source, gone, ctx, workers, on_start, on_bytes)


def _store_files(mirror, source, selections, ctx, workers, on_start, on_bytes) -> dict[int, StoredFile]:
    """Fetch every distinct selected file once (revisions of one reference may share file objects)."""
    unique: dict[int, tuple[ResolvedRevision, RemoteFile]] = {}
    for revision, files in selections:
        for f in files:
            unique.setdefault(id(f), (revision, f))
    stored: dict[int, StoredFile] = {}
    todo = []
    for key, (revision, f) in unique.items():
        known = _already_stored(mirror, f)
        if known is not None:
            stored[key] = known
        else:
            todo.append((key, revision, f))
    on_start(sum(f.size or 0 for _, _, f in todo))
    ctx = connections_for(source, [f for _, _, f in todo], ctx, workers)
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="pull") as pool:
        futures = {
            key: pool.submit(fetch_file, source, revision, f, mirror.store, ctx, on_bytes=on_bytes, stop=stop)
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


def connections_for(source, files: list[RemoteFile], ctx, workers: int):
    """`ctx`, or a copy fetching every file in one stream when the large files alone keep every download worker busy:
    each then already has a connection of its own, and pieces would add threads and a second read for hashing, not
    bandwidth (measured: 1 GiB in 8 files from loopback, 2.4 s in pieces vs 2.2 s in streams). A pull of fewer large
    files than workers keeps pieces, which is what beats a server that throttles each connection."""
    large = sum(ranged_download.wanted(source, f, ctx) for f in files)
    if large < max(1, workers):
        return ctx
    return replace(ctx, connections=replace(ctx.connections, per_file=1))


def _one_error(errors: list[BaseException]) -> BaseException:
    """One error for the files that failed: the error itself for one file, else one line naming every one (the
    first's class and exit code). Files that did not fail are stored by then, and resumable or reused next time."""
    first = errors[0]
    if len(errors) == 1 or not isinstance(first, HubmirrorError):
        return first
    combined = type(first).__new__(type(first))
    combined.__dict__.update(first.__dict__)
    shown = "; ".join(str(e) for e in errors[:3]) + (f"; and {len(errors) - 3} more" if len(errors) > 3 else "")
    combined.args = (f"{len(errors)} files failed: {shown}",)
    return combined


def _already_stored(mirror: Mirror, f: RemoteFile) -> StoredFile | None:
    """A file whose bytes the store already holds (by sha256, or by a git id the catalog knows) needs no download."""
    digest = f.sha256
    if digest is None and "git-sha1" in f.digests:
        digest = mirror.catalog.sha256_for_git_sha1(f.digests["git-sha1"])
    info = mirror.store.stat(digest) if digest else None
    if info is None:
        return None
    return StoredFile(f, digest, f.digests.get("git-sha1"), info.size, reused=True)
