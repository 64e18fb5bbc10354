"""Kaggle Models: `kaggle:owner/model/framework/variation[/version]` (the latest version when none is given).

Every Kaggle API call goes through kagglesdk itself (`KaggleClient().models.model_api_client`, the client kagglehub
≥ 0.4 and the kaggle 2.x CLI use), so the wire format is kagglesdk's: its URL, its camelCase JSON (fields at their
default value left out, framework enums by name), its headers and its auth. Requests a pull and an index send, in order:

1. `POST {base}/v1/models.ModelApiService/GetModelInstance` `{ownerSlug, modelSlug, framework, instanceSlug}`:
   kagglesdk `get_model_instance`. kagglehub (`_get_current_version`) makes it for a handle without a version;
   hubmirror always does, for the licence and overview.
2. `POST {base}/v1/models.ModelApiService/ListModelInstanceVersionFiles` `{…, versionNumber, pageSize: 25}`, then
   `{…, pageToken}` for the next pages: `list_model_instance_version_files` (kagglehub `_list_model_files` asks for
   25; the kaggle CLI pages on with `pageToken`).
3. Per file, `POST {base}/v1/models.ModelApiService/DownloadModelInstanceVersion` `{…, versionNumber, path}` → 302:
   `download_model_instance_version`, kagglehub's per-file download.
4. Per file, `GET <signed storage URL>`, the 302's target, followed by kagglesdk inside call 3 (requests drops the
   `Authorization` off the API host).
5. Only to resume a file cut off at byte N: call 3 again (its answer is closed unread), then `GET <signed storage
   URL>` with `Range: bytes=N-` — kagglehub `download_file`'s resume request, to the post-redirect URL.
6. `index` only: `POST {base}/v1/models.ModelApiService/ListModels` `{pageSize: 50[, search][, pageToken]}`:
   `list_models`, as the kaggle CLI's `models list`.

Headers on calls 1–3 and 6 (kagglesdk's session): `Content-Type: application/json`, `User-Agent: hubmirror/<v>
kagglesdk/<v>` (kagglehub sends `kagglehub/<v>` in that place), and `Authorization: Bearer <token>` or HTTP Basic
`username:key` when credentials exist (public models need none).

`{base}` is `--endpoint` or `HUBMIRROR_KAGGLE_ENDPOINT` (an API base such as `https://api.kaggle.com`, which kagglesdk
cannot be told by itself), else what `KAGGLE_API_ENVIRONMENT` selects in kagglesdk (`PROD` → https://api.kaggle.com,
`TEST` → http://localhost:7777/api, …). Credentials, as kagglehub reads them: kagglesdk's access token
(`KAGGLE_API_TOKEN`, a token or a file, then `~/.kaggle/access_token`), then `KAGGLE_USERNAME` + `KAGGLE_KEY`, then
`kaggle.json` in `KAGGLE_CONFIG_DIR` or `~/.kaggle`. They go to the API only and are never stored or printed.

Bytes: kagglesdk's download call always follows the 302 itself and reads from byte 0 — it has no way to send a
Range — so a fresh file is streamed straight from that answer (no extra request), and a resume makes kagglehub's own
second request (5) through hubmirror's `open_range` on the signed URL (it checks the 206's Content-Range and falls back
to byte 0 on a 200 or 416). Each file's md5 from storage's `x-goog-hash` (crc32c when there is no md5, as for
composite objects) is checked besides our sha256.

kagglesdk sets no timeout and retries nothing, so its session gets hubmirror's connect/read timeout (an adapter) and
each call is retried on 429/5xx and transport failures under hubmirror's retry policy (they only read). Two private
kagglesdk attributes are set for that, `KaggleHttpClient._endpoint` (an arbitrary base) and `._session` (the adapter);
the dependency is pinned below 0.2 accordingly.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
from pathlib import Path

import requests

from hubmirror.api import (
    RETRY_STATUSES,
    AccessDeniedError,
    Download,
    HubmirrorError,
    ModelMetadata,
    ModelRef,
    NotFoundError,
    RemoteFile,
    ResolvedRevision,
    Retrier,
    Source,
    SourceContext,
    TransferBrokenError,
    UsageError,
    __version__,
    describe_network_error,
    hookimpl,
    open_range,
    retry_after_seconds,
    retry_policy,
)

CREDENTIALS_HINT = "KAGGLE_API_TOKEN, or KAGGLE_USERNAME and KAGGLE_KEY, or ~/.kaggle/kaggle.json"
FILES_PAGE_SIZE = 25  # what kagglehub asks for
MODELS_PAGE_SIZE = 50
CHUNK_SIZE = 1024 * 1024
_SLUG = re.compile(r"^[A-Za-z0-9][\w.-]*\Z")


def _model_framework():
    """kagglesdk's ModelFramework enum (imported on first use: kagglesdk takes ~0.2 s to import)."""
    from kagglesdk.models.types.model_enums import ModelFramework

    return ModelFramework


