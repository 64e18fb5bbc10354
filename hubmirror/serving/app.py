"""`hubmirror serve`: a read-only HTTP server that speaks the Hugging Face Hub protocol for everything in the mirror
(shared/reference/hf-protocol.md), so unmodified huggingface_hub, transformers, sentence-transformers and timm load
from it with `HF_ENDPOINT` pointing here. Starlette on uvicorn.

- `GET /api/models/{repo}` and `…/revision/{rev}` (`?blobs=true`), `…/tree/{rev}[/{path}]` (recursive, paged with a
  `Link` to this server), `POST …/paths-info/{rev}`, `…/refs`.
- `HEAD|GET /{repo}/resolve/{rev}/{path}`: 200 (never a redirect), `X-Repo-Commit`, `ETag` (git blob id, or sha256
  for LFS-style files with `X-Linked-Etag`/`X-Linked-Size`), `Accept-Ranges`, Range → 206/416. No Xet, ever.
- `GET /torch/checkpoints/{name}`: weight files by exact base name, for torch.hub-style URLs.
- Errors carry `X-Error-Code`/`X-Error-Message` (EntryNotFound with `X-Repo-Commit`). With `--token`, every request
  needs `Authorization: Bearer <token>`.

Paths are read from the raw request path, each segment decoded once (`refs%2Fpr%2F1` is one revision, `a%2520b`
names `a%20b`). Catalog work runs in worker threads (hubmirror.serving.view), never on the event loop; file bodies
stream from blobs the catalog references.
"""

from __future__ import annotations

import contextlib
import hmac
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote_to_bytes

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from hubmirror.serving import hf_api
from hubmirror.serving.hf_api import HubError
from hubmirror.serving.view import MirrorView

API_MARKERS = ("revision", "tree", "paths-info", "refs")


def create_app(root: Path, token: str | None = None, registry=None) -> Starlette:
    """The ASGI application serving the mirror at `root` (repo ids as `registry`'s plugins claim them)."""
    if registry is None:
        from hubmirror.plugin_manager import PluginRegistry

        registry = PluginRegistry()
    view = MirrorView(root, registry)
    expected = f"Bearer {token}".encode() if token else None

    async def api(request: Request) -> Response:
        if refused := _refused(request, expected):
            return refused
        body = await request.body() if request.method == "POST" else b""
        return await run_in_threadpool(_answer, _api, request, view, body)

    async def files(request: Request) -> Response:
        if refused := _refused(request, expected):
            return refused
        return await run_in_threadpool(_answer, _files, request, view)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        view.close()

    app = Starlette(routes=[Route("/api/models/{rest:path}", api, methods=["GET", "HEAD", "POST"]),
                           Route("/{rest:path}", files, methods=["GET", "HEAD"])], lifespan=lifespan)
    app.state.view = view
    return app


def serve(root: Path, host: str, port: int, token: str | None, registry=None) -> None:
    """Run the server until interrupted."""
    import uvicorn

    uvicorn.run(create_app(root, token, registry), host=host, port=port, log_level="warning", access_log=False)


def _refused(request: Request, expected: bytes | None) -> Response | None:
    """The 401 for a request without the expected `Authorization` (compared in constant time), else None."""
    if expected and not hmac.compare_digest(request.headers.get("authorization", "").encode(), expected):
        return HubError(401, "RepoNotFound", "Invalid or missing token for this mirror.").response()
    return None


def _answer(handler, request: Request, view: MirrorView, *args) -> Response:
    """A handler's response (in a worker thread: handlers block on the catalog), HubError as the Hub reports it."""
    try:
        return handler(request, view, _segments(request), *args)
    except HubError as err:
        return err.response()


def _raw_path(request: Request) -> str:
    """The request path as the client sent it, still percent-encoded (ASGI servers need not give it: then the
    decoded path, encoded again)."""
    raw = request.scope.get("raw_path")
    return raw.decode("latin-1") if raw else quote(request.scope["path"])


def _segments(request: Request) -> list[str]:
    """The segments of the raw request path, each percent-decoded exactly once (the decoded `path` would make a
    `%2F` inside a segment a separator, and decoding that again would turn `%2520` into a space)."""
    return [unquote_to_bytes(s).decode("utf-8", "replace") for s in _raw_path(request).split("/")[1:]]


