"""NVIDIA NGC models: `ngc:org/[team/]model[:version]` (the latest version when none is given).

Speaks the NGC REST API as the ngc CLI does for `ngc registry model download-version` (ngcsdk 4.37: `ngcbase/api/
authentication.py`, `connection.py`, `pagination.py`, `registry/api/models.py`, `ngcbase/transfer/async_download.py`),
and checks every file against its `sha256_base64` (which the CLI itself never reads). Endpoints: `--endpoint` or
`NGC_CLI_API_URL` (or `NGC_CLI_URL`), and `NGC_CLI_AUTH_URL`, as in the CLI. `{ot}` below is `org/{org}[/team/{team}]`,
`{og}` is `{org}[/{team}]`, `{base}` the API URL.

Authentication, as the CLI's `Authentication.auth_header`:
- a key in `NGC_CLI_API_KEY` / `NGC_API_KEY` / `NGC_APP_KEY` that is a scoped key (`nvapi-…`) or a JWT is sent as it is:
  `Authorization: Bearer <key>` (the CLI exchanges neither);
- any other key is first exchanged for a token, once per run and scope:
  `GET {auth}/token?service=ngc&scope=group/ngc:{org}[&scope=group/ngc:{org}/{team}]` (the scopes unencoded, as the
  CLI writes them) with `Authorization: Basic base64("$oauthtoken:" + key)`; then `Authorization: Bearer <token>`;
- with no key the CLI is in guest mode: `X-NGC-Guest-Token: <NGC_CLI_GUEST_TOKEN, else a uuid4 made once per run>`
  and the guest paths (`/v2/models/{og}/…` instead of `/v2/{ot}/models/…`).
Authenticated calls also carry `nv-ngc-org` (and `nv-ngc-team`) when `NGC_CLI_ORG` (`NGC_CONTEXT_ORG`) / `NGC_CLI_TEAM`
are set. Every API call carries `Content-Type: application/json` and `User-Agent: hubmirror/<version>` (the CLI:
`ngc-cli/<version> …`). Keys and tokens go to the auth and API hosts only, never to storage, never into the catalog.

The requests a pull sends, in order (guest form in brackets):

1. `GET {base}/v2/{ot}/models/{name}?resolve-labels=false` [`/v2/models/{og}/{name}?resolve-labels=false`]:
   `ModelAPI.get`; `latestVersionIdStr` is the version when none is given.
2. `GET {base}/v2/{ot}/models/{name}/versions/{ver}` [`/v2/models/{og}/{name}/versions/{ver}`]: `get_version`; a
   version whose status is not `UPLOAD_COMPLETE` is refused, as the CLI refuses it.
3. `GET {base}/v2/{ot}/models/{name}/versions/{ver}/files?page-size=500`, then `…&page-number=N` for N = 1 … totalPages
   − 1 [`/v2/models/{og}/{name}/versions/{ver}/files…`]: `list_files` through `pagination_helper_page_reference_iter_
   total_pages`; each file's `path`, `sizeInBytes` and `sha256_base64`.
4. Per file: `GET {base}/v2/{ot}/models/{name}/{ver}/files?path=<urlencoded path>` [`/v2/models/{ot}/{name}/{ver}/
   files?path=…`]: the download-URL request the CLI makes per file when a download is filtered
   (`_iter_download_items`, not paginated); the answer's `urls[0]` is a presigned storage URL.
5. Per file: `GET <presigned URL>`, no auth headers, `Range: bytes=N-` only to resume. The CLI fetches the same URL in
   closed `Range: bytes=a-b` chunks over several connections; hubmirror reads it in one stream per file (one request
   instead of size/chunk, the same bytes), through `hubmirror.api.open_range`, which resumes.

`index ngc`: `GET {base}/v2/search/catalog/resources/MODEL?q=<JSON>` for pages 0, 1, … until `resultPageTotal` (the
CLI's `pagination_helper_search`), with the CLI's own `q` (`json.dumps(…, sort_keys=True)`: `fields`, `filters: []`,
`orderBy: [{field: score, value: ASC}]`, `page`, `pageSize: 100`, `query: "resourceId:<glob>"`, `queryFields`), the glob
`*` or `*<query>*`; the guest search of `ngc registry model list`.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import threading
import uuid
from urllib.parse import quote, urlencode

import requests

from hubmirror.api import (
    AccessDeniedError,
    Download,
    HubmirrorError,
    ModelMetadata,
    ModelRef,
    NotFoundError,
    RemoteFile,
    ResolvedRevision,
    Source,
    SourceContext,
    UsageError,
    hookimpl,
    open_range,
    request_json,
)

DEFAULT_API = "https://api.ngc.nvidia.com"
DEFAULT_AUTH = "https://authn.nvidia.com"
KEY_VARIABLES = ("NGC_CLI_API_KEY", "NGC_API_KEY", "NGC_APP_KEY")
SCOPED_KEY_PREFIX = "nvapi-"
PAGE_SIZE = 500  # ngcbase.constants.PAGE_SIZE
SEARCH_PAGE_SIZE = 100  # ngcbase.api.search.SEARCH_DEFAULT_PAGE_SIZE
SEARCH_QUERY_FIELDS = ["name", "displayName", "description", "all"]
SEARCH_FIELDS = ["attributes", "createdBy", "dateCreated", "dateModified", "description", "displayName",
                 "guestAccess", "isPublic", "labels", "latestVersionId", "name", "orgName", "sharedWithOrgs",
                 "sharedWithTeams", "teamName"]
_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*\Z")
_JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\Z")
_GUEST_TOKEN = str(uuid.uuid4())  # the CLI keeps one per installation; hubmirror writes nothing, so one per run


def api_key() -> str | None:
    return next((os.environ[v] for v in KEY_VARIABLES if os.environ.get(v)), None)


def used_directly(key: str) -> bool:
    """A scoped key or a JWT goes to the API as the bearer token itself; the CLI exchanges only legacy keys."""
    return key.startswith(SCOPED_KEY_PREFIX) or bool(_JWT.match(key))


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


def ngc_error(resp: requests.Response, what: str, with_key: bool) -> HubmirrorError | None:
    """The error a failed NGC API answer means, with its `requestStatus` description."""
    code = resp.status_code
    if code < 400:
        return None
    detail = _status_description(resp)
    detail = f" ({detail})" if detail else ""
    if code in (401, 403):
        hint = "check" if with_key else "set"
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
        self._tokens: dict[tuple[str, str, str | None], str] = {}
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

    # -- authentication ------------------------------------------------------------------------------------------------

    def _token(self, ctx: SourceContext, key: str, org: str | None, team: str | None) -> str:
        """The bearer token for `key`: the key itself when the CLI uses it so, else one exchanged for the (org, team)
        scope, cached for the run."""
        if used_directly(key):
            return key
        cache_key = (key, org or "", team)
        with self._lock:
            if cache_key in self._tokens:
                return self._tokens[cache_key]
            auth = (os.environ.get("NGC_CLI_AUTH_URL") or DEFAULT_AUTH).rstrip("/")
            scopes = [f"group/ngc:{org}"] + ([f"group/ngc:{org}/{team}"] if team else []) if org else []
            url = f"{auth}/token?service=ngc&" + "&".join(f"scope={s}" for s in scopes)
            basic = base64.b64encode(f"$oauthtoken:{key}".encode()).decode()
            answer = request_json(ctx.session(), "GET", url, timeout=ctx.timeout, errors=token_exchange_error,
                                  headers={"Authorization": f"Basic {basic}", "Content-Type": "application/json"})
            token = answer.get("token") if isinstance(answer, dict) else None
            if not token:
                raise HubmirrorError("NGC token exchange answered no token")
            self._tokens[cache_key] = token
            return token

    def _headers(self, ctx: SourceContext, org: str | None, team: str | None) -> dict[str, str]:
        """The headers the CLI's `auth_header` and `default_headers` put on an API call for the (org, team) scope."""
        headers = {"Content-Type": "application/json"}  # and the session's User-Agent: hubmirror/<version>
        key = api_key()
        if key is None:
            headers["X-NGC-Guest-Token"] = os.environ.get("NGC_CLI_GUEST_TOKEN") or _GUEST_TOKEN
            return headers
        headers["Authorization"] = f"Bearer {self._token(ctx, key, org, team)}"
        config_org = os.environ.get("NGC_CLI_ORG") or os.environ.get("NGC_CONTEXT_ORG")
        if config_org:
            headers["nv-ngc-org"] = config_org
            if os.environ.get("NGC_CLI_TEAM"):
                headers["nv-ngc-team"] = os.environ["NGC_CLI_TEAM"]
        return headers

    def _get(self, ctx: SourceContext, org: str | None, team: str | None, path: str, what: str) -> dict:
        """GET an API path (already quoted, query included) with the CLI's headers for the (org, team) scope."""
        answer = request_json(ctx.session(), "GET", f"{self._base(ctx)}{path}", headers=self._headers(ctx, org, team),
                              timeout=ctx.timeout,
                              errors=lambda resp: ngc_error(resp, what, with_key=api_key() is not None))
        if not isinstance(answer, dict):
            raise HubmirrorError(f"{what}: NGC answered something that is not a JSON object")
        return answer

    # -- paths ---------------------------------------------------------------------------------------------------------

    @classmethod
    def _model_path(cls, target: str) -> str:
        """`/v2/{ot}/models/{name}`, or the guest `/v2/models/{og}/{name}` without a key (quoted as the CLI's
        `_safe_quote` does)."""
        org, team, name = cls._scope(target)
        if api_key() is None:
            return quote("/v2/models/" + "/".join(p for p in (org, team, name) if p))
        return quote(f"/v2/org/{org}" + (f"/team/{team}" if team else "") + f"/models/{name}")

    @classmethod
    def _download_urls_path(cls, target: str, version: str) -> str:
        """`/v2/{ot}/models/{name}/{ver}/files`, or the guest `/v2/models/{ot}/{name}/{ver}/files`."""
        org, team, name = cls._scope(target)
        ot = f"org/{org}" + (f"/team/{team}" if team else "")
        return quote(f"/v2/models/{ot}/{name}/{version}/files" if api_key() is None
                     else f"/v2/{ot}/models/{name}/{version}/files")

    # -- the source ----------------------------------------------------------------------------------------------------

    def resolve(self, ref: ModelRef, ctx: SourceContext) -> ResolvedRevision:
        org, team, _ = self._scope(ref.model_id)
        base = self._model_path(ref.model_id)
        model = self._get(ctx, org, team, f"{base}?resolve-labels=false", str(ref)).get("model") or {}
        version = ref.revision or model.get("latestVersionIdStr")
        if not version:
            raise NotFoundError(f"{ref}: NGC lists no version")
        versioned = f"{base}/versions/{quote(version)}"
        status = (self._get(ctx, org, team, versioned, str(ref)).get("modelVersion") or {}).get("status")
        if status != "UPLOAD_COMPLETE":
            raise HubmirrorError(f"{ref}: version {version} is not complete on NGC (status {status})")
        files, page, listing = [], 0, f"{versioned}/files?{urlencode({'page-size': PAGE_SIZE})}"
        while True:
            answer = self._get(ctx, org, team, listing if page == 0 else f"{listing}&page-number={page}", str(ref))
            for f in answer.get("modelFiles") or []:
                what = f"{ref}: {f.get('path')}"
                files.append(RemoteFile(f["path"], f.get("sizeInBytes"),
                                        {"sha256": sha256_hex(str(f.get("sha256_base64")), what)}))
            page += 1
            if page >= int((answer.get("paginationInfo") or {}).get("totalPages") or 1):
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
        org, team, _ = self._scope(revision.ref.model_id)
        path = f"{self._download_urls_path(revision.ref.model_id, revision.commit)}?{urlencode({'path': file.path})}"
        answer = self._get(ctx, org, team, path, f"{revision.ref}: {file.path}")
        urls = answer.get("urls") or ([answer["url"]] if answer.get("url") else [])
        if not urls:
            raise HubmirrorError(f"{revision.ref}: {file.path}: NGC gave no download URL")
        return open_range(ctx.session(), urls[0], offset, timeout=ctx.timeout)

    def index(self, ctx: SourceContext, query: str | None = None, limit: int | None = None):
        page, count = 0, 0
        org = os.environ.get("NGC_CLI_ORG") or os.environ.get("NGC_CONTEXT_ORG")
        team = os.environ.get("NGC_CLI_TEAM")
        while True:
            q = {"query": f"resourceId:*{query}*" if query else "resourceId:*", "filters": [],
                 "queryFields": SEARCH_QUERY_FIELDS, "fields": SEARCH_FIELDS, "pageSize": SEARCH_PAGE_SIZE,
                 "orderBy": [{"field": "score", "value": "ASC"}], "page": page}
            answer = self._get(ctx, org, team if org else None, "/v2/search/catalog/resources/MODEL?" +
                               urlencode({"q": json.dumps(q, sort_keys=True)}), "ngc model search")
            for group in answer.get("results") or []:
                for res in group.get("resources") or []:
                    if limit is not None and count >= limit:
                        return
                    count += 1
                    labels = [v for label in res.get("labels") or [] for v in label.get("values") or []]
                    yield ModelMetadata(self.name, res["resourceId"], tags=labels, description=res.get("description"),
                                        extra={"displayName": res.get("displayName")})
            page += 1
            if not answer.get("resultPageTotal") or page >= int(answer["resultPageTotal"]):
                return


@hookimpl
def register_sources(register):
    register(NgcSource())
