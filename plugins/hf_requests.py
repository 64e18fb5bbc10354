"""The Hub API requests of the HF source, sent as huggingface_hub 2.x sends them, without importing its client.

Why not `HfApi`: importing `huggingface_hub.hf_api` (and the httpx stack under it) cost every pull 0.12 s (0.28 s
where trio is installed) of a whole command that otherwise takes ~0.45 s for a 91 MB repo from loopback
(benchmarks/pull_minilm.py); the calls the source makes are four GETs whose answers it reads a few fields of. What
the client sends is kept exactly, and tested against the client itself (tests/test_hf_requests.py records the
requests of `snapshot_download`, `HfApi.model_info`, `list_repo_tree`, `list_repo_refs`, `list_models` and this
module's at the same server and compares paths, queries and headers):

- headers: `user-agent` as `build_hf_headers(library_name="hubmirror", library_version=…)` makes it (built here when
  telemetry is off, as it then holds only versions and `HF_HUB_USER_AGENT_ORIGIN`; otherwise huggingface_hub builds
  it, with its torch version and agent detection), `authorization: Bearer {token}` when there is a token, a fresh
  `X-Amzn-Trace-Id` per request (its session's request hook), and `X-HF-Download-Counter: 1` on every request of the
  download path (`snapshot_download` is `flag_as_download_call`: model info, tree pages, resolve, Xet token);
- queries: booleans as httpx writes them (`true`/`false`), `include_prs=1`;
- `HF_HUB_OFFLINE` sends nothing, as the client's request hook refuses.

Answers are hostile until read: each value this module hands on is checked for its type (a malformed answer is one
line naming the URL's owner), and fields it does not read are never looked at.
"""

from __future__ import annotations

import re
import sys
import uuid
from dataclasses import dataclass, field

from hubmirror.api import HubmirrorError, hiding, hub_time, is_repo_id

DOWNLOAD_COUNTER = "X-HF-Download-Counter"  # huggingface_hub.constants.X_HF_DOWNLOAD_COUNTER
TRACE_ID = "X-Amzn-Trace-Id"  # huggingface_hub.utils._http.X_AMZN_TRACE_ID


def _constants():
    """huggingface_hub's constants (its environment, read once at its import as the client reads it): 3 ms."""
    from huggingface_hub import constants

    return constants


def user_agent(library_name: str, library_version: str) -> str:
    """`build_hf_headers(library_name=…, library_version=…)["user-agent"]`."""
    constants = _constants()
    if not constants.HF_HUB_DISABLE_TELEMETRY:  # torch version and agent detection: the client's own code
        with hiding("trio"):
            from huggingface_hub.utils import build_hf_headers
        return build_hf_headers(token=False, library_name=library_name, library_version=library_version)["user-agent"]
    import huggingface_hub

    ua = (f"{library_name}/{library_version}; hf_hub/{huggingface_hub.__version__}; "
          f"python/{sys.version.split()[0].rstrip('+')}")
    if constants.HF_HUB_USER_AGENT_ORIGIN is not None:
        ua += "; origin/" + constants.HF_HUB_USER_AGENT_ORIGIN
    return "; ".join({part.strip(): None for part in ua.split(";")})  # the client's _deduplicate_user_agent


def headers(agent: str, token: str | None, *, download: bool) -> dict[str, str]:
    """The headers of one request: `agent` (from `user_agent`), the token's authorization, a fresh trace id, and the
    download counter on the download path. Refused, as by the client, under `HF_HUB_OFFLINE`."""
    if _constants().is_offline_mode():
        raise HubmirrorError("HF_HUB_OFFLINE is set, so huggingface_hub sends no request: unset it to pull")
    sent = {"user-agent": agent}
    if token:
        sent["authorization"] = f"Bearer {token}"
    sent[TRACE_ID] = str(uuid.uuid4())
    if download:
        sent[DOWNLOAD_COUNTER] = "1"
    return sent


# Query parameters as huggingface_hub's calls send them (httpx writes True as "true").
TREE_PARAMS = {"recursive": "true", "expand": "false"}  # list_repo_tree(recursive=True)
REFS_PARAMS = {"include_prs": "1"}  # list_repo_refs(include_pull_requests=True)


def list_models_params(search: str | None, limit: int | None) -> dict[str, str]:
    """`list_models(search=search, sort="downloads", limit=limit, full=True)`'s query, in its order."""
    params = {"search": search} if search else {}
    params["sort"] = "downloads"
    if limit is not None:
        params["limit"] = str(limit)
    params["full"] = "true"
    return params


# huggingface_hub.utils._validators.REPO_ID_REGEX: what its calls accept as a repo id before sending anything.
_CLIENT_REPO_ID = re.compile(r"(\b[\w\-.]{1,96}\b/)?\b[\w\-.]{1,96}\b", re.ASCII)


def repo_id_problem(repo_id: str) -> str | None:
    """Why huggingface_hub's `validate_repo_id` refuses `repo_id` (its own words), or None: the client sends
    nothing for such an id, so neither does the source."""
    if repo_id.count("/") > 1 or not _CLIENT_REPO_ID.fullmatch(repo_id):
        return ("Repo id must use alphanumeric chars, '-', '_' or '.'. The name cannot start or end with '-' or '.' "
                f"and the maximum length is 96: '{repo_id}'.")
    if "--" in repo_id or ".." in repo_id:
        return f"Cannot have -- or .. in repo_id: '{repo_id}'."
    if repo_id.endswith(".git"):
        return f"Repo_id cannot end by '.git': '{repo_id}'."
    return None


