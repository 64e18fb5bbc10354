"""Mirror specs: the models a site needs, as TOML, and `hubmirror sync SPEC` to make the mirror match.

    [[model]]
    ref = "hf:sentence-transformers/all-MiniLM-L6-v2"     # any reference pull takes, revision included
    include = ["*.safetensors", "*.json", "*.txt"]          # optional, as pull --include
    exclude = ["onnx/"]                                     # optional, as pull --exclude
    endpoint = "https://huggingface.co"                     # optional, as pull --endpoint

Sync resolves every entry upstream, leaves alone what the mirror already holds (no download), pulls the rest, and
reports each model as added, updated (its ref moved, or new files were selected) or unchanged. Running it twice in a
row changes nothing the second time.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from hubmirror.admit import admit_revisions
from hubmirror.errors import UsageError
from hubmirror.mirror import Mirror
from hubmirror.plugin_manager import PluginRegistry
from hubmirror.pull import resolve_selections

_KEYS = {"ref", "include", "exclude", "endpoint"}


@dataclass
class SpecEntry:
    ref: str
    include: list[str] | None = None
    exclude: list[str] | None = None
    endpoint: str | None = None


@dataclass
class Change:
    model: str
    requested: str
    status: str  # added, updated, unchanged
    before: str | None
    after: str


def load_spec(path: Path) -> list[SpecEntry]:
    """The entries of a spec file; anything malformed is a usage error naming the entry."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path}: {exc}") from None
    entries = []
    for i, raw in enumerate(data.get("model") or [], 1):
        unknown = set(raw) - _KEYS
        if unknown or not isinstance(raw.get("ref"), str):
            raise UsageError(f"{path}: model {i}: needs a `ref` string" +
                             (f"; unknown keys {', '.join(sorted(unknown))}" if unknown else ""))
        for key in ("include", "exclude"):
            if key in raw and not (isinstance(raw[key], list) and all(isinstance(p, str) for p in raw[key])):
                raise UsageError(f"{path}: model {i}: `{key}` must be a list of strings")
        entries.append(SpecEntry(raw["ref"], raw.get("include"), raw.get("exclude"), raw.get("endpoint")))
    if not entries:
        raise UsageError(f"{path}: the spec lists no [[model]]")
    return entries


def sync(mirror: Mirror, registry: PluginRegistry, entries: list[SpecEntry], parse_ref, *,
         dry_run: bool = False) -> list[Change]:
    """Bring the mirror up to the spec; return what changed (or would, with `dry_run`)."""
    changes = []
    with mirror.shared_lock("sync"):
        for entry in entries:
            ref = parse_ref(entry.ref)
            source, plugin = registry.source(ref.source)
            ctx = mirror.source_context(registry, entry.endpoint)
            selections = resolve_selections(source, ref, ctx, entry.include, entry.exclude)
            pending = []
            for revision, files in selections:
                change = _compare(mirror, revision, files)
                changes.append(change)
                if change.status != "unchanged":
                    pending.append((revision, files))
            if pending and not dry_run:
                admit_revisions(mirror, source, plugin, pending, ctx)
                for change in changes[-len(selections):]:
                    change.after = change.after or mirror.catalog.commit_for(change.model, change.requested)
    return changes


def _compare(mirror: Mirror, revision, files) -> Change:
    key = revision.ref.key
    before = mirror.catalog.commit_for(key, revision.requested)
    have = {f["path"] for f in mirror.catalog.files(key, before)} if before else set()
    if revision.commit is not None and before == revision.commit and {f.path for f in files} <= have:
        status = "unchanged"
    else:
        status = "added" if before is None else "updated"
    return Change(key, revision.requested, status, before, revision.commit)
