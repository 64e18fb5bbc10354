"""`hubmirror serve`: a read-only HTTP server that speaks the Hugging Face Hub protocol for everything in the mirror
(shared/reference/hf-protocol.md), so unmodified huggingface_hub, transformers, sentence-transformers and timm load
from it with `HF_ENDPOINT` pointing here. Starlette on uvicorn.

- `GET /api/models/{repo}` and `…/revision/{rev}` (`?blobs=true`), `…/tree/{rev}[/{path}]` (recursive, paged with a
  `Link` to this server), `POST …/paths-info/{rev}`, `…/refs`.
- `HEAD|GET /{repo}/resolve/{rev}/{path}`: 200 (never a redirect), `X-Repo-Commit`, `ETag` (git blob id, or sha256
  for LFS-style files with `X-Linked-Etag`/`X-Linked-Size`), `Accept-Ranges`, Range → 206/416. No Xet, ever.
- `GET /torch/checkpoints/{name}`: weight files by name, for torch.hub-style URLs (`load_state_dict_from_url`).
- Errors carry `X-Error-Code`/`X-Error-Message` (EntryNotFound with `X-Repo-Commit`). With `--token`, every request
  needs `Authorization: Bearer <token>`.
Repo ids of non-HF models follow hubmirror.serving.hub_ids. Bytes come only from blobs the catalog references.
"""

from __future__ import annotations

import json
import posixpath
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from hubmirror.catalog import Catalog
from hubmirror.digests import git_blob_sha1
from hubmirror.serving.hub_ids import assign_repo_ids, hub_commit, lfs_pointer, served_file
from hubmirror.store import LocalBlobStore

TREE_PAGE = 1000
EXPOSE = ("X-Repo-Commit,X-Request-Id,X-Error-Code,X-Error-Message,X-Total-Count,ETag,Link,Accept-Ranges,"
          "Content-Range,X-Linked-Size,X-Linked-ETag")


