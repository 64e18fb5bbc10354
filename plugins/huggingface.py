"""Hugging Face Hub source: `hf:org/name[@branch|tag|commit]`.

Speaks the Hub's download protocol directly (model info, recursive tree with pagination, resolve with redirects to a
CDN) so that resume, digests and errors stay under hubmirror's control. The endpoint comes from `--endpoint`, else
`HF_ENDPOINT`; the token from `HF_TOKEN`, else the token file huggingface_hub writes. The token is sent to the Hub
only, never to a CDN host, and is never stored.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote

import requests

from hubmirror.errors import (
    AccessDeniedError,
    HubmirrorError,
    NotFoundError,
    UsageError,
)
from hubmirror.hookspecs import hookimpl
from hubmirror.http import json_body, open_range, request
from hubmirror.records import ModelMetadata, ModelRef, RemoteFile, ResolvedRevision
from hubmirror.sources import Download, Source, SourceContext

DEFAULT_ENDPOINT = "https://huggingface.co"
REPO_ID_RE = re.compile(r"^(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}$")
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_LINK_NEXT_RE = re.compile(r'<([^>]+)>;\s*rel="next"')
_README_MAX = 512 * 1024
DEFAULT_INDEX_LIMIT = 1000


def hf_token() -> str | None:
    """The token huggingface_hub would use: `HF_TOKEN`, else `HF_TOKEN_PATH` or `$HF_HOME/token`."""
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


def hub_error(resp: requests.Response, what: str) -> HubmirrorError | None:
    """The error a failed Hub answer means, from its `X-Error-Code` / `X-Error-Message`, saying what to do."""
    if resp.status_code < 400:
        return None
    code = resp.headers.get("X-Error-Code", "")
    message = resp.headers.get("X-Error-Message", "")
    if code == "RepoNotFound":
        return NotFoundError(f"{what}: repository not found (or private: set HF_TOKEN)")
    if code == "GatedRepo":
        return AccessDeniedError(f"{what}: gated repository: accept its terms on the Hub, then set HF_TOKEN")
    if code == "RevisionNotFound":
        return NotFoundError(f"{what}: revision not found")
    if code == "EntryNotFound":
        return NotFoundError(f"{what}: file not found")
    if resp.status_code == 401:
        return AccessDeniedError(f"{what}: the Hub refused the credentials (HTTP 401)"
                                 f"{': ' + message if message else ''}")
    if resp.status_code == 403:
        return AccessDeniedError(f"{what}: access denied (HTTP 403){': ' + message if message else ''}")
    if resp.status_code == 404:
        return NotFoundError(f"{what}: not found (HTTP 404)")
    return HubmirrorError(f"{what}: the Hub answered HTTP {resp.status_code}{': ' + message if message else ''}")


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


class HuggingFaceSource(Source):
    name = "hf"
    description = "Hugging Face Hub models (HF_ENDPOINT, HF_TOKEN)"

    def endpoint(self, ctx: SourceContext) -> str:
        return (ctx.endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")

    def _headers(self) -> dict[str, str]:
        token = hf_token()
        return {"Authorization": f"Bearer {token}"} if token else {}

    def parse(self, spec: str) -> ModelRef:
        ref = super().parse(spec)
        if not REPO_ID_RE.match(ref.model_id) or ".." in ref.model_id:
            raise UsageError(f"malformed Hugging Face repo id {ref.model_id!r} (expected org/name)")
        return ref

    def index(self, ctx: SourceContext, query: str | None = None, limit: int | None = None):
        """The Hub's model listing (`/api/models`, most downloaded first), `limit` models (default 1000)."""
        limit = limit or DEFAULT_INDEX_LIMIT
        params = f"limit={min(limit, 1000)}&sort=downloads&direction=-1&full=true"
        url: str | None = f"{self.endpoint(ctx)}/api/models?{params}" + (f"&search={quote(query)}" if query else "")
        count = 0
        while url and count < limit:
            resp = self._get(ctx, url, "hf model listing")
            entries = json_body(resp)
            if not isinstance(entries, list):
                raise HubmirrorError("hf model listing: the Hub's answer is not a list")
            for info in entries:
                if count >= limit:
                    return
                if isinstance(info, dict) and isinstance(info.get("id"), str) and REPO_ID_RE.match(info["id"]):
                    count += 1
                    yield self._metadata(ModelRef(self.name, info["id"]), info)
            match = _LINK_NEXT_RE.search(resp.headers.get("Link", ""))
            url = match.group(1) if match else None

    def _get(self, ctx: SourceContext, url: str, what: str) -> requests.Response:
        """GET an API URL with the token, with the Hub's errors mapped (see `hub_error`)."""
        return request(ctx.session(), "GET", url, headers=self._headers(), timeout=ctx.timeout,
                       errors=lambda resp: hub_error(resp, what))

    def resolve(self, ref: ModelRef, ctx: SourceContext) -> ResolvedRevision:
        base = f"{self.endpoint(ctx)}/api/models/{ref.model_id}"
        info_url = base if ref.revision is None else f"{base}/revision/{quote(ref.revision, safe='')}"
        info = json_body(self._get(ctx, info_url, str(ref)))
        commit = info.get("sha") if isinstance(info, dict) else None
        if not isinstance(commit, str) or not COMMIT_RE.match(commit):
            raise HubmirrorError(f"{ref}: the Hub's model info carries no commit sha")
        files = self._list_tree(ctx, base, commit, str(ref))
        revision = ResolvedRevision(
            ref=ref,
            commit=commit,
            requested=ref.revision or "main",
            metadata=self._metadata(ref, info),
            files=files,
        )
        revision.metadata.description = self._read_description(ctx, revision)
        return revision

    def _list_tree(self, ctx: SourceContext, base: str, commit: str, what: str) -> list[RemoteFile]:
        url: str | None = f"{base}/tree/{commit}?recursive=true&expand=false"
        files: list[RemoteFile] = []
        pages = 0
        while url:
            resp = self._get(ctx, url, what)
            entries = json_body(resp)
            if not isinstance(entries, list):
                raise HubmirrorError(f"{what}: the Hub's tree listing is not a list")
            files.extend(self._remote_file(e, what) for e in entries if isinstance(e, dict) and e.get("type") == "file")
            match = _LINK_NEXT_RE.search(resp.headers.get("Link", ""))
            url = match.group(1) if match else None
            pages += 1
            if pages > 100_000:
                raise HubmirrorError(f"{what}: the tree listing does not end")
        return files

    @staticmethod
    def _remote_file(entry: dict, what: str) -> RemoteFile:
        path, size, oid, lfs = entry.get("path"), entry.get("size"), entry.get("oid"), entry.get("lfs")
        if not isinstance(path, str) or not isinstance(oid, str):
            raise HubmirrorError(f"{what}: malformed tree entry {entry!r:.200}")
        if isinstance(lfs, dict):
            return RemoteFile(path, lfs.get("size", size), {"sha256": str(lfs.get("oid"))}, etag=oid, lfs=True)
        return RemoteFile(path, size, {"git-sha1": oid}, etag=oid)

    @staticmethod
    def _metadata(ref: ModelRef, info: dict) -> ModelMetadata:
        card = info.get("cardData") or {}
        tags = [t for t in info.get("tags") or [] if isinstance(t, str)]
        license_ = card.get("license") if isinstance(card.get("license"), str) else None
        if license_ is None:
            license_ = next((t.split(":", 1)[1] for t in tags if t.startswith("license:")), None)
        config = info.get("config") or {}
        architectures = config.get("architectures") or []
        return ModelMetadata(
            source="hf",
            model_id=info.get("id") or ref.model_id,
            task=info.get("pipeline_tag"),
            library=info.get("library_name"),
            architecture=architectures[0] if architectures else config.get("model_type"),
            license=license_,
            tags=tags,
            downloads=info.get("downloads"),
            likes=info.get("likes"),
            last_modified=info.get("lastModified"),
            gated=bool(info.get("gated")),
            extra={k: info[k] for k in ("cardData", "config", "createdAt", "private") if k in info},
        )

    def _read_description(self, ctx: SourceContext, revision: ResolvedRevision) -> str | None:
        readme = next((f for f in revision.files if f.path == "README.md"), None)
        if readme is None or (readme.size or 0) > _README_MAX:
            return None
        download = self.open_file(revision, readme, ctx)
        try:
            card = b"".join(download.chunks).decode("utf-8", "replace")
        finally:
            download.close()
        return _description_from_card(card)

    def open_file(self, revision: ResolvedRevision, file: RemoteFile, ctx: SourceContext, offset: int = 0) -> Download:
        url = (
            f"{self.endpoint(ctx)}/{revision.ref.model_id}/resolve/{revision.commit}/{quote(file.path, safe='/')}"
        )
        return open_range(
            ctx.session(), url, offset, headers=self._headers(), timeout=ctx.timeout,
            errors=lambda resp: hub_error(resp, f"{revision.ref}: {file.path}"),
        )


@hookimpl
def register_sources(register):
    register(HuggingFaceSource())


@hookimpl
def served_repo_id(model):
    """`hf:` models are served under their own repo id."""
    return model["model_id"] if model["source"] == HuggingFaceSource.name else None
