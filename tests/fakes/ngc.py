"""An imitation of NVIDIA NGC's model registry on 127.0.0.1 (shared/reference/sources-protocols.md §9).

Three loopback hosts, as the real service: auth (`GET /token?service=ngc&scope=group/ngc:{org}` with
`Basic base64("$oauthtoken:" + key)` → `{token, expires_in}`), API (`/v2/org/{org}[/team/{team}]/models/{name}`,
`…/versions/{ver}`, `…/versions/{ver}/files` with `sha256_base64` and page-number paging, `…/{name}/{ver}/files?path=`
→ presigned URLs, `/v2/search/catalog/resources/MODEL?q=`), and storage (presigned URLs, Range, no Authorization
accepted). Public models answer without a token; private ones need a Bearer token from the exchange. Errors carry
`requestStatus`.
"""

from __future__ import annotations

import base64
import json
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


class AuthHandler(Handler):
    owner: FakeNgc

    def do_GET(self):
        ngc = self.owner
        ngc.requests.append({"host": "auth", "path": self.path})
        header = self.headers.get("Authorization", "")
        user, _, key = base64.b64decode(header[6:]).decode(errors="replace").partition(":") \
            if header.startswith("Basic ") else ("", "", "")
        if urlsplit(self.path).path != "/token" or user != "$oauthtoken" or key not in ngc.api_keys:
            return _status(self, 401, "UNAUTHORIZED", "Invalid API key")
        token = secrets.token_hex(16)
        ngc.tokens[token] = ",".join(parse_qs(urlsplit(self.path).query).get("scope", []))
        return self.send_json(200, {"token": token, "expires_in": 600})


class ApiHandler(Handler):
    owner: FakeNgc

    def do_GET(self):
        ngc = self.owner
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        ngc.requests.append({"host": "api", "path": self.path, "authorization": self.headers.get("Authorization")})
        auth = self.headers.get("Authorization", "")
        if auth and not (auth.startswith("Bearer ") and auth[7:] in ngc.tokens):
            return _status(self, 401, "UNAUTHORIZED", "Invalid token")
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        if parts[:4] == ["v2", "search", "catalog", "resources"]:
            return self._search(query)
        if parts[:2] != ["v2", "org"] or "models" not in parts:
            return _status(self, 404, "NOT_FOUND", "Not found")
        i = parts.index("models")
        scope = parts[2:i]
        target = "/".join([scope[0]] + ([scope[2]] if len(scope) == 3 and scope[1] == "team" else []) + [parts[i + 1]]) \
            if len(parts) > i + 1 else ""
        model = ngc.models.get(target)
        if model is None or (not model.public and not auth):
            return _status(self, 404 if model is None else 401, "NOT_FOUND" if model is None else "UNAUTHORIZED",
                           f"Model '{target}' could not be found" if model is None else "Authentication required")
        rest = parts[i + 2:]
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

    def _model(self, model: NgcModel) -> dict:
        latest = sorted(model.versions)[-1]
        return {"name": model.name, "displayName": model.name, "orgName": model.org, "teamName": model.team,
                "description": model.description, "shortDescription": model.description.split("\n")[0],
                "framework": model.framework, "precision": "FP32", "application": model.application,
                "labels": model.labels, "latestVersionIdStr": latest, "isPublic": model.public,
                "canGuestDownload": model.public, "latestVersionSizeInBytes": sum(f.size for f in model.versions[latest].values())}

    @staticmethod
    def _version(version: str, files: dict[str, RepoFile]) -> dict:
        return {"versionId": version, "status": "UPLOAD_COMPLETE", "totalFileCount": len(files),
                "totalSizeInBytes": sum(f.size for f in files.values()), "isSigned": False}

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
        q = json.loads((query.get("q") or ["{}"])[0])
        text = str(q.get("query", "")).lower().replace("resourceid:*", "")
        resources = [
            {"resourceId": m.target, "name": m.name, "displayName": m.name, "orgName": m.org, "teamName": m.team,
             "description": m.description, "labels": [{"key": "general", "values": m.labels}],
             "attributes": [{"key": "latestVersionIdStr", "value": sorted(m.versions)[-1]},
                            {"key": "framework", "value": m.framework}], "dateModified": "2024-01-01T00:00:00Z"}
            for m in self.owner.models.values() if m.public and text.strip("* ") in m.target.lower()
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
        ngc.requests.append({"host": "storage", "path": self.path, "range": self.headers.get("Range")})
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
