"""Hugging Face Hub source: `hf:org/name[@branch|tag|commit]`.

Metadata goes through huggingface_hub's own `HfApi` (endpoint and token passed explicitly), so the source asks the
Hub exactly what `snapshot_download` asks; bytes go through hubmirror's ranged GET (`hubmirror.api.open_range`),
which resumes, and whose output the core hashes against the tree's digests (`huggingface_hub` checks sizes only). The
endpoint comes from `--endpoint`, else `HF_ENDPOINT`; the token from `HF_TOKEN`, else the token file huggingface_hub
writes. The token is sent to the Hub only, never to a CDN host, and is never stored.

The requests this source sends, and no others. Each is the request of an official `huggingface_hub` call (2.x), with
its path, query and headers; `{rev}` is quoted with `safe=""` and `{path}` with `safe="/"`, as the client does.

1. `GET {endpoint}/api/models/{repo_id}/revision/{rev}`, no query: `HfApi.model_info(repo_id, revision=rev)`, with
   `rev` the requested revision or `"main"` when none is given (`constants.DEFAULT_REVISION`), exactly the
   `repo_info` call `snapshot_download` resolves a branch or tag with. Sent for a 40-hex commit too, for the model
   card metadata. Never the bare `/api/models/{repo_id}`, which the download path of the client never sends.
2. `GET {endpoint}/api/models/{repo_id}/tree/{commit}?recursive=true&expand=false`, then every `Link: <…>;
   rel="next"` URL verbatim: `HfApi.list_repo_tree(repo_id, recursive=True, revision=commit)`, the listing
   `snapshot_download` takes its files from. Its `oid` / `lfs.oid` are the digests every file is checked against.
3. `GET {endpoint}/{repo_id}/resolve/{commit}/{path}`, no query: the download GET of `hf_hub_download`
   (`file_download.http_get`, also `HfFileSystem`'s reads), following the 302 to the storage host. For the README
   (model description) and every file pulled. Headers: `Accept-Encoding: identity`; `Range: bytes={n}-` when
   resuming (as `http_get`), `Range: bytes={a}-{b}` for each piece of a large file fetched over several connections
   (`open_range`, as `HfFileSystemFile._fetch_range` asks); `user-agent` and `authorization` as `build_hf_headers`
   makes them. requests drops `Authorization` when a redirect leaves the Hub's host, as the client does for signed
   CDN URLs.
4. `index hf` only: `GET {endpoint}/api/models?search={q}&sort=downloads&limit={n}&full=true` (`search` only with a
   query, `limit` only up to 1000), then every `Link` next URL verbatim:
   `HfApi.list_models(search=q, sort="downloads", limit=n, full=True)`.
5. A branch or tag name other than `main` only: `GET {endpoint}/api/models/{repo_id}/refs?include_prs=1`:
   `HfApi.list_repo_refs(repo_id, include_pull_requests=True)`, to record whether it is a branch, a tag or a pull
   request (also what `serve --upstream` answers `/refs` from). Where model info (1) says a revision is missing as
   `RepoNotFound` (some Hub-compatible servers do), 1 is sent once more for `main` to tell a missing revision from a
   missing repo.
6. `serve --upstream` only, for a client's `list_repo_commits`, `list_models` or `list_datasets`: `GET
   {endpoint}/api/models/{repo_id}/commits/{rev}`, `GET {endpoint}/api/models` or `GET {endpoint}/api/datasets`
   with the client's query (or the query of the upstream's own `Link` to the next page), as `HfApi` sends them page
   by page (`paginate`).

7. A file whose tree entry carries a `xetHash` (stored in Xet; not with `HF_HUB_DISABLE_XET` set): `GET
   {endpoint}/api/{models|datasets}/{repo_id}/xet-read-token/{commit}`, huggingface_hub's
   `refresh_xet_connection_info` (its headers; the CAS URL, token and expiry read from `X-Xet-Cas-Url`,
   `X-Xet-Access-Token`, `X-Xet-Token-Expiration`), once per repo and commit while the token lasts.
8. Then what hf_xet sends the CAS for the file: `GET {cas}/v2/reconstructions/{xetHash}` with `Range: bytes={a}-{b}`
   and `Authorization: Bearer {CAS token}` (`/v1/…` when the CAS answers 404 or 501), and a ranged `GET` of each xorb
   range at the signed URL the answer names, without Authorization; both with huggingface_hub's headers less its
   Authorization, as `xet_get` hands them to hf_xet. Chunks the mirror already holds are not asked for
   (hubmirror.xet.reader); the file is verified against the tree's sha256 as any other.

Requests 1, 2, 4, 5, 6 and 7 carry huggingface_hub's own headers: `user-agent: hubmirror/{version};
hf_hub/{version}; …`, `authorization: Bearer {token}` when there is a token, and its `X-Amzn-Trace-Id` request id.
huggingface_hub retries 2 and 4 on 408/429/5xx and network errors (its `http_backoff`); hubmirror sends 1 again after
a 429/5xx answer or a transport failure, under its own retry policy (`hubmirror.fetch.retries.RetryPolicy`), and
retries 3 as every download.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import time
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote, urlsplit

from hubmirror.api import (
    RETRY_STATUSES,
    AccessDeniedError,
    CasAccess,
    Download,
    HubAnswer,
    HubmirrorError,
    ModelMetadata,
    ModelRef,
    NotFoundError,
    RemoteFile,
    ResolvedRevision,
    Retrier,
    Source,
    SourceContext,
    UsageError,
    XetSource,
    __version__,
    check_redirect,
    hiding,
    hookimpl,
    is_repo_id,
    is_xet_hash,
    json_body,
    open_bounded,
    open_range,
    open_xet,
    request,
    retry_after_seconds,
    transport_error,
)

DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_REVISION = "main"  # huggingface_hub.constants.DEFAULT_REVISION
COMMIT_RE = re.compile(r"^[0-9a-f]{40}\Z")
_README_MAX = 512 * 1024
DEFAULT_INDEX_LIMIT = 1000
_LIST_PAGE_MAX = 1000  # the largest `limit` sent to /api/models; beyond it the listing is cut here
_TREE_MAX_ENTRIES = 1_000_000  # a tree listing longer than this is refused (the Hub's largest repos hold far less)
# What a malformed answer makes huggingface_hub's parsers raise (a missing field, a wrong type, bad JSON or dates).
_MALFORMED = (KeyError, TypeError, ValueError, AttributeError, IndexError)


def hf_token() -> str | None:
    """The token huggingface_hub would use: `HF_TOKEN`, else `HF_TOKEN_PATH` or `$HF_HOME/token`.

    Read here at each call (huggingface_hub reads `HF_HOME` once, at import) and passed to it explicitly."""
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if token:
        return token.strip()
    hf_home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    path = Path(os.environ.get("HF_TOKEN_PATH") or os.path.join(hf_home, "token"))
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _status_error(status: int, code: str, message: str, what: str) -> HubmirrorError | None:
    """The error a failed Hub answer means, from its status and `X-Error-Code` / `X-Error-Message`, saying what to do;
    the answer itself rides along as the error's `hub_answer`."""
    if status < 400:
        return None
    error = _worded_error(status, code, message, what)
    error.hub_answer = HubAnswer(status, code or None, message)
    return error


