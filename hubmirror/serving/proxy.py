"""`hubmirror serve --upstream`: what the mirror lacks is fetched from a Hugging Face endpoint, then served.

A request naming a repo and revision (model info, tree, paths-info, refs, resolve) first makes sure that revision is
known: in the catalog, or resolved upstream through the `hf` source (model info and tree, as `snapshot_download`
asks them). A revision resolved but not yet catalogued is answered at once from its upstream listing (model info,
tree, paths-info: hubmirror.serving.proxy_view) while a `RevisionFetch` (hubmirror.serving.proxy_fetch) brings its
files in the background, each once; a file request waits for that file alone, verified and admission-scanned, so a
quarantined file stays a 403. When every file is in, the revision becomes one catalog revision like any pull's.

A 40-hex commit once known is never asked about again; a branch or tag name is resolved upstream again at most every
`ref_ttl` seconds (the last known commit is served meanwhile, and whenever the upstream fails). One resolution per
(repo, revision) at a time (single flight); each request waits at most `timeout` seconds (then a 504, the work going
on in the background for the next request). Upstream errors with nothing cached: the Hub's own status and error code
(`hub_answer` on the source's error) for 401/403/404, so clients raise their usual exceptions; any other failure a 502
with the upstream's error in `X-Error-Message`. Upstream requests carry the server's own `HF_TOKEN`; nothing of the
client's request (its `Authorization` above all) reaches the upstream. `allow`/`deny` are fnmatch globs on the repo
id: a repo not allowed (or denied) is never fetched, and a request for one the mirror lacks is a 404 RepoNotFound
saying why.
"""

from __future__ import annotations

import contextvars
import fnmatch
import itertools
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

from hubmirror.access.policy import OPEN, Principal
from hubmirror.errors import HubmirrorError, UsageError, redact
from hubmirror.serving.hf_api import HubError
from hubmirror.serving.hub_ids import hub_time, is_repo_id
from hubmirror.serving.metrics import record_proxy, record_upstream_fetch
from hubmirror.serving.proxy_fetch import RevisionFetch
from hubmirror.serving.waiting import wait_for
from hubmirror.upstream import bounded_commit_info

COMMIT_LEN = 40
DEFAULT_REF_TTL = 300.0
DEFAULT_TIMEOUT = 300.0
FETCH_WORKERS = 2  # large files of a revision fetched at once in the background
MAX_REFS = 10_000  # refs of one repo taken from the upstream
MAX_COMMITS_PAGE = 1000  # commits of one upstream page passed on
MAX_LISTING_PAGE = 1000  # models of one upstream listing page passed on (the Hub's own page)
MAX_FAILED_FETCHES = 256  # failed fetches kept for their error (the oldest go first)
log = logging.getLogger("hubmirror.serving.proxy")


def _is_commit(revision: str) -> bool:
    """Whether `revision` is a full 40-hex commit (immutable: never asked upstream again once known)."""
    return len(revision) == COMMIT_LEN and all(c in "0123456789abcdef" for c in revision)


