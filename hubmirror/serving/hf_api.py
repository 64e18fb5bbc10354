"""The Hugging Face Hub's documents and errors, as huggingface_hub reads them (docs/serving.md), built from catalog
data: model info, tree and paths-info entries, refs, resolve headers. No I/O here."""

from __future__ import annotations

import hashlib
import json

from starlette.responses import JSONResponse, Response

from hubmirror.errors import redact
from hubmirror.serving.hub_ids import ServedFile, hub_commit, hub_time, lfs_pointer

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


def created_at(model: dict) -> str | None:
    """When the model was created upstream (its metadata's `createdAt`), else when this mirror first listed it."""
    extra = model["metadata"] or ""
    created = json.loads(extra).get("createdAt") if '"createdAt"' in extra else None
    return hub_time(created if isinstance(created, str) else None) or hub_time(model["indexed_at"] or
                                                                              model["updated_at"])


DATASET_PREFIX = "datasets/"  # a dataset's served repo id starts so (its URLs: /datasets/…, /api/datasets/…)
_MODEL_ONLY = ("modelId", "pipeline_tag", "library_name", "config")  # fields a dataset's documents do not carry


def list_entry(repo: str, model: dict) -> dict:
    """One model of `GET /api/models` (HfApi.list_models), or dataset of `GET /api/datasets`: what the Hub lists
    without `full` (a dataset by its own id, without the `datasets/` of its served id)."""
    shown = repo.removeprefix(DATASET_PREFIX) if model.get("kind") == "dataset" else repo
    entry = {
        "_id": hub_commit(model["key"], model["latest_commit"])[:24], "id": shown, "modelId": shown,
        "lastModified": hub_time(model["last_modified"]) or hub_time(model["updated_at"]), "private": False,
        "gated": "manual" if model["gated"] else False,
        "downloads": model["downloads"] or 0, "likes": model["likes"] or 0, "tags": (model["tags"] or "").split(),
        "pipeline_tag": model["task"], "library_name": model["library"],
    }
    return _for_kind(entry, model)


def _for_kind(document: dict, model: dict) -> dict:
    """`document` as the Hub writes it for the repository's kind (a dataset's lacks the model-only fields)."""
    if model.get("kind") == "dataset":
        return {k: v for k, v in document.items() if k not in _MODEL_ONLY}
    return document


def model_info(repo: str, model: dict, sha: str, files: list[ServedFile], blobs: bool,
               committed: str | None = None) -> dict:
    """`GET /api/models/{repo}[/revision/{rev}]` (or `/api/datasets/…`): siblings carry sizes and ids only with
    `?blobs=true`; `lastModified` is the revision's commit date (`committed`) where the upstream said it."""
    extra = json.loads(model["metadata"] or "{}")
    siblings = []
    for f in files:
        entry = {"rfilename": f.path}
        if blobs:
            entry.update(size=f.size, blobId=f.oid)
            if f.lfs:
                entry["lfs"] = {"size": f.size, "sha256": f.sha256, "pointerSize": len(lfs_pointer(f.sha256, f.size))}
        siblings.append(entry)
    shown = list_entry(repo, model)["id"]
    return _for_kind(list_entry(repo, model) | {
        "_id": sha[:24], "author": shown.split("/")[0] if "/" in shown else None, "sha": sha, "disabled": False,
        "createdAt": created_at(model),
        "cardData": extra.get("cardData"), "config": extra.get("config"), "siblings": siblings,
    } | ({"lastModified": hub_time(committed)} if hub_time(committed) else {}), model)


def directory_entry(path: str, oid: str) -> dict:
    return {"type": "directory", "oid": oid, "path": path}


def tree_ids(files: list[ServedFile], directory: str = "") -> dict[str, str]:
    """{path: git tree id} of `directory` ('' the root) and every directory below it, computed as git does from
    `files`, every file below `directory` (mode 100644, entries sorted by name, a directory's name with a `/`)."""
    prefix = f"{directory}/" if directory else ""
    children: dict[str, dict[str, tuple[bool, str]]] = {directory: {}}  # dir -> name -> (is_dir, oid or path)
    for f in files:
        parts = f.path[len(prefix):].split("/")
        parent = directory
        for part in parts[:-1]:
            here = f"{parent}/{part}" if parent else part
            children[parent][part] = (True, here)
            children.setdefault(here, {})
            parent = here
        children[parent][parts[-1]] = (False, f.oid)
    ids: dict[str, str] = {}
    for path in sorted(children, key=lambda p: -p.count("/") - (p != "")):  # deepest first
        body = b"".join(
            (b"40000 " if is_dir else b"100644 ") + name.encode() + b"\0" + bytes.fromhex(ids[ref] if is_dir else ref)
            for name, (is_dir, ref) in sorted(children[path].items(),
                                               key=lambda item: item[0].encode() + (b"/" if item[1][0] else b"")))
        ids[path] = hashlib.sha1(b"tree %d\0" % len(body) + body, usedforsecurity=False).hexdigest()
    return ids