def _worded_error(status: int, code: str, message: str, what: str) -> HubmirrorError:
    """One line for a failed Hub answer (status 400 or above), saying what to do about it."""
    detail = f": {message}" if message else ""
    if code == "RepoNotFound":
        return NotFoundError(f"{what}: repository not found (or private: set HF_TOKEN)")
    if code == "GatedRepo":
        return AccessDeniedError(f"{what}: gated repository: accept its terms on the Hub, then set HF_TOKEN")
    if code == "RevisionNotFound":
        return NotFoundError(f"{what}: revision not found")
    if code == "EntryNotFound":
        return NotFoundError(f"{what}: file not found")
    if message == "Access to this resource is disabled.":
        return AccessDeniedError(f"{what}: access to this repository is disabled on the Hub")
    if status == 401:
        return AccessDeniedError(f"{what}: the Hub refused the credentials (HTTP 401){detail}")
    if status == 403:
        return AccessDeniedError(f"{what}: access denied (HTTP 403){detail}")
    if status == 404:
        return NotFoundError(f"{what}: not found (HTTP 404)")
    if status == 429:
        return HubmirrorError(f"{what}: the Hub is rate-limiting this client (HTTP 429): try again later{detail}")
    if status >= 500:
        return HubmirrorError(f"{what}: the Hub answered HTTP {status} (a server error): try again later{detail}")
    return HubmirrorError(f"{what}: the Hub answered HTTP {status}{detail}")