def framework_enum(framework: str):
    """The ModelFramework member a handle's framework names, tolerant of case (`pyTorch`, `PyTorch`, `Keras`), as
    kagglehub's `to_enum` matches it."""
    letters = re.sub(r"[^A-Z0-9]", "", framework.upper())
    for member in _model_framework():
        if member.name != "MODEL_FRAMEWORK_UNSPECIFIED" and \
                member.name.removeprefix("MODEL_FRAMEWORK_").replace("_", "") == letters:
            return member
    raise UsageError(f"unknown Kaggle framework {framework!r}")


def framework_slug(member) -> str:
    """The handle form of a framework enum member (MODEL_FRAMEWORK_PY_TORCH -> pyTorch), as kagglehub writes it."""
    name = getattr(member, "name", str(member))
    words = name.removeprefix("MODEL_FRAMEWORK_").lower().split("_")
    return words[0] + "".join(w.capitalize() for w in words[1:])


def _config_dir() -> Path:
    return Path(os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle")


def credentials() -> tuple[str | None, str | None, str | None]:
    """(access token, username, key) as kagglehub's `get_kaggle_credentials` finds them; all None for none."""
    from kagglesdk.kaggle_env import get_access_token_from_env

    token, _ = get_access_token_from_env()
    if token:
        return token, None, None
    user, key = os.environ.get("KAGGLE_USERNAME"), os.environ.get("KAGGLE_KEY")
    if user and key:
        return None, user, key
    path = _config_dir() / "kaggle.json"
    if path.is_file():
        try:
            data = json.loads(path.read_text())
            user, key = data["username"], data["key"]
        except (ValueError, KeyError, TypeError):
            raise UsageError(f"{path} is not a Kaggle credentials file ({{\"username\": …, \"key\": …}})") from None
        return None, user, key
    return None, None, None


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


def kaggle_error(resp: requests.Response | None, what: str) -> HubmirrorError | None:
    """The error a Kaggle answer means: a failed status, or a JSON body whose `code` is ≥ 400 (even under a 200, as
    kagglesdk's `_prepare_response` reads it)."""
    if resp is None:
        return None
    code, message = resp.status_code, ""
    if "application/json" in resp.headers.get("Content-Type", ""):
        try:
            data = resp.json()
            if isinstance(data, dict) and isinstance(data.get("code"), int) and data["code"] >= 400:
                code = data["code"]
            if isinstance(data, dict):
                message = " ".join(str(data.get("message") or "").split())[:200]
        except ValueError:
            pass
    if code in (401, 403):
        return AccessDeniedError(f"{what}: Kaggle refused the credentials (HTTP {code}); check {CREDENTIALS_HINT}")
    if code == 404:
        return NotFoundError(f"{what}: not found on Kaggle (a private model needs {CREDENTIALS_HINT})")
    if code >= 400:
        return HubmirrorError(f"{what}: Kaggle answered HTTP {code}{': ' + message if message else ''}")
    return None


class _TimeoutAdapter(requests.adapters.HTTPAdapter):
    """Gives kagglesdk's requests (which set no timeout) hubmirror's connect and read timeout, so a stalled API call
    or storage stream fails (and is retried or resumed) instead of hanging."""

    def __init__(self, timeout: float):
        super().__init__(pool_connections=4, pool_maxsize=16)
        self.timeout = timeout

    def send(self, request, **kwargs):
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


def _transient(exc: requests.RequestException) -> bool:
    """A transport failure worth another try (refused, reset, timed out), not a bad URL, certificate or loop."""
    if isinstance(exc, (requests.exceptions.SSLError, requests.exceptions.TooManyRedirects,
                        requests.exceptions.InvalidURL, requests.exceptions.MissingSchema)):
        return False
    return isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                            requests.exceptions.ChunkedEncodingError))


