"""An imitation of GitHub on 127.0.0.1 (docs/sources.md): what torch.hub and release
downloads use.

Three servers, as on the real service: `web` (github.com: `/{o}/{r}/zipball/{ref}` → 302 to codeload,
`/{o}/{r}/tree/{branch}/`, `/{o}/{r}/releases/download/{tag}/{name}` → 302 to signed storage), `api`
(api.github.com: `/repos/{o}/{r}`, `/commits/{ref}`, `/git/trees/{sha}?recursive=1`, `/branches`, `/tags`,
`/releases/tags/{tag}` with asset `digest`), and `storage` (codeload archives with a `{o}-{r}-{sha7}/` top folder,
release assets and plain weight URLs such as download.pytorch.org's, with Range; it refuses `Authorization`).

It refuses (400, logged in `refused`) what neither torch.hub nor GitHub's REST documentation would send: on the API,
no `User-Agent`, an `Accept` that is not `application/vnd.github+json` (the docs) or `application/vnd.github.v3+json`
(torch.hub), an `X-GitHub-Api-Version` GitHub does not have, an `Authorization` that is neither `Bearer` nor `token`,
a query parameter the endpoint does not document, a `per_page` outside 1–100; on the web host, a query string or an
`Authorization` header (tokens go to the API only).
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.httpserver import Handler, LoopbackServer
from tests.fakes.repo import FakeRepo, RepoFile


class FakeGitHub:
    def __init__(self):
        self.repos: dict[str, FakeRepo] = {}
        self.releases: dict[tuple[str, str], dict[str, RepoFile]] = {}
        self.files: dict[str, RepoFile] = {}  # plain weight URLs: /models/<name> on the storage host
        self.archive_override: dict[tuple[str, str], bytes] = {}
        self.corrupt: set[str] = set()  # names of assets/files whose first byte is flipped on the wire
        self.requests: list[dict] = []
        self.storage_violations: list[str] = []
        self.refused: list[str] = []  # requests neither torch.hub nor GitHub's REST docs would send (answered 400)
        self.web = LoopbackServer(WebHandler, self)
        self.api = LoopbackServer(ApiHandler, self)
        self.storage = LoopbackServer(StorageHandler, self)

    # -- content -----------------------------------------------------------------------------------------------------

    def create_repo(self, full_name: str, files: dict[str, bytes | Path], *, branch: str = "main") -> FakeRepo:
        repo = FakeRepo(full_name, lfs_enabled=False)
        repo.commit(files, branch=branch)
        self.repos[full_name] = repo
        return repo

    def add_release(self, full_name: str, tag: str, assets: dict[str, bytes | Path]) -> None:
        self.releases[(full_name, tag)] = {
            name: RepoFile(name, data=content) if isinstance(content, bytes) else RepoFile(name, disk_path=Path(content))
            for name, content in assets.items()
        }

    def add_file(self, name: str, content: bytes | Path) -> str:
        """Serve `content` at a plain URL (as download.pytorch.org serves weights); return the URL."""
        self.files[name] = RepoFile(name, data=content) if isinstance(content, bytes) else RepoFile(name, disk_path=Path(content))
        return f"{self.storage.url}/models/{name}"

    def release_url(self, full_name: str, tag: str, name: str) -> str:
        return f"{self.web.url}/{full_name}/releases/download/{tag}/{name}"

    def archive(self, full_name: str, sha: str) -> bytes:
        """The zipball of a commit: every file under `{owner}-{repo}-{sha7}/`, as GitHub builds it."""
        if (full_name, sha) in self.archive_override:
            return self.archive_override[(full_name, sha)]
        top = f"{full_name.replace('/', '-')}-{sha[:7]}/"
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(top, b"")
            for path, f in sorted(self.repos[full_name].commits[sha].items()):
                zf.writestr(top + path, f.read())
        return buf.getvalue()

    # -- lifecycle ---------------------------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """Environment that points GitHub clients (hubmirror's) at this imitation."""
        return {"GITHUB_SERVER_URL": self.web.url, "GITHUB_API_URL": self.api.url}

    def log(self, handler: Handler, host: str) -> None:
        self.requests.append({"host": host, "method": handler.command, "path": handler.path,
                              "range": handler.headers.get("Range"),
                              "authorization": handler.headers.get("Authorization"),
                              "accept": handler.headers.get("Accept"),
                              "api_version": handler.headers.get("X-GitHub-Api-Version"),
                              "user_agent": handler.headers.get("User-Agent")})

    def __enter__(self) -> "FakeGitHub":
        for server in (self.web, self.api, self.storage):
            server.start()
        return self

    def __exit__(self, *exc) -> None:
        for server in (self.web, self.api, self.storage):
            server.stop()


def _not_found(handler: Handler) -> None:
    handler.send_json(404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})