def hub_error(resp, what: str) -> HubmirrorError | None:
    """The error a failed `requests` answer from the Hub means (the byte transfer's error mapper)."""
    return _status_error(resp.status_code, resp.headers.get("X-Error-Code", ""),
                         resp.headers.get("X-Error-Message", ""), what)


@functools.cache
def hub_client() -> SimpleNamespace:
    """huggingface_hub's client (`HfApi`, `RepoFile`, `build_hf_headers`, its `errors`) and the httpx it speaks
    through, imported on first use (`--help` and `search` never load them) and without trio (hubmirror.imports:
    0.17 s of every pull where trio is installed)."""
    with hiding("trio"):
        import httpx2
        from huggingface_hub import HfApi, errors
        from huggingface_hub.hf_api import RepoFile
        from huggingface_hub.utils import build_hf_headers
    return SimpleNamespace(HfApi=HfApi, RepoFile=RepoFile, build_hf_headers=build_hf_headers, errors=errors,
                           httpx=httpx2)


def hf_api_error(exc: BaseException, what: str, endpoint: str) -> HubmirrorError | None:
    """The one-line error an exception out of a huggingface_hub call means, or None for one it does not explain."""
    errors, httpx2 = hub_client().errors, hub_client().httpx

    if isinstance(exc, HubmirrorError):
        return exc
    if isinstance(exc, errors.GatedRepoError):  # before RepositoryNotFoundError, its base class
        return _status_error(401, "GatedRepo", "", what)
    if isinstance(exc, errors.RepositoryNotFoundError):
        return _status_error(404, "RepoNotFound", "", what)
    if isinstance(exc, errors.RevisionNotFoundError):
        return _status_error(404, "RevisionNotFound", "", what)
    if isinstance(exc, errors.RemoteEntryNotFoundError):
        return _status_error(404, "EntryNotFound", "", what)
    if isinstance(exc, errors.HfHubHTTPError):
        resp = exc.response
        return _status_error(resp.status_code, resp.headers.get("X-Error-Code", ""),
                             resp.headers.get("X-Error-Message", ""), what)
    if isinstance(exc, errors.OfflineModeIsEnabled):
        return HubmirrorError(f"{what}: HF_HUB_OFFLINE is set, so huggingface_hub sends no request: unset it to pull")
    if isinstance(exc, errors.HFValidationError):
        return UsageError(f"{what}: {str(exc).splitlines()[0]}")
    if isinstance(exc, httpx2.HTTPError):  # transport failures: worded as hubmirror.fetch.http words requests' own
        try:
            url = str(exc.request.url.copy_with(query=None, fragment=None))
        except (AttributeError, RuntimeError):  # an exception raised before its request was set
            url = endpoint
        kind = ("redirects" if isinstance(exc, httpx2.TooManyRedirects) else
                "timeout" if isinstance(exc, httpx2.TimeoutException) else
                "unreachable" if isinstance(exc, httpx2.TransportError) else "other")
        return transport_error(url, kind, type(exc).__name__)
    if isinstance(exc, _MALFORMED):
        return HubmirrorError(f"{what}: {endpoint} answered something huggingface_hub cannot read "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})")
    return None


def _description_from_card(card: str) -> str | None:
    """The first prose paragraph of a model card, after its YAML front matter and headings."""
    if card.startswith("---"):
        end = card.find("\n---", 3)
        card = card[end + 4 :] if end != -1 else ""
    for block in re.split(r"\n\s*\n", card):
        lines = [line.strip() for line in block.strip().splitlines() if not line.lstrip().startswith("#")]
        text = " ".join(lines)
        if text and not text.startswith(("<", "```", "|", "!", "-")):
            return re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)[:1000]
    return None


def _hub_time(value) -> str | None:
    """A datetime as the Hub writes it (`2024-11-01T00:00:00.000Z`), which huggingface_hub parses back."""
    if not isinstance(value, datetime):
        return value if isinstance(value, str) else None
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _card_dict(card_data) -> dict | None:
    """The model card's front matter as a dict (huggingface_hub parses it into `ModelCardData`)."""
    if isinstance(card_data, dict) and not hasattr(card_data, "to_dict"):
        return card_data
    try:
        card = card_data.to_dict() if card_data is not None else None
    except _MALFORMED:  # a card huggingface_hub parsed but cannot write back: keep the model, drop the card
        return None
    return card if isinstance(card, dict) else None


