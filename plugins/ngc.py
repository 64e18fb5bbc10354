"""NVIDIA NGC models: `ngc:org/[team/]model[:version]` (the latest version when none is given).

Speaks the NGC REST API: model and version metadata, the file listing with each file's `sha256_base64` (checked on
every file — the ngc CLI itself never reads it), and presigned download URLs fetched with Range. With
`NGC_CLI_API_KEY` / `NGC_API_KEY` / `NGC_APP_KEY` set, the key is exchanged for a bearer token at the auth service
(`$oauthtoken` basic auth) first; public models need no key. Endpoints: `--endpoint` or `NGC_CLI_API_URL`, and
`NGC_CLI_AUTH_URL`, as in the ngc CLI.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import threading
from urllib.parse import quote

import requests

from hubmirror.errors import (
    AccessDeniedError,
    HubmirrorError,
    NotFoundError,
    UsageError,
)
from hubmirror.hookspecs import hookimpl
from hubmirror.http import open_range, request_json
from hubmirror.records import ModelMetadata, ModelRef, RemoteFile, ResolvedRevision
from hubmirror.sources import Download, Source, SourceContext

DEFAULT_API = "https://api.ngc.nvidia.com"
DEFAULT_AUTH = "https://authn.nvidia.com"
KEY_VARIABLES = ("NGC_CLI_API_KEY", "NGC_API_KEY", "NGC_APP_KEY")
_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*$")


def api_key() -> str | None:
    return next((os.environ[v] for v in KEY_VARIABLES if os.environ.get(v)), None)


def sha256_hex(sha256_base64: str, what: str) -> str:
    """NGC's base64 sha256 as the hex digest hubmirror compares."""
    try:
        raw = base64.b64decode(sha256_base64, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise HubmirrorError(f"{what}: NGC published a malformed sha256_base64 {sha256_base64!r}")
    return raw.hex()


def _status_description(resp: requests.Response) -> str:
    """The `requestStatus.statusDescription` NGC puts in its error bodies, or ''."""
    try:
        status = resp.json().get("requestStatus") or {}
        return " ".join(str(status.get("statusDescription") or "").split())[:200]
    except (ValueError, AttributeError):
        return ""


def ngc_error(resp: requests.Response, what: str, with_token: bool) -> HubmirrorError | None:
    """The error a failed NGC API answer means, with its `requestStatus` description."""
    code = resp.status_code
    if code < 400:
        return None
    detail = _status_description(resp)
    detail = f" ({detail})" if detail else ""
    if code in (401, 403):
        hint = "check" if with_token else "set"
        return AccessDeniedError(f"{what}: NGC refused access (HTTP {code}){detail}; {hint} "
                                 f"{' / '.join(KEY_VARIABLES)}")
    if code == 404:
        return NotFoundError(f"{what}: not found on NGC{detail}")
    return HubmirrorError(f"{what}: NGC answered HTTP {code}{detail}")


def token_exchange_error(resp: requests.Response) -> HubmirrorError | None:
    """The error a failed key-for-token exchange means (the key itself is never shown)."""
    if resp.status_code in (401, 403):
        return AccessDeniedError(f"NGC refused the API key (HTTP {resp.status_code}); check "
                                 f"{' / '.join(KEY_VARIABLES)}")
    if resp.status_code >= 400:
        return HubmirrorError(f"NGC token exchange failed (HTTP {resp.status_code})")
    return None


class NgcSource(Source):
    name = "ngc"
    description = "NVIDIA NGC models (NGC_CLI_API_KEY / NGC_API_KEY; NGC_CLI_API_URL, NGC_CLI_AUTH_URL)"

    def __init__(self):
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()

    def parse(self, spec: str) -> ModelRef:
        target, _, version = spec.partition(":")
        parts = target.split("/")
        if len(parts) not in (2, 3) or not all(_NAME.match(p) for p in parts) or (version and not _NAME.match(version)):
            raise UsageError(f"malformed reference ngc:{spec}: expected ngc:ORG/[TEAM/]MODEL[:VERSION]")
        return ModelRef(self.name, target, version or None)

    @staticmethod
    def _base(ctx: SourceContext) -> str:
        return (ctx.endpoint or os.environ.get("NGC_CLI_API_URL") or os.environ.get("NGC_CLI_URL") or DEFAULT_API).rstrip("/")

    @staticmethod
    def _scope(target: str) -> tuple[str, str | None, str]:
        parts = target.split("/")
        return (parts[0], None, parts[1]) if len(parts) == 2 else (parts[0], parts[1], parts[2])

    def _token(self, ctx: SourceContext, org: str, team: str | None) -> str | None:
        """A bearer token for the org (and team), from the key; cached for the run. None without a key."""
        key = api_key()
        if key is None:
            return None
        cache_key = f"{org}/{team}"
        with self._lock:
            if cache_key in self._tokens:
                return self._tokens[cache_key]
            auth = (os.environ.get("NGC_CLI_AUTH_URL") or DEFAULT_AUTH).rstrip("/")
            scopes = "&".join(f"scope={quote(s, safe='')}" for s in
                              [f"group/ngc:{org}"] + ([f"group/ngc:{org}/{team}"] if team else []))
            url = f"{auth}/token?service=ngc&{scopes}"
            basic = base64.b64encode(f"$oauthtoken:{key}".encode()).decode()
            answer = request_json(ctx.session(), "GET", url, headers={"Authorization": f"Basic {basic}"},
                                  timeout=ctx.timeout, errors=token_exchange_error)
            token = answer.get("token") if isinstance(answer, dict) else None
            if not token:
                raise HubmirrorError("NGC token exchange answered no token")
            self._tokens[cache_key] = token
            return token

    def _get(self, ctx: SourceContext, scope: tuple[str, str | None] | None, path: str, what: str) -> dict:
        """GET an API path, with a token for the (org, team) scope when a key is set."""
        token = self._token(ctx, *scope) if scope else None
        return request_json(ctx.session(), "GET", f"{self._base(ctx)}{path}",
                            headers={"Authorization": f"Bearer {token}"} if token else {}, timeout=ctx.timeout,
                            errors=lambda resp: ngc_error(resp, what, with_token=token is not None))

    @classmethod
    def _models_path(cls, target: str) -> str:
        org, team, name = cls._scope(target)
        return f"/v2/org/{org}" + (f"/team/{team}" if team else "") + f"/models/{name}"

    def resolve(self, ref: ModelRef, ctx: SourceContext) -> ResolvedRevision:
        base = self._models_path(ref.model_id)
        scope = self._scope(ref.model_id)[:2]
        model = self._get(ctx, scope, f"{base}?resolve-labels=false", str(ref)).get("model") or {}
        version = ref.revision or model.get("latestVersionIdStr")
        if not version:
            raise NotFoundError(f"{ref}: NGC lists no version")
        files, page = [], 0
        while True:
            listing = self._get(ctx, scope,
                                f"{base}/versions/{quote(version)}/files?page-size=500&page-number={page}", str(ref))
            for f in listing.get("modelFiles") or []:
                what = f"{ref}: {f.get('path')}"
                files.append(RemoteFile(f["path"], f.get("sizeInBytes"),
                                        {"sha256": sha256_hex(str(f.get("sha256_base64")), what)}))
            info = listing.get("paginationInfo") or {}
            page += 1
            if page >= int(info.get("totalPages") or 1):
                break
        labels = model.get("labels") or []
        meta = ModelMetadata(
            source=self.name, model_id=ref.model_id, task=model.get("application"), library=model.get("framework"),
            tags=[str(label) for label in labels] + [t for t in (model.get("precision"),) if t],
            description=model.get("shortDescription") or model.get("description"),
            extra={k: model.get(k) for k in ("displayName", "orgName", "teamName", "precision", "isPublic",
                                             "latestVersionIdStr", "builtBy", "publisher")},
        )
        return ResolvedRevision(ref, version, ref.revision or "latest", meta, files)

    def open_file(self, revision: ResolvedRevision, file: RemoteFile, ctx: SourceContext, offset: int = 0) -> Download:
        answer = self._get(ctx, self._scope(revision.ref.model_id)[:2],
                           f"{self._models_path(revision.ref.model_id)}/{quote(revision.commit)}/files?path="
                           f"{quote(file.path)}", f"{revision.ref}: {file.path}")
        urls = answer.get("urls") or ([answer["url"]] if answer.get("url") else [])
        if not urls:
            raise HubmirrorError(f"{revision.ref}: {file.path}: NGC gave no download URL")
        return open_range(ctx.session(), urls[0], offset, timeout=ctx.timeout)

    def index(self, ctx: SourceContext, query: str | None = None, limit: int | None = None):
        page, count = 0, 0
        while True:
            q = {"query": f"{query}*" if query else "resourceId:*", "filters": [], "pageSize": 100, "page": page,
                 "queryFields": ["name", "displayName", "description", "all"], "orderBy": []}
            org = os.environ.get("NGC_CLI_ORG")
            answer = self._get(ctx, (org, None) if org else None,
                               f"/v2/search/catalog/resources/MODEL?q={quote(json.dumps(q))}", "ngc model search")
            for group in answer.get("results") or []:
                for res in group.get("resources") or []:
                    if limit is not None and count >= limit:
                        return
                    count += 1
                    labels = [v for label in res.get("labels") or [] for v in label.get("values") or []]
                    yield ModelMetadata(self.name, res["resourceId"], tags=labels, description=res.get("description"),
                                        extra={"displayName": res.get("displayName")})
            page += 1
            if page >= int(answer.get("resultPageTotal") or 1):
                return


@hookimpl
def register_sources(register):
    register(NgcSource())
