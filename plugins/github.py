"""A small GitHub client shared by the PyTorch Hub and URL sources: the requests torch.hub makes, plus the two GitHub
REST reads that publish digests (a tree's git blob ids, a release asset's sha256).

Endpoints follow GitHub Actions' variables: `GITHUB_SERVER_URL` (default https://github.com, torch.hub's hard-coded
web host) and `GITHUB_API_URL` (default https://api.github.com); `GITHUB_TOKEN`, when set, goes to the API only.

Every request this module sends (`{web}`, `{api}` as above):

1. `GET {web}/{o}/{r}/tree/main/` (200: `main`, 404: `master`), no header added: torch.hub `_parse_repo_info`, when
   no ref is given.
2. `GET {api}/repos/{o}/{r}/branches?per_page=100&page=N`, N = 1, 2, … until a match or an empty page, then the same
   for `/tags`, with `Accept: application/vnd.github.v3+json` and `Authorization: token $GITHUB_TOKEN` (sent again
   without it after a 401/403): torch.hub `_validate_not_a_forked_repo`. Its match (`name == ref`, or the head's sha
   starting with the ref) gives the commit.
3. `GET {web}/{o}/{r}/zipball/{sha}` → 302 to codeload, no header added, no token: torch.hub `_git_archive_link` +
   `download_url_to_file`, which put the ref there; hubmirror puts the commit the ref resolved to.
4. `GET {api}/repos/{o}/{r}/git/trees/{sha}?recursive=1`, GitHub's REST headers (below): not torch.hub; the REST
   "Get a tree" endpoint.
5. `GET {api}/repos/{o}/{r}/releases/tags/{tag}`, GitHub's REST headers (below): not torch.hub; the REST "Get a
   release by tag name" endpoint.

The last two are the only reads torch.hub does not make. They stay because they are the only places GitHub publishes
a digest: torch.hub checks nothing of a repository (its zipball has no checksum) and only a name's 8-hex prefix of a
weight file, while hubmirror refuses files it cannot check against the upstream. Each is a standard GitHub REST
endpoint sent exactly as GitHub's REST documentation specifies: `Accept: application/vnd.github+json`,
`X-GitHub-Api-Version: 2022-11-28`, and `Authorization: Bearer $GITHUB_TOKEN` when a token is set; no other query
parameter than the ones shown. Every request also carries the session's `User-Agent: hubmirror/<version>` (GitHub's
API refuses requests without one; torch.hub sends urllib's, or `torch.hub` for downloads).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import requests

from hubmirror.api import AccessDeniedError, HubmirrorError, NotFoundError, SourceContext, request, request_json

COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
DEFAULT_SERVER = "https://github.com"
REST_API_VERSION = "2022-11-28"
PER_PAGE = 100  # torch.hub's page size for branches and tags


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

    @staticmethod
    def rest_headers() -> dict[str, str]:
        """The headers GitHub's REST documentation specifies."""
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": REST_API_VERSION}
        token = os.environ.get("GITHUB_TOKEN")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    @staticmethod
    def torch_hub_headers(with_token: bool = True) -> dict[str, str]:
        """The headers torch.hub's fork check sends."""
        headers = {"Accept": "application/vnd.github.v3+json"}
        token = os.environ.get("GITHUB_TOKEN")
        if token and with_token:
            headers["Authorization"] = f"token {token}"
        return headers

    def get_json(self, path: str, what: str, headers: dict[str, str] | None = None):
        """GET an API path's JSON (REST headers unless others are given), with GitHub's errors mapped."""
        return request_json(self.ctx.session(), "GET", f"{self.api}{path}",
                            headers=self.rest_headers() if headers is None else headers,
                            timeout=self.ctx.timeout, errors=lambda resp: github_error(resp, what))

    def default_branch(self, owner: str, repo: str) -> str:
        """The ref torch.hub loads when none is given: `main` if the web page of its tree exists, else `master`."""
        try:
            resp = request(self.ctx.session(), "GET", f"{self.web}/{owner}/{repo}/tree/main/", timeout=self.ctx.timeout,
                           errors=lambda resp: github_error(resp, f"{owner}/{repo}"))
        except NotFoundError:
            return "master"
        resp.close()
        return "main"

    def ref_commit(self, owner: str, repo: str, ref: str) -> str:
        """The commit of the branch or tag that `ref` names, or whose head commit it abbreviates, found the way
        torch.hub checks a ref is not a fork's: branches first, then tags, page by page. A commit that heads no branch
        or tag is refused, as torch.hub refuses it (a fork's commits can be reached through the parent's URLs)."""
        what = f"{owner}/{repo}:{ref}"
        with_token = True
        for kind in ("branches", "tags"):
            page = 0
            while True:
                page += 1
                path = f"/repos/{owner}/{repo}/{kind}?per_page={PER_PAGE}&page={page}"
                try:
                    items = self.get_json(path, what, self.torch_hub_headers(with_token))
                except AccessDeniedError:
                    if not (with_token and os.environ.get("GITHUB_TOKEN")):
                        raise
                    with_token = False  # torch.hub retries without the token, "in case it had insufficient
                    items = self.get_json(path, what, self.torch_hub_headers(False))  # permissions"
                if not isinstance(items, list):
                    raise HubmirrorError(f"{what}: GitHub answered a malformed {kind} listing")
                if not items:
                    break
                for item in items:
                    sha = (item.get("commit") or {}).get("sha") if isinstance(item, dict) else None
                    if isinstance(sha, str) and COMMIT_RE.match(sha) and (item.get("name") == ref or
                                                                           sha.startswith(ref)):
                        return sha
        raise NotFoundError(f"{what}: not found on GitHub: no branch or tag is named {ref!r} or points at it "
                            f"(torch.hub refuses such refs too: a fork's commits are reachable from the parent)")

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