def repo_of(model_id: str) -> tuple[str, str]:
    """(repo type, repo id) of an `hf:` model id: `datasets/org/name` is the dataset `org/name`, any other a model."""
    if model_id.startswith("datasets/"):
        return "dataset", model_id.removeprefix("datasets/")
    return "model", model_id


class HuggingFaceSource(Source):
    name = "hf"
    description = "Hugging Face Hub models (HF_ENDPOINT, HF_TOKEN)"

    def __init__(self):
        self._xet_tokens: dict[str, CasAccess] = {}  # CAS read tokens by their route (request 7)
        self._xet_lock = threading.Lock()

    def endpoint(self, ctx: SourceContext) -> str:
        return (ctx.endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")

    @staticmethod
    def load_client() -> None:
        """Import huggingface_hub's client now (a proxy does before it listens, so no client waits for it)."""
        hub_client()

    def _api(self, ctx: SourceContext):
        """huggingface_hub's client for this endpoint and token."""
        return hub_client().HfApi(endpoint=self.endpoint(ctx), token=hf_token() or False, library_name="hubmirror",
                     library_version=__version__)

    def _headers(self) -> dict[str, str]:
        """huggingface_hub's own headers (`user-agent`, `authorization`) for the byte transfer."""
        return hub_client().build_hf_headers(token=hf_token() or False, library_name="hubmirror",
                                             library_version=__version__)

    def _call(self, ctx: SourceContext, what: str, fn, *args, **kwargs):
        """`fn(*args, **kwargs)`, a huggingface_hub call, with its exceptions turned into one-line errors."""
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            error = hf_api_error(exc, what, self.endpoint(ctx))
            if error is None or error is exc:
                raise
            raise error from exc

    def parse(self, spec: str) -> ModelRef:
        ref = super().parse(spec)
        if not is_repo_id(repo_of(ref.model_id)[1]):
            raise UsageError(f"malformed Hugging Face repo id {ref.model_id!r} (expected org/name, or "
                             "datasets/org/name for a dataset)")
        return ref

    def index(self, ctx: SourceContext, query: str | None = None, limit: int | None = None):
        """The Hub's model listing (`HfApi.list_models`, most downloaded first), `limit` models (default 1000)."""
        limit = limit or DEFAULT_INDEX_LIMIT
        api = self._api(ctx)
        listing = self._call(ctx, "hf model listing", api.list_models, search=query or None, sort="downloads",
                             limit=limit if limit <= _LIST_PAGE_MAX else None, full=True)
        models = iter(listing)
        count = 0
        while count < limit:
            info = self._call(ctx, "hf model listing", next, models, None)
            if info is None:
                return
            if is_repo_id(info.id):
                count += 1
                yield self._metadata(ModelRef(self.name, info.id), info)

    def resolve(self, ref: ModelRef, ctx: SourceContext) -> ResolvedRevision:
        what = str(ref)
        api = self._api(ctx)
        requested = ref.revision or DEFAULT_REVISION  # as snapshot_download: `revision or DEFAULT_REVISION`
        try:
            info = self._model_info(ctx, api, ref, requested)
        except NotFoundError as exc:
            raise self._missing_revision(ctx, api, ref, requested, exc) from exc
        commit = info.sha
        if not isinstance(commit, str) or not COMMIT_RE.match(commit):
            raise HubmirrorError(f"{ref}: the Hub's model info carries no commit sha")
        files = self._list_tree(ctx, api, ref.model_id, commit, what)  # (a dataset's: repo_type="dataset")
        revision = ResolvedRevision(
            ref=ref,
            commit=commit,
            requested=requested,
            metadata=self._metadata(ref, info),
            files=files,
            requested_kind=self._requested_kind(ctx, api, ref, requested, commit),
            commit_info={"date": _hub_time(info.last_modified)} if info.last_modified else {},
        )
        revision.metadata.description = self._read_description(ctx, revision)
        return revision

    def refs(self, ctx: SourceContext, repo_id: str) -> list[tuple[str, str, str]]:
        """(name, kind, commit) of every ref of `repo_id` upstream, pull requests included:
        `HfApi.list_repo_refs(repo_id, include_pull_requests=True)`."""
        api = self._api(ctx)
        repo_type, repo = repo_of(repo_id)
        found = self._call(ctx, f"hf:{repo_id} refs", api.list_repo_refs, repo, repo_type=repo_type,
                           include_pull_requests=True)
        kinds = (("branch", found.branches), ("tag", found.tags), ("pr", found.pull_requests or []))
        return [(r.name, kind, r.target_commit) for kind, listed in kinds for r in listed]

    def commits_page(self, ctx: SourceContext, repo_id: str, revision: str,
                     params: list[tuple[str, str]]) -> tuple[object, str | None]:
        """One page of `HfApi.list_repo_commits(repo_id, revision=revision)` (request 6)."""
        repo_type, repo = repo_of(repo_id)
        return self.api_page(ctx, f"/api/{repo_type}s/{repo}/commits/{quote(revision, safe='')}", params,
                             f"hf:{repo_id}@{revision} commits")

    def api_page(self, ctx: SourceContext, path: str, params: list[tuple[str, str]],
                 what: str) -> tuple[object, str | None]:
        """One page of a paginated Hub listing, as huggingface_hub's `paginate` asks it: `GET {endpoint}{path}` with
        `params` (the client's own, or those of the upstream's `Link` to this page), and the query string of the
        next page (None on the last). The page is the server's JSON, unchecked."""
        resp = request(ctx.session(), "GET", f"{self.endpoint(ctx)}{path}", params=params, headers=self._headers(),
                       timeout=ctx.timeout, errors=lambda r: hub_error(r, what), stream=True)
        following = resp.links.get("next", {}).get("url")
        return json_body(resp), (urlsplit(following).query if following else None)

    def _requested_kind(self, ctx: SourceContext, api, ref: ModelRef, requested: str, commit: str) -> str | None:
        """Whether `requested` is a branch, a tag, a pull request or the commit itself: the default branch and a
        commit need no question; any other name is looked up in the repo's refs (None where they do not list it)."""
        if requested == commit:
            return "commit"
        if requested == DEFAULT_REVISION:
            return "branch"
        return next((kind for name, kind, _ in self.refs(ctx, ref.model_id) if name == requested), None)

    def _missing_revision(self, ctx: SourceContext, api, ref: ModelRef, revision: str,
                          error: NotFoundError) -> NotFoundError:
        """`error` (the model info of `revision` not found), or a RevisionNotFound where the server said the repo was
        not found (some Hub-compatible servers answer a missing revision so) but its default revision exists: the
        same `model_info` asked without the revision tells them apart."""
        answer = getattr(error, "hub_answer", None)
        if revision == DEFAULT_REVISION or answer is None or answer.code == "RevisionNotFound":
            return error
        try:
            self._model_info(ctx, api, ModelRef(ref.source, ref.model_id), DEFAULT_REVISION)
        except HubmirrorError:
            return error
        missing = NotFoundError(f"{ref}: revision not found")
        missing.hub_answer = HubAnswer(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return missing

    def _model_info(self, ctx: SourceContext, api, ref: ModelRef, revision: str):
        """Request 1, `HfApi.model_info(repo_id, revision=revision)`. huggingface_hub sends it once; it is sent
        again, as hubmirror retries every idempotent request (`hubmirror.fetch.retries.RetryPolicy`), after a 429 or 5xx
        answer (honouring `Retry-After`) or a transport failure. The tree and the listing are retried by
        huggingface_hub itself (`http_backoff`)."""
        HfHubHTTPError, httpx2 = hub_client().errors.HfHubHTTPError, hub_client().httpx
        what = str(ref)
        retrier = Retrier(f"GET model info of {ref}")
        while True:
            try:
                repo_type, repo = repo_of(ref.model_id)
                info = api.dataset_info if repo_type == "dataset" else api.model_info
                return info(repo, revision=revision, timeout=ctx.timeout)
            except (HfHubHTTPError, httpx2.TransportError) as exc:
                error = hf_api_error(exc, what, self.endpoint(ctx))
                if isinstance(exc, HfHubHTTPError):
                    status = exc.response.status_code
                    if status not in RETRY_STATUSES:
                        raise error from exc
                    retrier.retry(error, f"HTTP {status}",
                                  retry_after=retry_after_seconds(exc.response.headers.get("Retry-After")))
                else:
                    retrier.retry(error, type(exc).__name__)
            except Exception as exc:
                error = hf_api_error(exc, what, self.endpoint(ctx))
                if error is None or error is exc:
                    raise
                raise error from exc

    def _list_tree(self, ctx: SourceContext, api, repo_id: str, commit: str, what: str) -> list[RemoteFile]:
        """snapshot_download's listing: `list_repo_tree(recursive=True, revision=commit)`, every Link page."""
        def listing() -> list:
            repo_type, repo = repo_of(repo_id)
            entries = list(islice(api.list_repo_tree(repo, recursive=True, revision=commit, repo_type=repo_type),
                                  _TREE_MAX_ENTRIES + 1))
            if len(entries) > _TREE_MAX_ENTRIES:
                raise HubmirrorError(f"{what}: the tree listing does not end (over {_TREE_MAX_ENTRIES} entries)")
            return entries

        entries = self._call(ctx, what, listing)
        return [self._remote_file(e, what) for e in entries if isinstance(e, hub_client().RepoFile)]

    @staticmethod
    def _remote_file(entry, what: str) -> RemoteFile:
        """A tree file (`huggingface_hub.hf_api.RepoFile`): LFS files by content sha256, others by git blob id."""
        path, size, oid, lfs = entry.path, entry.size, entry.blob_id, entry.lfs
        if not isinstance(path, str) or not isinstance(oid, str):
            raise HubmirrorError(f"{what}: malformed tree entry {path!r:.200}")
        if lfs is not None:  # stored in Xet when the tree says its Xet hash (the Hub's own rule, as the client's)
            xet_hash = getattr(entry, "xet_hash", None)
            return RemoteFile(path, lfs.size, {"sha256": str(lfs.sha256)}, etag=oid, lfs=True,
                              location=xet_hash if is_xet_hash(xet_hash) else None)
        return RemoteFile(path, size, {"git-sha1": oid}, etag=oid)

    @staticmethod
    def _metadata(ref: ModelRef, info) -> ModelMetadata:
        """Catalog metadata from a `huggingface_hub.hf_api.ModelInfo` (or `DatasetInfo`: no task, library or config
        of its own; its task is the card's first `task_categories`)."""
        repo_type, repo = repo_of(ref.model_id)
        card = _card_dict(info.card_data)
        tags = [t for t in info.tags if isinstance(t, str)] if isinstance(info.tags, list) else []
        license_ = card.get("license") if card and isinstance(card.get("license"), str) else None
        if license_ is None:
            license_ = next((t.split(":", 1)[1] for t in tags if t.startswith("license:")), None)
        config = getattr(info, "config", None)
        config = config if isinstance(config, dict) else {}
        architectures = config.get("architectures")
        architectures = [a for a in architectures if isinstance(a, str)] if isinstance(architectures, list) else []
        model_type = config.get("model_type") if isinstance(config.get("model_type"), str) else None
        task = getattr(info, "pipeline_tag", None)
        if repo_type == "dataset" and card and isinstance(card.get("task_categories"), list):
            task = next((t for t in card["task_categories"] if isinstance(t, str)), None)
        library = getattr(info, "library_name", None)
        extra = {"cardData": card, "config": config or None, "createdAt": _hub_time(info.created_at),
                 "private": info.private}
        if isinstance(info.id, str) and info.id != repo:  # a renamed repo, or an upstream that says so
            extra["upstreamId"] = info.id
        return ModelMetadata(
            source="hf",
            model_id=ref.model_id,  # what the mirror asked for: an upstream's answer never names another model
            task=task if isinstance(task, str) else None,
            library=library if isinstance(library, str) else None,
            architecture=architectures[0] if architectures else model_type,
            license=license_,
            tags=tags,
            downloads=info.downloads if isinstance(info.downloads, int) else None,
            likes=info.likes if isinstance(info.likes, int) else None,
            last_modified=_hub_time(info.last_modified),
            gated=bool(info.gated),
            extra={k: v for k, v in extra.items() if v is not None},
            kind=repo_type,
        )

    def _read_description(self, ctx: SourceContext, revision: ResolvedRevision) -> str | None:
        readme = next((f for f in revision.files if f.path == "README.md"), None)
        if readme is None or not isinstance(readme.size, int) or readme.size > _README_MAX:
            return None
        download = self.open_file(revision, readme, ctx)
        try:
            card = b"".join(download.chunks).decode("utf-8", "replace")
        finally:
            download.close()
        return _description_from_card(card)

    def _file_url(self, revision: ResolvedRevision, file: RemoteFile, ctx: SourceContext) -> str:
        return (
            f"{self.endpoint(ctx)}/{revision.ref.model_id}/resolve/{quote(revision.commit, safe='')}/"  # datasets/…
            f"{quote(file.path, safe='/')}"
        )

    def open_file(self, revision: ResolvedRevision, file: RemoteFile, ctx: SourceContext, offset: int = 0) -> Download:
        """Request 3: `GET /{repo}/resolve/{commit}/{path}` (Range when resuming), the redirect followed; a file
        stored in Xet through its CAS (requests 7 and 8)."""
        if self._reads_xet(file):
            return self._open_xet(revision, file, ctx, offset, file.size)
        url = self._file_url(revision, file, ctx)
        return ctx.limited(url, lambda: open_range(
            ctx.session(), url, offset, headers=self._headers(), timeout=ctx.timeout,
            errors=lambda resp: hub_error(resp, f"{revision.ref}: {file.path}"),
        ))

    def open_range(self, revision: ResolvedRevision, file: RemoteFile, ctx: SourceContext, start: int,
                   end: int) -> Download | None:
        """Request 3 for one piece of a large file: `Range: bytes={start}-{end - 1}`; through Xet (8) for a file
        stored there."""
        if self._reads_xet(file):
            return self._open_xet(revision, file, ctx, start, end)
        url = self._file_url(revision, file, ctx)
        return ctx.limited(url, lambda: open_bounded(
            ctx.session(), url, start, end, headers=self._headers(), timeout=ctx.timeout,
            errors=lambda resp: hub_error(resp, f"{revision.ref}: {file.path}"),
        ))

    @staticmethod
    def _reads_xet(file: RemoteFile) -> bool:
        """A file the tree says is stored in Xet, unless `HF_HUB_DISABLE_XET` turns Xet off (as for the client)."""
        disabled = os.environ.get("HF_HUB_DISABLE_XET", "").upper() in ("1", "ON", "YES", "TRUE")
        return isinstance(file.location, str) and isinstance(file.size, int) and not disabled

    def _open_xet(self, revision: ResolvedRevision, file: RemoteFile, ctx: SourceContext, start: int,
                  end: int) -> Download:
        """Request 8: bytes [start, end) of a Xet file from the CAS (hubmirror.xet.reader), with the client's headers
        less its Authorization (huggingface_hub's `xet_headers_without_auth`), the CAS token from request 7."""
        what = f"{revision.ref}: {file.path}"
        headers = {k: v for k, v in self._headers().items() if k.lower() != "authorization"}
        src = XetSource(file.location, file.size, lambda renew: self._xet_access(ctx, revision, renew), headers,
                        ctx.session(), ctx.timeout, what)
        cas_url = self._xet_access(ctx, revision, False).cas_url
        return ctx.limited(cas_url, lambda: open_xet(src, start, end, ctx.xet_chunks, file.sha256))

    def _xet_access(self, ctx: SourceContext, revision: ResolvedRevision, renew: bool) -> CasAccess:
        """Request 7: `GET {endpoint}/api/{models|datasets}/{repo}/xet-read-token/{commit}` (huggingface_hub's
        `refresh_xet_connection_info`, its headers), read from the `X-Xet-*` headers as the client reads it; kept
        per repo and commit until a minute before it expires, or until the CAS refuses it (`renew`)."""
        repo_type, repo = repo_of(revision.ref.model_id)
        url = f"{self.endpoint(ctx)}/api/{repo_type}s/{repo}/xet-read-token/{quote(revision.commit, safe='')}"
        with self._xet_lock:
            known = self._xet_tokens.get(url)
        if known is not None and not renew and known.expires > time.time() + 60:
            return known
        what = f"{revision.ref}: Xet read token"
        resp = request(ctx.session(), "GET", url, headers=self._headers(), timeout=ctx.timeout,
                       errors=lambda r: hub_error(r, what))
        resp.close()
        try:
            access = CasAccess(resp.headers["X-Xet-Cas-Url"], resp.headers["X-Xet-Access-Token"],
                               int(resp.headers["X-Xet-Token-Expiration"]))
        except (KeyError, ValueError) as exc:
            raise HubmirrorError(f"{what}: the Hub answered without the Xet connection headers") from exc
        check_redirect(self.endpoint(ctx), access.cas_url, how="sent the client to")
        with self._xet_lock:
            self._xet_tokens[url] = access
        return access


@hookimpl
def register_sources(register):
    register(HuggingFaceSource())


@hookimpl
def served_repo_id(model):
    """`hf:` models are served under their own repo id."""
    return model["model_id"] if model["source"] == HuggingFaceSource.name else None
