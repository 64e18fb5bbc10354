"""`hubmirror pull`: resolve a reference, store every selected file verified, then catalogue the revision at once."""

from __future__ import annotations

import fnmatch
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable

from hubmirror.catalog import StoredFile
from hubmirror.digests import is_valid_digest
from hubmirror.errors import IntegrityError, UsageError
from hubmirror.mirror import Mirror
from hubmirror.plugins import PluginRegistry
from hubmirror.records import ModelRef, RemoteFile, ResolvedRevision
from hubmirror.safepath import check_relative_path
from hubmirror.sources import SourceContext
from hubmirror.transfer import fetch_file

DEFAULT_WORKERS = 8


@dataclass
class PullResult:
    revision: ResolvedRevision
    files: list[StoredFile]
    reused: int  # files whose bytes were already in the store

    @property
    def size(self) -> int:
        return sum(f.remote.size or 0 for f in self.files)


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
    on_start: Callable[[ResolvedRevision, int], None] = lambda rev, total: None,
    on_bytes: Callable[[int], None] = lambda n: None,
) -> PullResult:
    """Mirror `ref`. Nothing reaches the catalog unless every selected file is stored and verified."""
    with mirror.shared_lock(f"pull {ref}"):
        return _pull_locked(mirror, registry, ref, ctx, include, exclude, workers, on_start, on_bytes)


def _pull_locked(mirror, registry, ref, ctx, include, exclude, workers, on_start, on_bytes) -> PullResult:
    source, plugin = registry.source(ref.source)
    revision = source.resolve(ref, ctx)
    check_listing(revision)
    selected = [f for f in revision.files if matches(f.path, include, exclude)]
    if not selected:
        raise UsageError(f"{ref}: no file of revision {revision.commit} matches the include/exclude patterns")
    known, todo = _split_known(mirror, selected)
    on_start(revision, sum(f.size or 0 for f in todo))
    stop = threading.Event()
    stored = list(known)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="pull") as pool:
        futures = [
            pool.submit(fetch_file, source, revision, f, mirror.store, ctx, on_bytes=on_bytes, stop=stop) for f in todo
        ]
        try:
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in done if f.exception() is not None]
            if failed:
                stop.set()
                for fut in futures:
                    fut.cancel()
                raise failed[0].exception()
        except BaseException:
            stop.set()
            raise
        stored.extend(fut.result() for fut in futures)
    missing = [f.remote.path for f in stored if not mirror.store.exists(f.sha256)]
    if missing:
        raise IntegrityError(f"{ref}: blobs vanished before cataloguing: {', '.join(missing)}")
    mirror.catalog.record_revision(revision, stored, plugin, source.description)
    return PullResult(revision, stored, reused=len(known))


def _split_known(mirror: Mirror, files: list[RemoteFile]) -> tuple[list[StoredFile], list[RemoteFile]]:
    """Files whose bytes the store already holds (by sha256, or by a git id the catalog knows) need no download."""
    known, todo = [], []
    for f in files:
        digest = f.sha256
        if digest is None and "git-sha1" in f.digests:
            digest = mirror.catalog.sha256_for_git_sha1(f.digests["git-sha1"])
        if digest and mirror.store.exists(digest):
            known.append(StoredFile(f, digest, f.digests.get("git-sha1")))
        else:
            todo.append(f)
    return known, todo
