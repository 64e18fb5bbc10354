"""`hubmirror serve --upstream`: what the mirror lacks is pulled from a Hugging Face endpoint, then served.

A request naming a repo and revision (model info, tree, paths-info, refs, resolve) first makes sure that revision is
in the catalog: a missing one is pulled whole through the `hf` source (`hubmirror.pull.pull`: the usual verification
and admission scan, one catalog revision like any pull), then the request is answered from the catalog as without an
upstream, so a quarantined file stays a 403. A 40-hex commit once catalogued is never asked about again; a branch or
tag name is resolved upstream again at most every `ref_ttl` seconds (the last known commit is served meanwhile, and
whenever the upstream fails).

One pull per (repo, revision) at a time (single flight): concurrent requests wait on the same pull, each for at most
`timeout` seconds (then a 504, the pull going on in the background to serve the next request). Upstream errors with
nothing cached: 404/401 as the Hub's own error codes (clients raise their usual exceptions), any other failure a 502
with the upstream's error in `X-Error-Message`. The pull uses the server's own `HF_TOKEN`; nothing of the client's
request (its `Authorization` above all) reaches the upstream. `allow`/`deny` are fnmatch globs on the repo id: a repo
not allowed (or denied) is never fetched, and a request for one the mirror lacks is a 404 RepoNotFound saying why.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

from hubmirror.errors import AccessDeniedError, NotFoundError, UsageError
from hubmirror.serving.hf_api import HubError

COMMIT_LEN = 40
DEFAULT_REF_TTL = 300.0
DEFAULT_TIMEOUT = 300.0
log = logging.getLogger("hubmirror.serving.proxy")


def _is_commit(revision: str) -> bool:
    return len(revision) == COMMIT_LEN and all(c in "0123456789abcdef" for c in revision)


class Upstream:
    """Pulls what `view`'s mirror at `root` lacks from the Hugging Face endpoint `endpoint`."""

    def __init__(self, root: Path, registry, endpoint: str, *, ref_ttl: float = DEFAULT_REF_TTL,
                 timeout: float = DEFAULT_TIMEOUT, allow: tuple[str, ...] = (), deny: tuple[str, ...] = (),
                 workers: int = 4):
        self.root = Path(root)
        self.registry = registry
        self.endpoint = endpoint.rstrip("/")
        self.ref_ttl = ref_ttl
        self.timeout = timeout
        self.allow = tuple(allow)
        self.deny = tuple(deny)
        self._lock = threading.Lock()  # guards the two maps below
        self._pulls: dict[tuple[str, str], Future] = {}  # pulls in progress, one per (repo, revision)
        self._checked: dict[tuple[str, str], float] = {}  # when a ref was last asked upstream (monotonic)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="upstream")

    def allowed(self, repo: str) -> bool:
        if self.allow and not any(fnmatch.fnmatchcase(repo, p) for p in self.allow):
            return False
        return not any(fnmatch.fnmatchcase(repo, p) for p in self.deny)

    def ensure(self, view, repo: str, revision: str | None) -> None:
        """Make `repo` at `revision` (None: `main`) servable from the catalog, pulling it if need be; raises the
        HubError to answer when it is not and cannot be."""
        revision = revision or "main"
        key = (repo, revision)
        cached = self._cached(view, repo, revision)
        if cached and (_is_commit(revision) or self._fresh(key)):
            return
        if not self.allowed(repo):
            if cached:
                return  # already in the mirror: served, just never fetched again
            raise HubError(404, "RepoNotFound", f"{repo} is not in this mirror, and its --allow/--deny rules do not "
                                                "let it be fetched upstream")
        with self._lock:
            future = self._pulls.get(key)
            if future is None:
                if cached and self._fresh(key):  # re-checked while this request waited for the lock
                    return
                future = self._pulls[key] = self._pool.submit(self._pull, repo, revision)
                future.add_done_callback(lambda _f, key=key: self._done(key))
        try:
            future.result(timeout=self.timeout)
        except FutureTimeout:
            if cached:
                return
            raise HubError(504, None, f"the upstream {self.endpoint} did not deliver {repo}@{revision} within "
                                      f"{self.timeout:g} s (still being fetched: try again)") from None
        except Exception as exc:
            if cached:  # the upstream is down or failing: the last known commit is served
                log.warning("upstream check of %s@%s failed (serving the cached revision): %s", repo, revision, exc)
                return
            raise _hub_error(exc, repo, revision) from exc

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _cached(self, view, repo: str, revision: str) -> bool:
        model = view.repos().get(repo)
        return model is not None and view.commit(model, revision) is not None

    def _fresh(self, key: tuple[str, str]) -> bool:
        checked = self._checked.get(key)
        return checked is not None and time.monotonic() - checked < self.ref_ttl

    def _done(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._checked[key] = time.monotonic()  # a failure counts too: a failing upstream is asked once per ttl
            self._pulls.pop(key, None)

    def _pull(self, repo: str, revision: str) -> None:
        """Pull `repo`@`revision` whole from the upstream (in a worker thread of this object)."""
        from hubmirror.mirror import Mirror
        from hubmirror.pull import pull

        source, _ = self.registry.source("hf")
        ref = source.parse(f"{repo}@{revision}")
        with Mirror.open(self.root) as mirror:
            ctx = mirror.source_context(self.registry, endpoint=self.endpoint)
            ctx.timeout = min(ctx.timeout, self.timeout)
            for result in pull(mirror, self.registry, ref, ctx):
                if result.quarantined:
                    log.warning("%s@%s: quarantined by the admission scan: %s", repo, revision,
                                ", ".join(result.quarantined))


def _hub_error(exc: BaseException, repo: str, revision: str) -> HubError:
    """The Hub's answer for a failed pull of `repo`@`revision` (nothing cached), so clients raise as from the Hub."""
    message = " ".join(str(exc).encode("ascii", "replace").decode().split())[:1000]  # one header-safe line
    if isinstance(exc, UsageError):  # not a Hugging Face repo id
        return HubError(404, "RepoNotFound", f"Repository Not Found for url: {repo}. {message}")
    if isinstance(exc, NotFoundError):
        if message.endswith("revision not found"):  # plugins/huggingface.py words each of the Hub's codes
            return HubError(404, "RevisionNotFound", f"Invalid rev id: {revision} (upstream: {message})")
        if message.endswith("file not found"):  # a file of the listing is gone: the upstream is inconsistent
            return HubError(502, None, f"upstream error: {message}")
        return HubError(404, "RepoNotFound", f"Repository Not Found for url: {repo}. (upstream: {message})")
    if isinstance(exc, AccessDeniedError):
        if "gated repository" in message:
            return HubError(401, "GatedRepo", f"Access to model {repo} is restricted (upstream: {message})")
        if "disabled" in message:
            return HubError(403, None, "Access to this resource is disabled.")
        return HubError(401, "RepoNotFound", f"Repository Not Found for url: {repo}. (upstream: {message})")
    return HubError(502, None, f"upstream error: {message}")
