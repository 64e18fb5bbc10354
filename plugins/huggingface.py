"""Hugging Face Hub source: `hf:org/name[@branch|tag|commit]`.

The source asks the Hub exactly what `snapshot_download` asks, with huggingface_hub's own headers: its API requests
are built by `hubmirror.plugins.hf_requests` as the client builds them (without importing `HfApi`: 0.12-0.28 s of
every pull; tests/test_hf_requests.py compares both at one server); bytes go through hubmirror's ranged GET
(`hubmirror.api.open_range`), which resumes, and whose output the core hashes against the tree's digests
(`huggingface_hub` checks sizes only). The
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
   (model description) and every file pulled. Headers: `Accept-Encoding: identity` (as the client's HEAD of the
   same URL: the bytes as stored, so that a transfer resumes at a file offset); `Range: bytes={n}-` when
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

Every request but 8 carries huggingface_hub's own headers: `user-agent: hubmirror/{version}; hf_hub/{version}; …`,
`authorization: Bearer {token}` when there is a token, a fresh `X-Amzn-Trace-Id`, and on the download path (1, 2,
3, 7: `snapshot_download` is a `flag_as_download_call`) `X-HF-Download-Counter: 1`; 8 carries the user-agent
alone, as the client hands it to hf_xet. A repo id huggingface_hub's `validate_repo_id` refuses is refused before
any request. Every GET is retried under hubmirror's retry policy (`hubmirror.fetch.retries.RetryPolicy`: 429
honouring `Retry-After`, 5xx, transport failures), as the client retries its listings (`http_backoff`).
"""

from __future__ import annotations

import functools
import os
import re
import threading
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

from hubmirror.plugins import hf_requests

from hubmirror.api import (
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
    Source,
    SourceContext,
    UsageError,
    XetSource,
    __version__,
    check_redirect,
    hookimpl,
    is_repo_id,
    is_xet_hash,
    json_body,
    open_bounded,
    open_range,
    open_xet,
    request,
    retrying,
)

DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_REVISION = "main"  # huggingface_hub.constants.DEFAULT_REVISION
COMMIT_RE = re.compile(r"^[0-9a-f]{40}\Z")
_README_MAX = 512 * 1024
DEFAULT_INDEX_LIMIT = 1000
_LIST_PAGE_MAX = 1000  # the largest `limit` sent to /api/models; beyond it the listing is cut here
_TREE_MAX_ENTRIES = 1_000_000  # a tree listing longer than this is refused (the Hub's largest repos hold far less)


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

    @functools.cached_property
    def _agent(self) -> str:
        """huggingface_hub's user-agent for hubmirror (`build_hf_headers(library_name="hubmirror", …)`)."""
        return hf_requests.user_agent("hubmirror", __version__)

    def _headers(self, *, download: bool = True) -> dict[str, str]:
        """The headers huggingface_hub sends with one request (see hf_requests): the download path's unless
        `download` is False."""
        return hf_requests.headers(self._agent, hf_token(), download=download)

    def _get(self, ctx: SourceContext, url: str, what: str, *, params=None, download: bool = True):
        """One GET of the Hub's API, as huggingface_hub sends it, retried as every idempotent request
        (`hubmirror.fetch.retries.RetryPolicy`: 429 honouring Retry-After, 5xx, transport failures); its JSON value
        (bounded) and the URL of its next page (`Link: rel="next"`), or None."""
        try:
            headers = self._headers(download=download)
        except HubmirrorError as exc:
            raise HubmirrorError(f"{what}: {exc}") from None
        with retrying(f"{what}: GET {urlsplit(url).path}"):  # each retry's line names the model
            resp = request(ctx.session(), "GET", url, params=params, headers=headers, timeout=ctx.timeout,
                           errors=lambda r: hub_error(r, what), stream=True)
        following = resp.links.get("next", {}).get("url")
        if following is not None:
            check_redirect(url, following, how="sent the next page to")
        return json_body(resp), following

    def _pages(self, ctx: SourceContext, url: str, what: str, *, params=None, download: bool = True):
        """Every page of a paginated listing: the first with `params`, then each `Link` next URL verbatim (the
        client's `paginate`)."""
        while url is not None:
            page, url = self._get(ctx, url, what, params=params, download=download)
            params = None
            yield page

    def parse(self, spec: str) -> ModelRef:
        ref = super().parse(spec)
        repo = repo_of(ref.model_id)[1]
        if not is_repo_id(repo):
            raise UsageError(f"malformed Hugging Face repo id {ref.model_id!r} (expected org/name, or "
                             "datasets/org/name for a dataset)")
        problem = hf_requests.repo_id_problem(repo)
        if problem is not None:
            raise UsageError(f"{ref}: {problem}")
        return ref

    def index(self, ctx: SourceContext, query: str | None = None, limit: int | None = None):
        """The Hub's model listing (request 4, `HfApi.list_models`, most downloaded first), `limit` models (default
        1000)."""
        limit = limit or DEFAULT_INDEX_LIMIT
        what = "hf model listing"
        params = hf_requests.list_models_params(query, limit if limit <= _LIST_PAGE_MAX else None)
        count = 0
        for page in self._pages(ctx, f"{self.endpoint(ctx)}/api/models", what, params=params, download=False):
            for info in hf_requests.listed_models(page, what):
                yield self._metadata(ModelRef(self.name, info.id), info)
                count += 1
                if count >= limit:
                    return

    def resolve(self, ref: ModelRef, ctx: SourceContext) -> ResolvedRevision:
        what = str(ref)
        requested = ref.revision or DEFAULT_REVISION  # as snapshot_download: `revision or DEFAULT_REVISION`
        try:
            info = self._model_info(ctx, ref, requested)
        except NotFoundError as exc:
            raise self._missing_revision(ctx, ref, requested, exc) from exc
        commit = info.sha
        if not isinstance(commit, str) or not COMMIT_RE.match(commit):
            raise HubmirrorError(f"{ref}: the Hub's model info carries no commit sha")
        files = self._list_tree(ctx, ref.model_id, commit, what)
        revision = ResolvedRevision(
            ref=ref,
            commit=commit,
            requested=requested,
            metadata=self._metadata(ref, info),
            files=files,
            requested_kind=self._requested_kind(ctx, ref, requested, commit),
            commit_info={"date": info.last_modified} if info.last_modified else {},
        )
        revision.metadata.description = self._read_description(ctx, revision)
        return revision

    def refs(self, ctx: SourceContext, repo_id: str) -> list[tuple[str, str, str]]:
        """(name, kind, commit) of every ref of `repo_id` upstream, pull requests included (request 5,
        `HfApi.list_repo_refs(repo_id, include_pull_requests=True)`)."""
        repo_type, repo = repo_of(repo_id)
        what = f"hf:{repo_id} refs"
        found, _ = self._get(ctx, f"{self.endpoint(ctx)}/api/{repo_type}s/{repo}/refs", what,
                             params=hf_requests.REFS_PARAMS, download=False)
        return hf_requests.refs(found, what)

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
        page, following = self._get(ctx, f"{self.endpoint(ctx)}{path}", what, params=params, download=False)
        return page, (urlsplit(following).query if following else None)

    def _requested_kind(self, ctx: SourceContext, ref: ModelRef, requested: str, commit: str) -> str | None:
        """Whether `requested` is a branch, a tag, a pull request or the commit itself: the default branch and a
        commit need no question; any other name is looked up in the repo's refs (None where they do not list it)."""
        if requested == commit:
            return "commit"
        if requested == DEFAULT_REVISION:
            return "branch"
        return next((kind for name, kind, _ in self.refs(ctx, ref.model_id) if name == requested), None)

    def _missing_revision(self, ctx: SourceContext, ref: ModelRef, revision: str,
                          error: NotFoundError) -> NotFoundError:
        """`error` (the model info of `revision` not found), or a RevisionNotFound where the server said the repo was
        not found (some Hub-compatible servers answer a missing revision so) but its default revision exists: the
        same `model_info` asked without the revision tells them apart."""
        answer = getattr(error, "hub_answer", None)
        if revision == DEFAULT_REVISION or answer is None or answer.code == "RevisionNotFound":
            return error
        try:
            self._model_info(ctx, ModelRef(ref.source, ref.model_id), DEFAULT_REVISION)
        except HubmirrorError:
            return error
        missing = NotFoundError(f"{ref}: revision not found")
        missing.hub_answer = HubAnswer(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return missing

    def _model_info(self, ctx: SourceContext, ref: ModelRef, revision: str) -> hf_requests.RepoInfo:
        """Request 1: `HfApi.model_info(repo_id, revision=revision)` (`dataset_info` for a dataset), as
        snapshot_download sends it; retried after a 429 or 5xx answer (honouring `Retry-After`) or a transport
        failure."""
        repo_type, repo = repo_of(ref.model_id)
        url = f"{self.endpoint(ctx)}/api/{repo_type}s/{repo}/revision/{quote(revision, safe='')}"
        info, _ = self._get(ctx, url, str(ref))
        return hf_requests.RepoInfo.read(info, str(ref))

    def _list_tree(self, ctx: SourceContext, repo_id: str, commit: str, what: str) -> list[RemoteFile]:
        """Request 2, snapshot_download's listing: `list_repo_tree(recursive=True, revision=commit)`, every Link
        page, at most _TREE_MAX_ENTRIES entries."""
        repo_type, repo = repo_of(repo_id)
        url = f"{self.endpoint(ctx)}/api/{repo_type}s/{repo}/tree/{quote(commit, safe='')}"
        files, entries = [], 0
        for page in self._pages(ctx, url, what, params=hf_requests.TREE_PARAMS):
            entries += len(page) if isinstance(page, list) else 0
            if entries > _TREE_MAX_ENTRIES:
                raise HubmirrorError(f"{what}: the tree listing does not end (over {_TREE_MAX_ENTRIES} entries)")
            files += [self._remote_file(f) for f in hf_requests.tree_files(page, what)]
        return files

    @staticmethod
    def _remote_file(entry: hf_requests.TreeFile) -> RemoteFile:
        """A tree file: LFS files by content sha256, others by git blob id."""
        if entry.lfs_sha256 is not None:  # stored in Xet when the tree says its Xet hash (the Hub's rule, as the
            return RemoteFile(entry.path, entry.lfs_size, {"sha256": entry.lfs_sha256}, etag=entry.oid,  # client's)
                              lfs=True, location=entry.xet_hash if is_xet_hash(entry.xet_hash) else None)
        return RemoteFile(entry.path, entry.size, {"git-sha1": entry.oid}, etag=entry.oid)

    @staticmethod
    def _metadata(ref: ModelRef, info: hf_requests.RepoInfo) -> ModelMetadata:
        """Catalog metadata from a model's info (or a dataset's: no task, library or config of its own; its task is
        the card's first `task_categories`)."""
        repo_type, repo = repo_of(ref.model_id)
        card = info.card_data
        license_ = card.get("license") if card and isinstance(card.get("license"), str) else None
        if license_ is None:
            license_ = next((t.split(":", 1)[1] for t in info.tags if t.startswith("license:")), None)
        config = (info.config or {}) if repo_type == "model" else {}
        architectures = config.get("architectures")
        architectures = [a for a in architectures if isinstance(a, str)] if isinstance(architectures, list) else []
        model_type = config.get("model_type") if isinstance(config.get("model_type"), str) else None
        task = info.pipeline_tag if repo_type == "model" else None
        if repo_type == "dataset" and card and isinstance(card.get("task_categories"), list):
            task = next((t for t in card["task_categories"] if isinstance(t, str)), None)
        extra = {"cardData": card, "config": config or None, "createdAt": info.created_at, "private": info.private}
        if info.id is not None and info.id != repo:  # a renamed repo, or an upstream that says so
            extra["upstreamId"] = info.id
        return ModelMetadata(
            source="hf",
            model_id=ref.model_id,  # what the mirror asked for: an upstream's answer never names another model
            task=task,
            library=info.library_name if repo_type == "model" else None,
            architecture=architectures[0] if architectures else model_type,
            license=license_,
            tags=info.tags,
            downloads=info.downloads,
            likes=info.likes,
            last_modified=info.last_modified,
            gated=info.gated,
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
        headers = {"user-agent": self._agent}  # build_hf_headers less its authorization (`xet_headers_without_auth`)
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
