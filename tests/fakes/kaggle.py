"""An imitation of Kaggle Models on 127.0.0.1 (docs/sources.md): the kagglesdk RPC API
that kagglehub ≥ 0.4 and kaggle 2.x speak, and the signed "GCS" storage its downloads redirect to.

API (`POST {/api,}/v1/models.ModelApiService/{Method}`, camelCase JSON, framework enums by name):
GetModelInstance, ListModelInstanceVersionFiles (pageSize/pageToken), DownloadModelInstanceVersion (302 to storage,
one file with `path`, else the whole version as a tar.gz), ListModels. Errors are HTTP statuses with a
`{code, message}` JSON body.

It refuses, with a 400, what kagglesdk never sends (so a hand-written client's drift shows): another HTTP method than
POST, a Content-Type other than `application/json`, no User-Agent, a body that is not a JSON object, a field the
method's kagglesdk request class does not have (snake_case names included), a value of the wrong type or an unknown
enum name, a non-optional field at its default value (kagglesdk's `to_dict` leaves those out), a query string.

Auth: Bearer access token or Basic username:key; private instances need one, and wrong credentials are a 401. Storage: `x-goog-hash: crc32c=…,md5=…` (base64), `Accept-Ranges`, Range; it rejects
`Authorization`. Faults: corrupt bytes, truncated bodies, no md5 (a composite object).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import google_crc32c
from kagglesdk.kaggle_object import EnumSerializer, PredefinedSerializer
from kagglesdk.models.types.model_api_service import (  # the official SDK's request classes define what is valid
    ApiDownloadModelInstanceVersionRequest,
    ApiGetModelInstanceRequest,
    ApiListModelInstanceVersionFilesRequest,
    ApiListModelsRequest,
)
from kagglesdk.models.types.model_enums import (
    ModelFramework,  # the real service's enum, from the official SDK
)

from tests.fakes.httpserver import Handler, LoopbackServer
from tests.fakes.repo import RepoFile

_PREFIX = "models.ModelApiService/"
REQUEST_CLASSES = {
    "GetModelInstance": ApiGetModelInstanceRequest,
    "ListModelInstanceVersionFiles": ApiListModelInstanceVersionFilesRequest,
    "DownloadModelInstanceVersion": ApiDownloadModelInstanceVersionRequest,
    "ListModels": ApiListModelsRequest,
}


def protocol_violation(method: str, body) -> str | None:
    """Why kagglesdk could never have sent `body` for `method`, or None: checked field by field against the request
    class's own field metadata (names, types, enums, defaults left out)."""
    if not isinstance(body, dict):
        return "the request body must be a JSON object"
    fields = {f.json_name: f for f in REQUEST_CLASSES[method]._fields}
    for name, value in body.items():
        field_ = fields.get(name)
        if field_ is None:
            return f"unknown field {name!r} for {method}"
        if isinstance(field_.serializer, EnumSerializer):
            if not isinstance(value, str) or value not in field_.field_type.__members__:
                return f"invalid enum value {value!r} for {name}"
            value = field_.field_type[value]
        elif isinstance(field_.serializer, PredefinedSerializer):
            kind = field_.field_type
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                return f"field {name} must be {kind.__name__}, not {type(value).__name__}"
        if not field_.optional and value == field_.default_value:
            return f"field {name} sent at its default value {field_.default_value!r} (kagglesdk leaves it out)"
    return None


def framework_enum(framework: str) -> str:
    """The ModelFramework member a handle's framework names (`pyTorch` -> MODEL_FRAMEWORK_PY_TORCH), read from
    kagglesdk's own enum, never from the plugin under test."""
    letters = re.sub(r"[^A-Z0-9]", "", framework.upper())
    for member in ModelFramework:
        if member.name.removeprefix("MODEL_FRAMEWORK_").replace("_", "") == letters:
            return member.name
    raise ValueError(f"no Kaggle framework {framework!r}")


@dataclass
class Instance:
    owner: str
    model: str
    framework: str  # as written in handles
    slug: str
    versions: dict[int, dict[str, RepoFile]] = field(default_factory=dict)
    license_name: str = "Apache 2.0"
    overview: str = ""
    private: bool = False

    @property
    def handle(self) -> str:
        return f"{self.owner}/{self.model}/{self.framework}/{self.slug}"