class Upstream:
    """Resolves and fetches what the mirror at `root` lacks from the Hugging Face endpoint `endpoint`."""

    def __init__(self, root: Path, registry, endpoint: str, *, ref_ttl: float = DEFAULT_REF_TTL,
                 timeout: float = DEFAULT_TIMEOUT, allow: tuple[str, ...] = (), deny: tuple[str, ...] = (),
                 workers: int = 4):
        self.root = Path(root)
        self.registry = registry
        self.endpoint = endpoint.rstrip("/")
        self.ref_ttl = ref_ttl
        self.timeout = timeout
        self.allow = tuple(p.lower() for p in allow)
        self.deny = tuple(p.lower() for p in deny)
        self._lock = threading.Lock()  # guards the seven maps below
        self._resolving: dict[tuple[str, str], Future] = {}  # resolutions in progress, one per (repo, revision)
        self._checked: dict[tuple[str, str], float] = {}  # when a revision was last asked upstream (monotonic)
        self._resolved: dict[tuple[str, str], str] = {}  # (repo, revision) -> the commit upstream last named
        self._kinds: dict[tuple[str, str], str | None] = {}  # (repo, revision) -> branch, tag, pr, as upstream says
        self._fetches: dict[tuple[str, str], RevisionFetch] = {}  # (repo, commit) -> its files coming in
        # fetches that failed, kept until their revision is resolved afresh: a request resolved before the failure
        # gets the fetch's own error for its file (a gated repo's GatedRepo), never a RevisionNotFound
        self._failed: dict[tuple[str, str], RevisionFetch] = {}
        self._withheld: dict[tuple[str, str], str] = {}  # gated or private upstream, asked by a reader who may not
        self._refs: dict[str, tuple[float, list[dict]]] = {}  # repo -> (when, its upstream refs as catalog rows)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="upstream")
        self._load_source()  # the plugins loaded before the server listens, not while the first miss waits

    def allowed(self, repo: str) -> bool:
        """Whether `repo` may be fetched: the globs are matched whatever the case, as the Hub resolves repo ids."""
        repo = repo.lower()
        if self.allow and not any(fnmatch.fnmatchcase(repo, p) for p in self.allow):
            return False
        return not any(fnmatch.fnmatchcase(repo, p) for p in self.deny)

    def resolved(self, repo: str, revision: str | None) -> str | None:
        """The commit `revision` (None: `main`) of `repo` names, as last resolved upstream by this server."""
        revision = revision or "main"
        return revision if _is_commit(revision) else self._resolved.get((repo, revision))

    def resolved_refs(self, repo: str) -> dict[str, tuple[str, str | None]]:
        """{ref name: (commit, kind)} of every branch or tag of `repo` this server resolved upstream (its kind as
        the upstream's refs said, None where they did not)."""
        with self._lock:
            return {name: (commit, self._kinds.get((r, name))) for (r, name), commit in self._resolved.items()
                    if r == repo and name != commit}

    def fetch(self, repo: str, revision: str | None) -> RevisionFetch | None:
        """The fetch in progress of the commit `revision` of `repo` names, if it is not catalogued yet."""
        commit = self.resolved(repo, revision)
        if commit is None:
            return None
        with self._lock:
            return self._fetches.get((repo, commit)) or self._failed.get((repo, commit))

    def fetching(self) -> list[RevisionFetch]:
        """The revisions resolved upstream whose files are still coming in (or whose fetch failed since)."""
        with self._lock:
            return [*self._fetches.values(), *self._failed.values()]

    def ensure(self, view, repo: str, revision: str | None, principal: Principal = OPEN) -> None:
        """Make `repo` at `revision` (None: `main`) answerable (catalogued, or resolved and coming in), asking the
        upstream if need be; raises the HubError to answer when it is not and cannot be. A repo gated or private
        upstream is fetched only for a `principal` that may read such a repo: for others it is not found, and
        nothing of it is fetched."""
        restricted_ok = principal.may_read(repo, True)
        try:
            self._ensure(view, repo, revision or "main", restricted_ok)
        except HubError as err:
            record_proxy("miss")
            if not restricted_ok and err.status in (401, 403):  # gated or private upstream: not theirs to know
                raise _withheld_error(repo) from None
            raise
        record_proxy("miss" if self.fetch(repo, revision) is not None else "hit")

    def _ensure(self, view, repo: str, revision: str, restricted_ok: bool) -> None:
        key = (repo, revision)
        cached = view.catalogued(repo, revision) or self.fetch(repo, revision) is not None
        if cached and (_is_commit(revision) or self._fresh(key)):
            return
        if not cached and not restricted_ok and key in self._withheld and self._fresh(key):
            raise _withheld_error(repo)
        if not self.allowed(repo):
            if cached:
                return  # already in the mirror: served, just never fetched again
            raise HubError(404, "RepoNotFound", f"{repo} is not in this mirror, and its --allow/--deny rules do not "
                                                "let it be fetched upstream")
        context = contextvars.copy_context()  # the request's metrics, for the threads fetching on its behalf
        asked = (repo, revision, restricted_ok)  # a resolution that may fetch a gated repo is not one that may not
        with self._lock:
            future = self._resolving.get(asked)
            if future is None:
                if cached and self._fresh(key):  # re-checked while this request waited for the lock
                    return
                future = self._resolving[asked] = self._pool.submit(context.run, self._resolve, view, repo, revision,
                                                                    restricted_ok)
                future.add_done_callback(lambda _f, asked=asked: self._resolution_done(asked))
        try:
            wait_for(future, self.timeout)
        except FutureTimeout:
            if cached:
                return
            raise HubError(504, None, f"the upstream {self.endpoint} did not answer for {repo}@{revision} within "
                                      f"{self.timeout:g} s (still being asked: try again)") from None
        except Exception as exc:
            if cached:  # the upstream is down or failing: the last known commit is served
                log.warning("upstream check of %s@%s failed (serving the cached revision): %s", repo, revision, exc)
                return
            raise hub_error(exc, repo, revision) from exc
        if not cached and not restricted_ok and key in self._withheld:
            raise _withheld_error(repo)

    def refs(self, repo: str) -> list[dict] | None:
        """The upstream's refs of `repo` as catalog ref rows ({name, kind, commit_id}), asked at most every `ref_ttl`
        seconds; the last answer (or None) while the upstream fails, and None for a repo it may not be asked."""
        if not self.allowed(repo):
            return None
        with self._lock:
            known = self._refs.get(repo)
        if known is not None and time.monotonic() - known[0] < self.ref_ttl:
            return known[1]
        source, _ = self._load_source()
        try:
            found = [{"name": name, "kind": kind, "commit_id": commit}
                     for name, kind, commit in itertools.islice(source.refs(self._context(), repo), MAX_REFS)
                     if isinstance(name, str) and len(name) <= 256 and isinstance(commit, str) and _is_commit(commit)]
        except Exception as exc:  # an upstream down or answering nonsense: what was known
            log.warning("upstream refs of %s failed: %s", repo, redact(str(exc)))
            return None if known is None else known[1]
        with self._lock:
            self._refs[repo] = (time.monotonic(), found)
        return found

    def commits(self, repo: str, revision: str, query: list[tuple[str, str]]) -> tuple[list[dict], str | None] | None:
        """The upstream's page of `/commits/{revision}` for `query` (each entry checked and bounded as the Hub's
        client reads it) and the query of its next page; None where the upstream may not be asked or cannot be
        reached (the mirror's own revisions answer then). Its 4xx answers are the client's (hub_error)."""
        if not self.allowed(repo) or len(query) > 8 or any(len(k) + len(v) > 256 for k, v in query):
            return None
        source, _ = self._load_source()
        try:
            items, following = source.commits_page(self._context(), repo, revision, query)
        except HubmirrorError as exc:
            answer = getattr(exc, "hub_answer", None)
            if answer is not None and 400 <= answer.status < 500:
                raise hub_error(exc, repo, revision) from exc
            log.warning("upstream commits of %s@%s failed: %s", repo, revision, exc)
            return None
        except Exception as exc:
            log.warning("upstream commits of %s@%s failed: %s", repo, revision, redact(str(exc)))
            return None
        return [c for c in map(_commit_entry, items if isinstance(items, list) else [])
                if c is not None][:MAX_COMMITS_PAGE], following

    def listing(self, kind: str, query: list[tuple[str, str]]) -> tuple[list[dict], str | None] | None:
        """The upstream's page of `/api/models` (`kind` model) or `/api/datasets` for the client's `query`: the
        entries naming a repo id this server may fetch (each id checked), and the query of the next page; None
        where the upstream cannot be reached or answers nonsense (the mirror's own listing answers then)."""
        if len(query) > 64 or any(len(k) + len(v) > 512 for k, v in query):
            return None
        source, _ = self._load_source()
        try:
            items, following = source.api_page(self._context(), f"/api/{kind}s", query, f"hf {kind} listing")
        except Exception as exc:
            log.warning("upstream %s listing failed: %s", kind, redact(str(exc)))
            return None
        if not isinstance(items, list):
            return None
        prefix = "datasets/" if kind == "dataset" else ""
        kept = [item for item in items[:MAX_LISTING_PAGE] if isinstance(item, dict) and is_repo_id(item.get("id"))
                and self.allowed(prefix + item["id"])]
        return kept, following

    def _context(self):
        from hubmirror.sources import SourceContext

        return SourceContext(endpoint=self.endpoint, timeout=min(self.timeout, 60.0))

    def landed(self, fetch: RevisionFetch, repo: str, path: str):
        """The StoredFile of `path` of a fetch in progress once verified and admission-scanned (None: no such file);
        raises the HubError to answer when it fails or takes over `timeout` seconds."""
        future = fetch.landed(path)
        if future is None:
            return None
        try:
            return wait_for(future, self.timeout)
        except FutureTimeout:
            raise HubError(504, None, f"the upstream {self.endpoint} did not deliver {repo}: {path} within "
                                      f"{self.timeout:g} s (still being fetched: try again)") from None
        except Exception as exc:
            raise hub_error(exc, repo, fetch.commit) from exc

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            fetches = list(self._fetches.values())
        for fetch in fetches:
            fetch.stop()

    def _fresh(self, key: tuple[str, str]) -> bool:
        checked = self._checked.get(key)
        return checked is not None and time.monotonic() - checked < self.ref_ttl

    def _load_source(self):
        """The `hf` source and its plugin name."""
        return self.registry.source("hf")

    def _resolution_done(self, asked: tuple[str, str, bool]) -> None:
        with self._lock:
            self._checked[asked[:2]] = time.monotonic()  # a failure counts too: a failing upstream is asked once a ttl
            self._resolving.pop(asked, None)

    def _resolve(self, view, repo: str, revision: str, restricted_ok: bool = True) -> None:
        """Resolve `repo`@`revision` upstream (in a worker thread of this object): a commit the catalog holds only
        gets the ref recorded; any other starts (or joins) the fetch of its files."""
        from hubmirror.admit import admit_revisions
        from hubmirror.fetch.files import connections_for
        from hubmirror.mirror import Mirror
        from hubmirror.pull import resolve_selections

        source, plugin = self._load_source()
        ref = source.parse(f"{repo}@{revision}")
        mirror = Mirror.open(self.root, registry=self.registry)
        try:
            ctx = mirror.source_context(self.registry, endpoint=self.endpoint)
            ctx.timeout = min(ctx.timeout, self.timeout)
            try:
                [(resolved, files)] = resolve_selections(source, ref, ctx, None, None)
            except HubmirrorError:
                record_upstream_fetch("error")
                raise
            record_upstream_fetch("ok")
            commit = resolved.commit
            meta = resolved.metadata
            with self._lock:
                if not restricted_ok and (meta.gated or meta.extra.get("private")):
                    self._withheld[(repo, revision)] = commit  # for whoever may read it: nothing fetched
                    return
                self._withheld.pop((repo, revision), None)
            if view.catalogued(repo, commit):
                with self._lock:
                    self._failed.pop((repo, commit), None)
                with mirror.shared_lock(f"serve --upstream {ref}"):
                    admit_revisions(mirror, source, plugin, [(resolved, files)], ctx)
            else:
                with self._lock:
                    self._failed.pop((repo, commit), None)  # resolved afresh: fetched afresh
                    if (repo, commit) not in self._fetches:
                        ctx = connections_for(source, files, ctx, FETCH_WORKERS)  # as a pull of these files
                        fetch = RevisionFetch(mirror, source, plugin, resolved, ctx, workers=FETCH_WORKERS,
                                              on_end=self._fetch_done, on_file=record_upstream_fetch)
                        self._fetches[(repo, commit)] = fetch
                        fetch.start()
                        mirror = None  # the fetch's now: it closes it
            with self._lock:
                self._resolved[(repo, revision)] = commit
                self._kinds[(repo, revision)] = resolved.requested_kind
        finally:
            if mirror is not None:
                mirror.close()

    def _fetch_done(self, fetch: RevisionFetch, error: BaseException | None) -> None:
        """A fetch ended: catalogued, the catalog answers from now on; failed, its revision is resolved afresh at the
        next request (files already stored are not fetched again)."""
        repo, commit = fetch.revision.ref.model_id, fetch.commit
        with self._lock:
            self._fetches.pop((repo, commit), None)
            if error is not None:
                self._failed[(repo, commit)] = fetch
                while len(self._failed) > MAX_FAILED_FETCHES:
                    self._failed.pop(next(iter(self._failed)))
                for key in [k for k, c in self._resolved.items() if c == commit and k[0] == repo]:
                    self._checked.pop(key, None)
        if error is not None:
            log.warning("fetching %s@%s from %s failed: %s", repo, commit, self.endpoint, error)
        elif fetch.quarantined:
            log.warning("%s@%s: quarantined by the admission scan: %s", repo, commit, ", ".join(fetch.quarantined))


