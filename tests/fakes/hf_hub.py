"""An imitation of the Hugging Face Hub's download protocol on 127.0.0.1 (what huggingface_hub sends: docs/sources.md).

Implements: model info with and without `/revision/` (and `?blobs=true`), the recursive tree with `Link` pagination,
paths-info, refs, resolve HEAD/GET (regular files answered directly with their git blob id as ETag; LFS files
redirected with a 302 that carries `X-Linked-Etag`/`X-Linked-Size` to a second "CDN" server, which refuses any
`Authorization` header), Range/206/416, and `X-Error-Code` errors (RepoNotFound, GatedRepo, RevisionNotFound,
EntryNotFound with `X-Repo-Commit`). Xet, on by default as on the Hub (`FakeHub(xet=False)`, or per repo): a repo's
LFS files are uploaded by hf_xet into a loopback CAS (tests/fakes/xet_cas.py); tree and paths-info entries carry
`xetHash`, the resolve redirect carries `X-Xet-Hash` and the `xet-auth` link, and
`/api/{models,datasets}/{repo}/xet-read-token/{rev}` issues CAS read tokens (headers and JSON body). Tests
can corrupt, throttle or break what it sends (`Faults`): scripted 429 (with `Retry-After`) and 5xx answers, a
connection reset or stalled after N bytes, throttling.

It refuses what the real Hub's official client (huggingface_hub 2.x) never sends, so that a client of the imitation
cannot pass here with requests the Hub's clients never make (as `direction=-1` on `/api/models` once did): a method an
endpoint is never called with (405), a query parameter the client never puts on that endpoint, a value it never sends,
or a combination it refuses to build (`expand` with `blobs`/`securityStatus`/`full`/`cardData`/`config`), a tree
listing without its `recursive` and `expand`, any query on `/resolve/`, a paths-info body that is not the client's
form (400, `X-Error-Message` saying what and why). Each refusal is also kept in `FakeHub.refused`. The accepted
parameters are those of `HfApi.list_models`, `model_info`, `list_repo_tree`, `get_paths_info`, `list_repo_refs` and
`hf_hub_download`, plus the imitation's own pagination `cursor`, which its `Link` headers carry.

The bare `GET /api/models/{repo}` is answered as the real Hub answers it (the default branch), since `model_info`
without a revision sends it; `answer_bare_model_info = False` makes it answer 401 RepoNotFound instead, as an
independent server (olah) does, which nothing on the download path may depend on.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

from tests.fakes.httpserver import Handler, LoopbackServer, parse_range
from tests.fakes.repo import FakeRepo, RepoFile, git_tree_id
from tests.fakes.xet_cas import FakeCas, xet_read_token_answer

NOT_SET = object()

# -- what huggingface_hub 2.x sends (hf_api.py, file_download.py), endpoint by endpoint ----------------------------
# A parameter spec: (accepted values, may it repeat). Accepted values: a set of strings, or "any", or "int".
MODEL_EXPAND = frozenset({
    "author", "baseModels", "cardData", "childrenModelCount", "config", "createdAt", "disabled", "downloads",
    "downloadsAllTime", "evalResults", "gated", "gguf", "inference", "inferenceProviderMapping", "lastModified",
    "library_name", "likes", "mask_token", "model-index", "pipeline_tag", "private", "resourceGroup", "safetensors",
    "sha", "siblings", "spaces", "tags", "transformersInfo", "trendingScore", "usedStorage", "widgetData",
})
TRUE = frozenset({"true"})  # booleans the client sends only when set (`if full: params["full"] = True`)
BOOL = frozenset({"true", "false"})  # booleans it always sends (httpx writes True/False as true/false)
LIST_MODELS_PARAMS = {  # HfApi.list_models
    "filter": ("any", True), "author": ("any", False), "apps": ("any", True), "gated": (BOOL, False),
    "inference": (frozenset({"warm"}), False), "inference_provider": ("any", True), "pipeline_tag": ("any", False),
    "num_parameters": ("any", False), "search": ("any", False),
    "sort": (frozenset({"createdAt", "downloads", "lastModified", "likes", "trendingScore"}), False),
    "limit": ("int", False), "full": (TRUE, False), "config": (TRUE, False), "cardData": (TRUE, False),
    "expand": (MODEL_EXPAND, True), "cursor": ("int", False),
}
MODEL_INFO_PARAMS = {"securityStatus": (TRUE, False), "blobs": (TRUE, False), "expand": (MODEL_EXPAND, True)}
TREE_PARAMS = {"recursive": (BOOL, False), "expand": (BOOL, False), "cursor": ("int", False)}  # list_repo_tree
REFS_PARAMS = {"include_prs": (frozenset({"1"}), False)}  # list_repo_refs
COMMITS_PARAMS = {"expand[]": (frozenset({"formatted"}), False), "p": ("int", False)}  # list_repo_commits (p: Link)
COMMITS_PAGE = 50
DATASET_INFO_PARAMS = {"blobs": (TRUE, False), "expand": ("any", True)}  # HfApi.dataset_info
LIST_DATASETS_PARAMS = {name: ("any", True) for name in (  # HfApi.list_datasets
    "filter", "author", "benchmark", "dataset_name", "gated", "language_creators", "language", "multilinguality",
    "size_categories", "task_categories", "task_ids", "search", "sort", "limit", "expand", "full", "cursor")}
PATHS_INFO_FORM = {"paths": ("any", True), "expand": (BOOL, False)}  # get_paths_info's form body


@dataclass
class Faults:
    """What a test wants to go wrong. Paths are repo-relative file names."""

    corrupt: set[str] = field(default_factory=set)  # flip the first byte of these files on the wire
    throttle: dict[str, float] = field(default_factory=dict)  # bytes/second for these files
    first_byte_delay: dict[str, float] = field(default_factory=dict)  # seconds between headers and body, per answer
    ignore_range: bool = False  # answer Range requests with the whole file (200)
    tree_override: object = NOT_SET  # a JSON value sent instead of every tree page (hostile metadata)
    info_override: object = NOT_SET  # a JSON value sent instead of the model info
    # Answers sent instead of the real one, one per request, in order: (status, headers), e.g.
    # (429, {"Retry-After": "1"}) or (503, {}). Keyed by a file's path (its download, on the Hub or the CDN), by a
    # request path ("/api/models/org/m"), or "api" (every /api/ request).
    status_queue: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    # Per file: after this many body bytes of a response, reset the connection (TCP RST) / stop sending on a
    # connection kept open (until the client hangs up, or `stall_seconds`). An int applies to one response; a list,
    # one item per response, in order. Each response counts from its own first byte (a Range answer's too).
    reset_after: dict[str, int | list[int]] = field(default_factory=dict)
    stall_after: dict[str, int | list[int]] = field(default_factory=dict)
    stall_seconds: float = 30.0

    def take(self, lock: threading.Lock, table: dict, key: str):
        """The next scripted fault of `table` for `key` (consumed), or None."""
        with lock:
            planned = table.get(key)
            if planned is None:
                return None
            if not isinstance(planned, list):
                del table[key]
                return planned
            value = planned.pop(0) if planned else None
            if not planned:
                del table[key]
            return value


class FakeHub:
    """The imitation Hub: a registry of repos, an API/resolve server and a CDN server, with a request log."""

    def __init__(self, *, tree_page_size: int = 1000, tokens: set[str] | None = None, xet: bool = True):
        self.repos: dict[str, FakeRepo] = {}
        self.tree_page_size = tree_page_size
        self.tokens = tokens or set()
        self.faults = Faults()
        self.refused: list[str] = []  # requests refused as no official client sends them (see the module docstring)
        self.answer_bare_model_info = True  # False: `GET /api/models/{repo}` answers 401 RepoNotFound, as olah does
        self.requests: list[dict] = []
        self.cdn_violations: list[str] = []
        self.in_flight = self.max_in_flight = 0  # file bodies being sent at once (both servers): connections
        self._lock = threading.Lock()
        self.hub = LoopbackServer(HubHandler, self)
        self.cdn = LoopbackServer(CdnHandler, self)
        self._blobs: dict[str, RepoFile] = {}
        self.xet = xet  # the default for repos that do not say
        self.cas = FakeCas()
        self._xet_hashes: dict[str, str] = {}  # sha256 -> Xet file hash (content uploaded once)
        self._xet_lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.hub.url

    def add_repo(self, repo: FakeRepo) -> FakeRepo:
        self.repos[repo.key] = repo
        for files in repo.commits.values():
            for f in files.values():
                self._blobs[f.sha256] = f
        return repo

    def create_repo(self, repo_id: str, files: dict[str, bytes | Path], **settings) -> FakeRepo:
        repo = FakeRepo(repo_id, **settings)
        repo.commit(files)
        return self.add_repo(repo)

    def xet_hash(self, repo: FakeRepo, f: RepoFile) -> str | None:
        """The Xet file hash of an LFS file of a Xet-backed repo (uploaded by hf_xet on first need), else None."""
        if not f.lfs or not (self.xet if repo.xet is None else repo.xet):
            return None
        with self._xet_lock:
            if f.sha256 not in self._xet_hashes:
                self._xet_hashes[f.sha256] = self.cas.upload([f.data if f.data is not None else f.disk_path])[0]
            return self._xet_hashes[f.sha256]

    def log(self, handler: Handler) -> None:
        with self._lock:
            self.requests.append(
                {"method": handler.command, "path": handler.path, "range": handler.headers.get("Range"),
                 "authorization": handler.headers.get("Authorization"), "at": time.monotonic(),
                 "headers": {k.lower(): v for k, v in handler.headers.items()}}
            )

    def blob(self, sha256: str) -> RepoFile | None:
        if sha256 not in self._blobs:  # a commit made after the repo was added
            for repo in self.repos.values():
                self.add_repo(repo)
        return self._blobs.get(sha256)

    def start(self) -> "FakeHub":
        self.hub.start()
        self.cdn.start()
        self.cas.start()
        return self

    def stop(self) -> None:
        self.hub.stop()
        self.cdn.stop()
        self.cas.stop()

    def __enter__(self) -> "FakeHub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class HubError(Exception):
    def __init__(self, status: int, code: str | None, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def _authorised(hub: FakeHub, handler: Handler) -> bool:
    auth = handler.headers.get("Authorization", "")
    return auth.startswith("Bearer ") and auth[7:] in hub.tokens


class HubHandler(Handler):
    owner: FakeHub

    def do_GET(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def _dispatch(self) -> None:
        hub = self.owner
        hub.log(self)
        url = urlsplit(self.path)
        path = url.path
        query = parse_qs(url.query, keep_blank_values=True)
        if path.startswith("/api/") and scripted_status(self, "api", path):
            return
        try:
            if path == "/api/models":
                self._expect("list_models", ("GET",), query, LIST_MODELS_PARAMS,
                             exclusive=("expand", ("full", "cardData", "config")))
                self._list_models(query)
            elif path == "/api/datasets":
                self._expect("list_datasets", ("GET",), query, LIST_DATASETS_PARAMS, exclusive=("expand", ("full",)))
                self._list_models(query, "dataset")
            elif path.startswith("/api/models/"):
                self._api(path[len("/api/models/"):], query)
            elif path.startswith("/api/datasets/"):
                self._api(path[len("/api/datasets/"):], query, "datasets/")
            elif "/resolve/" in path:
                self._expect("hf_hub_download", ("GET", "HEAD"), query, {})
                self._resolve(path)
            else:
                raise HubError(404, None, "Not Found")
        except HubError as err:
            headers = {"X-Error-Message": err.message, **err.headers}
            if err.code:
                headers["X-Error-Code"] = err.code
            self.send_json(err.status, {"error": err.message}, headers)

    # -- refusing what no official client sends ------------------------------------------------------------------

    def _refuse(self, status: int, why: str, headers: dict[str, str] | None = None) -> None:
        message = f"imitation Hub: {self.command} {urlsplit(self.path).path}: {why}"
        with self.owner._lock:
            self.owner.refused.append(message)
        raise HubError(status, None, message, headers)

    def _expect(self, call: str, methods: tuple[str, ...], query: dict, params: dict, *,
                required: tuple[str, ...] = (), exclusive: tuple[str, tuple[str, ...]] | None = None,
                where: str = "query parameter") -> None:
        """Refuse the request unless huggingface_hub's `call` could have sent it: its method, and `query` (parsed,
        blank values kept) within `params` (see LIST_MODELS_PARAMS), with the `required` ones present and `exclusive`
        = (name, others) not combined."""
        if self.command not in methods:
            self._refuse(405, f"huggingface_hub ({call}) never sends {self.command} here, only {', '.join(methods)}",
                         {"Allow": ", ".join(methods)})
        for name, values in query.items():
            if name not in params:
                sent = ", ".join(sorted(params)) or "none"
                self._refuse(400, f"unknown {where} {name!r}: huggingface_hub ({call}) never sends it "
                                  f"(it sends: {sent})")
            accepted, repeats = params[name]
            if len(values) > 1 and not repeats:
                self._refuse(400, f"{where} {name!r} given {len(values)} times; huggingface_hub ({call}) sends it once")
            for value in values:
                if accepted == "int":
                    ok = value.isdigit()
                else:
                    ok = accepted == "any" or value in accepted
                if not ok:
                    self._refuse(400, f"{where} {name}={value!r} is never sent by huggingface_hub ({call})")
        for name in required:
            if name not in query:
                self._refuse(400, f"{where} {name!r} missing: huggingface_hub ({call}) always sends it")
        if exclusive and exclusive[0] in query:
            clash = [other for other in exclusive[1] if other in query]
            if clash:
                self._refuse(400, f"{exclusive[0]!r} together with {', '.join(map(repr, clash))}: huggingface_hub "
                                  f"({call}) refuses to send that combination")

    # -- lookups -----------------------------------------------------------------------------------------------------

    def _repo(self, repo_id: str, *, for_files: bool) -> FakeRepo:
        hub = self.owner
        repo = hub.repos.get(repo_id)
        if repo is None or (repo.private and not _authorised(hub, self)):
            raise HubError(401, "RepoNotFound", f"Repository Not Found for url: {self.path}.")
        if for_files and repo.gated and not _authorised(hub, self):
            raise HubError(401, "GatedRepo", f"Access to model {repo_id} is restricted. You must have access to it "
                                             "and be authenticated to access it. Please log in.")
        return repo

    @staticmethod
    def _commit(repo: FakeRepo, revision: str) -> str:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return commit

    def _split_repo(self, raw: str, markers: tuple[str, ...], prefix: str = "") -> tuple[str, str | None, list[str]]:
        """Split raw path segments into (repo key, marker, the segments after it). Ids have one or two segments;
        a one-segment id is taken only when it names a repo (as `gpt2` does on the Hub). `prefix`: `datasets/` for
        a dataset's URL."""
        segments = raw.split("/")
        if len(segments) >= 2 and segments[1] in markers and prefix + unquote(segments[0]) in self.owner.repos:
            return prefix + unquote(segments[0]), segments[1], segments[2:]
        repo_id = prefix + unquote("/".join(segments[:2]))
        if len(segments) > 2:
            return (repo_id, segments[2], segments[3:]) if segments[2] in markers else (repo_id, "", [])
        return repo_id, None, []

    # -- /api/models ---------------------------------------------------------------------------------------------

    def _api(self, rest: str, query: dict, prefix: str = "") -> None:
        repo_id, marker, tail = self._split_repo(
            rest, ("revision", "tree", "paths-info", "refs", "commits", "xet-read-token"), prefix)
        if marker in (None, "revision") and prefix:
            self._expect("dataset_info", ("GET",), query, DATASET_INFO_PARAMS, exclusive=("expand", ("blobs",)))
        elif marker in (None, "revision"):
            self._expect("model_info", ("GET",), query, MODEL_INFO_PARAMS,
                         exclusive=("expand", ("blobs", "securityStatus")))
        elif marker == "tree":
            self._expect("list_repo_tree", ("GET",), query, TREE_PARAMS, required=("recursive", "expand"))
        elif marker == "refs":
            self._expect("list_repo_refs", ("GET",), query, REFS_PARAMS)
        elif marker == "paths-info":
            self._expect("get_paths_info", ("POST",), query, {})
        elif marker == "commits":
            self._expect("list_repo_commits", ("GET",), query, COMMITS_PARAMS)
        elif marker == "xet-read-token":
            self._expect("xet_get", ("GET",), query, {})
        repo = self._repo(repo_id, for_files=marker == "xet-read-token")
        if self.owner.faults.info_override is not NOT_SET and marker in (None, "revision"):
            return self.send_json(200, self.owner.faults.info_override)
        if marker is None:
            if not self.owner.answer_bare_model_info:
                raise HubError(401, "RepoNotFound", f"Repository Not Found for url: {self.path}.")
            return self.send_json(200, self._model_info(repo, repo.branches["main"], query))
        if marker == "revision" and len(tail) == 1:
            return self.send_json(200, self._model_info(repo, self._commit(repo, unquote(tail[0])), query))
        if marker == "refs" and not tail:
            return self.send_json(200, self._refs(repo, "include_prs" in query))
        if marker == "commits" and len(tail) == 1:
            return self._commits(repo, self._commit(repo, unquote(tail[0])), query)
        if marker == "xet-read-token" and len(tail) == 1:
            self._commit(repo, unquote(tail[0]))
            if not (self.owner.xet if repo.xet is None else repo.xet):
                raise HubError(400, None, f"{repo.repo_id} is not stored in Xet")
            return self.send_json(200, *xet_read_token_answer(self.owner.cas))
        if marker not in ("tree", "paths-info") or not tail:
            raise HubError(404, None, "Not Found")
        commit = self._commit(repo, unquote(tail[0]))
        subpath = unquote("/".join(tail[1:]))
        if marker == "tree":
            if self.owner.faults.tree_override is not NOT_SET:
                return self.send_json(200, self.owner.faults.tree_override)
            return self._tree(repo, commit, subpath, query)
        if marker == "paths-info" and self.command == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode()
            if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
                self._refuse(400, "huggingface_hub (get_paths_info) sends a form (application/x-www-form-urlencoded)")
            form = parse_qs(body, keep_blank_values=True)
            self._expect("get_paths_info", ("POST",), form, PATHS_INFO_FORM, required=("paths", "expand"),
                         where="form field")
            wanted = set(form.get("paths", []))
            entries = [e for e in self._entries(repo, commit, recursive=True) if e["path"] in wanted]
            return self.send_json(200, entries)
        raise HubError(404, None, "Not Found")

    def _list_models(self, query: dict, repo_type: str = "model") -> None:
        """`GET /api/models?search=&limit=` (or `/api/datasets`): public repos, paged by a `Link` cursor."""
        hub = self.owner
        search = (query.get("search") or [""])[0].lower()
        repos = [r for r in hub.repos.values()
                 if r.repo_type == repo_type and not r.private and search in r.repo_id.lower()]
        repos.sort(key=lambda r: r.repo_id)
        limit = int((query.get("limit") or ["1000"])[0])
        start = int((query.get("cursor") or ["0"])[0])
        page = repos[start : start + min(limit, hub.tree_page_size)]
        headers = {}
        if start + len(page) < len(repos) and len(page) < limit:
            nxt = {k: v for k, v in query.items()} | {"cursor": [str(start + len(page))]}
            qs = "&".join(f"{k}={quote(v)}" for k, vs in sorted(nxt.items()) for v in vs)
            headers["Link"] = f'<{hub.url}/api/{repo_type}s?{qs}>; rel="next"'
        body = []
        for repo in page:
            info = self._model_info(repo, repo.branches["main"], {})
            body.append({k: info[k] for k in ("_id", "id", "modelId", "likes", "downloads", "tags", "pipeline_tag",
                                              "library_name", "createdAt", "private", "gated", "lastModified")
                         if k in info})
        self.send_json(200, body, headers)

    def _model_info(self, repo: FakeRepo, commit: str, query: dict) -> dict:
        files = repo.commits[commit]
        card = repo.card_data(commit)
        tags = list(card.get("tags") or [])
        library = card.get("library_name") or None
        if library and library not in tags:
            tags.insert(0, library)
        tags += [f"dataset:{d}" for d in card.get("datasets") or []]
        if card.get("license"):
            tags.append(f"license:{card['license']}")
        if card.get("language"):
            tags.append(card["language"] if isinstance(card["language"], str) else card["language"][0])
        blobs = query.get("blobs") == ["true"]
        siblings = []
        for f in files.values():
            entry = {"rfilename": f.path}
            if blobs:
                entry.update(size=f.size, blobId=f.git_sha1)
                if f.lfs:
                    entry["lfs"] = {"size": f.size, "sha256": f.sha256, "pointerSize": len(f.lfs_pointer())}
            siblings.append(entry)
        info = {
            "_id": hashlib.sha1(repo.key.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": repo.repo_id.split("/")[0] if "/" in repo.repo_id else None,
            "sha": commit,
            "lastModified": repo.history[commit]["date"],
            "createdAt": repo.created_at,
            "private": repo.private,
            "gated": "auto" if repo.gated else False,
            "disabled": False,
            "downloads": 1000,
            "likes": 10,
            "tags": tags,
            "pipeline_tag": card.get("pipeline_tag") or None,
            "library_name": library,
            "cardData": card or None,
            "config": repo.config(commit) or None,
            "siblings": siblings,
        }
        if repo.repo_type == "dataset":  # the Hub's dataset info has no model fields
            for name in ("modelId", "pipeline_tag", "library_name", "config"):
                del info[name]
        return info

    def _commits(self, repo: FakeRepo, commit: str, query: dict) -> None:
        """`/commits/{rev}`: the commit and its ancestors, newest first, COMMITS_PAGE a page, paged by `Link`."""
        chain = repo.ancestry(commit)
        page = int((query.get("p") or ["0"])[0])
        items = []
        for sha in chain[page * COMMITS_PAGE:(page + 1) * COMMITS_PAGE]:
            info = repo.history[sha]
            item = {"id": sha, "title": info["title"], "message": "", "date": info["date"],
                    "authors": [{"user": "someone", "avatar": "https://example.invalid/a.png"}]}
            if query.get("expand[]") == ["formatted"]:
                item["formatted"] = {"title": f"<p>{info['title']}</p>", "message": ""}
            items.append(item)
        headers = {}
        if (page + 1) * COMMITS_PAGE < len(chain):
            headers["Link"] = f'<{self.owner.url}{self.path.split("?")[0]}?p={page + 1}>; rel="next"'
        self.send_json(200, items, headers=headers)

    @staticmethod
    def _refs(repo: FakeRepo, include_prs: bool) -> dict:
        """Branches, tags and (asked for) pull requests, as the Hub lists them: a PR is `refs/pr/N` by name."""
        def refs(kind: str, names: dict[str, str]) -> list[dict]:
            return [{"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": c} for n, c in sorted(names.items())]

        branches = {n: c for n, c in repo.branches.items() if not n.startswith("refs/pr/")}
        answer = {"branches": refs("heads", branches), "converts": [], "tags": refs("tags", repo.tags)}
        if include_prs:  # only then does the Hub list them
            answer["pullRequests"] = [{"name": n, "ref": n, "targetCommit": c} for n, c in sorted(repo.branches.items())
                                      if n.startswith("refs/pr/")]
        return answer

    def _entries(self, repo: FakeRepo, commit: str, *, recursive: bool, under: str = "") -> list[dict]:
        prefix = f"{under}/" if under else ""
        entries: list[dict] = []
        dirs: set[str] = set()
        for f in repo.commits[commit].values():
            if not f.path.startswith(prefix):
                continue
            rel = f.path[len(prefix):]
            parts = rel.split("/")
            for depth in range(1, len(parts)):
                if recursive or depth == 1:
                    dirs.add(prefix + "/".join(parts[:depth]))
            if recursive or len(parts) == 1:
                entry = {"type": "file", "oid": f.git_sha1, "size": f.size, "path": f.path}
                if f.lfs:
                    entry["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": len(f.lfs_pointer())}
                if xet_hash := self.owner.xet_hash(repo, f):
                    entry["xetHash"] = xet_hash
                entries.append(entry)
        files = repo.commits[commit]
        entries += [{"type": "directory", "oid": git_tree_id(files, d), "path": d} for d in dirs]
        return sorted(entries, key=lambda e: (e["type"] != "directory", e["path"]))

    def _tree(self, repo: FakeRepo, commit: str, subpath: str, query: dict) -> None:
        recursive = query.get("recursive") == ["true"]
        entries = self._entries(repo, commit, recursive=recursive, under=subpath.strip("/"))
        if subpath and not entries:
            raise HubError(404, "EntryNotFound", f"{subpath} does not exist on {commit}",
                           {"X-Repo-Commit": commit})
        start = int((query.get("cursor") or ["0"])[0])
        size = self.owner.tree_page_size
        page = entries[start : start + size]
        headers = {}
        if start + size < len(entries):
            nxt = dict(query, cursor=[str(start + size)])
            qs = "&".join(f"{k}={quote(v[0])}" for k, v in sorted(nxt.items()))
            headers["Link"] = f'<{self.owner.url}{urlsplit(self.path).path}?{qs}>; rel="next"'
        self.send_json(200, page, headers)

    # -- /{repo}/resolve/{rev}/{path} ------------------------------------------------------------------------------

    def _resolve(self, path: str) -> None:
        hub = self.owner
        dataset = path.startswith("/datasets/")
        repo_id, marker, tail = self._split_repo(path.lstrip("/").removeprefix("datasets/"), ("resolve",),
                                                 "datasets/" if dataset else "")
        if marker != "resolve" or len(tail) < 2:
            raise HubError(404, None, "Not Found")
        repo = self._repo(repo_id, for_files=True)
        commit = self._commit(repo, unquote(tail[0]))
        file_path = unquote("/".join(tail[1:]))
        entry = repo.commits[commit].get(file_path)
        if entry is None:
            raise HubError(404, "EntryNotFound", f"{file_path} does not exist on {commit}", {"X-Repo-Commit": commit})
        common = {"X-Repo-Commit": commit, "Access-Control-Expose-Headers": "X-Repo-Commit,ETag,X-Linked-Size,"
                  "X-Linked-ETag,Accept-Ranges,Content-Range,X-Error-Code,X-Error-Message"}
        if entry.lfs:
            location = f"{hub.cdn.url}/repos/{entry.sha256[:2]}/{entry.sha256}?X-Amz-Signature=imitation&repo={quote(repo.repo_id)}"
            self.send_response(302)
            for name, value in common.items():
                self.send_header(name, value)
            self.send_header("ETag", f'"{entry.git_sha1}"')
            self.send_header("X-Linked-Etag", f'"{entry.sha256}"')
            self.send_header("X-Linked-Size", str(entry.size))
            if xet_hash := hub.xet_hash(repo, entry):
                kind = "datasets" if dataset else "models"
                self.send_header("X-Xet-Hash", xet_hash)
                self.send_header("Link", f'<{hub.url}/api/{kind}/{repo.repo_id}/xet-read-token/{commit}>; '
                                         f'rel="xet-auth", <{hub.cas.url}/v1/reconstructions/{xet_hash}>; '
                                         'rel="xet-reconstruction-info"')
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        serve_file(self, entry, {**common, "ETag": f'"{entry.git_sha1}"', "Content-Type": "application/octet-stream"})


def scripted_status(handler: Handler, *keys: str) -> bool:
    """Answer with the next scripted status for the first of `keys` that has one (see `Faults.status_queue`)."""
    hub = handler.owner
    for key in keys:
        planned = hub.faults.take(hub._lock, hub.faults.status_queue, key)
        if planned is not None:
            status, headers = planned
            handler.send_status(status, headers)
            return True
    return False


def serve_file(handler: Handler, entry: RepoFile, headers: dict[str, str]) -> None:
    """Send a repo file, applying the hub's faults for it."""
    hub = handler.owner
    faults = hub.faults
    if handler.command == "GET" and scripted_status(handler, entry.path):
        return
    transform = None
    if entry.path in faults.corrupt:
        def transform(offset: int, chunk: bytes) -> bytes:
            return bytes([chunk[0] ^ 0xFF]) + chunk[1:] if offset == 0 and chunk else chunk
    get = handler.command == "GET"
    delay = faults.first_byte_delay.get(entry.path) if get else None
    if delay:  # the headers at once, the body's first byte `delay` seconds later, then the rest at full speed
        inner, started = transform, []

        def transform(offset: int, chunk: bytes) -> bytes:
            if not started:
                started.append(offset)
                time.sleep(delay)
            return inner(offset, chunk) if inner else chunk
    # Count the body as in flight until its last bytes are read for sending (a throttled sender still sleeps after
    # them while the client, done, may already open its next connection).
    rng = parse_range(handler.headers.get("Range"), entry.size) if not faults.ignore_range else None
    last = rng[1] if isinstance(rng, tuple) else entry.size
    done = threading.Event()

    def finish() -> None:
        with hub._lock:
            if not done.is_set():
                done.set()
                hub.in_flight -= 1

    def read(start: int, end: int) -> bytes:
        chunk = entry.read(start, end)
        if end >= last:
            finish()
        return chunk

    with hub._lock:
        hub.in_flight += 1
        hub.max_in_flight = max(hub.max_in_flight, hub.in_flight)
    try:
        handler.send_content(
            entry.size, read, headers, sendfile_path=entry.disk_path, honour_range=not faults.ignore_range,
            bytes_per_second=faults.throttle.get(entry.path), transform=transform,
            reset_after=faults.take(hub._lock, faults.reset_after, entry.path) if get else None,
            stall_after=faults.take(hub._lock, faults.stall_after, entry.path) if get else None,
            stall_seconds=faults.stall_seconds,
        )
    finally:
        finish()


class CdnHandler(Handler):
    """The storage host LFS downloads are redirected to. It must never see the Hub token."""

    owner: FakeHub

    def do_GET(self):
        hub = self.owner
        hub.log(self)
        if self.headers.get("Authorization"):
            hub.cdn_violations.append(self.path)
            return self.send_json(400, {"error": "Authorization header sent to a signed storage URL"})
        parts = urlsplit(self.path).path.strip("/").split("/")
        entry = hub.blob(parts[-1]) if len(parts) == 3 and parts[0] == "repos" else None
        if entry is None:
            return self.send_json(404, {"error": "NoSuchKey"})
        serve_file(self, entry, {"ETag": f'"{entry.sha256}"', "Content-Type": "application/octet-stream"})

    do_HEAD = do_GET
