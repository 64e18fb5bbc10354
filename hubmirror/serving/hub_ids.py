"""How models of every source appear to Hugging Face clients: repo ids and 40-hex commits.

`hf:` models keep their own id and commit. timm models appear under their `hf_hub_id` (so `timm.create_model(...,
pretrained=True)` finds them). Every other model appears as `<source>/<model id with '/' and ':' turned into '--'>`,
with a commit derived from its key and upstream revision (a deterministic 40-hex id, as the Hub's clients expect).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from hubmirror.digests import git_blob_sha1

_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def repo_id(model: dict) -> str:
    """The Hugging Face repo id a catalog model row is served and materialised under."""
    if model["source"] == "hf":
        return model["model_id"]
    if model["source"] == "timm":
        hf_hub_id = json.loads(model.get("metadata") or "{}").get("hf_hub_id")
        if hf_hub_id:
            return hf_hub_id
    return f"{model['source']}/" + re.sub(r"[/:]", "--", model["model_id"])[:96]


def hub_commit(model_key: str, commit: str) -> str:
    """The 40-hex commit clients see for a catalog revision."""
    if _COMMIT.match(commit):
        return commit
    return hashlib.sha1(f"hubmirror {model_key} {commit}".encode()).hexdigest()


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

    @property
    def etag(self) -> str:
        """The name clients give the blob in their cache (and the resolve ETag)."""
        return self.sha256 if self.lfs else self.oid

    def tree_entry(self) -> dict:
        entry = {"type": "file", "oid": self.oid, "size": self.size, "path": self.path}
        if self.lfs:
            entry["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": len(lfs_pointer(self.sha256, self.size))}
        return entry


def served_file(row: dict) -> ServedFile:
    """HF's own regular files keep their git blob id; every other file is served as an LFS file."""
    if row["git_sha1"] and not row["lfs"]:
        return ServedFile(row["path"], row["size"], row["sha256"], row["git_sha1"], False)
    return ServedFile(row["path"], row["size"], row["sha256"], git_blob_sha1(lfs_pointer(row["sha256"], row["size"])), True)
