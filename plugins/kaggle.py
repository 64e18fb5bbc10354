"""Kaggle Models: `kaggle:owner/model/framework/variation[/version]` (the latest version when none is given).

Speaks the kagglesdk RPC protocol (what kagglehub ≥ 0.4 and the kaggle 2.x CLI use): GetModelInstance,
ListModelInstanceVersionFiles, DownloadModelInstanceVersion (a 302 to signed storage), ListModels. The API base is
`--endpoint` or `HUBMIRROR_KAGGLE_ENDPOINT`, else what `KAGGLE_API_ENVIRONMENT` selects (as in kagglesdk). Credentials, in kagglesdk's order:
`KAGGLE_API_TOKEN` (a token or a file), `~/.kaggle/access_token`, then `KAGGLE_USERNAME` + `KAGGLE_KEY`, then
`kaggle.json` in `KAGGLE_CONFIG_DIR` or `~/.kaggle`. They are sent to the API only and never stored or printed.
Each file's md5 from the storage's `x-goog-hash` (crc32c when there is no md5) is checked besides our sha256.
"""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

import requests

from hubmirror.errors import (
    AccessDeniedError,
    HubmirrorError,
    NotFoundError,
    UsageError,
)
from hubmirror.hookspecs import hookimpl
from hubmirror.http import json_body, open_range, request
from hubmirror.records import ModelMetadata, ModelRef, RemoteFile, ResolvedRevision
from hubmirror.sources import Download, Source, SourceContext

# kagglesdk's ModelFramework enum names (kagglesdk/models/types/model_enums.py)
FRAMEWORKS = [
    "TENSOR_FLOW_1", "TENSOR_FLOW_2", "TF_LITE", "TF_JS", "PY_TORCH", "JAX", "FLAX", "PAX", "MAX_TEXT", "GEMMA_CPP",
    "GGML", "GGUF", "CORAL", "SCIKIT_LEARN", "MXNET", "ONNX", "KERAS", "TRANSFORMERS", "API", "OTHER",
    "TENSOR_RT_LLM", "TRITON", "VLLM",
]
_BY_LETTERS = {name.replace("_", ""): name for name in FRAMEWORKS}
ENVIRONMENTS = {"PROD": "https://api.kaggle.com", "TEST": "http://localhost:7777/api",
                "LOCALHOST": "http://localhost/api", "STAGING": "https://staging.kaggle.com/api",
                "ADMIN": "https://admin.kaggle.com/api", "QA": "https://qa.kaggle.com/api"}
CREDENTIALS_HINT = "KAGGLE_API_TOKEN, or KAGGLE_USERNAME and KAGGLE_KEY, or ~/.kaggle/kaggle.json"
_SLUG = re.compile(r"^[A-Za-z0-9][\w.-]*$")


def framework_enum(framework: str) -> str:
    """The enum name kagglehub sends for a handle's framework, tolerant of case (`pyTorch`, `PyTorch`, `Keras`)."""
    name = _BY_LETTERS.get(re.sub(r"[^A-Z0-9]", "", framework.upper()))
    if name is None:
        raise UsageError(f"unknown Kaggle framework {framework!r}")
    return f"MODEL_FRAMEWORK_{name}"


def framework_slug(enum_name: str) -> str:
    """The handle form of a framework enum (MODEL_FRAMEWORK_PY_TORCH -> pyTorch), as kagglehub writes it."""
    words = enum_name.removeprefix("MODEL_FRAMEWORK_").lower().split("_")
    return words[0] + "".join(w.capitalize() for w in words[1:])


def api_base(ctx: SourceContext) -> str:
    """`--endpoint`, else `HUBMIRROR_KAGGLE_ENDPOINT` (a Kaggle API mirror), else what KAGGLE_API_ENVIRONMENT picks."""
    endpoint = ctx.endpoint or os.environ.get("HUBMIRROR_KAGGLE_ENDPOINT")
    if endpoint:
        return endpoint.rstrip("/")
    env = os.environ.get("KAGGLE_API_ENVIRONMENT") or "PROD"
    if env not in ENVIRONMENTS:
        raise UsageError(f"unrecognised KAGGLE_API_ENVIRONMENT {env!r}")
    return ENVIRONMENTS[env]


def _config_dir() -> Path:
    return Path(os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle")


def credentials_header() -> dict[str, str]:
    """The Authorization header kagglesdk would send, or none (public models need none)."""
    token = os.environ.get("KAGGLE_API_TOKEN")
    if token and os.path.isfile(token):
        token = Path(token).read_text().strip()
    for name in ("access_token", "access_token.txt"):
        if not token and (_config_dir() / name).is_file():
            token = (_config_dir() / name).read_text().strip()
    if token:
        return {"Authorization": f"Bearer {token}"}
    user, key = os.environ.get("KAGGLE_USERNAME"), os.environ.get("KAGGLE_KEY")
    if not (user and key) and (_config_dir() / "kaggle.json").is_file():
        try:
            data = json.loads((_config_dir() / "kaggle.json").read_text())
            user, key = data.get("username"), data.get("key")
        except (ValueError, AttributeError):
            raise UsageError(f"{_config_dir() / 'kaggle.json'} is not valid JSON") from None
    if user and key:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()}
    return {}


def parse_goog_hash(header: str) -> dict[str, str]:
    """`x-goog-hash: crc32c=<b64>,md5=<b64>` as hex digests: md5 when present (as kagglehub checks), else crc32c."""
    found = {}
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        try:
            found[name] = base64.b64decode(value, validate=True).hex()
        except ValueError:
            continue
    if "md5" in found:
        return {"md5": found["md5"]}
    return {"crc32c": found["crc32c"]} if "crc32c" in found else {}


