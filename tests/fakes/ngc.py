"""An imitation of NVIDIA NGC's model registry on 127.0.0.1 (the requests of the NGC CLI; docs/sources.md).

Three loopback hosts, as the real service: auth (`GET /token?service=ngc&scope=group/ngc:{org}` with
`Basic base64("$oauthtoken:" + key)` → `{token, expires_in}`), API (`/v2/org/{org}[/team/{team}]/models/{name}`,
`…/versions/{ver}`, `…/versions/{ver}/files` with `sha256_base64` and page-number paging, `…/{name}/{ver}/files?path=`
→ presigned URLs, the guest forms `/v2/models/{org}[/{team}]/{name}…` and `/v2/models/org/{org}[/team/{t}]/{name}/{ver}/
files`, `/v2/search/catalog/resources/MODEL?q=`), and storage (presigned URLs, Range, no Authorization accepted).
Public models answer guests; private ones need a Bearer token: one from the exchange, or a scoped key (`nvapi-…`)
itself. Errors carry `requestStatus`.

It refuses (400, logged in `refused`) what the ngc CLI (ngcsdk 4.37) never sends: no User-Agent or no
`Content-Type: application/json`; neither `Authorization` nor `X-NGC-Guest-Token`, or both; a guest token on an org
path or a bearer token on a guest path; a query parameter the CLI does not put on that path; a token request whose
query is not the CLI's unencoded `service=ngc&scope=group/ngc:…`, or that exchanges a scoped key; a search `q` that is
not the CLI's JSON.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

from tests.fakes.httpserver import Handler, LoopbackServer
from tests.fakes.repo import RepoFile


@dataclass
class NgcModel:
    org: str
    team: str | None
    name: str
    versions: dict[str, dict[str, RepoFile]] = field(default_factory=dict)
    public: bool = True
    description: str = ""
    framework: str = "ONNX"
    application: str = "Other"
    labels: list[str] = field(default_factory=list)

    @property
    def target(self) -> str:
        return "/".join(p for p in (self.org, self.team, self.name) if p)


class FakeNgc:
    def __init__(self, *, api_keys: set[str] | None = None, page_size: int = 2):
        self.models: dict[str, NgcModel] = {}
        self.api_keys = api_keys or set()
        self.tokens: dict[str, str] = {}  # token -> org scope
        self.page_size = page_size
        self.corrupt: set[str] = set()
        self.version_status: dict[str, str] = {}  # version -> status other than UPLOAD_COMPLETE
        self.refused: list[str] = []  # requests the ngc CLI never sends (answered 400)
        self.requests: list[dict] = []
        self.storage_violations: list[str] = []
        self.auth = LoopbackServer(AuthHandler, self)
        self.api = LoopbackServer(ApiHandler, self)
        self.storage = LoopbackServer(StorageHandler, self)

    def add_model(self, target: str, versions: dict[str, dict[str, bytes | Path]], **settings) -> NgcModel:
        parts = target.split("/")
        org, team, name = (parts[0], None, parts[1]) if len(parts) == 2 else parts
        model = NgcModel(org, team, name, **settings)
        for version, files in versions.items():
            model.versions[version] = {
                p: RepoFile(p, data=c) if isinstance(c, bytes) else RepoFile(p, disk_path=Path(c)) for p, c in files.items()
            }
        self.models[model.target] = model
        return model

    def env(self) -> dict[str, str]:
        return {"NGC_CLI_API_URL": self.api.url, "NGC_CLI_AUTH_URL": self.auth.url}

    def __enter__(self) -> "FakeNgc":
        for server in (self.auth, self.api, self.storage):
            server.start()
        return self

    def __exit__(self, *exc) -> None:
        for server in (self.auth, self.api, self.storage):
            server.stop()


def _status(handler: Handler, code: int, status: str, description: str) -> None:
    handler.send_json(code, {"requestStatus": {"statusCode": status, "statusDescription": description,
                                               "requestId": secrets.token_hex(8)}})


TOKEN_QUERY = re.compile(r"^service=ngc&(scope=group/ngc:[\w.-]+(/[\w.-]+)?(&scope=group/ngc:[\w.-]+(/[\w.-]+)?)?)?$")
SEARCH_KEYS = {"fields", "filters", "orderBy", "page", "pageSize", "query", "queryFields"}  # ngcbase/api/search.py


def _refuse(handler: Handler, host: str, why: str) -> None:
    handler.owner.refused.append(f"{host} {handler.path}: {why}")
    _status(handler, 400, "INVALID_REQUEST", why)


def _cli_headers_problem(headers) -> str | None:
    """The ngc CLI's `default_headers` are on every auth and API request."""
    if not headers.get("User-Agent"):
        return "no User-Agent"
    if headers.get("Content-Type") != "application/json":
        return f"Content-Type {headers.get('Content-Type')!r} (the ngc CLI sends application/json)"
    return None