def _split_repo(view: MirrorView, segments: list[str], markers: tuple[str, ...]) -> tuple[str, str | None, list[str]]:
    """(repo id, marker, the segments after it); a one-segment id is taken when it names a repo (`gpt2`)."""
    if len(segments) >= 2 and segments[1] in markers and segments[0] in view.repos():
        return segments[0], segments[1], segments[2:]
    repo = "/".join(segments[:2])
    if len(segments) > 2 and segments[2] in markers:
        return repo, segments[2], segments[3:]
    return repo, None, segments[2:]


def _model(view: MirrorView, repo: str) -> dict:
    model = view.repos().get(repo)
    if model is None:
        raise HubError(404, "RepoNotFound", f"Repository Not Found for url: {repo}.")
    return model


def _commit(view: MirrorView, model: dict, revision: str | None) -> tuple[str, str]:
    found = view.commit(model, revision)
    if found is None:
        raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
    return found


def _api(request: Request, view: MirrorView, segments: list[str], body: bytes) -> Response:
    """`/api/models/…`: model info, tree, paths-info and refs."""
    repo, marker, tail = _split_repo(view, segments[2:], API_MARKERS)
    model = _model(view, repo)
    if (marker is None and not tail) or (marker == "revision" and len(tail) == 1):
        commit, sha = _commit(view, model, tail[0] if tail else None)
        blobs = request.query_params.get("blobs") == "true"
        return JSONResponse(hf_api.model_info(repo, model, sha, view.files(model, commit), blobs))
    if marker == "refs" and not tail:
        return JSONResponse(hf_api.refs(model, view.refs(model)))
    if marker == "paths-info" and tail and request.method == "POST":
        commit, _ = _commit(view, model, tail[0])
        wanted = parse_qs(body.decode("utf-8", "replace")).get("paths", [])
        return JSONResponse(hf_api.paths_info(*view.paths(model, commit, wanted)))
    if marker == "tree" and tail:
        commit, sha = _commit(view, model, tail[0])
        return _tree_page(request, view, model, commit, sha, "/".join(tail[1:]).strip("/"))
    raise HubError(404, None, "Not Found")


def _tree_page(request: Request, view: MirrorView, model: dict, commit: str, sha: str, directory: str) -> Response:
    recursive = request.query_params.get("recursive") in ("true", "True", "1")
    entries = hf_api.tree(view.files(model, commit, directory), directory, recursive)
    if directory and not entries:
        raise HubError(404, "EntryNotFound", f"{directory} does not exist on {sha}", {"X-Repo-Commit": sha})
    cursor = request.query_params.get("cursor") or "0"
    if not cursor.isdigit():
        raise HubError(400, None, f"bad cursor {cursor!r}")
    page, following = hf_api.tree_page(entries, int(cursor))
    headers = {}
    if following is not None:  # the next page's URL: this one's raw path, so that the revision stays one segment
        params = dict(request.query_params) | {"cursor": str(following)}
        query = "&".join(f"{k}={quote(v)}" for k, v in sorted(params.items()))
        headers["Link"] = f'<{request.url.scheme}://{request.url.netloc}{_raw_path(request)}?{query}>; rel="next"'
    return JSONResponse(page, headers=headers)


def _files(request: Request, view: MirrorView, segments: list[str]) -> Response:
    """`/{repo}/resolve/{rev}/{path}` and `/torch/checkpoints/{name}`."""
    if segments[:2] == ["torch", "checkpoints"] and len(segments) == 3:
        return _checkpoint(request, view, segments[2])
    repo, marker, tail = _split_repo(view, segments, ("resolve",))
    if marker != "resolve" or len(tail) < 2:
        raise HubError(404, None, "Not Found")
    model = _model(view, repo)
    commit, sha = _commit(view, model, tail[0])
    path = "/".join(tail[1:])
    served = view.file(model, commit, path)
    if served is None:
        raise HubError(404, "EntryNotFound", f"{path} does not exist on {sha}", {"X-Repo-Commit": sha})
    return _blob_response(request, view, served.sha256, served.size, hf_api.file_headers(served, sha))


def _checkpoint(request: Request, view: MirrorView, name: str) -> Response:
    found = view.newest_file_named(name) if name and "/" not in name else None
    if found is None:
        raise HubError(404, "EntryNotFound", f"no checkpoint named {name}")
    return _blob_response(request, view, found["sha256"], found["size"],
                          {"ETag": f'"{found["sha256"]}"', "Accept-Ranges": "bytes"})


def _blob_response(request: Request, view: MirrorView, sha256: str, size: int, headers: dict) -> Response:
    if view.is_quarantined(sha256):
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
