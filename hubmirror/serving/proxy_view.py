"""The mirror as Hub repositories for `serve --upstream`: the catalog, overlaid with the revisions resolved upstream
whose files are still coming in (hubmirror.serving.proxy).

Such a revision is answered from its upstream listing: its model info, tree and paths-info at once, each file once
that file is verified and admission-scanned (a request waits for its own file only). Once catalogued, the catalog
answers as for any revision; a ref this server resolved upstream names the commit it resolved to.
"""

from __future__ import annotations

import json
from pathlib import Path

from hubmirror.serving import hf_api
from hubmirror.serving.hub_ids import ServedFile, served_file
from hubmirror.serving.proxy import Upstream
from hubmirror.serving.view import MirrorView
from hubmirror.store import BlobStore
from hubmirror.upstream import RemoteFile, ResolvedRevision


class ProxyView(MirrorView):
    """MirrorView of the mirror at `root` that fetches what it lacks through an `Upstream` made of `upstream` (its
    keyword arguments: `endpoint`, `ref_ttl`, `timeout`, `allow`, `deny`)."""

    def __init__(self, root: Path, registry, store: BlobStore | None, upstream: dict):
        super().__init__(root, registry, store)
        self.upstream = Upstream(root, registry, **upstream)

    def catalogued(self, repo: str, revision: str) -> bool:
        """Whether the catalog holds `repo` at `revision` (a ref, or a commit)."""
        model = super().repos().get(repo)
        return model is not None and super().commit(model, revision) is not None

    def repos(self) -> dict[str, dict]:
        # the fetches first, then the catalog: a fetch that ends in between was catalogued before it ended, so the
        # catalog read after it has the repo (the other order loses it for that moment: a RepoNotFound)
        fetching = self.upstream.fetching()
        catalogued = super().repos()
        if not fetching:
            return catalogued
        pending = {f.revision.ref.model_id: _model_row(f.revision) for f in fetching}
        return {**pending, **catalogued}

    def commit(self, model: dict, revision: str | None) -> tuple[str, str] | None:
        repo = _repo(model)
        if repo is not None and (commit := self.upstream.resolved(repo, revision)) is not None:
            if self.upstream.fetch(repo, commit) is not None:
                return commit, commit
            revision = commit if super().commit(model, commit) is not None else revision
        return super().commit(model, revision)

    def refs_document(self, model: dict, include_prs: bool) -> dict:
        """The upstream's refs (asked at most every ref_ttl); while it cannot answer, the catalog's overlaid with
        the refs this server resolved, `main` only where known (a revision coming in is no branch of its own)."""
        repo = _repo(model)
        upstream = None if repo is None else self.upstream.refs(repo)
        if upstream is not None:
            return hf_api.refs(model, upstream, include_prs)
        catalogued = super().repos().get(repo) if repo is not None else model
        with self.catalog() as catalog:
            rows = {r["name"]: r for r in catalog.refs(model["key"])} if catalogued is not None else {}
        for name, (commit, kind) in (self.upstream.resolved_refs(repo) if repo is not None else {}).items():
            rows[name] = {"name": name, "commit_id": commit, "kind": kind or rows.get(name, {}).get("kind")}
        return hf_api.refs(catalogued or model, list(rows.values()), include_prs, newest_is_main=catalogued is not None)

    def revision_date(self, model: dict, commit: str) -> str | None:
        fetch = self._fetch(model, commit)
        return fetch.revision.commit_info.get("date") if fetch is not None else super().revision_date(model, commit)

    def upstream_commits(self, model: dict, revision: str,
                         query: list[tuple[str, str]]) -> tuple[list[dict], str | None] | None:
        repo = _repo(model)
        return None if repo is None else self.upstream.commits(repo, revision, query)

    def upstream_listing(self, kind: str, query: list[tuple[str, str]]) -> tuple[list[dict], str | None] | None:
        return self.upstream.listing(kind, query)

    def file(self, model: dict, commit: str, path: str) -> ServedFile | None:
        fetch = self._fetch(model, commit)
        if fetch is None:
            return super().file(model, commit, path)
        stored = self.upstream.landed(fetch, _repo(model), path)
        if stored is None:
            return None
        served = served_file({"path": path, "size": stored.size, "sha256": stored.sha256,
                              "git_sha1": stored.git_sha1, "lfs": stored.remote.lfs})
        with self.catalog() as catalog:  # a file that came through Xet goes on through Xet
            return self._with_xet(catalog, [served])[0]

    def files(self, model: dict, commit: str, directory: str = "") -> list[ServedFile]:
        fetch = self._fetch(model, commit)
        if fetch is None:
            return super().files(model, commit, directory)
        prefix = f"{directory}/" if directory else ""
        return sorted((_listed(f) for f in fetch.files() if f.path.startswith(prefix)), key=lambda f: f.path)

    def paths(self, model: dict, commit: str, wanted: list[str]) -> tuple[list[ServedFile], dict[str, str]]:
        fetch = self._fetch(model, commit)
        if fetch is None:
            return super().paths(model, commit, wanted)
        listed = {f.path: f for f in fetch.files()}
        wanted = list(dict.fromkeys(wanted))
        files = [_listed(listed[p]) for p in wanted if p in listed]
        directories = {}
        for path in wanted:
            below = [_listed(f) for name, f in listed.items() if name.startswith(f"{path}/")]
            if path and path not in listed and below:
                directories[path] = hf_api.tree_ids(below, path)[path]
        return files, directories

    def _fetch(self, model: dict, commit: str):
        repo = _repo(model)
        return None if repo is None else self.upstream.fetch(repo, commit)


def _repo(model: dict) -> str | None:
    """The Hugging Face repo id of an `hf:` model (the only ones fetched upstream), else None."""
    return model["model_id"] if model["source"] == "hf" else None


def _listed(remote: RemoteFile) -> ServedFile:
    """A file of an upstream listing as clients see it (a regular file's sha256 is not known before it lands, and
    not needed: it is named by its git id)."""
    return served_file({"path": remote.path, "size": remote.size, "sha256": remote.sha256 or "",
                        "git_sha1": remote.digests.get("git-sha1"), "lfs": remote.lfs})


def _model_row(revision: ResolvedRevision) -> dict:
    """A `models` row (every column) for a revision still coming in: its upstream metadata, not yet cached."""
    meta = revision.metadata
    return {"key": revision.ref.key, "source": meta.source, "model_id": revision.ref.model_id, "task": meta.task,
            "library": meta.library, "architecture": meta.architecture, "license": meta.license,
            "tags": " ".join(meta.tags), "description": meta.description, "downloads": meta.downloads,
            "likes": meta.likes, "last_modified": meta.last_modified, "gated": int(meta.gated), "cached": 0,
            "size_bytes": sum(f.size or 0 for f in revision.files), "file_count": len(revision.files),
            "latest_commit": revision.commit, "metadata": json.dumps(meta.extra, sort_keys=True, default=str),
            "kind": meta.kind,
            "facets": "", "indexed_at": None, "updated_at": None}
