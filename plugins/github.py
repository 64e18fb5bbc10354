"""A small GitHub client shared by the PyTorch Hub and URL sources: commits, trees, archives, release assets.

Endpoints follow GitHub Actions' variables: `GITHUB_SERVER_URL` (default https://github.com) and `GITHUB_API_URL`
(default https://api.github.com); `GITHUB_TOKEN`, when set, goes to the API only.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import requests

from hubmirror.errors import AccessDeniedError, HubmirrorError, NotFoundError
from hubmirror.http import request_json
from hubmirror.sources import SourceContext

COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
DEFAULT_SERVER = "https://github.com"


def github_error(resp: requests.Response, what: str) -> HubmirrorError | None:
    """The error a failed GitHub API answer means (rate limit, token, missing); its body's `message` when useful."""
    code = resp.status_code
    if code == 403 and resp.headers.get("X-RateLimit-Remaining") == "0":
        return AccessDeniedError(f"{what}: GitHub API rate limit reached; set GITHUB_TOKEN")
    if code in (401, 403):
        return AccessDeniedError(f"{what}: GitHub refused access (HTTP {code}); check GITHUB_TOKEN")
    if code in (404, 422):
        return NotFoundError(f"{what}: not found on GitHub")
    if code >= 400:
        message = _message(resp)
        return HubmirrorError(f"{what}: GitHub answered HTTP {code}{': ' + message if message else ''}")
    return None


def _message(resp: requests.Response) -> str:
    """The `message` of a GitHub error body, or ''."""
    try:
        body = resp.json()
    except ValueError:
        return ""
    return " ".join(str(body.get("message") or "").split())[:200] if isinstance(body, dict) else ""


@dataclass(frozen=True)
class ReleaseAsset:
    owner: str
    repo: str
    tag: str
    name: str


class GitHub:
    def __init__(self, ctx: SourceContext):
        self.ctx = ctx
        self.web = os.environ.get("GITHUB_SERVER_URL", DEFAULT_SERVER).rstrip("/")
        self.api = os.environ.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")

    def _api_headers(self) -> dict[str, str]:
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        token = os.environ.get("GITHUB_TOKEN")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def get_json(self, path: str, what: str):
        """GET an API path's JSON, with GitHub's errors mapped (see `github_error`)."""
        return request_json(self.ctx.session(), "GET", f"{self.api}{path}", headers=self._api_headers(),
                            timeout=self.ctx.timeout, errors=lambda resp: github_error(resp, what))

    def default_branch(self, owner: str, repo: str) -> str:
        return str(self.get_json(f"/repos/{owner}/{repo}", f"{owner}/{repo}").get("default_branch") or "main")

    def commit_sha(self, owner: str, repo: str, ref: str) -> str:
        """The commit a branch, tag or (short) sha names."""
        data = self.get_json(f"/repos/{owner}/{repo}/commits/{quote(ref, safe='')}", f"{owner}/{repo}:{ref}")
        sha = data.get("sha") if isinstance(data, dict) else None
        if not isinstance(sha, str) or not COMMIT_RE.match(sha):
            raise HubmirrorError(f"{owner}/{repo}:{ref}: GitHub gave no commit sha")
        return sha

    def tree(self, owner: str, repo: str, sha: str) -> list[dict]:
        data = self.get_json(f"/repos/{owner}/{repo}/git/trees/{sha}?recursive=1", f"{owner}/{repo}@{sha}")
        if not isinstance(data, dict) or not isinstance(data.get("tree"), list):
            raise HubmirrorError(f"{owner}/{repo}@{sha}: malformed tree listing")
        if data.get("truncated"):
            raise HubmirrorError(f"{owner}/{repo}@{sha}: GitHub truncated the tree listing (repository too large)")
        return data["tree"]

    def archive_url(self, owner: str, repo: str, sha: str) -> str:
        """What torch.hub downloads: the zipball of a ref (GitHub redirects it to codeload)."""
        return f"{self.web}/{owner}/{repo}/zipball/{sha}"

    def rebase(self, url: str) -> str:
        """Point a github.com URL at the configured server (as huggingface_hub rewrites huggingface.co URLs for
        `HF_ENDPOINT`), so weight URLs baked into packages follow a GitHub mirror."""
        if self.web != DEFAULT_SERVER and url.startswith(DEFAULT_SERVER + "/"):
            return self.web + url[len(DEFAULT_SERVER):]
        return url

    def parse_release_url(self, url: str) -> ReleaseAsset | None:
        """(owner, repo, tag, name) of a `{server}/{o}/{r}/releases/download/{tag}/{name}` URL, else None."""
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" != self.web:
            return None
        segments = parts.path.strip("/").split("/")
        if len(segments) == 6 and segments[2:4] == ["releases", "download"]:
            return ReleaseAsset(segments[0], segments[1], segments[4], segments[5])
        return None

    def release_asset(self, asset: ReleaseAsset) -> dict | None:
        """The release JSON's entry for the asset (size, `digest`), or None if the release does not list it."""
        release = self.get_json(f"/repos/{asset.owner}/{asset.repo}/releases/tags/{quote(asset.tag, safe='')}",
                                f"release {asset.owner}/{asset.repo}@{asset.tag}")
        for entry in release.get("assets") or []:
            if isinstance(entry, dict) and entry.get("name") == asset.name:
                return entry
        return None