API_VERSIONS = {"2022-11-28", "2026-03-10"}  # the REST API versions GitHub serves
API_ACCEPTS = {"application/vnd.github+json", "application/vnd.github.v3+json"}
# the query parameters each endpoint documents (docs.github.com/rest)
API_QUERY = {"repo": set(), "commits": {"per_page", "page"}, "trees": {"recursive"}, "branches": {"per_page", "page",
             "protected"}, "tags": {"per_page", "page"}, "release": set()}


def _refuse(handler: Handler, host: str, why: str) -> None:
    handler.owner.refused.append(f"{host} {handler.command} {handler.path}: {why}")
    handler.send_json(400, {"message": f"Bad request: {why}", "documentation_url": "https://docs.github.com/rest"})


def api_violation(headers, route: str, query: dict) -> str | None:
    """Why neither torch.hub nor a client following GitHub's REST docs would send this API request, or None."""
    if not headers.get("User-Agent"):
        return "no User-Agent (GitHub refuses requests without one)"
    if headers.get("Accept") not in API_ACCEPTS:
        return f"Accept {headers.get('Accept')!r} is not a GitHub JSON media type"
    version = headers.get("X-GitHub-Api-Version")
    if version is not None and version not in API_VERSIONS:
        return f"unsupported X-GitHub-Api-Version {version!r}"
    auth = headers.get("Authorization")
    if auth is not None and not auth.startswith(("Bearer ", "token ")):
        return "an Authorization that is neither 'Bearer <token>' nor 'token <token>'"
    unknown = sorted(set(query) - API_QUERY[route])
    if unknown:
        return f"query parameters {unknown} are not documented for this endpoint"
    for name in ("per_page", "page"):
        values = query.get(name)
        if values is not None and (len(values) != 1 or not values[0].isdigit() or int(values[0]) < 1 or
                                   (name == "per_page" and int(values[0]) > 100)):
            return f"{name}={values} (one integer, per_page at most 100)"
    return None


class WebHandler(Handler):
    owner: FakeGitHub

    def do_GET(self):
        gh = self.owner
        gh.log(self, "web")
        if urlsplit(self.path).query:
            return _refuse(self, "web", "a query string (torch.hub and browsers send none here)")
        if self.headers.get("Authorization"):
            return _refuse(self, "web", "Authorization sent to the web host (tokens go to the API only)")
        parts = [unquote(p) for p in urlsplit(self.path).path.strip("/").split("/")]
        if len(parts) < 3:
            return _not_found(self)
        full_name = f"{parts[0]}/{parts[1]}"
        repo = gh.repos.get(full_name)
        if parts[2] == "zipball" and len(parts) == 4 and repo:
            sha = repo.resolve(parts[3])
            if sha is None:
                return _not_found(self)
            return self._redirect(f"{gh.storage.url}/{full_name}/legacy.zip/{sha}")
        if parts[2] == "tree" and repo:
            return self.send_json(200 if parts[3] in repo.branches else 404, {})
        if parts[2:4] == ["releases", "download"] and len(parts) == 6:
            if parts[5] == "loop.bin":  # a redirect loop, for the tests
                return self._redirect(self.path)
            asset = gh.releases.get((full_name, parts[4]), {}).get(parts[5])
            if asset is None:
                return _not_found(self)
            return self._redirect(f"{gh.storage.url}/releases/{full_name}/{parts[4]}/{parts[5]}"
                                  f"?X-Amz-Expires=300&X-Amz-Signature=imitation")
        return _not_found(self)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()