def tree(files: list[ServedFile], directory: str, recursive: bool) -> list[dict]:
    """The entries of `directory` (its whole subtree when recursive), `files` being every file below it:
    directories first (their git tree ids), then files, by path."""
    prefix = f"{directory}/" if directory else ""
    entries, dirs = [], set()
    for f in files:
        parts = f.path[len(prefix):].split("/")
        for depth in range(1, len(parts) if recursive else min(2, len(parts))):
            dirs.add(prefix + "/".join(parts[:depth]))
        if recursive or len(parts) == 1:
            entries.append(f.tree_entry())
    ids = tree_ids(files, directory) if dirs else {}
    return [directory_entry(d, ids[d]) for d in sorted(dirs)] + sorted(entries, key=lambda e: e["path"])


def paths_info(files: list[ServedFile], directories: dict[str, str]) -> list[dict]:
    """`POST /api/models/{repo}/paths-info/{rev}`: the entries of the asked paths that exist ({directory: tree id})."""
    return [directory_entry(d, oid) for d, oid in directories.items()] + [f.tree_entry() for f in files]


def tree_page(entries: list[dict], cursor: int) -> tuple[list[dict], int | None]:
    """One page of a tree listing and the cursor of the next page (None on the last)."""
    following = cursor + TREE_PAGE
    return entries[cursor:following], following if following < len(entries) else None


def refs(model: dict, rows: list[dict], include_prs: bool, newest_is_main: bool = True) -> dict:
    """`GET /api/models/{repo}/refs[?include_prs=1]`: the catalog's refs by the kind the upstream gave each (a ref
    recorded without one: `main`, `latest`, `default` are branches, other names tags), plus `main` (the newest
    revision; with `newest_is_main`) unless a ref is so named; a revision pulled by its commit is no ref. Pull
    requests only when asked."""
    key = model["key"]
    listed: dict[str, list[dict]] = {"branch": [], "tag": [], "pr": []}
    for row in rows:
        kind = row.get("kind") or ("branch" if row["name"] in BRANCHES else
                                   "commit" if row["name"] == row["commit_id"] else "tag")
        if kind in listed:
            ref = row["name"] if kind == "pr" else f"refs/{'heads' if kind == 'branch' else 'tags'}/{row['name']}"
            listed[kind].append({"name": row["name"], "ref": ref, "targetCommit": hub_commit(key, row["commit_id"])})
    if newest_is_main and not any(b["name"] == "main" for b in listed["branch"]):
        listed["branch"].append({"name": "main", "ref": "refs/heads/main",
                                 "targetCommit": hub_commit(key, model["latest_commit"])})
    document = {"branches": listed["branch"], "converts": [], "tags": listed["tag"]}
    if include_prs:
        document["pullRequests"] = listed["pr"]
    return document


def commit_date(revision: dict) -> str:
    """A revisions row's commit date as the Hub writes it: the upstream's, else when it was pulled."""
    info = json.loads(revision.get("commit_info") or "{}")
    return hub_time(info.get("date")) or hub_time(revision["pulled_at"]) or ""


def commits(key: str, revisions: list[dict]) -> list[dict]:
    """`GET /api/models/{repo}/commits/{rev}` (HfApi.list_repo_commits) from the revisions the mirror holds, newest
    first: what the upstream said of each (date, title, message, authors), else the time it was pulled and no
    title (docs/serving.md)."""
    items = []
    for row in revisions:
        info = json.loads(row.get("commit_info") or "{}")
        items.append({"id": hub_commit(key, row["commit_id"]), "title": info.get("title", ""),
                      "message": info.get("message", ""),
                      "authors": [{"user": a, "avatar": None} for a in info.get("authors", [])],
                      "date": commit_date(row)})
    return items


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
