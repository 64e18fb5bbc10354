"""`hubmirror pull`: resolve a reference, check its listing, select its files, and admit them (`hubmirror.admit`)."""

from __future__ import annotations

import fnmatch
from typing import Callable

from hubmirror.admit import AdmittedRevision, Selection, admit_revisions
from hubmirror.errors import UsageError
from hubmirror.fetch.files import DEFAULT_WORKERS
from hubmirror.mirror import Mirror
from hubmirror.plugin_manager import PluginRegistry
from hubmirror.sources import Source, SourceContext
from hubmirror.upstream import ModelRef, check_listing


def matches(path: str, include: list[str] | None, exclude: list[str] | None) -> bool:
    """huggingface_hub's allow/ignore pattern semantics: fnmatch, and a pattern ending in `/` means a folder."""

    def norm(patterns):
        return [p + "*" if p.endswith("/") else p for p in patterns or []]

    if include and not any(fnmatch.fnmatchcase(path, p) for p in norm(include)):
        return False
    return not any(fnmatch.fnmatchcase(path, p) for p in norm(exclude))


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
) -> list[AdmittedRevision]:
    """Mirror `ref` (one model, or several when the reference names several, like a PyTorch Hub repo's
    entrypoints). Nothing reaches the catalog unless every selected file of every one is stored and verified."""
    with mirror.shared_lock(f"pull {ref}"):
        source, plugin = registry.source(ref.source)
        selections = resolve_selections(source, ref, ctx, include, exclude)
        return admit_revisions(mirror, source, plugin, selections, ctx, workers=workers, on_start=on_start,
                               on_bytes=on_bytes)


def resolve_selections(source: Source, ref: ModelRef, ctx: SourceContext, include: list[str] | None,
                       exclude: list[str] | None) -> list[Selection]:
    """Resolve `ref`, check every listing, and pick the files the patterns select (at least one per revision)."""
    selections = []
    for revision in source.resolve_all(ref, ctx):
        check_listing(revision)
        selected = [f for f in revision.files if matches(f.path, include, exclude)]
        if not selected:
            raise UsageError(f"{revision.ref}: no file of revision {revision.commit} matches the include/exclude patterns")
        selections.append((revision, selected))
    return selections