class AuthHandler(Handler):
    owner: FakeNgc

    def do_GET(self):
        ngc = self.owner
        url = urlsplit(self.path)
        ngc.requests.append({"host": "auth", "path": self.path, "authorization": self.headers.get("Authorization")})
        header = self.headers.get("Authorization", "")
        user, _, key = base64.b64decode(header[6:]).decode(errors="replace").partition(":") \
            if header.startswith("Basic ") else ("", "", "")
        problem = _cli_headers_problem(self.headers) or (
            "not the token endpoint" if url.path != "/token" else
            f"query {url.query!r} is not the CLI's service=ngc&scope=group/ngc:ORG[&scope=group/ngc:ORG/TEAM]"
            if not TOKEN_QUERY.match(url.query) else
            "a scoped key (nvapi-…) is never exchanged: the CLI sends it as the bearer token"
            if key.startswith("nvapi-") else None)
        if problem:
            return _refuse(self, "auth", problem)
        if user != "$oauthtoken" or key not in ngc.api_keys:
            return _status(self, 401, "UNAUTHORIZED", "Invalid API key")
        token = secrets.token_hex(16)
        ngc.tokens[token] = ",".join(parse_qs(url.query).get("scope", []))
        return self.send_json(200, {"token": token, "expires_in": 600})


