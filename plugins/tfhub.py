"""TF Hub models: `tfhub:<handle>` — `google/universal-sentence-encoder/4`, `https://tfhub.dev/...`, or the URL of a
server that still speaks TF Hub's compressed protocol.

tfhub.dev now redirects to Kaggle Models, with no formula and renumbered versions, so a tfhub.dev handle goes through
a mapping shipped as data (`plugins/data/tfhub_kaggle.json`, extended by the JSON files named in
`HUBMIRROR_TFHUB_MAP`) to the Kaggle source. A URL, or a handle with `--endpoint`, is fetched with
`?tf-hub-format=compressed`: the tarball is pinned by its sha256 and unpacked, member by member and safely
(`hubmirror.archives`: links, devices, unsafe names and oversized archives refused), into individual files. TF Hub
publishes no checksum.

The requests a pull sends:

- A tfhub.dev handle (through the mapping): none of its own; the Kaggle source's requests for the mapped handle
  (GetModelInstance, ListModelInstanceVersionFiles, DownloadModelInstanceVersion per file, the signed storage GETs;
  see `hubmirror.plugins.kaggle`), which is what `hub.load("https://www.kaggle.com/models/…")` leads kagglehub to.
- A URL, or a handle with `--endpoint`: `GET <handle>?tf-hub-format=compressed`, the handle's own query kept and the
  parameter appended as tensorflow_hub's `_append_format_query` does (`parse_qsl` + `urlencode`), following redirects
  to where the tarball is stored: `HttpCompressedFileResolver`'s one request (tensorflow_hub 0.16). Headers: the
  session's `User-Agent: hubmirror/<version>` and `Accept-Encoding: identity` (the tarball's bytes as sent, which are
  what gets pinned), plus `Range: bytes=N-` only to resume a tarball cut off at byte N (`hubmirror.api.spool`),
  which tensorflow_hub cannot. Never `?tf-hub-format=uncompressed` (a 303 to a `gs://` path) nor any other format.
"""

from __future__ import annotations

import json
import os
import tarfile
import tempfile
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from hubmirror.api import (
    Delegated,
    Download,
    ModelMetadata,
    ModelRef,
    NotFoundError,
    RemoteFile,
    ResolvedRevision,
    Source,
    SourceContext,
    UsageError,
    chunks,
    delegate_files,
    hookimpl,
    open_tar,
    spool,
)

MAPPING_FILE = Path(__file__).parent / "data" / "tfhub_kaggle.json"
TFHUB_HOSTS = ("tfhub.dev", "www.tfhub.dev")
_CHUNK = 1 << 20


def compressed_url(handle: str) -> str:
    """`handle` with `tf-hub-format=compressed` appended to its query, as tensorflow_hub builds it."""
    parts = urlsplit(handle)
    query = parse_qsl(parts.query) + [("tf-hub-format", "compressed")]
    return urlunsplit(parts._replace(query=urlencode(query)))


def tfhub_to_kaggle() -> dict[str, dict]:
    """The shipped mapping, extended (and overridden) by the files in HUBMIRROR_TFHUB_MAP (os.pathsep-separated)."""
    mappings = dict(json.loads(MAPPING_FILE.read_text())["mappings"])
    for extra in filter(None, os.environ.get("HUBMIRROR_TFHUB_MAP", "").split(os.pathsep)):
        try:
            mappings.update(json.loads(Path(extra).read_text())["mappings"])
        except (OSError, ValueError, KeyError) as exc:
            raise UsageError(f"HUBMIRROR_TFHUB_MAP: cannot read {extra}: {exc}") from None
    return mappings


