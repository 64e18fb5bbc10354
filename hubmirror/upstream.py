"""What a source tells the core of an upstream model: references, metadata, resolved revisions and their files
(with the upstream's own digests), and the check every listing passes before anything of it is stored."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from hubmirror.digests import is_valid_digest
from hubmirror.errors import IntegrityError
from hubmirror.safepath import check_relative_path


@dataclass(frozen=True)
class ModelRef:
    """A model as the user names it: `source:model_id[@revision]`."""

    source: str
    model_id: str
    revision: str | None = None

    @property
    def key(self) -> str:
        """The catalog key of the model, without the revision."""
        return f"{self.source}:{self.model_id}"

    def __str__(self) -> str:
        return self.key + (f"@{self.revision}" if self.revision else "")


@dataclass
class RemoteFile:
    """One file of an upstream revision, with the digests the upstream itself publishes.

    `digests` maps an algorithm name (`sha256`, `git-sha1`, `md5`, ...; see hubmirror.digests) to its hex value.
    `location` is opaque to the core: whatever the source needs to fetch the file again.
    """

    path: str
    size: int | None
    digests: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    lfs: bool = False
    location: Any = None

    @property
    def sha256(self) -> str | None:
        return self.digests.get("sha256")


@dataclass
class ModelMetadata:
    """Searchable facts about a model, as much as its source knows."""

    source: str
    model_id: str
    task: str | None = None
    library: str | None = None
    architecture: str | None = None
    license: str | None = None
    tags: list[str] = field(default_factory=list)
    description: str | None = None
    downloads: int | None = None
    likes: int | None = None
    last_modified: str | None = None
    gated: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    kind: str = "model"  # or "dataset" (KINDS): what the repository holds

    @property
    def key(self) -> str:
        return f"{self.source}:{self.model_id}"

    @classmethod
    def from_row(cls, row: dict) -> "ModelMetadata":
        """The metadata a catalog `models` row holds (as bundles and site records carry it)."""
        extra = json.loads(row.get("metadata") or "{}")
        return cls(
            source=row["source"], model_id=row["model_id"], task=row.get("task"), library=row.get("library"),
            architecture=row.get("architecture"), license=row.get("license"), tags=(row.get("tags") or "").split(),
            description=row.get("description"), downloads=row.get("downloads"), likes=row.get("likes"),
            last_modified=row.get("last_modified"), gated=bool(row.get("gated")),
            extra=extra if isinstance(extra, dict) else {}, kind=row.get("kind") or "model",
        )


@dataclass
class ResolvedRevision:
    """An immutable revision of a model: what `resolve` answers for a reference.

    `commit` identifies the content for good (a git commit, a version number, a manifest digest); None means the
    revision is its single file's content, and the core sets it to that file's sha256 once stored. `requested` is
    what the user asked for (a branch, a tag, or the commit itself) and becomes a ref pointing at `commit`;
    `requested_kind` says which, where the upstream told (REF_KINDS). `commit_info` is what the upstream says of the
    commit: {date, title, message, authors}, as much as it said.
    """

    ref: ModelRef
    commit: str | None
    requested: str
    metadata: ModelMetadata
    files: list[RemoteFile]
    requested_kind: str | None = None
    commit_info: dict[str, Any] = field(default_factory=dict)


REF_KINDS = ("branch", "tag", "pr", "commit")
KINDS = ("model", "dataset")  # what a catalogued repository holds (ModelMetadata.kind)
_COMMIT_TEXT = {"date": 64, "title": 1024, "message": 65536}  # the longest each may be kept
_AUTHORS, _AUTHOR = 100, 200


def bounded_commit_info(info: object) -> dict[str, Any]:
    """`commit_info` as a catalog keeps it: the known fields only, strings cut to their bound, at most 100 author
    names (an upstream's words, whatever their size or shape, never make a row unbounded)."""
    if not isinstance(info, dict):
        return {}
    kept: dict[str, Any] = {k: info[k][:limit] for k, limit in _COMMIT_TEXT.items() if isinstance(info.get(k), str)}
    if isinstance(info.get("previous"), str) and len(info["previous"]) <= 128:  # set by the catalog, not upstream
        kept["previous"] = info["previous"]
    authors = info.get("authors")
    if isinstance(authors, list):
        kept["authors"] = [a[:_AUTHOR] for a in authors[:_AUTHORS] if isinstance(a, str)]
    return kept


# A model id as it may enter the catalog, whatever brought it (a pull, a bundle, a registry, a bucket record, the
# proxy): printable, no white space, none of what a shell or an HTML attribute gives a meaning to (quotes, `$`, `;`,
# `|`, `<`, `>`, backslash, backtick), no `..` segment. (`file:` ids are absolute paths, `url:` ids URLs: a served
# repo id is checked as the Hub's own format, in hubmirror.serving.hub_ids.)
_MODEL_ID = re.compile(r"[^\s\x00-\x1f\x7f\"'`$;|<>\\]{1,512}\Z")


def check_model_id(model_id: str) -> str:
    """`model_id`, or an IntegrityError saying why it may not name a model here (see _MODEL_ID)."""
    if not isinstance(model_id, str) or not _MODEL_ID.match(model_id) or ".." in model_id.split("/"):
        raise IntegrityError(f"model id {str(model_id)[:100]!r} is not allowed: printable, no spaces or quotes, no "
                             "shell or HTML metacharacters, no '..' segment")
    return model_id


def check_listing(revision: ResolvedRevision) -> None:
    """Refuse a revision that could hurt: metadata naming another model than the one asked for (it would rewrite that
    model's catalog row), unsafe or duplicate file names, malformed digests, negative sizes."""
    check_model_id(revision.ref.model_id)
    if revision.metadata.kind not in KINDS:
        raise IntegrityError(f"{revision.ref}: unknown kind {str(revision.metadata.kind)[:20]!r}")
    if revision.requested_kind not in (None, *REF_KINDS):
        raise IntegrityError(f"{revision.ref}: unknown ref kind {str(revision.requested_kind)[:20]!r}")
    meta = revision.metadata
    if (meta.source, meta.model_id) != (revision.ref.source, revision.ref.model_id):
        raise IntegrityError(f"{revision.ref}: the upstream describes it as {meta.source}:{meta.model_id}; nothing "
                             "is catalogued under another model's name")
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
