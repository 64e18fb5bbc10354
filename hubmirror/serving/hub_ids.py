"""How models of every source appear to Hugging Face clients: repo ids and 40-hex commits.

A plugin may claim the repo id its source's models are served under (the `served_repo_id` hook: `hf:` models keep
their own id, timm models take their `hf_hub_id` so that `timm.create_model(..., pretrained=True)` finds them). Every
other model appears as `<source>/<model id with '/' and ':' turned into '--'>`. When two models claim one id, the model
whose own id it is keeps it and the other falls back to its default id, so no model hides another. Commits that are
not already 40-hex are derived from the model key and upstream revision (deterministic, as the Hub's clients expect).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Iterable

from hubmirror.digests import git_blob_sha1

_COMMIT = re.compile(r"^[0-9a-f]{40}\Z")
# The Hub's own repo id format ([namespace/]name): what a model is served under, and what the HF source accepts.
REPO_ID_RE = re.compile(r"^(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}\Z")


def hub_time(text: str | None) -> str | None:
    """An ISO 8601 time (the catalog's, or an upstream's) as the Hub writes it, `2024-11-01T00:00:00.000Z`, the one
    format huggingface_hub parses; None for none or one that is not a time (nor one that leaves years 1-9999 once
    in UTC)."""
    from datetime import UTC, datetime

    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        moment = moment.astimezone(UTC) if moment.tzinfo else moment
    except (ValueError, OverflowError):
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def is_repo_id(text: str) -> bool:
    """Whether `text` is a repo id as the Hub writes them (never a path, a URL or a `..`)."""
    return isinstance(text, str) and REPO_ID_RE.match(text) is not None and ".." not in text


def is_served_id(text: str) -> bool:
    """Whether `text` may be a served repo id: a repo id, or `datasets/` and a repo id (a dataset's: its URLs are
    `/datasets/{id}/…` and `/api/datasets/{id}/…`)."""
    return is_repo_id(text.removeprefix("datasets/")) if isinstance(text, str) else False


def default_repo_id(model: dict) -> str:
    """`<source>/<model id with '/' and ':' turned into '--'>`: the id of a model no plugin claims another id for."""
    return f"{model['source']}/" + _mangled(model["model_id"])


def _mangled(model_id: str) -> str:
    return re.sub(r"[/:]", "--", model_id)[:96]


def repo_id(model: dict, registry) -> str:
    """The repo id a catalog model row prefers to be served and materialised under (see `assign_repo_ids`): what a
    plugin claims for it when that is a repo id as the Hub writes them, or `datasets/` and one for a dataset (a link,
    a cache folder and a client's URL are built from it), else `default_repo_id`."""
    claimed = registry.pm.hook.served_repo_id(model=model)
    return claimed if claimed and is_served_id(claimed) else default_repo_id(model)


def assign_repo_ids(models: Iterable[dict], registry) -> dict[str, dict]:
    """{repo id: model} with every model reachable and none hiding another.

    Models whose preferred id is their own `model_id` (an `hf:` model) take it first; then each other model takes the
    first free id of: its preferred id, `default_repo_id`, `hubmirror/<source>--<id>`, `hubmirror/<hash of its key>`.
    """
    preferred = [(repo_id(m, registry), m) for m in models]
    assigned: dict[str, dict] = {}
    for rid, model in sorted(preferred, key=lambda p: (p[0] != p[1]["model_id"], p[1]["key"])):
        fallbacks = (default_repo_id(model), f"hubmirror/{model['source']}--{_mangled(model['model_id'])}",
                     "hubmirror/" + hashlib.sha1(model["key"].encode(), usedforsecurity=False).hexdigest()[:16])
        rid = next(c for c in (rid, *fallbacks) if c not in assigned)
        assigned[rid] = model
    return assigned


def hub_commit(model_key: str, commit: str) -> str:
    """The 40-hex commit clients see for a catalog revision."""
    if _COMMIT.match(commit):
        return commit
    return hashlib.sha1(f"hubmirror {model_key} {commit}".encode(), usedforsecurity=False).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The Git LFS pointer of a file (git-lfs docs/spec.md)."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass
class ServedFile:
    """A catalog file as Hub clients see it: its git id (`oid`), and whether it is an LFS file."""

    path: str
    size: int
    sha256: str
    oid: str  # git blob id of the content, or of its LFS pointer
    lfs: bool
    xet_hash: str | None = None  # its Xet file hash, where serve presents it through Xet (hubmirror.serving.xet_cas)

    @property
    def etag(self) -> str:
        """The name clients give the blob in their cache (and the resolve ETag)."""
        return self.sha256 if self.lfs else self.oid

    def tree_entry(self) -> dict:
        entry = {"type": "file", "oid": self.oid, "size": self.size, "path": self.path}
        if self.lfs:
            entry["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": len(lfs_pointer(self.sha256, self.size))}
        if self.xet_hash:
            entry["xetHash"] = self.xet_hash
        return entry


def served_file(row: dict) -> ServedFile:
    """HF's own regular files keep their git blob id; every other file is served as an LFS file."""
    if row["git_sha1"] and not row["lfs"]:
        return ServedFile(row["path"], row["size"], row["sha256"], row["git_sha1"], False)
    return ServedFile(row["path"], row["size"], row["sha256"], git_blob_sha1(lfs_pointer(row["sha256"], row["size"])), True)