class ApiHandler(Handler):
    owner: FakeGitHub

    def do_GET(self):
        gh = self.owner
        gh.log(self, "api")
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        if len(parts) < 3 or parts[0] != "repos":
            return _not_found(self)
        full_name = f"{parts[1]}/{parts[2]}"
        repo = gh.repos.get(full_name)
        rest = parts[3:]
        route = ("repo" if not rest else "release" if rest[:2] == ["releases", "tags"] else
                 "trees" if rest[:2] == ["git", "trees"] else rest[0] if rest[0] in API_QUERY else None)
        if route is None:
            return _not_found(self)
        problem = api_violation(self.headers, route, query)
        if problem:
            return _refuse(self, "api", problem)
        if rest[:2] == ["releases", "tags"] and len(rest) == 3:
            assets = gh.releases.get((full_name, rest[2]))
            if assets is None:
                return _not_found(self)
            return self.send_json(200, self._release(full_name, rest[2], assets))
        if repo is None:
            return _not_found(self)
        if not rest:
            return self.send_json(200, {"full_name": full_name, "name": parts[2], "default_branch": "main"
                                        if "main" in repo.branches else next(iter(repo.branches)), "private": False})
        if rest[0] == "commits" and len(rest) == 2:
            sha = repo.resolve(rest[1]) or next((c for c in repo.commits if c.startswith(rest[1]) and len(rest[1]) >= 7), None)
            if sha is None:
                return self.send_json(422, {"message": f"No commit found for SHA: {rest[1]}"})
            return self.send_json(200, {"sha": sha, "commit": {"message": "imitation commit"}})
        if rest[:2] == ["git", "trees"] and len(rest) == 3:
            sha = repo.resolve(rest[2])
            if sha is None:
                return _not_found(self)
            return self.send_json(200, {"sha": sha, "truncated": False, "tree": self._tree(repo, sha, query)})
        if rest[0] in ("branches", "tags") and len(rest) == 1:
            names = repo.branches if rest[0] == "branches" else repo.tags
            page, per_page = int(query.get("page", ["1"])[0]), int(query.get("per_page", ["30"])[0])
            items = [{"name": n, "commit": {"sha": c}} for n, c in sorted(names.items())]
            return self.send_json(200, items[(page - 1) * per_page : page * per_page])
        return _not_found(self)

    @staticmethod
    def _tree(repo: FakeRepo, sha: str, query: dict) -> list[dict]:
        files = repo.commits[sha]
        dirs = sorted({"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)})
        entries = [{"path": d, "mode": "040000", "type": "tree",
                    "sha": hashlib.sha1(f"tree {d}".encode()).hexdigest()} for d in dirs]
        for path, f in sorted(files.items()):
            entries.append({"path": path, "mode": "100644", "type": "blob", "sha": f.git_sha1, "size": f.size})
        return entries if query.get("recursive") else [e for e in entries if "/" not in e["path"]]

    def _release(self, full_name: str, tag: str, assets: dict[str, RepoFile]) -> dict:
        gh = self.owner
        return {
            "id": 1, "tag_name": tag, "name": tag, "draft": False, "prerelease": False,
            "published_at": "2024-01-01T00:00:00Z",
            "assets": [
                {"id": i + 1, "name": name, "label": "", "content_type": "application/octet-stream", "state": "uploaded",
                 "size": f.size, "digest": f"sha256:{f.sha256}", "download_count": 0,
                 "browser_download_url": gh.release_url(full_name, tag, name)}
                for i, (name, f) in enumerate(sorted(assets.items()))
            ],
        }


class StorageHandler(Handler):
    owner: FakeGitHub

    def do_GET(self):
        gh = self.owner
        gh.log(self, "storage")
        if self.headers.get("Authorization"):
            gh.storage_violations.append(self.path)
            return self.send_json(400, {"message": "Authorization header sent to a signed storage URL"})
        parts = [unquote(p) for p in urlsplit(self.path).path.strip("/").split("/")]
        if len(parts) == 4 and parts[2] == "legacy.zip":
            data = gh.archive(f"{parts[0]}/{parts[1]}", parts[3])
            return self.send_content(len(data), lambda a, b: data[a:b], {"Content-Type": "application/zip"})
        entry = None
        if len(parts) == 5 and parts[0] == "releases":
            entry = gh.releases.get((f"{parts[1]}/{parts[2]}", parts[3]), {}).get(parts[4])
        elif len(parts) == 2 and parts[0] == "models":
            entry = gh.files.get(parts[1])
        if entry is None:
            return _not_found(self)
        transform = None
        if entry.path in gh.corrupt:
            def transform(offset: int, chunk: bytes) -> bytes:
                return bytes([chunk[0] ^ 0xFF]) + chunk[1:] if offset == 0 and chunk else chunk
        self.send_content(entry.size, entry.read, {"Content-Type": "application/octet-stream"},
                          sendfile_path=entry.disk_path, transform=transform)

    do_HEAD = do_GET