def _guarded(chunks, what: str):
    """The body's chunks, with a broken connection turned into a `TransferBrokenError` (the core resumes it from the
    bytes held, as for `open_range`'s streams)."""
    try:
        yield from chunks
    except (requests.RequestException, ConnectionError, TimeoutError) as exc:
        reason = type(exc).__name__
        raise TransferBrokenError(f"{what}: the transfer broke off ({reason})", reason) from exc


class KaggleSource(Source):
    name = "kaggle"
    description = "Kaggle Models (KAGGLE_API_TOKEN or KAGGLE_USERNAME/KAGGLE_KEY; KAGGLE_API_ENVIRONMENT)"

    def __init__(self):
        self._local = threading.local()  # one kagglesdk client (one requests session) per thread and settings

    def parse(self, spec: str) -> ModelRef:
        parts = spec.split("/")
        if len(parts) not in (4, 5) or not all(_SLUG.match(p) for p in parts) or \
                (len(parts) == 5 and not parts[4].isdigit()):
            raise UsageError(f"malformed reference kaggle:{spec}: expected kaggle:OWNER/MODEL/FRAMEWORK/VARIATION[/VERSION]")
        framework_enum(parts[2])
        return ModelRef(self.name, "/".join(parts[:4]), parts[4] if len(parts) == 5 else None)

    # -- kagglesdk -----------------------------------------------------------------------------------------------------

    def client(self, ctx: SourceContext):
        """This thread's kagglesdk `KaggleClient` for the current endpoint and credentials."""
        import kagglesdk
        from kagglesdk import KaggleClient
        from kagglesdk.kaggle_env import KaggleEnv, get_env

        endpoint = (ctx.endpoint or os.environ.get("HUBMIRROR_KAGGLE_ENDPOINT") or "").rstrip("/")
        try:
            env = KaggleEnv.PROD if endpoint else get_env()
        except Exception as exc:  # noqa: BLE001 - kagglesdk: a bare Exception for an unknown KAGGLE_API_ENVIRONMENT
            raise UsageError(str(exc)) from None
        token, user, key = credentials()
        timeout = retry_policy().timeout or ctx.timeout
        settings = (endpoint, env, token, user, key, timeout)
        clients = self._local.__dict__.setdefault("clients", {})
        if settings not in clients:
            client = KaggleClient(env=env, username=user, password=key, api_token=token,
                                  user_agent=f"hubmirror/{__version__} kagglesdk/{kagglesdk.__version__}")
            if endpoint:
                # In PROD form kagglesdk posts to {endpoint}/v1/{service}/{method}; the endpoint is the API base.
                client.http_client()._endpoint = endpoint
            try:
                client.__enter__()  # opens its session: headers and auth as kagglesdk sets them
            except Exception as exc:  # noqa: BLE001 - a bare Exception, e.g. no KAGGLE_IAP_TOKEN for STAGING
                raise UsageError(f"Kaggle client: {exc}") from None
            session = client.http_client()._session
            for prefix in ("http://", "https://"):
                session.mount(prefix, _TimeoutAdapter(timeout))
            for old in clients.values():  # settings changed (another token, endpoint): the old session goes
                old.__exit__(None, None, None)
            clients.clear()
            clients[settings] = client
        return clients[settings]

    def call(self, ctx: SourceContext, what: str, method: str, request):
        """One ModelApiService call through kagglesdk, with its failures as one-line hubmirror errors. These calls
        only read, so 429/5xx answers and transport failures are tried again under hubmirror's retry policy
        (`hubmirror.api.Retrier`), as `request(..., idempotent=True)` would."""
        api = self.client(ctx).models.model_api_client
        retrier = Retrier(f"Kaggle {method}: {what}")
        while True:
            try:
                return getattr(api, method)(request)
            except requests.HTTPError as exc:
                resp = exc.response
                error = kaggle_error(resp, what) or HubmirrorError(f"{what}: Kaggle answered {exc}")
                if resp is None or resp.status_code not in RETRY_STATUSES:
                    raise error from None
                retrier.retry(error, f"HTTP {resp.status_code}",
                              retry_after=retry_after_seconds(resp.headers.get("Retry-After")))
            except requests.RequestException as exc:
                url = getattr(exc.request, "url", None) or "the Kaggle API"
                error = describe_network_error(url, exc)
                if not _transient(exc):
                    raise error from exc
                retrier.retry(error, type(exc).__name__)
            except ValueError as exc:  # an answer kagglesdk cannot parse
                raise HubmirrorError(f"{what}: Kaggle answered something kagglesdk cannot read ({exc})") from None

    @staticmethod
    def _fill(request, model_id: str, version: int | None = None):
        owner, model, framework, variation = model_id.split("/")
        request.owner_slug, request.model_slug, request.instance_slug = owner, model, variation
        request.framework = framework_enum(framework)
        if version is not None:
            request.version_number = version
        return request

    # -- the source ------------------------------------------------------------------------------------------------

    def resolve(self, ref: ModelRef, ctx: SourceContext) -> ResolvedRevision:
        from kagglesdk.models.types.model_api_service import (
            ApiGetModelInstanceRequest,
            ApiListModelInstanceVersionFilesRequest,
        )

        instance = self.call(ctx, str(ref), "get_model_instance",
                             self._fill(ApiGetModelInstanceRequest(), ref.model_id))
        version = int(ref.revision or instance.version_number or 0)
        if version <= 0:
            raise NotFoundError(f"{ref}: Kaggle lists no version")
        files, token = [], ""
        while True:
            request = self._fill(ApiListModelInstanceVersionFilesRequest(), ref.model_id, version)
            request.page_size = FILES_PAGE_SIZE
            if token:
                request.page_token = token
            page = self.call(ctx, str(ref), "list_model_instance_version_files", request)
            files.extend(RemoteFile(f.name, f.size if f.size else None) for f in page.files)
            token = page.next_page_token
            if not token:
                break
        owner, model, framework, variation = ref.model_id.split("/")
        overview = instance.overview.strip()
        meta = ModelMetadata(
            source=self.name, model_id=ref.model_id, library=framework, license=instance.license_name or None,
            tags=[owner, model, framework, variation], description=overview.split("\n\n")[0][:1000] or None,
            extra={"id": instance.id, "url": instance.url, "versionId": instance.version_id,
                   "totalUncompressedBytes": instance.total_uncompressed_bytes,
                   "modelInstanceType": instance.model_instance_type.name},
        )
        return ResolvedRevision(ref, str(version), ref.revision or "latest", meta, files)

    def index(self, ctx: SourceContext, query: str | None = None, limit: int | None = None):
        from kagglesdk.models.types.model_api_service import ApiListModelsRequest

        token, count = "", 0
        while limit is None or count < limit:
            request = ApiListModelsRequest()
            request.page_size = MODELS_PAGE_SIZE
            if query:
                request.search = query
            if token:
                request.page_token = token
            page = self.call(ctx, "kaggle model listing", "list_models", request)
            for model in page.models:
                for inst in model.instances:
                    if limit is not None and count >= limit:
                        return
                    library = framework_slug(inst.framework)
                    count += 1
                    yield ModelMetadata(self.name, f"{model.author}/{model.slug}/{library}/{inst.slug}",
                                        library=library, license=inst.license_name or None,
                                        tags=[model.author, model.slug],
                                        description=inst.overview or model.subtitle or model.title or None)
            token = page.next_page_token
            if not token:
                return

    def open_file(self, revision: ResolvedRevision, file: RemoteFile, ctx: SourceContext, offset: int = 0) -> Download:
        from kagglesdk.models.types.model_api_service import ApiDownloadModelInstanceVersionRequest

        what = f"{revision.ref}: {file.path}"
        request = self._fill(ApiDownloadModelInstanceVersionRequest(), revision.ref.model_id, int(revision.commit))
        request.path = file.path
        resp = self.call(ctx, what, "download_model_instance_version", request)  # the storage answer, streaming
        if not resp.history:
            resp.close()
            raise HubmirrorError(f"{what}: Kaggle did not redirect the download to storage")
        if offset and resp.headers.get("Accept-Ranges") == "bytes":
            url = resp.url  # the signed URL, as kagglehub resumes from it
            resp.close()
            return open_range(ctx.session(), url, offset, timeout=ctx.timeout,
                              errors=lambda r: kaggle_error(r, what),
                              digests_from=lambda r: parse_goog_hash(r.headers.get("x-goog-hash", "")))
        return Download(0, _guarded(resp.iter_content(CHUNK_SIZE), what), resp.close,
                        parse_goog_hash(resp.headers.get("x-goog-hash", "")))


@hookimpl
def register_sources(register):
    register(KaggleSource())
