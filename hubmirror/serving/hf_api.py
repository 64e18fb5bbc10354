"""The Hugging Face Hub's documents and errors, as huggingface_hub reads them (docs/serving.md), built from catalog
data: model info, tree and paths-info entries, refs, resolve headers. No I/O here."""

from __future__ import annotations

import json

from starlette.responses import JSONResponse, Response

from hubmirror.digests import git_blob_sha1
from hubmirror.errors import redact
from hubmirror.serving.hub_ids import ServedFile, hub_commit, lfs_pointer

TREE_PAGE = 1000
EXPOSE = ("X-Repo-Commit,X-Request-Id,X-Error-Code,X-Error-Message,X-Total-Count,ETag,Link,Accept-Ranges,"
          "Content-Range,X-Linked-Size,X-Linked-ETag")
BRANCHES = ("main", "latest", "default")  # ref names listed as branches; every other ref is a tag


class HubError(Exception):
    """An error as the Hub reports it: status, `X-Error-Code` and message (and extra headers)."""

    def __init__(self, status: int, code: str | None, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}

    def response(self) -> Response:
        """The answer: the message (its URLs redacted) in the JSON body and, made header-safe, in `X-Error-Message`."""
        message = redact(self.message)
        headers = {"X-Error-Message": header_safe(message), "Access-Control-Expose-Headers": EXPOSE, **self.headers}
        if self.code:
            headers["X-Error-Code"] = self.code
        return JSONResponse({"error": message}, status_code=self.status, headers=headers)


def header_safe(text: str, limit: int = 1000) -> str:
    """`text` as a header value may carry it: ASCII (anything else escaped), no control character (a CR or LF
    would end the header), at most `limit` characters. Request text echoed in a message can never make a 500."""
    one_line = " ".join(text.encode("ascii", "backslashreplace").decode("ascii").split())
    return "".join(c if " " <= c <= "~" else " " for c in one_line)[:limit]


LIST_PAGE = 1000  # models per page of `GET /api/models` (the Hub's own cap)
LIST_SORTS = {None: None, "downloads": "downloads", "likes": "likes", "lastModified": "lastModified"}


def list_entry(repo: str, model: dict) -> dict:
    """One model of `GET /api/models` (HfApi.list_models): what the Hub lists without `full`."""
    return {
        "_id": hub_commit(model["key"], model["latest_commit"])[:24], "id": repo, "modelId": repo,
        "lastModified": model["last_modified"] or model["updated_at"], "private": False, "gated": False,
        "downloads": model["downloads"] or 0, "likes": model["likes"] or 0, "tags": (model["tags"] or "").split(),
        "pipeline_tag": model["task"], "library_name": model["library"],
    }


def model_info(repo: str, model: dict, sha: str, files: list[ServedFile], blobs: bool) -> dict:
    """`GET /api/models/{repo}[/revision/{rev}]`: siblings carry sizes and ids only with `?blobs=true`."""
    extra = json.loads(model["metadata"] or "{}")
    siblings = []
    for f in files:
        entry = {"rfilename": f.path}
        if blobs:
            entry.update(size=f.size, blobId=f.oid)
            if f.lfs:
                entry["lfs"] = {"size": f.size, "sha256": f.sha256, "pointerSize": len(lfs_pointer(f.sha256, f.size))}
        siblings.append(entry)
    return list_entry(repo, model) | {
        "_id": sha[:24], "author": repo.split("/")[0] if "/" in repo else None, "sha": sha, "disabled": False,
        "cardData": extra.get("cardData"), "config": extra.get("config"), "siblings": siblings,
    }


def directory_entry(path: str) -> dict:
    return {"type": "directory", "oid": git_blob_sha1(path.encode()), "path": path}


def tree(files: list[ServedFile], directory: str, recursive: bool) -> list[dict]:
    """The entries of `directory` (its whole subtree when recursive): directories first, then files, by path."""
    prefix = f"{directory}/" if directory else ""
    entries, dirs = [], set()
    for f in files:
        parts = f.path[len(prefix):].split("/")
        for depth in range(1, len(parts) if recursive else min(2, len(parts))):
            dirs.add(prefix + "/".join(parts[:depth]))
        if recursive or len(parts) == 1:
            entries.append(f.tree_entry())
    return [directory_entry(d) for d in sorted(dirs)] + sorted(entries, key=lambda e: e["path"])


def paths_info(files: list[ServedFile], directories: list[str]) -> list[dict]:
    """`POST /api/models/{repo}/paths-info/{rev}`: the entries of the asked paths that exist."""
    return [directory_entry(d) for d in directories] + [f.tree_entry() for f in files]


def tree_page(entries: list[dict], cursor: int) -> tuple[list[dict], int | None]:
    """One page of a tree listing and the cursor of the next page (None on the last)."""
    following = cursor + TREE_PAGE
    return entries[cursor:following], following if following < len(entries) else None


def refs(model: dict, rows: list[dict]) -> dict:
    """`GET /api/models/{repo}/refs`: the catalog's refs, plus `main` (the newest revision) unless a ref is so named."""
    key = model["key"]

    def entry(name: str, kind: str, commit: str) -> dict:
        return {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": hub_commit(key, commit)}

    branches = [entry(r["name"], "heads", r["commit_id"]) for r in rows if r["name"] in BRANCHES]
    tags = [entry(r["name"], "tags", r["commit_id"]) for r in rows if r["name"] not in BRANCHES]
    if not any(b["name"] == "main" for b in branches):
        branches.append(entry("main", "heads", model["latest_commit"]))
    return {"branches": branches, "converts": [], "tags": tags}


def file_headers(served: ServedFile, sha: str) -> dict:
    """`/resolve` headers (§4): the commit, ETag = git blob id, or sha256 with `X-Linked-*` for LFS files."""
    headers = {"X-Repo-Commit": sha, "Access-Control-Expose-Headers": EXPOSE, "Accept-Ranges": "bytes",
               "ETag": f'"{served.etag}"'}
    if served.lfs:
        headers.update({"X-Linked-Etag": f'"{served.sha256}"', "X-Linked-Size": str(served.size)})
    return headers


def whoami(principal) -> dict:
    """`GET /api/whoami-v2` as the Hub answers it for a user's access token (huggingface_hub's `whoami`, `hf auth
    whoami`): the principal's name, no organisations, the token's role (`read`, or `write` for write and admin)."""
    role = "write" if principal.scope in ("write", "admin") else "read"
    return {"type": "user", "id": principal.token_id or principal.name, "name": principal.name,
            "fullname": principal.name, "email": None, "emailVerified": False, "isPro": False, "canPay": False,
            "periodEnd": None, "avatarUrl": "", "orgs": [],
            "auth": {"type": "access_token", "accessToken": {"displayName": principal.token_id or principal.kind,
                                                            "role": role}},
            "hubmirror": {"kind": principal.kind, "scope": principal.scope}}