class HubError(Exception):
    def __init__(self, status: int, code: str | None, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


class MirrorView:
    """The catalog seen as Hub repositories (refreshed when the catalog changes)."""

    def __init__(self, root: Path, registry):
        self.registry = registry
        self.catalog = Catalog(Path(root) / "catalog.db", create=False)
        self.store = LocalBlobStore(root)
        self._version = None
        self._repos: dict[str, dict] = {}

    def repos(self) -> dict[str, dict]:
        version = self.catalog.conn.execute("SELECT count(*), max(updated_at) FROM models WHERE cached = 1").fetchone()
        if version != self._version:
            self._repos = assign_repo_ids(self.catalog.models(cached_only=True), self.registry)
            self._version = version
        return self._repos

    def model(self, repo: str) -> dict:
        model = self.repos().get(repo)
        if model is None:
            raise HubError(404, "RepoNotFound", f"Repository Not Found for url: {repo}.")
        return model

    def commit(self, model: dict, revision: str | None) -> tuple[str, str]:
        """(catalog commit, hub commit) a revision names: a ref, a catalog commit or the served 40-hex commit."""
        key = model["key"]
        if revision in (None, "main") and not self.catalog.commit_for(key, "main"):
            revision = None
        commit = self.catalog.commit_for(key, revision)
        if commit is None:
            commit = next((r["commit_id"] for r in self.catalog.revisions(key)
                           if hub_commit(key, r["commit_id"]) == revision), None)
        if commit is None:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return commit, hub_commit(key, commit)

    def files(self, model: dict, commit: str) -> list:
        return [served_file(r) for r in self.catalog.files(model["key"], commit)]


def _error(err: HubError) -> Response:
    headers = {"X-Error-Message": err.message, "Access-Control-Expose-Headers": EXPOSE, **err.headers}
    if err.code:
        headers["X-Error-Code"] = err.code
    return JSONResponse({"error": err.message}, status_code=err.status, headers=headers)


def _split_repo(view: MirrorView, segments: list[str], markers: tuple[str, ...]) -> tuple[str, str | None, list[str]]:
    """(repo id, marker, the segments after it); a one-segment id is taken when it names a repo (`gpt2`)."""
    if len(segments) >= 2 and segments[1] in markers and segments[0] in view.repos():
        return segments[0], segments[1], segments[2:]
    repo = "/".join(segments[:2])
    if len(segments) > 2 and segments[2] in markers:
        return repo, segments[2], segments[3:]
    return repo, None, segments[2:]


def model_info(view: MirrorView, repo: str, model: dict, commit: str, sha: str, blobs: bool) -> dict:
    extra = json.loads(model["metadata"] or "{}")
    siblings = []
    for f in view.files(model, commit):
        entry = {"rfilename": f.path}
        if blobs:
            entry.update(size=f.size, blobId=f.oid)
            if f.lfs:
                entry["lfs"] = {"size": f.size, "sha256": f.sha256, "pointerSize": len(lfs_pointer(f.sha256, f.size))}
        siblings.append(entry)
    return {
        "_id": sha[:24], "id": repo, "modelId": repo, "author": repo.split("/")[0] if "/" in repo else None,
        "sha": sha, "lastModified": model["last_modified"] or model["updated_at"], "private": False, "gated": False,
        "disabled": False, "downloads": model["downloads"] or 0, "likes": model["likes"] or 0,
        "tags": (model["tags"] or "").split(), "pipeline_tag": model["task"], "library_name": model["library"],
        "cardData": extra.get("cardData"), "config": extra.get("config"), "siblings": siblings,
    }


def tree(view: MirrorView, model: dict, commit: str, subpath: str, recursive: bool) -> list[dict]:
    prefix = f"{subpath}/" if subpath else ""
    entries, dirs = [], set()
    for f in view.files(model, commit):
        if not f.path.startswith(prefix):
            continue
        parts = f.path[len(prefix):].split("/")
        for depth in range(1, len(parts) if recursive else min(2, len(parts))):
            dirs.add(prefix + "/".join(parts[:depth]))
        if recursive or len(parts) == 1:
            entries.append(f.tree_entry())
    entries += [{"type": "directory", "oid": git_blob_sha1(d.encode()), "path": d} for d in sorted(dirs)]
    return sorted(entries, key=lambda e: (e["type"] != "directory", e["path"]))


def create_app(root: Path, token: str | None = None, registry=None) -> Starlette:
    """The ASGI application serving the mirror at `root` (repo ids as `registry`'s plugins claim them)."""
    if registry is None:
        from hubmirror.plugin_manager import PluginRegistry

        registry = PluginRegistry()
    view = MirrorView(root, registry)

    async def api(request: Request) -> Response:
        try:
            _authorise(request, token)
            segments = [unquote(s) for s in request.path_params["rest"].split("/")]
            repo, marker, tail = _split_repo(view, segments, ("revision", "tree", "paths-info", "refs"))
            model = view.model(repo)
            if marker is None and not tail:
                commit, sha = view.commit(model, None)
                return JSONResponse(model_info(view, repo, model, commit, sha, request.query_params.get("blobs") == "true"))
            if marker == "revision" and len(tail) == 1:
                commit, sha = view.commit(model, tail[0])
                return JSONResponse(model_info(view, repo, model, commit, sha, request.query_params.get("blobs") == "true"))
            if marker == "refs" and not tail:
                return JSONResponse(_refs(view, model))
            if marker in ("tree", "paths-info") and tail:
                commit, sha = view.commit(model, tail[0])
                if marker == "paths-info" and request.method == "POST":
                    wanted = set(parse_qs((await request.body()).decode("utf-8", "replace")).get("paths", []))
                    return JSONResponse([e for e in tree(view, model, commit, "", True) if e["path"] in wanted])
                return _tree_page(request, view, model, commit, sha, "/".join(tail[1:]).strip("/"))
            raise HubError(404, None, "Not Found")
        except HubError as err:
            return _error(err)

    async def resolve(request: Request) -> Response:
        try:
            _authorise(request, token)
            segments = [unquote(s) for s in request.path_params["rest"].split("/")]
            if segments[:2] == ["torch", "checkpoints"] and len(segments) == 3:
                return _checkpoint(request, view, segments[2])
            repo, marker, tail = _split_repo(view, segments, ("resolve",))
            if marker != "resolve" or len(tail) < 2:
                raise HubError(404, None, "Not Found")
            model = view.model(repo)
            commit, sha = view.commit(model, tail[0])
            path = "/".join(tail[1:])
            served = next((f for f in view.files(model, commit) if f.path == path), None)
            if served is None:
                raise HubError(404, "EntryNotFound", f"{path} does not exist on {sha}", {"X-Repo-Commit": sha})
            headers = {"X-Repo-Commit": sha, "Access-Control-Expose-Headers": EXPOSE, "Accept-Ranges": "bytes",
                       "ETag": f'"{served.etag}"'}
            if served.lfs:
                headers.update({"X-Linked-Etag": f'"{served.sha256}"', "X-Linked-Size": str(served.size)})
            return _blob_response(request, view, served.sha256, served.size, headers)
        except HubError as err:
            return _error(err)

    routes = [
        Route("/api/models/{rest:path}", api, methods=["GET", "HEAD", "POST"]),
        Route("/{rest:path}", resolve, methods=["GET", "HEAD"]),
    ]
    app = Starlette(routes=routes)
    app.state.view = view
    return app


def _authorise(request: Request, token: str | None) -> None:
    if token and request.headers.get("authorization") != f"Bearer {token}":
        raise HubError(401, "RepoNotFound", "Invalid or missing token for this mirror.")


def _refs(view: MirrorView, model: dict) -> dict:
    branches, tags = [], []
    for ref in view.catalog.refs(model["key"]):
        entry = {"name": ref["name"], "targetCommit": hub_commit(model["key"], ref["commit_id"])}
        (branches if ref["name"] in ("main", "latest", "default") else tags).append(entry)
    for entry, kind in [(e, "heads") for e in branches] + [(e, "tags") for e in tags]:
        entry["ref"] = f"refs/{kind}/{entry['name']}"
    if not any(b["name"] == "main" for b in branches):
        latest = model["latest_commit"]
        branches.append({"name": "main", "ref": "refs/heads/main", "targetCommit": hub_commit(model["key"], latest)})
    return {"branches": branches, "converts": [], "tags": tags}


def _tree_page(request: Request, view: MirrorView, model: dict, commit: str, sha: str, subpath: str) -> Response:
    recursive = request.query_params.get("recursive") in ("true", "True", "1")
    entries = tree(view, model, commit, subpath, recursive)
    if subpath and not entries:
        raise HubError(404, "EntryNotFound", f"{subpath} does not exist on {sha}", {"X-Repo-Commit": sha})
    start = int(request.query_params.get("cursor") or 0)
    headers = {}
    if start + TREE_PAGE < len(entries):
        params = dict(request.query_params) | {"cursor": str(start + TREE_PAGE)}
        query = "&".join(f"{k}={quote(v)}" for k, v in sorted(params.items()))
        headers["Link"] = f'<{str(request.base_url).rstrip("/")}{request.url.path}?{query}>; rel="next"'
    return JSONResponse(entries[start : start + TREE_PAGE], headers=headers)


def _checkpoint(request: Request, view: MirrorView, name: str) -> Response:
    row = view.catalog.conn.execute(
        "SELECT f.sha256, f.size FROM files f JOIN models m ON m.key = f.model_key "
        "WHERE m.cached = 1 AND (f.path = ? OR f.path LIKE ?) ORDER BY f.rowid DESC LIMIT 1",
        [name, f"%/{name}"]).fetchone()
    if row is None or posixpath.basename(name) != name:
        raise HubError(404, "EntryNotFound", f"no checkpoint named {name}")
    return _blob_response(request, view, row[0], row[1], {"ETag": f'"{row[0]}"', "Accept-Ranges": "bytes"})


def _blob_response(request: Request, view: MirrorView, sha256: str, size: int, headers: dict) -> Response:
    if view.catalog.is_quarantined(sha256):
        raise HubError(403, None, "quarantined by hubmirror's admission scan (an operator can allow it)")
    path = view.store.path(sha256)  # validated digest: only the store's own files
    if not path.is_file():
        raise HubError(404, "EntryNotFound", "the blob is missing from the store (run hubmirror verify)")
    if request.method == "HEAD":
        return Response(status_code=200, headers={**headers, "Content-Length": str(size)})
    return _BlobFileResponse(path, headers=headers, media_type="application/octet-stream")


class _BlobFileResponse(FileResponse):
    """FileResponse in 4 MiB chunks: each chunk is a thread hop, and 64 KiB ones cap throughput well below disk."""

    chunk_size = 4 * 1024 * 1024


def serve(root: Path, host: str, port: int, token: str | None, registry=None) -> None:
    """Run the server until interrupted."""
    import uvicorn

    uvicorn.run(create_app(root, token, registry), host=host, port=port, log_level="warning", access_log=False)
