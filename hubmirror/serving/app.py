"""`hubmirror serve`: a read-only HTTP server that speaks the Hugging Face Hub protocol for everything in the mirror
(answering the requests huggingface_hub sends; docs/serving.md), so unmodified huggingface_hub, transformers,
sentence-transformers and timm load from it with `HF_ENDPOINT` pointing here. Starlette on uvicorn.

- `GET /api/models/{repo}` and `…/revision/{rev}` (`?blobs=true`), `…/tree/{rev}[/{path}]` (recursive, paged with a
  `Link` to this server), `POST …/paths-info/{rev}`, `…/refs`.
- `HEAD|GET /{repo}/resolve/{rev}/{path}`: 200, `X-Repo-Commit`, `ETag` (git blob id, or sha256 for LFS-style files
  with `X-Linked-Etag`/`X-Linked-Size`), `Accept-Ranges`, Range → 206/416; for a file read through Xet, its
  `X-Xet-Hash` and `xet-auth` link too (the CAS under `/xet-cas`: hubmirror.serving.xet_cas). With `redirect` (`serve
  --redirect`), an LFS-style file whose store offers a presigned URL (a bucket) is a 302 there instead, carrying the
  same headers as the real Hub's redirect to its CDN: the client takes the metadata from the 302 and, the host being
  another, sends its `Authorization` no further. Regular (git) files, and every file of a store with no presigned
  URLs, are answered here.
- `GET /torch/checkpoints/{name}`: weight files by exact base name, for torch.hub-style URLs (never redirected).
- `GET /api/models?search=…` (HfApi.list_models): the served models in the catalog search's exact order, paged.
- Operations (hubmirror.serving.metrics): `/metrics` (Prometheus; behind `--token` like the API), `/healthz` (always
  open: 200 while the catalog reads, else 503), and an access log line per request.
- Every other GET is the web catalog's (hubmirror.serving.web): `/`, `/models`, `/{repo}`, `/{repo}/tree/…`;
  with `--token` a browser signs in once at `/login` and its session cookie also opens the API and files.
- Errors carry `X-Error-Code`/`X-Error-Message` (EntryNotFound with `X-Repo-Commit`). With `--token`, every request
  needs `Authorization: Bearer <token>`.

With `serve --upstream`, a repo or revision the mirror lacks is resolved on a Hugging Face endpoint first and its files
fetched in the background; until catalogued it is answered from its upstream listing, each file once verified and
admitted (hubmirror.serving.proxy, proxy_view).

Paths are read from the raw request path, each segment decoded once (`refs%2Fpr%2F1` is one revision, `a%2520b`
names `a%20b`). Catalog work runs in worker threads (hubmirror.serving.view), never on the event loop; file bodies
stream from blobs the catalog references: sendfile from a local file, else 4 MiB reads of `store.open_range` in worker
threads (a bucket: no local disk needed for blobs, so any number of servers can answer for one mirror). Quarantined
blobs are a 403 however they would have been sent.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qs, quote, unquote_to_bytes

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from hubmirror.access.audit import AuditLog, AuditMiddleware
from hubmirror.access.gate import Gate, session_secret
from hubmirror.access.policy import Principal, restricted
from hubmirror.catalog import CATALOG_NAME
from hubmirror.serving import expanded, hf_api
from hubmirror.serving.blob_checks import ensure_checked
from hubmirror.serving.bodies import MAX_API_BODY, BodyTooLarge, bounded_body
from hubmirror.serving.hf_api import HubError
from hubmirror.serving.metrics import (
    Metrics,
    MetricsMiddleware,
    health_response,
    log_access_to_stderr,
    metrics_response,
    record_store_error,
)
from hubmirror.serving.model_listing import LIST_SCAN, ListQuery
from hubmirror.serving.view import MirrorView
from hubmirror.serving.visibility import readable, visibility
from hubmirror.serving.waiting import ClientGone, answering
from hubmirror.serving.web import WebCatalog
from hubmirror.store import BlobInfo, BlobStore

log = logging.getLogger("hubmirror.serving")
API_MARKERS = ("revision", "tree", "paths-info", "refs", "commits", "xet-read-token")
COMMITS_PAGE = 50  # commits per page of /commits/{rev}, as the Hub pages them
REDIRECT_EXPIRES = 900  # seconds a presigned URL of `--redirect` stays good (a client's in-download resumes reuse it)
STREAM_CHUNK = 4 * 1024 * 1024  # bytes per read of a blob streamed from a store with no local file
_RANGE = re.compile(r"bytes=(\d{0,19})-(\d{0,19})", re.ASCII)  # longer numbers are no range of any blob
_WHOLE = re.compile(r"\d{1,12}", re.ASCII)  # a page size or cursor: ASCII digits, no more than any catalog holds


def create_app(root: Path, token: str | None = None, registry=None, *, store: BlobStore | None = None,
               redirect: bool = False, upstream: dict | None = None, refresher=None,
               audit: AuditLog | None = None, xet: bool = True) -> Starlette:
    """The ASGI application serving the mirror at `root` (repo ids as `registry`'s plugins claim them) with its
    blobs in `store` (by default the store `Mirror.open(root)` finds: whatever backend the mirror uses); with
    `redirect`, LFS-style files are 302s to the store's presigned URLs where it has them. With `upstream` (the
    keyword arguments of `hubmirror.serving.proxy.Upstream`: `endpoint`, `ref_ttl`, `timeout`, `allow`, `deny`),
    what the mirror lacks is pulled from that Hugging Face endpoint first. `refresher` (a site's
    `hubmirror.sitelog.refresher.Refresher`) makes `/healthz` and `/metrics` say how the catalog's refresh is doing.
    Who may read what: the mirror's tokens (`hubmirror token`) and `token` (the operator's), see
    hubmirror.access; `audit` gets a line per file read, login and logout. With `xet`, files read through Xet are
    presented to Xet clients too (hubmirror.serving.xet_cas)."""
    if registry is None:
        from hubmirror.plugin_manager import PluginRegistry

        registry = PluginRegistry()
    if store is None:
        from hubmirror.mirror import Mirror

        with Mirror.open(root, registry=registry) as mirror:
            store = mirror.store
    if upstream is None:
        view = MirrorView(root, registry, store)
    else:
        from hubmirror.serving.proxy_view import ProxyView

        view = ProxyView(root, registry, store, upstream)
    gate = Gate(view.tokens, token, lambda: session_secret(root))
    if xet:
        from hubmirror.serving.xet_cas import XetCas

        view.xet_cas = XetCas(view, session_secret(root))
    web = WebCatalog(view, root, gate, audit)  # the HTML pages: a GET that is not a file URL (`_is_file_url`)

    async def api(request: Request) -> Response:
        if refused := await _admit(request, gate):
            return refused
        try:
            body = await bounded_body(request, MAX_API_BODY) if request.method == "POST" else b""
        except BodyTooLarge as exc:
            return HubError(413, None, str(exc)).response()
        return await run_in_threadpool(_answer, _api, request, view, body)

    async def files(request: Request) -> Response:
        if not _is_file_url(segments := _segments(request)):
            return await web.page(request, segments)
        request.state.file_request = True  # audited (AuditMiddleware), refused or not
        return await _admit(request, gate) or await run_in_threadpool(_answer, _files, request, view, redirect)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        view.close()

    async def listing(request: Request) -> Response:
        return await _admit(request, gate) or await run_in_threadpool(_answer, _list_models, request, view)

    async def metrics_page(request: Request) -> Response:
        if refused := await _admit(request, gate):
            return refused
        if not (gate.open() or request.state.principal.admin):  # its labels name repos: operators only
            return HubError(403, None, "/metrics needs an admin token").response()
        return metrics_response(metrics)

    async def xet_storage(request: Request) -> Response:  # its own tokens (issued behind the gate): no gate here
        return await run_in_threadpool(_answer, _xet_storage, request, view)

    async def whoami(request: Request) -> Response:
        return await _admit(request, gate) or JSONResponse(hf_api.whoami(request.state.principal))

    async def healthz(request: Request) -> Response:  # open even with --token: load balancers carry no token
        return await run_in_threadpool(health_response, Path(root) / CATALOG_NAME, refresher)

    metrics = Metrics(refresher)
    app = Starlette(routes=[Route("/metrics", metrics_page), Route("/healthz", healthz, methods=["GET", "HEAD"]),
                            Route("/api/models", listing, methods=["GET", "HEAD"]),
                            Route("/api/datasets", listing, methods=["GET", "HEAD"]),
                            Route("/api/whoami-v2", whoami, methods=["GET"]),
                            Route("/api/models/{rest:path}", api, methods=["GET", "HEAD", "POST"]),
                            Route("/api/datasets/{rest:path}", api, methods=["GET", "HEAD", "POST"]),
                            Route("/xet-cas/{rest:path}", xet_storage, methods=["GET", "HEAD"]),
                            *web.routes, Route("/{rest:path}", files, methods=["GET", "HEAD"])], lifespan=lifespan,
                    middleware=[Middleware(MetricsMiddleware, metrics=metrics),
                                *([Middleware(AuditMiddleware, audit=audit)] if audit is not None else [])])
    app.state.view = view
    app.state.metrics = metrics
    return app


def serve(root: Path, host: str, port: int, token: str | None, registry=None, *, store: BlobStore | None = None,
          redirect: bool = False, upstream: dict | None = None, refresher=None,
          forwarded_allow_ips: str = "127.0.0.1", audit: AuditLog | None = None, xet: bool = True) -> None:
    """Run the server until interrupted."""
    import uvicorn

    log_access_to_stderr()
    app = create_app(root, token, registry, store=store, redirect=redirect, upstream=upstream, refresher=refresher,
                     audit=audit, xet=xet)
    uvicorn.Server(server_config(app, host, port, forwarded_allow_ips)).run()


def server_config(app: Starlette, host: str, port: int, forwarded_allow_ips: str = "127.0.0.1"):
    """uvicorn's settings for `serve` (and the tests' servers): h11 with a bound on a request head's arrival
    (`http_protocol.py`), X-Forwarded-* believed from `forwarded_allow_ips` only, no uvicorn access log (the
    middleware writes one)."""
    import uvicorn

    from hubmirror.serving.http_protocol import HeadTimeoutH11

    return uvicorn.Config(app, host=host, port=port, http=HeadTimeoutH11, log_level="warning", access_log=False,
                          lifespan="on", proxy_headers=True, forwarded_allow_ips=forwarded_allow_ips)


async def _admit(request: Request, gate: Gate) -> Response | None:
    """The 401 for a request that shows no valid token or session (a mirror that is not open), else None, with
    `request.state.principal` saying who it is."""
    principal = await gate.principal(request)
    if principal is None:
        return HubError(401, "RepoNotFound", "Invalid or missing token for this mirror.").response()
    request.state.principal = principal
    return None


def _is_file_url(segments: list[str]) -> bool:
    """`/{repo}/resolve/…`, `/datasets/{repo}/resolve/…`, `/torch/checkpoints/…` and `/api/…`; every other GET is
    for the web catalog."""
    if segments[0] == "datasets":
        segments = segments[1:]
    return segments[0] == "api" or segments[:2] == ["torch", "checkpoints"] or "resolve" in segments[1:3]


def _answer(handler, request: Request, view: MirrorView, *args) -> Response:
    """A handler's response (in a worker thread: handlers block on the catalog), HubError as the Hub reports it; a
    wait for the upstream ends when the client goes (`waiting.py`: the answer is 499, which nobody reads)."""
    try:
        with answering(request):
            return handler(request, view, _segments(request), *args)
    except HubError as err:
        return err.response()
    except ClientGone:
        return Response(status_code=499)


def _raw_path(request: Request) -> str:
    """The request path as the client sent it, still percent-encoded (ASGI servers need not give it: then the
    decoded path, encoded again)."""
    raw = request.scope.get("raw_path")
    return raw.decode("latin-1") if raw else quote(request.scope["path"])


def _segments(request: Request) -> list[str]:
    """The segments of the raw request path, each percent-decoded exactly once (the decoded `path` would make a
    `%2F` inside a segment a separator, and decoding that again would turn `%2520` into a space)."""
    return [unquote_to_bytes(s).decode("utf-8", "replace") for s in _raw_path(request).split("/")[1:]]


def _split_repo(view: MirrorView, segments: list[str], markers: tuple[str, ...],
                prefix: str = "") -> tuple[str, str | None, list[str]]:
    """(served repo id, marker, the segments after it); a one-segment id is taken when it names a repo (`gpt2`).
    `prefix`: `datasets/` for a dataset's URL (its served id), '' for a model's."""
    if len(segments) >= 2 and segments[1] in markers and prefix + segments[0] in view.repos():
        return prefix + segments[0], segments[1], segments[2:]
    repo = prefix + "/".join(segments[:2])
    if len(segments) > 2 and segments[2] in markers:
        return repo, segments[2], segments[3:]
    return repo, None, segments[2:]


def _same_kind(repo: str, prefix: str) -> None:
    """A model URL never names a dataset (whose served id starts with `datasets/`): not found."""
    if not prefix and repo.startswith(hf_api.DATASET_PREFIX):
        raise HubError(404, "RepoNotFound", f"Repository Not Found for url: {repo}.")


def _kind_prefix(segments: list[str]) -> str:
    """`datasets/` for `/api/datasets/…` and `/datasets/…` URLs (a dataset's served id starts so), else ''."""
    return "datasets/" if segments[0] == "datasets" or segments[:2] == ["api", "datasets"] else ""


def _model(view: MirrorView, repo: str, revision: str | None, principal: Principal) -> dict:
    """The catalog model served as `repo`; with an upstream, `repo`@`revision` is pulled first if need be. A repo
    `principal` may not read is not found, as the Hub answers (never a 403 that says it exists), and one its globs
    exclude is never asked upstream."""
    if not principal.may_read(repo, False):
        raise HubError(404, "RepoNotFound", f"Repository Not Found for url: {repo}.")
    if view.upstream is not None:
        view.upstream.ensure(view, repo, revision, principal)
    model = view.repos().get(repo)
    if model is None or not principal.may_read(repo, restricted(model)):
        raise HubError(404, "RepoNotFound", f"Repository Not Found for url: {repo}.")
    return model


def _commit(view: MirrorView, model: dict, revision: str | None) -> tuple[str, str]:
    found = view.commit(model, revision)
    if found is None:
        raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
    return found


def _api(request: Request, view: MirrorView, segments: list[str], body: bytes) -> Response:
    """`/api/models/…`: model info, tree, paths-info and refs."""
    prefix = _kind_prefix(segments)
    repo, marker, tail = _split_repo(view, segments[2:], API_MARKERS, prefix)
    _same_kind(repo, prefix)
    model = _model(view, repo, tail[0] if tail and marker in ("revision", "tree", "paths-info") else None,
                   request.state.principal)
    if (marker is None and not tail) or (marker == "revision" and len(tail) == 1):
        commit, sha = _commit(view, model, tail[0] if tail else None)
        blobs = request.query_params.get("blobs") == "true"
        return JSONResponse(hf_api.model_info(repo, model, sha, view.files(model, commit), blobs,
                                              view.revision_date(model, commit)))
    if marker == "refs" and not tail:
        include_prs = request.query_params.get("include_prs") in ("1", "true", "True")
        return JSONResponse(view.refs_document(model, include_prs))
    if marker == "commits" and len(tail) == 1:
        return _commits_page(request, view, model, tail[0])
    if marker == "xet-read-token" and len(tail) == 1 and view.xet_cas is not None:
        commit, _ = _commit(view, model, tail[0])
        return view.xet_cas.token_response(_base_url(request), repo, model["key"], commit, request.state.principal)
    if marker == "paths-info" and tail and request.method == "POST":
        commit, _ = _commit(view, model, tail[0])
        form = parse_qs(body.decode("utf-8", "replace"))
        entries = hf_api.paths_info(*view.paths(model, commit, form.get("paths", [])))
        if form.get("expand") in (["true"], ["True"]):
            entries = expanded.expand(entries, view, model, commit)
        return JSONResponse(entries)
    if marker == "tree" and tail:
        commit, sha = _commit(view, model, tail[0])
        return _tree_page(request, view, model, commit, sha, "/".join(tail[1:]).strip("/"))
    raise HubError(404, None, "Not Found")


def _commits_page(request: Request, view: MirrorView, model: dict, revision: str) -> Response:
    """`GET /api/models/{repo}/commits/{rev}` (HfApi.list_repo_commits): newest first, paged by a `Link`."""
    upstream = view.upstream_commits(model, revision, request.query_params.multi_items())
    if upstream is not None:  # a proxy: the upstream's own page, its next page through this server
        items, following = upstream
        headers = _next_page(request, _raw_path(request), None, following) if following is not None else {}
        return JSONResponse(items, headers=headers)
    commit, _ = _commit(view, model, revision)
    cursor = _whole(request.query_params.get("cursor") or "0", "cursor")
    items = hf_api.commits(model["key"], view.history(model, commit))
    headers = (_next_page(request, _raw_path(request), cursor + COMMITS_PAGE)
               if cursor + COMMITS_PAGE < len(items) else {})
    return JSONResponse(items[cursor:cursor + COMMITS_PAGE], headers=headers)


def _list_models(request: Request, view: MirrorView, segments: list[str]) -> Response:
    """`GET /api/models` as HfApi.list_models sends it (hubmirror.serving.model_listing), or `/api/datasets`
    (list_datasets): the served models (datasets) the reader may see, in the catalog search's order (the CLI's and
    the web page's), paged by a `Link` to the next."""
    kind = "dataset" if segments[:2] == ["api", "datasets"] else "model"
    upstream = view.upstream_listing(kind, request.query_params.multi_items())
    if upstream is not None:  # a proxy: the upstream's page, less what this reader may not see
        items, following = upstream
        principal, prefix = request.state.principal, "datasets/" if kind == "dataset" else ""
        page = [i for i in items
                if principal.may_read(prefix + i["id"], bool(i.get("gated")) or bool(i.get("private")))]
        headers = _next_page(request, request.url.path, None, following) if following is not None else {}
        return JSONResponse(page, headers=headers)
    query = ListQuery.parse(request.query_params)
    limit = min(_whole(request.query_params.get("limit") or str(hf_api.LIST_PAGE), "limit"), hf_api.LIST_PAGE)
    cursor = _whole(request.query_params.get("cursor") or "0", "cursor")
    served = {m["key"]: repo for repo, m in view.repos().items()}
    with view.catalog() as catalog:
        def search(count: int, offset: int) -> list[dict]:
            return catalog.search(query.search, task=query.task, license=query.license, library=query.library,
                                  cached=True, kind=kind, sort=query.catalog_sort, limit=count, offset=offset,
                                  visible=visibility(view, request.state.principal))

        if query.scans:
            found = [r for r in search(LIST_SCAN, 0) if r["key"] in served and query.matches(served[r["key"]], r)]
            if query.sort == "createdAt":
                found.sort(key=lambda r: hf_api.created_at(r) or "", reverse=True)
            rows = found[cursor:cursor + limit + 1]
        else:
            rows = search(limit + 1, cursor)

        def paths(model: dict) -> list[str]:
            return [f["path"] for f in catalog.files(model["key"], model["latest_commit"])]

        page = [query.entry(served[r["key"]], r, paths) for r in rows[:limit] if r["key"] in served]
    following = _next_page(request, request.url.path, cursor + limit) if len(rows) > limit else {}
    return JSONResponse(page, headers=following)


def _whole(text: str, name: str) -> int:
    """A query parameter that must be a whole number (`limit`, `cursor`); anything else is a 400, never a 500."""
    if not _WHOLE.fullmatch(text):
        raise HubError(400, None, f"{name} must be a whole number of at most 12 digits")
    return int(text)


def _next_page(request: Request, path: str, cursor: int | None, query: str | None = None) -> dict:
    """The `Link` header to the next page: `path` with this request's parameters and `cursor` (or an upstream's
    next-page `query`, as it gave it)."""
    if query is None:
        params = dict(request.query_params) | {"cursor": str(cursor)}
        query = "&".join(f"{k}={quote(v)}" for k, v in sorted(params.items()))
    return {"Link": f'<{request.url.scheme}://{request.url.netloc}{path}?{query}>; rel="next"'}


def _tree_page(request: Request, view: MirrorView, model: dict, commit: str, sha: str, directory: str) -> Response:
    recursive = request.query_params.get("recursive") in ("true", "True", "1")
    entries = hf_api.tree(view.files(model, commit, directory), directory, recursive)
    if directory and not entries:
        raise HubError(404, "EntryNotFound", f"{directory} does not exist on {sha}", {"X-Repo-Commit": sha})
    page, following = hf_api.tree_page(entries, _whole(request.query_params.get("cursor") or "0", "cursor"))
    if request.query_params.get("expand") in ("true", "True", "1"):
        page = expanded.expand(page, view, model, commit)
    # the next page's URL: this one's raw path, so that the revision stays one segment
    headers = _next_page(request, _raw_path(request), following) if following is not None else {}
    return JSONResponse(page, headers=headers)


def _files(request: Request, view: MirrorView, segments: list[str], redirect: bool) -> Response:
    """`/{repo}/resolve/{rev}/{path}` and `/torch/checkpoints/{name}`."""
    if segments[:2] == ["torch", "checkpoints"] and len(segments) == 3:
        return _checkpoint(request, view, segments[2])
    prefix = _kind_prefix(segments)
    repo, marker, tail = _split_repo(view, segments[len(prefix) > 0:], ("resolve",), prefix)
    _same_kind(repo, prefix)
    if marker != "resolve" or len(tail) < 2:
        raise HubError(404, None, "Not Found")
    request.state.read = (repo, tail[0], "/".join(tail[1:]))
    model = _model(view, repo, tail[0], request.state.principal)
    commit, sha = _commit(view, model, tail[0])
    path = "/".join(tail[1:])
    served = view.file(model, commit, path)
    if served is None:
        raise HubError(404, "EntryNotFound", f"{path} does not exist on {sha}", {"X-Repo-Commit": sha})
    headers = hf_api.file_headers(served, sha)
    if served.xet_hash:  # as the Hub's resolve of a Xet file: its hash, and where a Xet client gets a token
        kind = "datasets" if prefix else "models"
        headers["X-Xet-Hash"] = served.xet_hash
        headers["Link"] = (f'<{_base_url(request)}/api/{kind}/{repo.removeprefix(prefix)}/xet-read-token/{sha}>; '
                           'rel="xet-auth"')
    return _blob_response(request, view, served.sha256, served.size, headers,
                          redirect=redirect and served.lfs)  # the Hub redirects LFS files only (§4: X-Linked-Size)


def _base_url(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _xet_storage(request: Request, view: MirrorView, segments: list[str]) -> Response:
    """`/xet-cas/…`: reconstructions (`v1|v2/reconstructions/{xet_hash}`) and xorb bodies (`xorb/{xorb}`)."""
    if view.xet_cas is None:
        raise HubError(404, None, "Not Found")
    if len(segments) == 4 and segments[1] in ("v1", "v2") and segments[2] == "reconstructions":
        return view.xet_cas.reconstruction(request.headers.get("Authorization", ""), segments[1], segments[3],
                                           request.headers.get("Range"), _base_url(request), request.state)
    if len(segments) == 3 and segments[1] == "xorb":
        return view.xet_cas.xorb(segments[2], request.query_params, request.headers.get("Range"))
    raise HubError(404, None, "Not Found")


def _checkpoint(request: Request, view: MirrorView, name: str) -> Response:
    found = view.newest_file_named(name) if name and "/" not in name else None
    if found is not None and not readable(view, request.state.principal, found["model_key"]):
        found = None  # a checkpoint of a repo this principal may not read: not found, as the repo
    if found is None:
        raise HubError(404, "EntryNotFound", f"no checkpoint named {name}")
    return _blob_response(request, view, found["sha256"], found["size"],
                          {"ETag": f'"{found["sha256"]}"', "Accept-Ranges": "bytes"})


def _blob_response(request: Request, view: MirrorView, sha256: str, size: int, headers: dict, *,
                   redirect: bool = False) -> Response:
    """The blob's bytes (or, with `redirect`, a 302 to the store's presigned URL for them) under `headers`."""
    if view.is_quarantined(sha256):
        raise HubError(403, None, "quarantined by hubmirror's admission scan (an operator can allow it)")
    store = view.store
    path = store.local_path(sha256)  # validated digest: only the store's own files
    info = None if path is not None else store.stat(sha256)
    if (path is not None and not path.is_file()) or (path is None and info is None):
        record_store_error()
        raise HubError(404, "EntryNotFound", "the blob is missing from the store (run hubmirror verify)")
    if redirect and (url := store.presigned_url(sha256, REDIRECT_EXPIRES)) is not None:
        return Response(status_code=302, headers={**headers, "Location": url})
    if request.method == "HEAD":
        return Response(status_code=200, headers={**headers, "Content-Length": str(size)})
    if path is not None:
        return _BlobFileResponse(path, headers=headers, media_type="application/octet-stream")
    return _streamed(request, store, info, headers)


def _streamed(request: Request, store: BlobStore, info: BlobInfo, headers: dict) -> Response:
    """A blob with no local file, from `store.open_range` in STREAM_CHUNK reads (each in a worker thread), a single
    Range passed through: 206 with `Content-Range` once the whole blob checked out (blob_checks.py), 416 when it lies
    beyond the blob. Several ranges, a malformed one or a stale `If-Range` get the whole blob (RFC 9110 §14.2 lets a
    server ignore Range), hashed as it streams."""
    sha256, size = info.digest, info.size
    span = _byte_range(request, size, headers.get("ETag"))
    if span is None:
        return StreamingResponse(_verified(_chunks(store, sha256, 0, size), sha256),
                                 headers={**headers, "Content-Length": str(size)}, media_type="application/octet-stream")
    start, end = span
    if start >= end:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    ensure_checked(store, sha256, size, info.tag)
    return StreamingResponse(_chunks(store, sha256, start, end, info.tag), status_code=206,
                             media_type="application/octet-stream",
                             headers={**headers, "Content-Range": f"bytes {start}-{end - 1}/{size}",
                                      "Content-Length": str(end - start)})


def _byte_range(request: Request, size: int, etag: str | None) -> tuple[int, int] | None:
    """[start, end) of the request's single byte range (start >= end: unsatisfiable), or None for the whole blob."""
    header = request.headers.get("range")
    if header is None:
        return None
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range != etag:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first:
        start = int(first)
        if last and int(last) < start:
            return None  # not a valid range: ignored
        end = min(int(last) + 1, size) if last else size
        return (start, end) if start < size else (size, size)
    suffix = int(last)
    return (max(size - suffix, 0), size) if suffix else (size, size)


def _chunks(store: BlobStore, sha256: str, start: int, end: int, tag: str | None = None) -> Iterator[bytes]:
    """Bytes [start, end) of the blob (of version `tag`, where given); a store that ends early breaks the response
    (its length was promised)."""
    if start >= end:
        return
    try:
        with store.open_range(sha256, start, end, tag) as f:
            left = end - start
            while left > 0:
                chunk = f.read(min(STREAM_CHUNK, left))
                if not chunk:
                    raise OSError(f"blob {sha256} ended {left} bytes early")
                left -= len(chunk)
                yield chunk
    except Exception:
        record_store_error()
        raise


def _verified(chunks: Iterator[bytes], sha256: str) -> Iterator[bytes]:
    """A whole blob from a store with no local file (a bucket others can write to), hashed as it goes: its last
    chunk is sent only once every byte matched `sha256`, so a blob changed in the store never reaches a client whole
    (the response breaks off short of its Content-Length, which every HTTP client reports)."""
    digest = hashlib.sha256()
    held = None
    for chunk in chunks:
        if held is not None:
            yield held
        digest.update(chunk)
        held = chunk
    if digest.hexdigest() != sha256:
        record_store_error()
        log.error("blob %s: the store's bytes do not match their digest; not sent (run hubmirror verify)", sha256)
        raise OSError(f"blob {sha256} does not match its digest")
    if held is not None:
        yield held


class _BlobFileResponse(FileResponse):
    """FileResponse in 4 MiB chunks: each chunk is a thread hop, and 64 KiB ones cap throughput well below disk."""

    chunk_size = 4 * 1024 * 1024