class Malformed(HubmirrorError):
    """An answer the Hub's client could not have read either: one line, saying what of it."""

    def __init__(self, what: str, thing: str):
        super().__init__(f"{what}: the Hub answered something hubmirror cannot read: {thing}")


def _hub_time(value, what: str) -> str | None:
    """A Hub date in the Hub's own form (`hub_time`); None where absent, and one that is not a date refused."""
    if value is None:
        return None
    written = hub_time(value) if isinstance(value, str) else None
    if written is None:
        raise Malformed(what, f"a date that is not one ({str(value)[:40]!r})")
    return written


def _of(value, kind):
    """`value` if it is a `kind` (a bool is no int here), else None."""
    return value if isinstance(value, kind) and not (kind is int and isinstance(value, bool)) else None


@dataclass
class RepoInfo:
    """What the source reads of a model's or dataset's info (`/api/{models|datasets}/{repo}/revision/{rev}`) or of
    an entry of the model listing: every field of its type, or None/empty."""

    id: str | None
    sha: str | None
    last_modified: str | None
    created_at: str | None
    card_data: dict | None
    tags: list[str] = field(default_factory=list)
    config: dict | None = None
    pipeline_tag: str | None = None
    library_name: str | None = None
    downloads: int | None = None
    likes: int | None = None
    gated: bool = False
    private: bool | None = None

    @classmethod
    def read(cls, data, what: str) -> RepoInfo:
        if not isinstance(data, dict):
            raise Malformed(what, "a repo info that is not an object")
        tags = data.get("tags")
        return cls(
            id=_of(data.get("id"), str),
            sha=_of(data.get("sha"), str),
            last_modified=_hub_time(data.get("lastModified"), what),
            created_at=_hub_time(data.get("createdAt"), what),
            card_data=_of(data.get("cardData"), dict),
            tags=[t for t in tags if isinstance(t, str)] if isinstance(tags, list) else [],
            config=_of(data.get("config"), dict),
            pipeline_tag=_of(data.get("pipeline_tag"), str),
            library_name=_of(data.get("library_name"), str),
            downloads=_of(data.get("downloads"), int),
            likes=_of(data.get("likes"), int),
            gated=bool(data.get("gated")),  # False, or how access is granted ("auto", "manual")
            private=_of(data.get("private"), bool),
        )


@dataclass(frozen=True)
class TreeFile:
    """A file entry of a tree listing (`type: file`): its git blob id, and for an LFS file its content sha256 and
    size (and its Xet hash where the Hub stores it in Xet)."""

    path: str
    size: int
    oid: str
    lfs_sha256: str | None = None
    lfs_size: int | None = None
    xet_hash: str | None = None


def tree_files(page, what: str) -> list[TreeFile]:
    """The files of one tree page (folders skipped), each entry checked as huggingface_hub's `RepoFile` reads it."""
    if not isinstance(page, list):
        raise Malformed(what, "a tree page that is not a list")
    files = []
    for entry in page:
        if not isinstance(entry, dict) or entry.get("type") not in ("file", "directory"):
            raise Malformed(what, f"a tree entry {str(entry)[:120]}")
        if entry["type"] == "directory":
            continue
        path, size, oid, lfs = entry.get("path"), _of(entry.get("size"), int), entry.get("oid"), entry.get("lfs")
        if not isinstance(path, str) or size is None or size < 0 or not isinstance(oid, str):
            raise Malformed(what, f"the tree entry of {str(path)[:200]!r}")
        if lfs is None:
            files.append(TreeFile(path, size, oid))
            continue
        lfs_oid, lfs_size = (lfs.get("oid"), _of(lfs.get("size"), int)) if isinstance(lfs, dict) else (None, None)
        if not isinstance(lfs_oid, str) or lfs_size is None or lfs_size < 0:
            raise Malformed(what, f"the LFS entry of {path[:200]!r}")
        files.append(TreeFile(path, size, oid, lfs_oid, lfs_size, _of(entry.get("xetHash"), str)))
    return files


def refs(data, what: str) -> list[tuple[str, str, str]]:
    """(name, kind, commit) of every ref of a `/refs?include_prs=1` answer: branches, tags, pull requests."""
    if not isinstance(data, dict):
        raise Malformed(what, "refs that are not an object")
    found = []
    for kind, key in (("branch", "branches"), ("tag", "tags"), ("pr", "pullRequests")):
        listed = data.get(key) or []
        if not isinstance(listed, list):
            raise Malformed(what, f"{key} that are not a list")
        for item in listed:
            name = item.get("name") if isinstance(item, dict) else None
            commit = item.get("targetCommit") if isinstance(item, dict) else None
            if not isinstance(name, str) or not isinstance(commit, str):
                raise Malformed(what, f"a ref {str(item)[:120]}")
            found.append((name, kind, commit))
    return found


def listed_models(page, what: str) -> list[RepoInfo]:
    """The entries of one page of the model listing whose id is a repo id (others are skipped)."""
    if not isinstance(page, list):
        raise Malformed(what, "a model listing that is not a list")
    infos = [RepoInfo.read(entry, what) for entry in page]
    return [info for info in infos if info.id is not None and is_repo_id(info.id)]
