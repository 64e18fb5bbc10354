"""Direct weight URLs: `url:https://host/path/name.pth[#sha256=<hex>]`.

For download.pytorch.org-style names (`resnet50-0676ba61.pth`) the hex after the last `-` is checked as a sha256
prefix, as torch.hub's `check_hash` does. For GitHub release assets the release API's `digest` and `size` are
checked. A `#sha256=` fragment adds the user's own expectation. With none of these, the first download's sha256 pins
the revision (trust on first use, recorded in the model's metadata).

The requests a pull sends:

1. Only for a GitHub release asset (`{web}/{o}/{r}/releases/download/{tag}/{name}`, `web` as `GITHUB_SERVER_URL`):
   `GET {api}/repos/{o}/{r}/releases/tags/{tag}` — GitHub REST "Get a release by tag name", with the headers GitHub's
   REST documentation specifies (`Accept: application/vnd.github+json`, `X-GitHub-Api-Version: 2022-11-28`,
   `Authorization: Bearer $GITHUB_TOKEN` when set). torch.hub does not make it: it is the only place GitHub
   publishes an asset's sha256 (`digest`, since 2025-06) and size; see `hubmirror.plugins.github`.
2. `GET <the URL>`, following redirects (a release download's 302 to signed storage; requests drops any
   `Authorization` off the original host, and none is sent to it anyway): what torch.hub's `download_url_to_file`
   (`load_state_dict_from_url`) sends, plus `Accept-Encoding: identity`, and `Range: bytes=N-` to resume a file cut
   off at byte N, which torch.hub cannot.
"""

from __future__ import annotations

import posixpath
import re
from urllib.parse import unquote, urlsplit

from hubmirror.plugins.github import GitHub

from hubmirror.api import (
    SHA256_PREFIX,
    Download,
    IntegrityError,
    ModelMetadata,
    ModelRef,
    NotFoundError,
    RemoteFile,
    ResolvedRevision,
    Source,
    SourceContext,
    UsageError,
    hookimpl,
    is_valid_digest,
    open_range,
)

HASH_PREFIX_RE = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")


def hash_prefix(file_name: str) -> str | None:
    """The sha256 prefix a torch-hub-style file name promises (`name-<8+ hex>.ext`), or None."""
    match = HASH_PREFIX_RE.search(file_name)
    return match.group(1) if match else None


def url_file(url: str, ctx: SourceContext, expected_sha256: str | None = None) -> RemoteFile:
    """The RemoteFile for a weight URL, with every digest that can be known before downloading it."""
    github = GitHub(ctx)
    url = github.rebase(url)
    name = posixpath.basename(unquote(urlsplit(url).path))
    if not name:
        raise UsageError(f"{url}: the URL names no file")
    digests: dict[str, str] = {}
    if expected_sha256:
        digests["sha256"] = expected_sha256
    size = None
    asset = github.parse_release_url(url)
    if asset is not None:
        entry = github.release_asset(asset)
        if entry is None:
            raise NotFoundError(f"{url}: release {asset.tag} of {asset.owner}/{asset.repo} has no asset {asset.name}")
        size = entry.get("size") if isinstance(entry.get("size"), int) else None
        published = str(entry.get("digest") or "")
        if published.startswith("sha256:"):
            published = published[len("sha256:"):]
            if expected_sha256 and published != expected_sha256:
                raise IntegrityError(f"{url}: GitHub publishes sha256 {published}, not the {expected_sha256} asked for")
            digests["sha256"] = published
    prefix = hash_prefix(name)
    if prefix:
        digests[SHA256_PREFIX] = prefix
    return RemoteFile(name, size, digests, location=url)


class UrlSource(Source):
    name = "url"
    description = "direct weight URLs (GitHub release assets, download.pytorch.org-style names with hash prefixes)"

    def parse(self, spec: str) -> ModelRef:
        url, _, fragment = spec.partition("#")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(f"malformed reference url:{spec}: expected url:https://host/path/file[#sha256=HEX]")
        sha256 = None
        if fragment:
            key, _, value = fragment.partition("=")
            if key != "sha256" or not is_valid_digest("sha256", value.lower()):
                raise UsageError(f"url:{spec}: the fragment must be #sha256=<64 hex digits>")
            sha256 = value.lower()
        return ModelRef(self.name, url, sha256)

    def resolve(self, ref: ModelRef, ctx: SourceContext) -> ResolvedRevision:
        file = url_file(ref.model_id, ctx, ref.revision)
        host = urlsplit(ref.model_id).hostname or ""
        verified_by = "sha256" if file.sha256 else ("sha256-prefix" if SHA256_PREFIX in file.digests else "tofu")
        meta = ModelMetadata(
            source=self.name, model_id=ref.model_id, tags=[host, file.path.rsplit(".", 1)[-1]],
            description=f"{file.path} from {host}", extra={"url": ref.model_id, "verified_by": verified_by},
        )
        # With the sha256 known the revision is that content; otherwise it is pinned once the bytes are stored.
        return ResolvedRevision(ref, file.sha256, file.sha256 or "latest", meta, [file])

    def open_file(self, revision: ResolvedRevision, file: RemoteFile, ctx: SourceContext, offset: int = 0) -> Download:
        return open_range(ctx.session(), file.location, offset, timeout=ctx.timeout)


@hookimpl
def register_sources(register):
    register(UrlSource())
