"""How models of every source appear to Hugging Face clients: repo ids and 40-hex commits.

`hf:` models keep their own id and commit. timm models appear under their `hf_hub_id` (so `timm.create_model(...,
pretrained=True)` finds them). Every other model appears as `<source>/<model id with '/' and ':' turned into '--'>`,
with a commit derived from its key and upstream revision (a deterministic 40-hex id, as the Hub's clients expect).
"""

from __future__ import annotations

import hashlib
import json
import re

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