class TfHubSource(Source):
    name = "tfhub"
    description = "TF Hub handles (via their Kaggle Models mapping) and servers speaking ?tf-hub-format=compressed"

    def parse(self, spec: str) -> ModelRef:
        parts = urlsplit(spec if "://" in spec else f"https://{spec}" if spec.startswith(TFHUB_HOSTS) else spec)
        if parts.scheme in ("http", "https") and parts.hostname not in TFHUB_HOSTS:
            return ModelRef(self.name, spec)  # another server's URL, used as is
        handle = (parts.path if parts.scheme else spec).strip("/")
        segments = handle.split("/")
        if len(segments) < 3 or not segments[-1].isdigit() or any(s in ("", ".", "..") for s in segments):
            raise UsageError(f"malformed reference tfhub:{spec}: expected tfhub:PUBLISHER/MODEL/.../VERSION or a URL")
        return ModelRef(self.name, handle)

    def index(self, ctx: SourceContext, query: str | None = None, limit: int | None = None):
        """tfhub.dev has no listing any more: the handles the mapping knows."""
        handles = [h for h in sorted(tfhub_to_kaggle()) if not query or query.lower() in h.lower()]
        for handle in handles[:limit]:
            entry = tfhub_to_kaggle()[handle]
            yield ModelMetadata(self.name, handle, library="tensorflow", tags=["tfhub", *handle.split("/")[:-1]],
                                description=f"tfhub.dev handle, now Kaggle {entry['kaggle']}",
                                extra={"kaggle_handle": entry["kaggle"]})

    def resolve(self, ref: ModelRef, ctx: SourceContext) -> ResolvedRevision:
        if "://" in ref.model_id:
            return self._compressed(ref, ref.model_id, ctx)
        if ctx.endpoint:
            return self._compressed(ref, f"{ctx.endpoint.rstrip('/')}/{ref.model_id}", ctx)
        entry = tfhub_to_kaggle().get(ref.model_id)
        if entry is None:
            raise NotFoundError(f"tfhub:{ref.model_id} has no known Kaggle Models handle; add its redirect target to a "
                                f"file in HUBMIRROR_TFHUB_MAP, or give --endpoint of a server that still serves it")
        kaggle = ctx.source_for("kaggle")
        kaggle_revision = kaggle.resolve(kaggle.parse(entry["kaggle"]), ctx)
        meta = ModelMetadata(self.name, ref.model_id, library="tensorflow", tags=["tfhub", *ref.model_id.split("/")[:-1]],
                             description=kaggle_revision.metadata.description,
                             license=kaggle_revision.metadata.license,
                             extra={"kaggle_handle": entry["kaggle"], "mapping_observed": entry.get("observed")})
        return ResolvedRevision(ref, f"kaggle-{entry['kaggle'].replace('/', '-')}", "latest", meta,
                                delegate_files(kaggle, kaggle_revision, kaggle_revision.files))

    def _compressed(self, ref: ModelRef, url: str, ctx: SourceContext) -> ResolvedRevision:
        """Download the module tarball, pin it by sha256 and unpack its files."""
        tarball, sha256 = spool(ctx.session(), compressed_url(url), timeout=ctx.timeout, directory=ctx.cache_dir)
        with tarball:
            archive, members = open_tar(tarball, str(ref))
            # unpacked in archive order: going back in a compressed stream means inflating it again from the start
            unpacked = {path: self._unpack(archive, info, str(ref), ctx) for path, info in members.items()}
        files = [RemoteFile(path, members[path].size, location=unpacked[path]) for path in sorted(members)]
        meta = ModelMetadata(self.name, ref.model_id, library="tensorflow", tags=["tfhub"],
                             description=f"TF Hub module from {urlsplit(url).netloc}",
                             extra={"tarball_url": url, "tarball_sha256": sha256, "verified_by": "tofu"})
        return ResolvedRevision(ref, sha256, "latest", meta, files)

    @staticmethod
    def _unpack(archive: tarfile.TarFile, info: tarfile.TarInfo, what: str, ctx: SourceContext):
        """One member into its own anonymous temp file: a gzip stream cannot be read by several threads at once."""
        member_file = tempfile.TemporaryFile(dir=ctx.cache_dir)
        for chunk in chunks(archive.extractfile(info), what):
            member_file.write(chunk)
        return member_file

    def open_file(self, revision: ResolvedRevision, file: RemoteFile, ctx: SourceContext, offset: int = 0) -> Download:
        if isinstance(file.location, Delegated):
            return file.location.open(ctx, offset)
        member_file = file.location
        member_file.seek(offset)
        return Download(offset, iter(lambda: member_file.read(_CHUNK), b""))


@hookimpl
def register_sources(register):
    register(TfHubSource())
