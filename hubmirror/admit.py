"""Admitting resolved revisions into the mirror: the one way in beneath pull, sync, import, adopt and the proxy.

Every selected file is stored verified (`hubmirror.fetch`), judged by its content (`hubmirror.scanning`), and the
revisions are catalogued in one transaction through the mirror's writer (`Mirror.writer`: the local catalog, or a
site's bucket), under a lease on their blobs where many hosts share the store; whatever a gc on another host took
meanwhile is stored again. Nothing reaches the catalog unless every file of every revision is stored and verified.
A large file that came without a Xet layout then gets one (hubmirror.xet.own_layouts).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

from hubmirror.catalog import StoredFile
from hubmirror.errors import IntegrityError
from hubmirror.fetch.files import DEFAULT_WORKERS, fetch_files
from hubmirror.mirror import Mirror
from hubmirror.scanning.judge import judge
from hubmirror.sources import Source, SourceContext
from hubmirror.upstream import RemoteFile, ResolvedRevision
from hubmirror.xet.own_layouts import layouts_at_admission

log = logging.getLogger("hubmirror.admit")

Selection = tuple[ResolvedRevision, list[RemoteFile]]  # a checked revision and the files of it to admit


@dataclass
class AdmittedRevision:
    revision: ResolvedRevision
    files: list[StoredFile]
    reused: int  # files whose bytes were already in the store
    quarantined: list[str] = field(default_factory=list)  # paths of files the admission scan quarantined
    unscanned: list[str] = field(default_factory=list)  # paths of files in formats it does not inspect (any policy)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


def admit_revisions(
    mirror: Mirror,
    source: Source,
    plugin: str,
    selections: list[Selection],
    ctx: SourceContext,
    *,
    workers: int = DEFAULT_WORKERS,
    on_start: Callable[[int], None] = lambda total: None,
    on_bytes: Callable[[int], None] = lambda n: None,
    own_layouts: bool = True,
) -> list[AdmittedRevision]:
    """Store the selected files of checked revisions (each distinct file once, verified, read through `source`),
    then catalogue the revisions in one transaction as `plugin` brought them; with `own_layouts`, files over `[xet]
    layouts_over` that came without a Xet layout get one made (hubmirror.xet.own_layouts; the caller does it itself
    when it records layouts of its own first). The caller holds the mirror's shared lock."""
    upfront = [f.sha256 for _, files in selections for f in files]
    with mirror.writer.lease(upfront) as lease:  # before asking which blobs exist: gc on any host spares them
        results = _store_and_catalogue(mirror, source, plugin, selections, ctx, workers, on_start, on_bytes, lease)
    for r in results:
        verdicts = mirror.catalog.file_verdicts(r.revision.ref.key, r.revision.commit)
        judged = [verdicts[f.remote.path] for f in r.files if f.remote.path in verdicts]
        r.quarantined = [v["path"] for v in judged if v["quarantined"]]
        r.unscanned = [v["path"] for v in judged if v["verdict"] == "unscanned"]
    if own_layouts:
        layouts_at_admission(mirror, {f.sha256: f.size for r in results for f in r.files})
    return results


def _store_and_catalogue(mirror, source, plugin, selections, ctx, workers, on_start, on_bytes, lease):
    def store(wanted):
        return fetch_files(source, wanted, mirror.store, ctx, catalog=mirror.catalog,
                           record_layout=mirror.writer.record_xet_layout, workers=workers,
                           on_start=on_start, on_bytes=on_bytes)

    stored = store([(revision, f) for revision, files in selections for f in files])
    for revision, files in selections:
        if revision.commit is None:  # content-addressed revision: pinned by what was stored (one file)
            if len(files) != 1:
                raise IntegrityError(f"{revision.ref}: a revision without a commit must hold exactly one file")
            revision.commit = stored[id(files[0])].sha256
    results = [
        AdmittedRevision(rev, [stored[id(f)] for f in files], reused=sum(stored[id(f)].reused for f in files))
        for rev, files in selections
    ]
    if lease is not None:  # every digest now, then whatever a gc on another host took before it saw them, again
        lease.extend(f.sha256 for r in results for f in r.files)
        _restore_missing(mirror, results, store)
    missing = [f.remote.path for r in results for f in r.files if not mirror.store.exists(f.sha256)]
    if missing:
        raise IntegrityError(f"blobs vanished before cataloguing: {', '.join(missing)}")
    scans = judge(mirror.store, mirror.catalog, [(f.sha256, f.remote.path) for r in results for f in r.files])
    mirror.writer.record_revisions([(r.revision, r.files) for r in results], plugin, source.description, scans)
    if lease is not None:  # a gc on another host that raced the lease: store again what it took
        _restore_missing(mirror, results, store)
    return results


def _restore_missing(mirror, results, store) -> None:
    """Store again the blobs of `results` that are gone (a gc on another host deleted them before the lease named
    them); the lease now protects them."""
    gone = [(r.revision, f.remote) for r in results for f in r.files if not mirror.store.exists(f.sha256)]
    if gone:
        log.warning("%d blobs vanished during the pull (a concurrent gc); storing them again", len(gone))
        store(gone)