def kaggle_error(resp: requests.Response, what: str) -> HubmirrorError | None:
    """The error a Kaggle answer means: a failed status, or a JSON body whose `code` is ≥ 400 (even under a 200)."""
    code, message = resp.status_code, ""
    if "application/json" in resp.headers.get("Content-Type", ""):
        try:
            data = resp.json()
            if isinstance(data, dict) and isinstance(data.get("code"), int) and data["code"] >= 400:
                code, message = data["code"], str(data.get("message", ""))
        except ValueError:
            pass
    if code in (401, 403):
        return AccessDeniedError(f"{what}: Kaggle refused the credentials (HTTP {code}); check {CREDENTIALS_HINT}")
    if code == 404:
        return NotFoundError(f"{what}: not found on Kaggle (a private model needs {CREDENTIALS_HINT})")
    if code >= 400:
        return HubmirrorError(f"{what}: Kaggle answered HTTP {code}{': ' + message if message else ''}")
    return None


class KaggleSource(Source):
    name = "kaggle"
    description = "Kaggle Models (KAGGLE_API_TOKEN or KAGGLE_USERNAME/KAGGLE_KEY; KAGGLE_API_ENVIRONMENT)"

    def parse(self, spec: str) -> ModelRef:
        parts = spec.split("/")
        if len(parts) not in (4, 5) or not all(_SLUG.match(p) for p in parts) or \
                (len(parts) == 5 and not parts[4].isdigit()):
            raise UsageError(f"malformed reference kaggle:{spec}: expected kaggle:OWNER/MODEL/FRAMEWORK/VARIATION[/VERSION]")
        framework_enum(parts[2])
        return ModelRef(self.name, "/".join(parts[:4]), parts[4] if len(parts) == 5 else None)

    def rpc(self, ctx: SourceContext, method: str, body: dict, what: str,
            allow_redirects: bool = True) -> requests.Response:
        """POST one ModelApiService call, with Kaggle's errors mapped (see `kaggle_error`)."""
        return request(ctx.session(), "POST", f"{api_base(ctx)}/v1/models.ModelApiService/{method}", json=body,
                       headers=credentials_header(), timeout=ctx.timeout, allow_redirects=allow_redirects,
                       errors=lambda resp: kaggle_error(resp, what))

    @staticmethod
    def _instance_body(model_id: str) -> dict:
        owner, model, framework, variation = model_id.split("/")
        return {"ownerSlug": owner, "modelSlug": model, "framework": framework_enum(framework),
                "instanceSlug": variation}

    def resolve(self, ref: ModelRef, ctx: SourceContext) -> ResolvedRevision:
        body = self._instance_body(ref.model_id)
        instance = json_body(self.rpc(ctx, "GetModelInstance", body, str(ref)))
        version = int(ref.revision or instance.get("versionNumber") or 0)
        if version <= 0:
            raise NotFoundError(f"{ref}: Kaggle lists no version")
        files, token = [], ""
        while True:
            page = json_body(self.rpc(ctx, "ListModelInstanceVersionFiles",
                                      {**body, "versionNumber": version, "pageSize": 25, "pageToken": token}, str(ref)))
            files.extend(RemoteFile(f["name"], f.get("size")) for f in page.get("files") or [] if isinstance(f, dict))
            token = page.get("nextPageToken") or ""
            if not token:
                break
        owner, model, framework, variation = ref.model_id.split("/")
        overview = str(instance.get("overview") or "").strip()
        meta = ModelMetadata(
            source=self.name, model_id=ref.model_id, library=framework, license=instance.get("licenseName"),
            tags=[owner, model, framework, variation], description=overview.split("\n\n")[0][:1000] or None,
            extra={k: instance.get(k) for k in ("id", "url", "versionId", "totalUncompressedBytes", "modelInstanceType")},
        )
        return ResolvedRevision(ref, str(version), ref.revision or "latest", meta, files)

    def index(self, ctx: SourceContext, query: str | None = None, limit: int | None = None):
        token, count = "", 0
        while limit is None or count < limit:
            page = json_body(self.rpc(ctx, "ListModels", {"search": query or "", "pageSize": 50, "pageToken": token},
                                      "kaggle model listing"))
            for model in page.get("models") or []:
                owner, slug = model.get("author"), model.get("slug")
                for inst in model.get("instances") or []:
                    if limit is not None and count >= limit:
                        return
                    handle = f"{owner}/{slug}/{framework_slug(inst.get('framework', ''))}/{inst.get('slug')}"
                    count += 1
                    yield ModelMetadata(self.name, handle, library=framework_slug(inst.get("framework", "")),
                                        license=inst.get("licenseName"), tags=[owner, slug],
                                        description=inst.get("overview") or model.get("subtitle") or model.get("title"))
            token = page.get("nextPageToken") or ""
            if not token:
                return

    def open_file(self, revision: ResolvedRevision, file: RemoteFile, ctx: SourceContext, offset: int = 0) -> Download:
        body = {**self._instance_body(revision.ref.model_id), "versionNumber": int(revision.commit), "path": file.path}
        resp = self.rpc(ctx, "DownloadModelInstanceVersion", body, f"{revision.ref}: {file.path}",
                        allow_redirects=False)
        location = resp.headers.get("Location")
        resp.close()
        if resp.status_code not in (301, 302, 303) or not location:
            raise HubmirrorError(f"{revision.ref}: {file.path}: Kaggle did not redirect the download to storage")
        return open_range(ctx.session(), location, offset, timeout=ctx.timeout,
                          digests_from=lambda r: parse_goog_hash(r.headers.get("x-goog-hash", "")))


@hookimpl
def register_sources(register):
    register(KaggleSource())