class FakeKaggle:
    def __init__(self, *, port: int = 0, tokens: set[str] | None = None, keys: dict[str, str] | None = None):
        self.instances: dict[tuple[str, str, str, str], Instance] = {}
        self.tokens = tokens or set()
        self.keys = keys or {}  # username -> key
        self.corrupt: set[str] = set()
        self.truncate: set[str] = set()
        self.no_md5 = False
        self.requests: list[dict] = []
        self.storage_violations: list[str] = []
        self.refused: list[str] = []  # API requests kagglesdk could never have sent, answered with a 400
        self.api_faults: list[int] = []  # statuses the next valid API calls answer with, one each (503: overloaded)
        self.api = LoopbackServer(ApiHandler, self, port)
        self.storage = LoopbackServer(StorageHandler, self)

    def add_instance(self, handle: str, versions: dict[int, dict[str, bytes | Path]], **settings) -> Instance:
        owner, model, framework, slug = handle.split("/")
        inst = Instance(owner, model, framework, slug, **settings)
        for number, files in versions.items():
            inst.versions[number] = {
                path: RepoFile(path, data=c) if isinstance(c, bytes) else RepoFile(path, disk_path=Path(c))
                for path, c in files.items()
            }
        self.instances[(owner, model, framework_enum(framework), slug)] = inst
        return inst

    def find(self, body: dict) -> Instance | None:
        return self.instances.get((body.get("ownerSlug"), body.get("modelSlug"), body.get("framework"),
                                   body.get("instanceSlug")))

    def __enter__(self) -> "FakeKaggle":
        self.api.start()
        self.storage.start()
        return self

    def __exit__(self, *exc) -> None:
        self.api.stop()
        self.storage.stop()


class ApiHandler(Handler):
    owner: FakeKaggle

    def _refuse_method(self):
        """kagglesdk sends every call as a POST."""
        self.owner.requests.append({"host": "api", "method": self.command, "path": self.path,
                                    "authorization": self.headers.get("Authorization")})
        self.owner.refused.append(f"{self.command} {self.path}: not a POST")
        return self._error(400, f"{self.command} is not how the API is called: kagglesdk POSTs every method")

    do_GET = do_PUT = do_DELETE = do_PATCH = _refuse_method

    def do_HEAD(self):
        self.owner.refused.append(f"HEAD {self.path}: not a POST")
        self.send_response(400)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        kaggle = self.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        kaggle.requests.append({"host": "api", "method": "POST", "path": self.path,
                                "authorization": self.headers.get("Authorization"),
                                "content_type": self.headers.get("Content-Type"),
                                "user_agent": self.headers.get("User-Agent"), "body": raw})
        url = urlsplit(self.path)
        method = url.path.split(_PREFIX, 1)[1] if _PREFIX in url.path and url.path.startswith(("/api/v1/", "/v1/")) \
            else None
        if method is None:
            return self._error(404, "Not found")
        if method not in REQUEST_CLASSES:
            return self._error(404, f"Unknown method {method}")
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        problem = (
            "a query string (kagglesdk sends none)" if url.query else
            f"Content-Type {self.headers.get('Content-Type')!r} (kagglesdk sends application/json)"
            if self.headers.get("Content-Type") != "application/json" else
            "no User-Agent (kagglesdk always sends one)" if self.headers.get("User-Agent") is None else
            "a body that is not JSON" if body is None else protocol_violation(method, body)
        )
        if problem:
            kaggle.refused.append(f"{method}: {problem}")
            return self._error(400, f"Invalid request: {problem}")
        if kaggle.api_faults:
            return self._error(kaggle.api_faults.pop(0), "Service temporarily unavailable")
        auth_state = self._auth()
        if auth_state == "invalid":
            return self._error(401, "Unauthenticated: invalid credentials")
        if method == "ListModels":
            return self._list_models(body)
        inst = kaggle.find(body)
        if inst is None or (inst.private and auth_state != "ok"):
            return self._error(404, "Model instance not found")
        if method == "GetModelInstance":
            latest = max(inst.versions)
            return self.send_json(200, {
                "id": abs(hash(inst.handle)) % 10**6, "slug": inst.slug, "framework": framework_enum(inst.framework),
                "versionId": latest * 1000, "versionNumber": latest, "licenseName": inst.license_name,
                "url": f"/models/{inst.handle}/{latest}", "overview": inst.overview,
                "totalUncompressedBytes": sum(f.size for f in inst.versions[latest].values()),
                "modelInstanceType": "MODEL_INSTANCE_TYPE_KAGGLE_VARIANT"})
        files = inst.versions.get(int(body.get("versionNumber") or 0))
        if files is None:
            return self._error(404, "Model instance version not found")
        if method == "ListModelInstanceVersionFiles":
            size = int(body.get("pageSize") or 20)
            start = int(body.get("pageToken") or 0)
            names = sorted(files)
            page = [{"name": n, "size": files[n].size, "creationDate": "2024-01-01T00:00:00Z"}
                    for n in names[start : start + size]]
            token = str(start + size) if start + size < len(names) else ""
            return self.send_json(200, {"files": page, "nextPageToken": token})
        if method == "DownloadModelInstanceVersion":
            version = int(body["versionNumber"])
            target = body.get("path") or f"{inst.slug}.tar.gz"
            if body.get("path") and body["path"] not in files:
                return self._error(404, f"File {body['path']} not found")
            location = (f"{kaggle.storage.url}/kaggle-models-data/{quote(inst.handle)}/{version}/{quote(target)}"
                        f"?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Signature=imitation")
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return self._error(404, f"Unknown method {method}")

    def _auth(self) -> str:
        """'ok', 'none' or 'invalid' for the request's credentials."""
        header = self.headers.get("Authorization", "")
        if not header:
            return "none"
        if header.startswith("Bearer "):
            return "ok" if header[7:] in self.owner.tokens else "invalid"
        if header.startswith("Basic "):
            user, _, key = base64.b64decode(header[6:]).decode(errors="replace").partition(":")
            return "ok" if self.owner.keys.get(user) == key and key else "invalid"
        return "invalid"

    def _list_models(self, body: dict) -> None:
        search = (body.get("search") or "").lower()
        by_model: dict[tuple[str, str], list[Instance]] = {}
        for inst in self.owner.instances.values():
            if not inst.private and search in f"{inst.owner}/{inst.model}".lower():
                by_model.setdefault((inst.owner, inst.model), []).append(inst)
        keys = sorted(by_model)
        size = int(body.get("pageSize") or 20)
        start = int(body.get("pageToken") or 0)
        models = [{
            "id": i + start, "ref": f"{o}/{m}", "title": m, "author": o, "slug": m, "url": f"/models/{o}/{m}",
            "subtitle": by_model[(o, m)][0].overview, "tags": [],
            "instances": [{"slug": inst.slug, "framework": framework_enum(inst.framework),
                           "versionNumber": max(inst.versions), "licenseName": inst.license_name,
                           "overview": inst.overview} for inst in by_model[(o, m)]],
        } for i, (o, m) in enumerate(keys[start : start + size])]
        token = str(start + size) if start + size < len(keys) else ""
        self.send_json(200, {"models": models, "nextPageToken": token, "totalResults": len(keys)})

    def _error(self, code: int, message: str) -> None:
        self.send_json(code, {"code": code, "message": message})


