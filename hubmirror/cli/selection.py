"""Turning what a user names (`SOURCE:ID[@REVISION]`, `--all`, `--query`) into references and stored revisions."""

from __future__ import annotations

from hubmirror.catalog import Catalog
from hubmirror.errors import NotFoundError, UsageError
from hubmirror.upstream import ModelRef


def parse_ref(registry, text: str) -> ModelRef:
    """Parse `SOURCE:ID[@REVISION]` with the registered source of that scheme."""
    scheme, sep, rest = text.partition(":")
    if not sep or not scheme:
        raise UsageError(f"malformed reference {text!r}: expected SOURCE:ID[@REVISION], e.g. hf:org/name")
    source, _ = registry.source(scheme)
    return source.parse(rest)


def stored_revisions(catalog: Catalog, refs: list[ModelRef]) -> list[tuple[str, str]]:
    """(model key, commit) of each reference in the mirror: its revision, or the newest when it names none."""
    selection = []
    for ref in refs:
        commit = catalog.commit_for(ref.key, ref.revision)
        if commit is None:
            raise NotFoundError(f"{ref} is not in the mirror")
        selection.append((ref.key, commit))
    return selection


def select_revisions(catalog: Catalog, refs: list[ModelRef], everything: bool, query: str | None) -> list[tuple[str, str]]:
    """(model key, commit) pairs: named refs (their revision or newest), every revision, or search hits."""
    if everything:
        return catalog.revision_keys()
    if query is not None:
        return [(m["key"], m["latest_commit"]) for m in catalog.search(query, cached=True, limit=10_000)]
    return stored_revisions(catalog, refs)