def hub_error(exc: BaseException, repo: str, revision: str) -> HubError:
    """The Hub's answer for a failed upstream request about `repo`@`revision` (nothing cached), so that clients raise
    as from the Hub: the Hub's own status and error code where its answer caused the failure, else a 502."""
    message = str(exc)  # HubError.response makes it a header-safe line
    if isinstance(exc, UsageError):  # not a Hugging Face repo id
        return HubError(404, "RepoNotFound", f"Repository Not Found for url: {repo}. {message}")
    answer = getattr(exc, "hub_answer", None)
    if answer is None or answer.status not in (401, 403, 404):
        return HubError(502, None, f"upstream error: {message}")
    if answer.code == "RevisionNotFound":
        return HubError(404, "RevisionNotFound", f"Invalid rev id: {revision} (upstream: {message})")
    if answer.code == "EntryNotFound":  # a file of the listing is gone: the upstream is inconsistent
        return HubError(502, None, f"upstream error: {message}")
    if answer.code == "GatedRepo":
        return HubError(401, "GatedRepo", f"Access to model {repo} is restricted (upstream: {message})")
    if answer.status == 403 and answer.code is None:  # e.g. a disabled repo: the Hub's own words, as it said them
        return HubError(403, None, answer.message or f"upstream error: {message}")
    return HubError(404 if answer.status == 404 else 401, "RepoNotFound",
                    f"Repository Not Found for url: {repo}. (upstream: {message})")


def _commit_entry(item: object) -> dict | None:
    """An upstream's `/commits` entry as the Hub writes it and huggingface_hub reads it (id, title, message,
    authors[{user}], date, formatted where asked), its texts bounded; None for one that is not a commit."""
    if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not _is_commit(item["id"]):
        return None
    authors = item.get("authors") if isinstance(item.get("authors"), list) else []
    names = [a.get("user") or a.get("name") for a in authors[:100] if isinstance(a, dict)]  # olah says `name`
    info = bounded_commit_info({"title": item.get("title"), "message": item.get("message"), "date": item.get("date"),
                                "authors": names})
    entry = {"id": item["id"], "title": info.get("title", ""), "message": info.get("message", ""),
             "authors": [{"user": n, "avatar": None} for n in info.get("authors", [])],
             "date": hub_time(info.get("date")) or "1970-01-01T00:00:00.000Z"}
    formatted = item.get("formatted")
    if isinstance(formatted, dict):
        entry["formatted"] = bounded_commit_info({k: formatted.get(k) for k in ("title", "message")})
    return entry


def _withheld_error(repo: str) -> HubError:
    return HubError(404, "RepoNotFound", f"Repository Not Found for url: {repo}.")