def _tarball(files: dict[str, RepoFile]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, f in sorted(files.items()):
            data = f.read()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class StorageHandler(Handler):
    owner: FakeKaggle

    def do_GET(self):
        kaggle = self.owner
        kaggle.requests.append({"host": "storage", "method": "GET", "path": self.path,
                                "authorization": self.headers.get("Authorization"), "range": self.headers.get("Range")})
        if self.headers.get("Authorization"):
            kaggle.storage_violations.append(self.path)
            return self.send_json(400, {"error": "Authorization header sent to a signed URL"})
        parts = [unquote(p) for p in urlsplit(self.path).path.strip("/").split("/")]
        if len(parts) < 7 or parts[0] != "kaggle-models-data":
            return self.send_json(404, {"error": "NoSuchKey"})
        owner, model, framework, slug, version, target = parts[1], parts[2], parts[3], parts[4], int(parts[5]), "/".join(parts[6:])
        inst = kaggle.instances.get((owner, model, framework_enum(framework), slug))
        files = inst.versions.get(version) if inst else None
        if files is None:
            return self.send_json(404, {"error": "NoSuchKey"})
        data = files[target].read() if target in files else (_tarball(files) if target == f"{slug}.tar.gz" else None)
        if data is None:
            return self.send_json(404, {"error": "NoSuchKey"})
        hashes = [f"crc32c={base64.b64encode(google_crc32c.Checksum(data).digest()).decode()}"]
        if not kaggle.no_md5:
            hashes.append(f"md5={base64.b64encode(hashlib.md5(data).digest()).decode()}")
        if target in kaggle.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        body = data
        headers = {"Content-Type": "application/octet-stream", "x-goog-hash": ",".join(hashes),
                   "x-goog-stored-content-length": str(len(data))}
        if target in kaggle.truncate and not self.headers.get("Range"):
            self.send_response(200)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return None
        return self.send_content(len(body), lambda a, b: body[a:b], headers)