class ApiHandler(Handler):
    owner: FakeNgc

    def do_GET(self):
        ngc = self.owner
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        auth, guest = self.headers.get("Authorization"), self.headers.get("X-NGC-Guest-Token")
        ngc.requests.append({"host": "api", "path": self.path, "authorization": auth, "guest_token": guest,
                             "content_type": self.headers.get("Content-Type"),
                             "user_agent": self.headers.get("User-Agent")})
        problem = _cli_headers_problem(self.headers) or (
            "neither Authorization nor X-NGC-Guest-Token (the CLI sends one of them)" if not auth and not guest else
            "both Authorization and X-NGC-Guest-Token" if auth and guest else None)
        if problem:
            return _refuse(self, "api", problem)
        if auth and not (auth.startswith("Bearer ") and
                         (auth[7:] in ngc.tokens or (auth[7:].startswith("nvapi-") and auth[7:] in ngc.api_keys))):
            return _status(self, 401, "UNAUTHORIZED", "Invalid token")
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        if parts[:4] == ["v2", "search", "catalog", "resources"]:
            return self._search(query)
        found = self._route(parts, guest=bool(guest))
        if isinstance(found, str):
            return _refuse(self, "api", found) if found.startswith("!") else _status(self, 404, "NOT_FOUND", found)
        model, rest = found
        if not model.public and not auth:
            return _status(self, 401, "UNAUTHORIZED", "Authentication required")
        allowed = ({"resolve-labels"} if not rest else set() if len(rest) == 2 and rest[0] == "versions" else
                   {"page-size", "page-number"} if rest[-1:] == ["files"] and rest[0] == "versions" else
                   {"path", "page-number"})
        if set(query) - allowed:
            return _refuse(self, "api", f"query parameters {sorted(set(query) - allowed)} the ngc CLI never sends here")
        if not rest:
            return self.send_json(200, {"model": self._model(model), "requestStatus": {"statusCode": "SUCCESS"}})
        if rest[0] == "versions" and len(rest) >= 2:
            files = model.versions.get(rest[1])
            if files is None:
                return _status(self, 404, "NOT_FOUND", f"Version '{rest[1]}' could not be found")
            if len(rest) == 2:
                return self.send_json(200, {"model": self._model(model), "modelVersion": self._version(rest[1], files),
                                            "requestStatus": {"statusCode": "SUCCESS"}})
            if rest[2:] == ["files"]:
                return self._files(model, rest[1], files, query)
        if len(rest) == 2 and rest[1] == "files":
            files = model.versions.get(rest[0])
            wanted = (query.get("path") or [None])[0]
            if files is None or wanted not in files:
                return _status(self, 404, "NOT_FOUND", f"File '{wanted}' could not be found")
            url = (f"{ngc.storage.url}/{quote(model.target)}/{rest[0]}/{quote(wanted)}"
                   f"?Expires=9999999999&Signature=imitation&Key-Pair-Id=imitation")
            return self.send_json(200, {"urls": [url], "filepath": [wanted],
                                        "sha256_base64": [_b64(files[wanted].sha256)]})
        return _status(self, 404, "NOT_FOUND", "Not found")

    def _route(self, parts: list[str], guest: bool) -> tuple[NgcModel, list[str]] | str:
        """(model, the path after its name) for an authenticated (`/v2/org/{org}[/team/{t}]/models/{name}/…`) or a
        guest (`/v2/models/{org}[/{team}]/{name}/…`, `/v2/models/org/{org}[/team/{t}]/{name}/{ver}/files`) path; else
        why not: a message for a 404, or one starting with '!' for a form the CLI never sends (guest paths are what
        it sends without a key, and only then)."""
        models = self.owner.models
        if parts[:2] == ["v2", "org"] and "models" in parts:
            if guest:
                return "!an org path with a guest token (without a key the CLI uses /v2/models/…)"
            i = parts.index("models")
            scope = parts[2:i]
            if len(parts) <= i + 1 or not (len(scope) == 1 or (len(scope) == 3 and scope[1] == "team")):
                return "Not found"
            target = "/".join([scope[0]] + scope[2:] + [parts[i + 1]])
            model = models.get(target)
            return (model, parts[i + 2:]) if model else f"Model '{target}' could not be found"
        if parts[:2] == ["v2", "models"]:
            if not guest:
                return "!a guest path with a bearer token (with a key the CLI uses /v2/org/…)"
            rest = parts[2:]
            if rest[:1] == ["org"]:  # the guest download-URL form: org/{org}[/team/{team}]/{name}/{ver}/files
                scope = rest[1:2] + (rest[3:4] if rest[2:3] == ["team"] else [])
                rest = rest[2 + (2 if rest[2:3] == ["team"] else 0):]
                if len(rest) != 3 or rest[2] != "files":
                    return "!not a download-URL path"
                target = "/".join(scope + rest[:1])
                model = models.get(target)
                return (model, rest[1:]) if model else f"Model '{target}' could not be found"
            for cut in (3, 2):
                model = models.get("/".join(rest[:cut]))
                if model and (rest[cut:cut + 1] in ([], ["versions"])):
                    return model, rest[cut:]
            return f"Model '{'/'.join(rest[:3])}' could not be found"
        return "Not found"

    def _model(self, model: NgcModel) -> dict:
        latest = sorted(model.versions)[-1]
        return {"name": model.name, "displayName": model.name, "orgName": model.org, "teamName": model.team,
                "description": model.description, "shortDescription": model.description.split("\n")[0],
                "framework": model.framework, "precision": "FP32", "application": model.application,
                "labels": model.labels, "latestVersionIdStr": latest, "isPublic": model.public,
                "canGuestDownload": model.public, "latestVersionSizeInBytes": sum(f.size for f in model.versions[latest].values())}

    def _version(self, version: str, files: dict[str, RepoFile]) -> dict:
        return {"versionId": version, "status": self.owner.version_status.get(version, "UPLOAD_COMPLETE"),
                "totalFileCount": len(files), "totalSizeInBytes": sum(f.size for f in files.values()),
                "isSigned": False}

    def _files(self, model: NgcModel, version: str, files: dict[str, RepoFile], query: dict) -> None:
        page = int((query.get("page-number") or ["0"])[0])
        size = self.owner.page_size
        names = sorted(files)
        chunk = names[page * size : (page + 1) * size]
        total_pages = max(1, -(-len(names) // size))
        self.send_json(200, {
            "modelFiles": [{"path": n, "sizeInBytes": files[n].size, "sha256_base64": _b64(files[n].sha256),
                            "createdDate": "2024-01-01T00:00:00.000Z"} for n in chunk],
            "modelVersion": self._version(version, files),
            "paginationInfo": {"index": page, "size": size, "totalPages": total_pages, "totalResults": len(names)},
            "requestStatus": {"statusCode": "SUCCESS"}})

    def _search(self, query: dict) -> None:
        if set(query) != {"q"}:
            return _refuse(self, "api", f"search parameters {sorted(query)} (the CLI sends q only)")
        try:
            q = json.loads(query["q"][0])
        except ValueError:
            return _refuse(self, "api", "q is not JSON")
        if not isinstance(q, dict) or set(q) != SEARCH_KEYS or not str(q.get("query", "")).startswith("resourceId:"):
            return _refuse(self, "api", f"q {q!r} is not the CLI's search parameters")
        pattern = str(q["query"])[len("resourceId:"):].lower()
        resources = [
            {"resourceId": m.target, "name": m.name, "displayName": m.name, "orgName": m.org, "teamName": m.team,
             "description": m.description, "labels": [{"key": "general", "values": m.labels}],
             "attributes": [{"key": "latestVersionIdStr", "value": sorted(m.versions)[-1]},
                            {"key": "framework", "value": m.framework}], "dateModified": "2024-01-01T00:00:00Z"}
            for m in self.owner.models.values() if m.public and fnmatch.fnmatchcase(m.target.lower(), pattern)
        ]
        page, size = int(q.get("page") or 0), int(q.get("pageSize") or 25)
        chunk = resources[page * size : (page + 1) * size]
        self.send_json(200, {"resultTotal": len(resources), "resultPageTotal": max(1, -(-len(resources) // size)),
                             "results": [{"groupValue": "MODEL", "totalCount": len(resources), "resources": chunk}],
                             "params": q})


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


class StorageHandler(Handler):
    owner: FakeNgc

    def do_GET(self):
        ngc = self.owner
        ngc.requests.append({"host": "storage", "path": self.path, "range": self.headers.get("Range"),
                             "authorization": self.headers.get("Authorization")})
        if self.headers.get("Authorization"):
            ngc.storage_violations.append(self.path)
            return self.send_json(400, {"error": "Authorization header sent to a presigned URL"})
        parts = [unquote(p) for p in urlsplit(self.path).path.strip("/").split("/")]
        for cut in (3, 2):  # org/team/name or org/name
            model = ngc.models.get("/".join(parts[:cut]))
            if model and len(parts) > cut + 1:
                entry = model.versions.get(parts[cut], {}).get("/".join(parts[cut + 1:]))
                if entry is not None:
                    transform = None
                    if entry.path in ngc.corrupt:
                        def transform(offset: int, chunk: bytes) -> bytes:
                            return bytes([chunk[0] ^ 0xFF]) + chunk[1:] if offset == 0 and chunk else chunk
                    return self.send_content(entry.size, entry.read, {"Content-Type": "application/octet-stream"},
                                             sendfile_path=entry.disk_path, transform=transform)
        return self.send_json(404, {"error": "NoSuchKey"})
